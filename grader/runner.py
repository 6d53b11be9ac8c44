"""Grade one submission: spec -> workers -> measurements -> checks -> result.

The workers (where student code runs, never here) are grader/jobs.py's; this
module decides which checks run, prepares their data, scores what came back
and turns how the workers fared into notes a student and an instructor read.
"""
from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__, checks, progress, sandbox
from .data import PreparedData, default_data_dir, prepare
from .jobs import measure
from .limits import Limits
from .measurements import Measurements
from .results import CheckResult, GradeResult, Outcome, skipped
from .spec import CheckSpec, Spec
from .stages import needed
from .submission import Source, locate


@dataclass
class Options:
    device: str = "auto"
    seed: int = 0
    data_dir: Path | None = None
    only: frozenset[str] | None = None
    timeout_s: float | None = None
    keep_job: bool = False
    limits: Limits = field(default_factory=Limits)
    sandbox: str = "auto"           # auto | on | off (grader/sandbox.py)
    workers: str = "fresh"          # fresh | warm (grader/warm.py); the same grade either way
    ensembles: str = "auto"         # auto (on a GPU) | always | never: batched training
                                    # (worker/members.py); part of a grade's settings


def selected_checks(spec: Spec, only: frozenset[str] | None) -> list[CheckSpec]:
    """Checks whose kind, or whose id, is in `only` (all of them without `only`)."""
    return [c for c in spec.checks if only is None or c.kind in only or c.id in only]


def grade(path: Path, spec: Spec, opts: Options, source: Source | None = None,
          on_epoch: progress.Sink | None = None) -> GradeResult:
    """Grade the code at `path` (or an already extracted `source`, as notebooks hand in);
    `on_epoch` hears of training's progress, epoch by epoch."""
    start = time.perf_counter()
    chosen = selected_checks(spec, opts.only)
    source = source or locate(path, spec.name)
    data = prepare_data(spec, opts) if any(c.kind == "accuracy" for c in chosen) else None
    stages = needed({c.kind for c in chosen})
    m = measure(source, spec, stages, opts, data, on_epoch)
    results = [score_check(c, spec, m, data) if c in chosen else
               skipped(c.id, c.kind, c.points, left_out(opts.only)) for c in spec.checks]
    train = m.record("train")
    load = m.record("load")
    status, reason = outcome(m)
    return GradeResult(
        assignment=spec.name, submission=str(path), checks=results,
        duration_s=time.perf_counter() - start, device=train.device if train else "cpu",
        versions={"grader": __version__, "python": platform.python_version(),
                  "torch": load.torch if load else ""},
        notes=_notes(source, m) + _sandbox_notes(source, stages, opts),
        worker_output=m.output_tail,
        skipped_cells=[{"cell": s.cell, "line": s.line, "reason": s.reason}
                       for s in source.skipped],
        self_reported=sorted(m.self_reported), status=status, reason=reason)


def left_out(only: frozenset[str] | None) -> str:
    return (f"Not run: left out by --only {','.join(sorted(only or ()))}; it counts in neither "
            "the score nor the maximum.")


# The openings of the reasons grader/process.py and grader/limits.py give for stopping a worker.
TIMEOUT_REASON = "timed out after"
KILLED_REASONS = ("killed:", "the submission's process was killed by")


def outcome(m: Measurements) -> tuple[Outcome, str]:
    """How grading went as a whole, and why, for a gradebook: a syntax error, a hang and an
    untouched skeleton all score 0, but need different replies."""
    if m.failure and m.failure.startswith(TIMEOUT_REASON):
        return "timeout", m.failure
    if m.failure and m.failure.startswith(KILLED_REASONS):
        return "killed", m.failure
    failed = next((s for s, r in m.stages.items() if not r.ok and r.error is not None), None)
    if failed is not None:
        kind = "unfinished" if m.stages[failed].error.type == "NotImplementedError" else "error"
        return kind, m.blocker(failed)
    if m.failure:
        return "error", m.failure
    return "graded", ""


def prepare_data(spec: Spec, opts: Options) -> PreparedData:
    """The spec's dataset as cached arrays (converted once; later calls only look it up)."""
    t = spec.training
    return prepare(t.dataset, opts.data_dir or default_data_dir(), spec.folder, t.max_train)


def score_check(check: CheckSpec, spec: Spec, m: Measurements,
                data: PreparedData | None) -> CheckResult:
    if check.kind == "accuracy":
        return checks.accuracy.run(check, spec, m, data)
    return getattr(checks, check.kind).run(check, spec, m)


def _notes(source: Source, m: Measurements) -> list[str]:
    notes = []
    if source.skipped:
        notes.append(f"{len(source.skipped)} notebook statement(s) were not run: the grader keeps "
                     "imports, definitions and constants only.")
    if m.failure:
        notes.append(m.failure)
    if m.self_reported:
        stages = ", ".join(sorted(m.self_reported))
        why = next(iter(m.self_reported.values()))
        notes.append(f"SELF-REPORTED: {stages} measured inside the submission's own process, "
                     f"which could have changed them, because {why}. This spec allows that "
                     "(self_reported: true); do not trust these points for code you have not read.")
    return notes


def _sandbox_notes(source: Source, stages: list[str], opts: Options) -> list[str]:
    """The loud warning when student code ran, but not inside the sandbox."""
    ran = bool(stages) and not source.problem
    warning = sandbox.plan(opts.sandbox).warning if ran else None
    return [warning] if warning else []
