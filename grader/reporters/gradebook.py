"""Gradebook CSV: one row per student, for a spreadsheet or an LMS import.

Columns: student, score, max_score, then one column per check (its points), in
the spec's order, then `flags`: what an instructor should look at before
trusting the score (`self-reported`, `test-labels`; results.FLAGS); then
`status` and `reason`, which say why a score is what it is: a syntax error
(`error`), an untouched skeleton (`unfinished`), a hang (`timeout`) and a
memory hog (`killed`) all score 0, but each needs a different reply. A student
the grader could not grade (`grader-error`) or has not reached yet (`not-run`)
keeps a row with empty score cells, so nobody silently drops out of the
gradebook. A check left out by --only gets no column (and an empty cell).
"""
from __future__ import annotations

import csv
import io

from ..batch import StudentRow


def check_ids(results: list[dict | None]) -> list[str]:
    """Every check id that ran for someone, in first-seen order (the spec's order)."""
    ids: dict[str, None] = {}
    for result in results:
        for check in (result or {}).get("checks", []):
            if check["status"] != "skipped":
                ids.setdefault(check["id"], None)
    return list(ids)


def render(rows: list[StudentRow]) -> str:
    """CSV text, one line per student."""
    ids = check_ids([row.result for row in rows])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["student", "score", "max_score", *ids, "flags", "status", "reason"])
    for row in rows:
        result = row.result
        if result is None:
            writer.writerow([row.student, "", "", *("" for _ in ids), "", row.status, row.reason])
            continue
        scores = {c["id"]: c["score"] for c in result["checks"] if c["status"] != "skipped"}
        writer.writerow([row.student, _num(result["score"]), _num(result["max_score"]),
                         *(_num(scores[i]) if i in scores else "" for i in ids),
                         " ".join(result.get("flags", [])), row.status, _one_line(row.reason)])
    return buf.getvalue()


def _num(value: float) -> str:
    return f"{value:g}"


def _one_line(text: str) -> str:
    return " ".join(text.split())
