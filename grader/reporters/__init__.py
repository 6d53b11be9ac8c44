"""Reporters turn a GradeResult into text for a person or a file for a tool.

Each reporter only reads the result object: nothing here measures or scores.
"""
from __future__ import annotations

from ..results import GradeResult
from . import json_report, markdown, text

FORMATS = ("text", "json", "markdown")
SUFFIXES = {".json": "json", ".md": "markdown", ".txt": "text"}


def render(result: GradeResult, fmt: str, color: bool = False) -> str:
    if fmt == "text":
        return text.render(result, color=color)
    return {"json": json_report.render, "markdown": markdown.render}[fmt](result)
