"""Markdown: for pasting into an LMS comment, a pull request, or a GitHub Classroom summary."""
from __future__ import annotations

from ..results import GradeResult
from .text import layer_rows, status_mark


def render(result: GradeResult) -> str:
    out = [f"# {result.assignment}: {result.score:g} / {result.max_score:g}", "",
           f"Submission: `{result.submission}`", "",
           "| Check | Score | Status |", "|---|---:|---|"]
    out += [f"| {c.id} | {c.score:g} / {c.max_score:g} | {status_mark(c.status)} {c.status} |"
            for c in result.checks]
    for c in result.checks:
        out += ["", f"## {c.id}", "", "```", c.feedback, "```"]
        rows = layer_rows(c)
        if rows:
            out += ["", "| Layer | Input | Output | Expected | Formula |", "|---|---|---|---|---|"]
            out += [f"| {' | '.join(r)} |" for r in rows]
    if result.skipped_cells:
        out += ["", "## Notebook statements not run", ""]
        out += [f"- cell {s['cell']}: `{s['line']}` ({s['reason']})" for s in result.skipped_cells]
    return "\n".join(out) + "\n"
