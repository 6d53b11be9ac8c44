"""Accuracy: train with the spec's recipe, then score test predictions against held labels.

The worker returns predictions only; the labels never leave this process.
The threshold depends on the data actually used: a CIFAR-10 subset cannot be
held to the full dataset's bar, so a spec gives `subset:` thresholds apart.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..data import PreparedData
from ..measurements import Measurements
from ..results import CheckResult, linear_credit, score_fraction, status_for
from ..spec import CheckSpec, Spec


def thresholds(check: CheckSpec, variant: str) -> dict[str, Any]:
    """min_accuracy / partial_from / measured for the data variant in use."""
    if variant == "subset" and "subset" in check.options:
        return check.options["subset"]
    return check.options


def run(check: CheckSpec, spec: Spec, m: Measurements, data: PreparedData) -> CheckResult:
    bar = thresholds(check, data.variant)
    base = {"dataset": {"name": data.name, "variant": data.variant, "n_train": data.n_train,
                        "n_test": data.n_test},
            "min_accuracy": bar["min_accuracy"], "partial_from": bar.get("partial_from")}
    if data.variant == "subset" and "subset" not in check.options:
        base["warning"] = ("this spec has no thresholds for a subset of the data; the full "
                           "dataset's thresholds were used")
    train = m.data("train")
    preds = m.predictions
    if not m.ok("train") or not isinstance(preds, np.ndarray):
        reason = m.blocker("train") if not m.ok("train") else preds
        return CheckResult(check.id, "accuracy", 0.0, check.points, "error",
                           f"No accuracy could be measured: {reason}",
                           {**base, "accuracy": 0.0, "curve": train.get("curve", [])})
    labels = data.test_labels()
    acc, per_class, confusion = evaluate(preds, labels, data.num_classes)
    credit = linear_credit(acc, bar["min_accuracy"], bar.get("partial_from"))
    score = score_fraction(check.points, credit)
    details = {**base, "accuracy": acc, "per_class": dict(zip(data.classes, per_class)),
               "confusion": confusion, "classes": data.classes, "curve": train.get("curve", []),
               "train_seconds": train.get("train_seconds"), "device": train.get("device")}
    return CheckResult(check.id, "accuracy", score, check.points, status_for(score, check.points),
                       _feedback(acc, bar, credit, train, per_class, data.classes), details)


def evaluate(preds: np.ndarray, labels: np.ndarray, num_classes: int):
    """Accuracy, per-class accuracy and the confusion matrix (rows: true class)."""
    valid = (preds >= 0) & (preds < num_classes)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels[valid], preds[valid]), 1)
    per_class_total = np.bincount(labels, minlength=num_classes)
    per_class = np.diag(confusion) / np.maximum(per_class_total, 1)
    acc = float(np.diag(confusion).sum() / max(len(labels), 1))
    return acc, [round(float(v), 4) for v in per_class], confusion.tolist()


def _feedback(acc: float, bar: dict[str, Any], credit: float, train: dict[str, Any],
              per_class: list[float], classes: list[str]) -> str:
    need = bar["min_accuracy"]
    line = f"Test accuracy {acc:.2%} (full marks from {need:.2%}"
    if bar.get("partial_from") is not None:
        line += f", partial credit from {bar['partial_from']:.2%}"
    line += ")."
    notes = [line]
    if train.get("stopped"):
        notes.append(f"Training stopped early: {train['stopped']}. Check the model for operations "
                     "that can overflow, or a learning rate set inside the model.")
    if credit < 1:
        worst = sorted(zip(per_class, classes))[:3]
        notes.append("Weakest classes: " + ", ".join(f"{c} {a:.0%}" for a, c in worst) + ".")
        curve = train.get("curve") or []
        if len(curve) >= 2 and curve[-1]["loss"] >= curve[0]["loss"]:
            notes.append("The training loss did not fall: check activations and the forward pass.")
    return "\n".join(notes)
