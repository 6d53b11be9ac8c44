"""Checks: pure scoring of measurements against a spec (no printing, no student code).

Each module holds one check kind with a `run(check, spec, measurements, ...)`
that returns a CheckResult; which worker stages each kind needs is
grader/stages.py's table.
"""
from __future__ import annotations

from . import accuracy, functions, params, shapes

__all__ = ["accuracy", "functions", "params", "shapes"]
