"""Accuracy: train with the spec's recipe, then score test predictions against held labels.

The worker returns predictions only; the labels never leave this process.
The threshold depends on the data actually used: a CIFAR-10 subset cannot be
held to the full dataset's bar, so a spec gives `subset:` thresholds apart,
and `embedded:` ones for the MNIST sample shipped with the grader.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..data import PreparedData
from ..measurements import Measurements
from ..records import TrainRecord
from ..results import CheckResult, linear_credit, score_fraction, status_for
from ..spec import THRESHOLD_VARIANTS, CheckSpec, Spec

SHIFT_DROP = 0.25   # measured: honest reference models lose at most ... (docs/SECURITY.md)
TRAIN_GAP = 0.25


def thresholds(check: CheckSpec, variant: str) -> dict[str, Any]:
    """min_accuracy / partial_from / measured for the data variant in use."""
    if variant in THRESHOLD_VARIANTS and variant in check.options:
        return check.options[variant]
    return check.options


def run(check: CheckSpec, spec: Spec, m: Measurements, data: PreparedData) -> CheckResult:
    bar = thresholds(check, data.variant)
    base = {"dataset": {"name": data.name, "variant": data.variant, "n_train": data.n_train,
                        "n_test": data.n_test},
            "min_accuracy": bar["min_accuracy"], "partial_from": bar.get("partial_from")}
    if data.variant in THRESHOLD_VARIANTS and data.variant not in check.options:
        base["warning"] = (f"this spec has no thresholds for the {data.variant} data; the full "
                           "dataset's thresholds were used")
    train: TrainRecord | None = m.record("train")
    preds = m.predictions
    if not m.ok("train") or not isinstance(preds, np.ndarray):
        reason = m.blocker("train") if not m.ok("train") else preds
        return CheckResult(check.id, "accuracy", 0.0, check.points, "error",
                           f"No accuracy could be measured: {reason}",
                           {**base, "accuracy": 0.0, "curve": _curve(train)})
    labels = data.test_labels()
    acc, per_class, confusion = evaluate(preds[0], labels, data.num_classes)
    shifted_acc = evaluate(preds[1], labels, data.num_classes)[0]
    suspicion = looked_up(acc, shifted_acc, train.final_train_accuracy)
    credit = 0.0 if suspicion else linear_credit(acc, bar["min_accuracy"], bar.get("partial_from"))
    score = score_fraction(check.points, credit)
    details = {**base, "accuracy": acc, "shifted_accuracy": shifted_acc,
               "train_accuracy": train.final_train_accuracy,
               "per_class": dict(zip(data.classes, per_class)), "confusion": confusion,
               "classes": data.classes, "curve": _curve(train),
               "train_seconds": train.train_seconds, "device": train.device,
               "ensemble": train.ensemble}
    feedback = _feedback(acc, bar, credit, train, per_class, data.classes) + "\n" + \
        data_line(data, base.get("warning"))
    if suspicion:
        feedback = (f"Withheld for review: {suspicion}. Predictions like these come from looking "
                    "test images up (their labels are public), not from a trained network, so "
                    "this check earns no points until an instructor has looked at the code.\n"
                    + feedback)
    return CheckResult(check.id, "accuracy", score, check.points, status_for(score, check.points),
                       feedback, details, flags=("test-labels",) if suspicion else ())


def looked_up(acc: float, shifted_acc: float, train_acc: float | None) -> str | None:
    """Why test predictions look looked up rather than computed, or None.

    A trained network is nearly as accurate on the test images moved by one pixel
    (SHIFT_DROP), and not far more accurate on the test images than on the training
    images it just learned (TRAIN_GAP); a table of the public test labels keyed by
    image is exact on the originals and at chance on everything else.
    """
    if acc - shifted_acc > SHIFT_DROP:
        return (f"on the same test images moved by one pixel, accuracy falls from {acc:.1%} "
                f"to {shifted_acc:.1%}")
    if train_acc is not None and acc - train_acc > TRAIN_GAP:
        return (f"test accuracy {acc:.1%} is far above the same model's accuracy on training "
                f"images ({train_acc:.1%})")
    return None


def _curve(train: TrainRecord | None) -> list[dict[str, float]]:
    return [{"epoch": p.epoch, "loss": p.loss, "train_accuracy": p.train_accuracy}
            for p in (train.curve if train else ())]


def evaluate(preds: np.ndarray, labels: np.ndarray, num_classes: int):
    """Accuracy, per-class accuracy and the confusion matrix (rows: true class)."""
    valid = (preds >= 0) & (preds < num_classes)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels[valid], preds[valid]), 1)
    per_class_total = np.bincount(labels, minlength=num_classes)
    per_class = np.diag(confusion) / np.maximum(per_class_total, 1)
    acc = float(np.diag(confusion).sum() / max(len(labels), 1))
    return acc, [round(float(v), 4) for v in per_class], confusion.tolist()


def data_line(data: PreparedData, warning: str | None) -> str:
    """Which data the score is about: a bar only means something next to its data."""
    line = (f"Data: {data.name} ({data.variant}: {data.n_train:,} training and {data.n_test:,} "
            f"test images) from {data.source}.")
    if data.variant == "embedded":
        line += (" The bar is this sample's own; with the full dataset (--data-dir) it is "
                 "higher.")
    return line + (f" Note: {warning}." if warning else "")


def _feedback(acc: float, bar: dict[str, Any], credit: float, train: TrainRecord,
              per_class: list[float], classes: list[str]) -> str:
    need = bar["min_accuracy"]
    line = f"Test accuracy {acc:.2%} (full marks from {need:.2%}"
    if bar.get("partial_from") is not None:
        line += f", partial credit from {bar['partial_from']:.2%}"
    line += ")."
    notes = [line]
    if train.stopped:
        notes.append(f"Training stopped early: {train.stopped}. Check the model for operations "
                     "that can overflow, or a learning rate set inside the model.")
    if credit < 1:
        worst = sorted(zip(per_class, classes))[:3]
        notes.append("Weakest classes: " + ", ".join(f"{c} {a:.0%}" for a, c in worst) + ".")
        curve = train.curve
        if len(curve) >= 2 and curve[-1].loss >= curve[0].loss:
            notes.append("The training loss did not fall: check activations and the forward pass.")
    return "\n".join(notes)
