"""Terminal report: a score table a student can scan, then what to fix, check by check.

Uses rich for tables and colour; colour is off for NO_COLOR and for output
that is not a terminal (the CLI decides and passes `color`). Sentences are never
broken into lines here (a terminal wraps them itself; a file keeps them whole).
"""
from __future__ import annotations

import io
import re

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..results import CheckResult, GradeResult

MARKS = {"passed": "✔", "failed": "✘", "error": "!", "skipped": "-"}
STYLES = {"passed": "green", "failed": "red", "error": "bold red", "skipped": "dim"}
CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
                     r"|[\x00-\x08\x0b-\x1f\x7f]")


def status_mark(status: str) -> str:
    return MARKS.get(status, "?")


def plain(text: str) -> str:
    """`text` without escape sequences and control characters. Feedback can quote what a
    submission printed or raised: that must not colour or move a terminal (NO_COLOR and
    piped output stay plain), nor put bytes into a report file that its readers reject."""
    return CONTROL.sub("", text)


def score_text(check: CheckResult) -> str:
    """`3 / 4`, or `-` for a check worth nothing here (left out, or a smoke run)."""
    return "-" if check.max_score == 0 else f"{check.score:g} / {check.max_score:g}"


def fmt_shape(shape) -> str:
    return "x".join(str(v) for v in shape) if shape else "-"


LAYER_COLUMNS = ("Layer", "Input", "Output", "Expected", "Formula", "Activation")


def layer_rows(check: CheckResult) -> list[list[str]]:
    """Layer table rows of a shapes check. The mark says whether the shape is right; the
    activation has a column of its own, so a right shape never shows as wrong."""
    if check.kind != "shapes":
        return []
    return [[("✔ " if r["shape_ok"] else "✘ ") + r["name"], fmt_shape(r.get("in")),
             fmt_shape(r.get("got")), fmt_shape(r.get("expected")), r.get("formula") or "",
             activation_text(r.get("activation"))]
            for r in check.details.get("layers", [])]


def activation_text(activation: dict | None) -> str:
    """`relu ✔`, `tanh ✘ (relu)`, `none ✘ (relu)`; empty where the spec names none."""
    if activation is None:
        return ""
    if activation["ok"]:
        return f"{activation['got']} ✔"
    return f"{activation['got'] or 'none'} ✘ ({activation['expected']})"


def render(result: GradeResult, color: bool = False, width: int = 100) -> str:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=color, no_color=not color, width=width,
                      highlight=False, emoji=False)
    # the headline is its own line: as a table title, rich wraps it at the (narrow) table's width
    console.print(f"{result.assignment}: {result.score:g} / {result.max_score:g} points", markup=False)
    summary = Table(show_lines=False)
    for col, justify in (("Check", "left"), ("Score", "right"), ("Status", "left")):
        summary.add_column(col, justify=justify)
    for c in result.checks:
        summary.add_row(Text(c.id), score_text(c),
                        f"[{STYLES[c.status]}]{status_mark(c.status)} {c.status}[/]")
    console.print(summary)
    for c in result.checks:
        console.print(Text.assemble("\n", (c.id, "bold"), f" ({c.kind})"))
        console.print(plain(c.feedback), markup=False, soft_wrap=True)
        rows = layer_rows(c)
        if rows and c.status != "passed":
            table = Table(show_header=True, header_style="bold")
            for col in LAYER_COLUMNS:
                table.add_column(col)
            for r in rows:
                table.add_row(*(Text(plain(v)) for v in r))
            console.print(table)
    if result.skipped_cells:
        console.print("\n[bold]Notebook statements not run[/]")
        for s in result.skipped_cells:
            console.print(f"  cell {s['cell']}: {plain(s['line'])}  ({s['reason']})", markup=False,
                          soft_wrap=True)
    for note in result.notes:
        console.print(f"\nnote: {plain(note)}", markup=False, soft_wrap=True)
    return buf.getvalue()
