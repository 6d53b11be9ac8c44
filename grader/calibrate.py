"""Propose accuracy thresholds by training the reference solution over several seeds.

A threshold must be one that a correct model passes on every seed, on the
course's own hardware and data. This trains `solutions/<name>` with the spec's
recipe once per seed and proposes a bar below the worst run by a margin, so a
course can recalibrate instead of trusting numbers measured elsewhere.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError
from .progress import Sink
from .runner import Options, grade
from .spec import THRESHOLD_VARIANTS, Spec


class CalibrationFailed(UsageError):
    """The reference solution itself did not train: no threshold can be proposed."""


@dataclass(frozen=True)
class Calibration:
    accuracies: list[float]
    seconds: list[float]
    variant: str
    device: str

    @property
    def proposed_min(self) -> float:
        """Worst seed minus max(1 point, 3 standard deviations), rounded down to a percent."""
        spread = statistics.pstdev(self.accuracies) if len(self.accuracies) > 1 else 0.0
        return math.floor((min(self.accuracies) - max(0.01, 3 * spread)) * 100) / 100

    @property
    def proposed_partial_from(self) -> float:
        """Partial credit starts well below the bar: a model that learned something earns some."""
        return max(0.0, math.floor((self.proposed_min * 0.8) * 100) / 100)


def calibrate(solution: Path, spec: Spec, seeds: list[int], opts: Options,
              on_epoch: Sink | None = None) -> Calibration:
    accuracies, seconds, variant, device = [], [], "", ""
    for seed in seeds:
        run_opts = Options(device=opts.device, seed=seed, data_dir=opts.data_dir,
                           only=frozenset({"accuracy"}), timeout_s=opts.timeout_s)
        result = grade(solution, spec, run_opts, on_epoch=on_epoch)
        check = next(c for c in result.checks if c.kind == "accuracy")
        if "accuracy" not in check.details or check.status == "error":
            raise CalibrationFailed(f"the reference solution did not train on seed {seed}: "
                                    f"{check.feedback}")
        accuracies.append(check.details["accuracy"])
        seconds.append(check.details.get("train_seconds") or 0.0)
        variant, device = check.details["dataset"]["variant"], check.details.get("device", "")
    return Calibration(accuracies, seconds, variant, device)


def report(spec: Spec, cal: Calibration, seeds: list[int]) -> str:
    lines = [f"{spec.name}: {len(seeds)} seeds on {cal.device} ({cal.variant} data)"]
    lines += [f"  seed {s}: accuracy {a:.4f}  ({t:.1f} s training)"
              for s, a, t in zip(seeds, cal.accuracies, cal.seconds)]
    key = f"    {cal.variant}: {{min_accuracy: %.2f, partial_from: %.2f}}" \
        if cal.variant in THRESHOLD_VARIANTS else "    min_accuracy: %.2f\n    partial_from: %.2f"
    lines += ["", "Proposed thresholds for spec.yaml (the accuracy check):",
              key % (cal.proposed_min, cal.proposed_partial_from),
              f"    # measured: {min(cal.accuracies):.4f}-{max(cal.accuracies):.4f} over seeds "
              f"{seeds[0]}-{seeds[-1]} on {cal.device}"]
    return "\n".join(lines)
