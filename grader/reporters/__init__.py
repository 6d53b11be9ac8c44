"""Reporters turn a GradeResult into text for a person or a file for a tool.

Each reporter only reads the result object: nothing here measures or scores.
"""
from __future__ import annotations

from ..results import GradeResult
from . import gradescope, html, json_report, junit, markdown, student, text

FORMATS = ("text", "json", "markdown", "html", "gradescope", "junit")
SUFFIXES = {".json": "json", ".md": "markdown", ".txt": "text", ".html": "html", ".xml": "junit"}


def render(result: GradeResult, fmt: str, color: bool = False) -> str:
    if fmt == "text":
        return text.render(result, color=color)
    if fmt == "student":
        return student.render(result, color=color)
    return {"json": json_report.render, "markdown": markdown.render, "html": html.render,
            "gradescope": gradescope.render, "junit": junit.render}[fmt](result)
