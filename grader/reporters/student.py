"""The self-check table: one row per check with a hint, for a terminal or a notebook.

Shorter than the full report on purpose: a student at midnight needs to see
what is wrong and the first thing to fix, not every detail.
"""
from __future__ import annotations

import html
import io

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..results import CheckResult, GradeResult
from .text import STYLES, plain, score_text, status_mark


def hint(check: CheckResult) -> str:
    """The first thing to act on: for a failed check, its first problem; else its summary.
    A line that ends in a colon keeps the indented lines after it (the commands it
    introduces), so a hint never stops just before what to run."""
    lines = [line for line in check.feedback.splitlines() if line.strip()]
    if not lines:
        return ""
    first = 1 if check.status in ("failed", "error") and len(lines) > 1 and \
        check.kind in ("shapes", "params") else 0
    kept = [lines[first]]
    for line in lines[first + 1:]:
        if not (kept[0].rstrip().endswith(":") and line[:1].isspace()):
            break
        kept.append(line)
    return "\n".join(kept)


def render(result: GradeResult, color: bool = False, width: int = 110) -> str:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=color, no_color=not color, width=width,
                      highlight=False, emoji=False)
    table = Table(title=Text(f"{result.assignment}: {result.score:g} / {result.max_score:g} "
                             "points (public checks)"), title_justify="left")
    for col in ("Check", "Score", "Status", "Hint"):
        table.add_column(col, overflow="fold")
    for c in result.checks:
        table.add_row(Text(c.id), score_text(c), f"[{STYLES[c.status]}]{status_mark(c.status)} {c.status}[/]",
                      Text(plain(hint(c))))
    console.print(table)
    for note in result.notes:
        console.print(f"note: {plain(note)}", markup=False)
    return buf.getvalue()


def render_html(result: GradeResult) -> str:
    """The same table as HTML, for `check()` in a notebook."""
    colors = {"passed": "#1a7f37", "failed": "#cf222e", "error": "#cf222e", "skipped": "#6e7781"}
    rows = "".join(
        f"<tr><td>{html.escape(c.id)}</td><td>{score_text(c)}</td>"
        f"<td style='color:{colors[c.status]}'>{status_mark(c.status)} {c.status}</td>"
        f"<td style='text-align:left;white-space:pre-wrap'>{html.escape(plain(hint(c)))}</td>"
        "</tr>" for c in result.checks)
    return (f"<p><b>{html.escape(result.assignment)}: {result.score:g} / {result.max_score:g} points"
            "</b> (public checks)</p><table><tr><th>Check</th><th>Score</th><th>Status</th>"
            f"<th>Hint</th></tr>{rows}</table>")
