"""Markdown: for pasting into an LMS comment, a pull request, or a GitHub Classroom summary.

Feedback quotes what a submission printed and raised, so nothing from the result
is written as Markdown: feedback goes in a fence longer than any run of backticks
in it, table cells and code spans are escaped, and HTML is written as text.
A submission cannot close the fence and print a table of its own.
"""
from __future__ import annotations

import html
import re

from ..results import GradeResult
from .text import LAYER_COLUMNS, layer_rows, plain, status_mark

BACKTICKS = re.compile(r"`+")


def fence(text: str) -> list[str]:
    """`text` in a code fence that no line of it can close."""
    longest = max((len(m) for m in BACKTICKS.findall(text)), default=0)
    marks = "`" * max(3, longest + 1)
    return [marks, plain(text), marks]


def cell(text: str) -> str:
    """Text for one table cell: no line breaks, pipes, HTML or emphasis."""
    flat = " ".join(plain(text).split())
    flat = html.escape(flat, quote=False).replace("|", "\\|")
    return re.sub(r"([\\\\*_`\[\]#])", r"\\\1", flat).replace("\\\\|", "\\|")


def code(text: str) -> str:
    """A code span (formulas keep their `*`), safe whatever backticks `text` holds."""
    flat = " ".join(plain(text).split())
    if not flat:
        return ""
    longest = max((len(m) for m in BACKTICKS.findall(flat)), default=0)
    ticks = "`" * (longest + 1)
    return f"{ticks} {flat.replace('|', '¦')} {ticks}"


def render(result: GradeResult) -> str:
    out = [f"# {cell(result.assignment)}: {result.score:g} / {result.max_score:g}", "",
           f"Submission: {code(result.submission)}", "",
           "| Check | Score | Status |", "|---|---:|---|"]
    out += [f"| {cell(c.id)} | {c.score:g} / {c.max_score:g} | {status_mark(c.status)} "
            f"{c.status} |" for c in result.checks]
    for c in result.checks:
        out += ["", f"## {cell(c.id)}", "", *fence(c.feedback)]
        rows = layer_rows(c)
        if rows:
            out += ["", "| " + " | ".join(LAYER_COLUMNS) + " |",
                    "|" + "---|" * len(LAYER_COLUMNS)]
            out += [f"| {cell(r[0])} | {cell(r[1])} | {cell(r[2])} | {cell(r[3])} | {code(r[4])} "
                    f"| {cell(r[5])} |" for r in rows]
    if result.notes:
        out += ["", "## Notes", ""] + [f"- {cell(n)}" for n in result.notes]
    if result.skipped_cells:
        out += ["", "## Notebook statements not run", ""]
        out += [f"- cell {s['cell']}: {code(s['line'])} ({cell(s['reason'])})"
                for s in result.skipped_cells]
    return "\n".join(out) + "\n"
