"""Gradebook CSV: one row per student, for a spreadsheet or an LMS import.

Columns: student, score, max_score, then one column per check (its points),
in the spec's order, then `flags`: what an instructor should look at before
trusting the score (`self-reported`, `test-labels`; results.FLAGS). A student
the grader could not grade keeps a row with empty cells, so nobody silently
drops out of the gradebook.
"""
from __future__ import annotations

import csv
import io


def check_ids(results: list[dict | None]) -> list[str]:
    """Every check id that occurs, in first-seen order (the spec's order)."""
    ids: dict[str, None] = {}
    for result in results:
        for check in (result or {}).get("checks", []):
            ids.setdefault(check["id"], None)
    return list(ids)


def render(rows: list[tuple[str, dict | None]]) -> str:
    """CSV text for (student, result JSON or None) rows."""
    ids = check_ids([r for _, r in rows])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["student", "score", "max_score", *ids, "flags"])
    for student, result in rows:
        if result is None:
            writer.writerow([student, "", "", *("" for _ in ids), ""])
            continue
        scores = {c["id"]: c["score"] for c in result["checks"]}
        writer.writerow([student, _num(result["score"]), _num(result["max_score"]),
                         *(_num(scores[i]) if i in scores else "" for i in ids),
                         " ".join(result.get("flags", []))])
    return buf.getvalue()


def _num(value: float) -> str:
    return f"{value:g}"
