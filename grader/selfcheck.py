"""`grade check`: the student's fast check before handing in.

Runs the public checks that need no training (shapes, params, functions) exactly
as grading does, and replaces full training with a short smoke run on the CPU
that asks whether the model can fit a few fixed training images well above
chance (a loss that falls a little proves nothing: a network whose features are
multiplied by 0 still lowers it by learning the class frequencies). That keeps
a check to a few seconds on a laptop while still catching a model that cannot
learn. `--full` runs the real accuracy check instead.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from .errors import DataUnavailable
from .progress import Sink
from .results import CheckResult, GradeResult
from .runner import Options, grade
from .spec import Spec
from .submission import Source

QUICK_KINDS = frozenset({"shapes", "params", "functions"})
# The smoke run: can the model fit a few fixed training images? It asks whether the
# architecture can learn at all, not whether the spec's recipe is quick, so it has a recipe
# of its own: Adam fits 64 images in 120 small steps for every course model, while a model
# that cannot learn (features multiplied by 0, a forward that ignores a layer's output)
# stays near the most common class (measured: the lab net 97%, the zero-feature net 19%).
SMOKE = {"epochs": 30, "max_train": 64, "batch_size": 16, "scheduler": None,
         "optimizer": {"name": "adam", "lr": 0.001}}
LEARNS_AT = 3.0            # training accuracy at least this many times chance


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
    """Train on 64 fixed training images: the model learns if it fits them well above chance."""
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
    chance = 1 / len(check.details.get("classes") or range(10))
    first, last = curve[0], curve[-1]
    seen = (f"on {SMOKE['max_train']} fixed training images, training accuracy went from "
            f"{first['train_accuracy']:.0%} to {last['train_accuracy']:.0%} in {len(curve)} short "
            f"epochs (chance: {chance:.0%}), and the loss from {first['loss']:.3f} to "
            f"{last['loss']:.3f} (guessing gives ln {round(1 / chance)} = {math.log(1 / chance):.3f})")
    if last["train_accuracy"] >= LEARNS_AT * chance:
        return _smoke_result("passed", f"The model learns: {seen}.")
    return _smoke_result("failed", f"The model does not learn: {seen}. A network that learns "
                                   "fits so few images easily; check that forward uses every "
                                   "layer's output and that nothing multiplies the features by "
                                   "a constant or detaches them.")


def _smoke_result(status: str, feedback: str) -> CheckResult:
    """Smoke runs carry no points: they say whether full training is worth waiting for."""
    return CheckResult("training (smoke run)", "accuracy", 0.0, 0.0, status, feedback)
