"""`grade check`: the student's fast check before handing in.

Runs the public checks that need no training (shapes, params, functions) exactly
as grading does, and replaces full training with a short smoke run on the CPU
that only asks: does the loss fall? That keeps a check under a few seconds
on a laptop while still catching a model that cannot learn. `--full` runs the
real accuracy check instead.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from .errors import DataUnavailable
from .progress import Sink
from .results import CheckResult, GradeResult
from .runner import Options, grade
from .spec import Spec
from .submission import Source

QUICK_KINDS = frozenset({"shapes", "params", "functions"})
SMOKE = {"epochs": 3, "max_train": 512, "batch_size": 64}


def self_check(path: Path, spec: Spec, opts: Options, full: bool = False,
               source: Source | None = None, on_epoch: Sink | None = None) -> GradeResult:
    kinds = QUICK_KINDS | ({"accuracy"} if full else set())
    wanted = kinds if opts.only is None else kinds & opts.only
    result = grade(path, spec, dataclasses.replace(opts, only=frozenset(wanted)), source,
                   on_epoch)
    if not full and "accuracy" in spec.check_kinds() and (opts.only is None or "accuracy" in opts.only):
        for check in result.checks:
            if check.kind == "accuracy":
                check.feedback = (f"Not graded by the quick check: `grade check --full` trains "
                                  f"fully and grades it ({check.details['points']:g} points).")
        result.checks.append(smoke_run(path, spec, opts, source, on_epoch))
    return result


def smoke_run(path: Path, spec: Spec, opts: Options, source: Source | None = None,
              on_epoch: Sink | None = None) -> CheckResult:
    """A few short epochs on a slice of the training data: the loss must fall."""
    training = dataclasses.replace(spec.training, **SMOKE)
    smoke_spec = dataclasses.replace(spec, training=training)
    smoke_opts = dataclasses.replace(opts, only=frozenset({"accuracy"}), device="cpu")
    try:
        result = grade(path, smoke_spec, smoke_opts, source, on_epoch)
        check = next(c for c in result.checks if c.kind == "accuracy")
    except DataUnavailable as exc:
        return _smoke_result("skipped", f"No data for the smoke run: {exc}")
    curve = check.details.get("curve") or []
    if check.status == "error" or len(curve) < 2:
        return _smoke_result("failed", check.feedback)
    first, last = curve[0]["loss"], curve[-1]["loss"]
    if last < first:
        return _smoke_result("passed", f"The loss fell from {first:.3f} to {last:.3f} in "
                                       f"{len(curve)} short epochs: the model learns.")
    return _smoke_result("failed", f"The loss did not fall ({first:.3f} -> {last:.3f}): check the "
                                   "activations and that forward uses every layer.")


def _smoke_result(status: str, feedback: str) -> CheckResult:
    """Smoke runs carry no points: they say whether full training is worth waiting for."""
    return CheckResult("training (smoke run)", "accuracy", 0.0, 0.0, status, feedback)
