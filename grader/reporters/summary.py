"""summary.html: how a whole class did, on one self-contained page.

A score histogram, how each check went, the most common failures (so a
lecture can address them), and who could not be graded. Reads result JSON only.
"""
from __future__ import annotations

import re
from collections import Counter
from html import escape
from statistics import mean, median
from urllib.parse import quote

BINS = 10
TOP_FAILURES = 10
STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:60em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}
td.n{text-align:right}svg text{font-size:11px}.err{color:#b00}"""


def render(rows: list[tuple[str, dict | None]], errors: dict[str, str] | None = None) -> str:
    """The page for (student, result JSON or None) rows; `errors` says why a result is missing."""
    graded = [(s, r) for s, r in rows if r is not None]
    title = graded[0][1]["assignment"] if graded else "batch"
    parts = [f"<h1>{escape(title)}: {len(graded)} of {len(rows)} submissions graded</h1>",
             _overview(graded), "<h2>Scores</h2>", histogram_svg(_fractions(graded)),
             "<h2>Checks</h2>", _checks_table(graded),
             "<h2>Most common failures</h2>", _failures_table(graded),
             _errors_section(errors or {}), "<h2>Students</h2>", _students_table(rows)]
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n")


def _fractions(graded: list[tuple[str, dict]]) -> list[float]:
    return [r["score"] / r["max_score"] if r["max_score"] else 0.0 for _, r in graded]


def _overview(graded: list[tuple[str, dict]]) -> str:
    if not graded:
        return "<p>No results yet.</p>"
    scores = [r["score"] for _, r in graded]
    full = sum(r["score"] >= r["max_score"] - 1e-9 for _, r in graded)
    return (f"<p>Mean {mean(scores):.2f}, median {median(scores):g} of "
            f"{graded[0][1]['max_score']:g} points; {full} with full marks.</p>")


def histogram_counts(fractions: list[float]) -> list[int]:
    """Students per tenth of the maximum score; full marks fall in the last bin."""
    counts = [0] * BINS
    for f in fractions:
        counts[min(int(f * BINS), BINS - 1)] += 1
    return counts


def histogram_svg(fractions: list[float], width: int = 600, height: int = 160) -> str:
    counts = histogram_counts(fractions)
    top = max(counts) or 1
    bar = width / BINS
    bars = []
    for i, n in enumerate(counts):
        h = (height - 30) * n / top
        x, y = i * bar, height - 20 - h
        bars.append(f"<rect x='{x + 2:.0f}' y='{y:.0f}' width='{bar - 4:.0f}' height='{h:.0f}' "
                    f"fill='#4a7bd0'><title>{n} students</title></rect>"
                    f"<text x='{x + bar / 2:.0f}' y='{y - 3:.0f}' text-anchor='middle'>{n}</text>"
                    f"<text x='{x + bar / 2:.0f}' y='{height - 5}' text-anchor='middle'>"
                    f"{i * 100 // BINS}-{(i + 1) * 100 // BINS}%</text>")
    return (f"<svg width='{width}' height='{height}' role='img' "
            f"aria-label='score histogram'>{''.join(bars)}</svg>")


def _checks_table(graded: list[tuple[str, dict]]) -> str:
    stats: dict[str, Counter] = {}
    for _, result in graded:
        for c in result["checks"]:
            stats.setdefault(c["id"], Counter())[c["status"]] += 1
    rows = "".join(f"<tr><td>{escape(cid)}</td>"
                   + "".join(f"<td class=n>{s[k]}</td>" for k in ("passed", "failed", "error"))
                   + "</tr>" for cid, s in stats.items())
    return ("<table><tr><th>check</th><th>passed</th><th>failed</th><th>error</th></tr>"
            f"{rows}</table>")


def common_failures(graded: list[tuple[str, dict]]) -> list[tuple[str, int, str]]:
    """(check id, students, example message) for the most frequent failure messages.

    Messages are grouped with numbers and file names blanked out, so "accuracy 41.2%"
    and "accuracy 38.9%" count as one failure; the example is the most frequent wording.
    """
    groups: dict[tuple[str, str], Counter] = {}
    for _, result in graded:
        for c in result["checks"]:
            if c["status"] in ("failed", "error"):
                message = failure_message(c)
                key = (c["id"], re.sub(r"\S+\.(py|ipynb)\b|(?<![A-Za-z_])\d+(\.\d+)?", "#",
                                       message))
                groups.setdefault(key, Counter())[message] += 1
    ranked = sorted(groups.items(), key=lambda kv: -sum(kv[1].values()))[:TOP_FAILURES]
    return [(cid, sum(msgs.values()), msgs.most_common(1)[0][0]) for (cid, _), msgs in ranked]


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
        return "<p>None: every check passed.</p>"
    rows = "".join(f"<tr><td>{escape(cid)}</td><td class=n>{n}</td><td>{escape(msg)}</td></tr>"
                   for cid, n, msg in failures)
    return f"<table><tr><th>check</th><th>students</th><th>message</th></tr>{rows}</table>"


def _errors_section(errors: dict[str, str]) -> str:
    if not errors:
        return ""
    items = "".join(f"<li><b>{escape(s)}</b>: <span class=err>{escape(why)}</span></li>"
                    for s, why in errors.items())
    return f"<h2>Could not be graded ({len(errors)})</h2><ul>{items}</ul>"


def _students_table(rows: list[tuple[str, dict | None]]) -> str:
    body = "".join(
        f"<tr><td><a href='{escape(quote(s))}/report.md'>{escape(s)}</a></td>"
        + (f"<td class=n>{r['score']:g} / {r['max_score']:g}</td>" if r else
           "<td class=err>not graded</td>") + "</tr>" for s, r in rows)
    return f"<table><tr><th>student</th><th>score</th></tr>{body}</table>"
