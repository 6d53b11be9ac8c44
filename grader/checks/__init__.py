"""Checks: pure scoring of measurements against a spec (no printing, no student code).

Each module holds one check kind with a `run(check, spec, measurements, ...)`
that returns a CheckResult. The worker stages each kind needs are listed here,
so the runner starts only the work the selected checks use.
"""
from __future__ import annotations

from . import accuracy, functions, params, shapes

STAGES_FOR_KIND = {
    "shapes": ("load", "model", "probe"),
    "params": ("load", "model", "probe"),
    "functions": ("load", "functions"),
    "accuracy": ("load", "model", "train"),
}

__all__ = ["accuracy", "functions", "params", "shapes", "STAGES_FOR_KIND"]
