"""summary.html: how a whole class did, on one self-contained page styled like the reports.

From the top: the class's mean score, how many submissions ended how (graded,
error, unfinished, timeout, killed, grader-error, not-run), a score histogram,
how each check went, every kind of failure with who has it (so a lecture can
address the common ones and nobody's odd one is hidden), then every student with
a link to their own report.html. Reads result JSON only (batch.StudentRow);
every string from a result is escaped, since feedback quotes student code.
"""
from __future__ import annotations

import re
from collections import Counter
from html import escape
from statistics import mean, median
from urllib.parse import quote

from ..batch import REPORT_HTML, StudentRow
from .html import STYLE, status_badge
from .text import plain

BINS = 10
STATUS_ORDER = ("graded", "error", "unfinished", "timeout", "killed", "grader-error", "not-run")
# Which badge colour a submission's status takes: lost points, the grader's fault, nothing yet.
STATUS_TONE = {"graded": "passed", "grader-error": "error", "not-run": "skipped"}
EXTRA_STYLE = """
.counts{display:flex;flex-wrap:wrap;gap:10px;margin-top:12px}
.count{border:1px solid var(--line);border-radius:8px;padding:6px 12px;background:var(--soft)}
.count b{font-size:20px;margin-right:6px}
svg text{font-size:11px;fill:var(--muted)}
td.who{font-size:13px;color:var(--muted)}
.badge{white-space:nowrap}
"""


def render(rows: list[StudentRow]) -> str:
    """The page for every student of the batch."""
    graded = [(r.student, r.result) for r in rows if r.result is not None]
    title = graded[0][1]["assignment"] if graded else "batch"
    parts = [_header(title, rows, graded),
             _section("Scores", "scores", histogram_svg(_fractions(graded))),
             _section("Checks", "checks", _checks_table(graded)),
             _section("Failures", "failures", _failures_table(graded)),
             _section("Students", "students", _students_table(rows))]
    return ("<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{escape(title)}: class summary</title><style>{STYLE}{EXTRA_STYLE}</style>"
            f"</head><body><main>{''.join(parts)}</main></body></html>\n")


def _section(title: str, anchor: str, body: str) -> str:
    return f"<section id={anchor}><h2>{escape(title)}</h2>{body}</section>"


def _fractions(graded: list[tuple[str, dict]]) -> list[float]:
    return [r["score"] / r["max_score"] if r["max_score"] else 0.0 for _, r in graded]


def _header(title: str, rows: list[StudentRow], graded: list[tuple[str, dict]]) -> str:
    if graded:
        scores = [r["score"] for _, r in graded]
        top = graded[0][1]["max_score"]
        full = sum(r["score"] >= r["max_score"] - 1e-9 for _, r in graded)
        score = f"{mean(scores):.2f} / {top:g}<small>mean</small>"
        line = (f"median {median(scores):g} of {top:g} points; {full} with full marks")
        fraction = mean(_fractions(graded))
    else:
        score, line, fraction = "-", "no results yet", 0.0
    statuses = Counter(r.status for r in rows)
    counts = "".join(f"<span class=count><b>{statuses[s]}</b>{status_badge(s, _tone(s))}</span>"
                     for s in (*STATUS_ORDER, *sorted(set(statuses) - set(STATUS_ORDER)))
                     if statuses[s])
    return (f"<header><div class=top><div><h1>{escape(title)}</h1>"
            f"<div class=meta>{len(graded)} of {len(rows)} submissions graded · {line}</div>"
            f"</div><div class=score id=score>{score}</div></div>"
            f"<div class=bar><span class=full style='width:{fraction:.1%}'></span></div>"
            f"<div class=counts id=statuses>{counts}</div></header>")


def _tone(status: str) -> str:
    return STATUS_TONE.get(status, "failed")


def histogram_counts(fractions: list[float]) -> list[int]:
    """Students per tenth of the maximum score; full marks fall in the last bin."""
    counts = [0] * BINS
    for f in fractions:
        counts[min(int(f * BINS), BINS - 1)] += 1
    return counts


def histogram_svg(fractions: list[float], width: int = 640, height: int = 170) -> str:
    counts = histogram_counts(fractions)
    top = max(counts) or 1
    bar = width / BINS
    bars = []
    for i, n in enumerate(counts):
        h = (height - 36) * n / top
        x, y = i * bar, height - 20 - h
        bars.append(f"<rect x='{x + 3:.0f}' y='{y:.0f}' width='{bar - 6:.0f}' height='{h:.0f}' "
                    f"rx='3' fill='#0969da'><title>{n} students</title></rect>"
                    f"<text x='{x + bar / 2:.0f}' y='{y - 4:.0f}' text-anchor='middle'>{n}</text>"
                    f"<text x='{x + bar / 2:.0f}' y='{height - 5}' text-anchor='middle'>"
                    f"{i * 100 // BINS}-{(i + 1) * 100 // BINS}%</text>")
    return (f"<svg width='{width}' height='{height}' role='img' "
            f"aria-label='score histogram'>{''.join(bars)}</svg>")


def _checks_table(graded: list[tuple[str, dict]]) -> str:
    stats: dict[str, Counter] = {}
    for _, result in graded:
        for c in result["checks"]:
            stats.setdefault(c["id"], Counter())[c["status"]] += 1
    kinds = ("passed", "failed", "error", "skipped")
    rows = "".join(f"<tr><td>{escape(cid)}</td>"
                   + "".join(f"<td class=num>{s[k]}</td>" for k in kinds) + "</tr>"
                   for cid, s in stats.items())
    head = "".join(f"<th class=num>{status_badge(k, k)}</th>" for k in kinds)
    return f"<table><tr><th>Check</th>{head}</tr>{rows}</table>"


def common_failures(graded: list[tuple[str, dict]]) -> list[tuple[str, list[str], str]]:
    """Every kind of failure, most frequent first: (check id, students, example message).

    Messages are grouped with numbers and file names blanked out, so "accuracy 41.2%"
    and "accuracy 38.9%" count as one failure; the example is the most frequent wording.
    """
    groups: dict[tuple[str, str], tuple[Counter, list[str]]] = {}
    for student, result in graded:
        for c in result["checks"]:
            if c["status"] in ("failed", "error"):
                message = failure_message(c)
                key = (c["id"], re.sub(r"\S+\.(py|ipynb)\b|(?<![A-Za-z_])\d+(\.\d+)?", "#",
                                       message))
                wordings, students = groups.setdefault(key, (Counter(), []))
                wordings[message] += 1
                students.append(student)
    ranked = sorted(groups.items(), key=lambda kv: (-len(kv[1][1]), kv[0]))
    return [(cid, students, wordings.most_common(1)[0][0])
            for (cid, _), (wordings, students) in ranked]


def failure_message(check: dict) -> str:
    """The cause of a failed check: its first measured layer that is wrong, when it has
    layers (later layers often fail only because that one did), else its first line."""
    layers = check.get("details", {}).get("layers", []) if check["status"] == "failed" else []
    for layer in layers:
        wrong = layer.get("ok") is False or layer.get("credit", 1) < 1
        if wrong and layer.get("got") is not None and layer.get("message"):
            return layer["message"]
    return (check["feedback"].strip().splitlines() or [""])[0]


def _failures_table(graded: list[tuple[str, dict]]) -> str:
    failures = common_failures(graded)
    if not failures:
        return "<p>None: every check that ran passed.</p>"
    rows = "".join(f"<tr><td>{escape(cid)}</td><td class=num>{len(who)}</td>"
                   f"<td>{escape(plain(msg))}<div class=who>{_names(who)}</div></td></tr>"
                   for cid, who, msg in failures)
    return (f"<p class=meta>{len(failures)} kinds of failure, most frequent first.</p>"
            f"<table><tr><th>Check</th><th class=num>Students</th><th>Failure</th></tr>{rows}"
            "</table>")


def _names(students: list[str]) -> str:
    return ", ".join(f"<a href='{_report_link(s)}'>{escape(s)}</a>" for s in students)


def _report_link(student: str) -> str:
    return escape(f"{quote(student)}/{REPORT_HTML}")


def _students_table(rows: list[StudentRow]) -> str:
    body = "".join(_student_row(r) for r in rows)
    return ("<table><tr><th>Student</th><th class=num>Score</th><th>Status</th><th>Why</th>"
            f"</tr>{body}</table>")


def _student_row(row: StudentRow) -> str:
    name = escape(row.student)
    if row.result is not None:
        name = f"<a href='{_report_link(row.student)}'>{name}</a>"
        score = f"{row.result['score']:g} / {row.result['max_score']:g}"
    else:
        score = "-"
    return (f"<tr><td>{name}</td><td class=num>{score}</td>"
            f"<td>{status_badge(row.status, _tone(row.status))}</td>"
            f"<td>{escape(plain(row.reason))}</td></tr>")
