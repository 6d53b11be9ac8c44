"""Result objects: what a grading run produced, independent of how it is shown.

Checks create these, reporters only read them, and `to_json` is the schema-1
contract of docs/DESIGN.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["passed", "failed", "error", "skipped"]
# How grading a submission went as a whole, for a gradebook's `status` column. A batch adds
# "grader-error" (the grader failed; error.txt) and "not-run" (no result yet) for students
# without a result (grader/batch.py).
Outcome = Literal["graded", "error", "unfinished", "timeout", "killed"]
SCHEMA = 1
FLAGS = {"self-reported": "measured inside the submission's own process (the spec allows it)",
         "test-labels": "predictions look looked up, not computed (see the accuracy feedback)"}


@dataclass
class CheckResult:
    id: str
    kind: str
    score: float
    max_score: float
    status: Status
    feedback: str
    details: dict[str, Any] = field(default_factory=dict)
    flags: tuple[str, ...] = ()   # for an instructor to review, e.g. "test-labels" (FLAGS)

    def to_json(self) -> dict[str, Any]:
        out = {"id": self.id, "kind": self.kind, "score": round(self.score, 4),
               "max_score": self.max_score, "status": self.status, "feedback": self.feedback,
               "details": self.details}
        if self.flags:
            out["flags"] = list(self.flags)
        return out


@dataclass
class GradeResult:
    assignment: str
    submission: str
    checks: list[CheckResult]
    duration_s: float = 0.0
    device: str = "cpu"
    versions: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)        # e.g. notebook cells left out
    skipped_cells: list[dict[str, Any]] = field(default_factory=list)
    worker_output: str = ""                              # tail of what the submission printed
    self_reported: list[str] = field(default_factory=list)  # stages measured in its own process
    status: Outcome = "graded"
    reason: str = ""                                     # why, when status is not "graded"

    @property
    def flags(self) -> list[str]:
        """What an instructor should look at before trusting the score (gradebook column)."""
        flags = {f for c in self.checks for f in c.flags}
        if self.self_reported:
            flags.add("self-reported")
        return sorted(flags)

    @property
    def score(self) -> float:
        return round(sum(c.score for c in self.checks), 4)

    @property
    def max_score(self) -> float:
        return sum(c.max_score for c in self.checks)

    @property
    def full_marks(self) -> bool:
        return self.score >= self.max_score - 1e-9

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "assignment": self.assignment, "submission": self.submission,
                "score": self.score, "max_score": self.max_score,
                "checks": [c.to_json() for c in self.checks],
                "duration_s": round(self.duration_s, 3), "device": self.device,
                "versions": self.versions, "notes": self.notes,
                "skipped_cells": self.skipped_cells, "flags": self.flags,
                "status": self.status, "reason": self.reason}


def skipped(id: str, kind: str, points: float, why: str) -> CheckResult:
    """A check that was not run: listed, worth nothing either way (score and max_score 0);
    `details.points` keeps what it is worth when it runs."""
    return CheckResult(id, kind, 0.0, 0.0, "skipped", why, {"points": points})


def score_fraction(points: float, fraction: float) -> float:
    """Points earned for a fraction of a check, clamped and rounded to avoid 0.30000000004."""
    return round(points * min(max(fraction, 0.0), 1.0), 4)


def status_for(score: float, max_score: float) -> Status:
    return "passed" if score >= max_score - 1e-9 else "failed"


def linear_credit(value: float, full_at: float, zero_at: float | None) -> float:
    """1 at or above full_at, rising linearly from 0 at zero_at; all-or-nothing without zero_at."""
    if value >= full_at:
        return 1.0
    if zero_at is None or value <= zero_at:
        return 0.0
    return (value - zero_at) / (full_at - zero_at)

