"""Gradescope results.json: what a Gradescope autograder's run_autograder writes.

Follows Gradescope's autograder specification
(https://gradescope-autograders.readthedocs.io/en/latest/specs/): one test per check with
name, score, max_score, status, output and visibility. Outputs are plain text ("text":
shown in a <pre>), never HTML, because feedback quotes student code; terminal escapes
are removed. Every test is visible: feedback on hidden cases already names no values.
"""
from __future__ import annotations

import json
from typing import Any

from ..results import CheckResult, GradeResult
from .text import plain


def render(result: GradeResult) -> str:
    return json.dumps(results_json(result), indent=2, ensure_ascii=False) + "\n"


def results_json(result: GradeResult) -> dict[str, Any]:
    return {"score": result.score, "execution_time": round(result.duration_s),
            "output": _overview(result), "output_format": "text", "test_output_format": "text",
            "tests": [_test(c) for c in result.checks],
            "extra_data": {"assignment": result.assignment, "submission": result.submission,
                           "device": result.device, "versions": result.versions}}


def _test(check: CheckResult) -> dict[str, Any]:
    test = {"name": check.id, "score": check.score, "max_score": check.max_score,
            "output": plain(check.feedback), "visibility": "visible",
            "tags": [check.kind], "extra_data": {"status": check.status}}
    if check.status != "skipped":   # Gradescope knows passed/failed only; let it infer the rest
        test["status"] = "passed" if check.status == "passed" else "failed"
    return test


def _overview(result: GradeResult) -> str:
    """Top-level text: what applies to the whole submission (Gradescope shows the total)."""
    lines = [f"Note: {plain(n)}" for n in result.notes]
    lines += [f"Not run: cell {s['cell']}: {plain(s['line'])} ({s['reason']})"
              for s in result.skipped_cells]
    return "\n".join(lines)
