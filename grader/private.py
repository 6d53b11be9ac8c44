"""A private test set for a course: `grade make-private-test`.

The official test labels of MNIST, Fashion-MNIST and CIFAR-10 are public, so a
submission can carry them and look each test image up. The accuracy check
catches the plain form of that (grader/checks/accuracy.py, `looked_up`), but
the sure defence is a test set no student has seen. This writes one from the
official test set: every image's intensities jittered by up to `noise` levels
(and, if asked, moved by up to `shift` pixels), shuffled, all from a seed the
course keeps to itself. The images keep their labels and their difficulty (a
trained network hardly notices the jitter), but no image is byte for byte a
public one, so a table keyed by the public images finds nothing. Moving the
images hides them better but costs shift-sensitive nets accuracy (measured:
the Fashion-MNIST stride net loses 15 points at 2 pixels), so it is off by
default. The training images are the official ones, unchanged.

The result is an .npz (x_train, y_train, x_test, y_test, uint8 N,C,H,W) for
`training.dataset: <file>.npz`; keep it where only instructors' machines see
it (the data folder, not the assignment folder students get), and recalibrate
the bar with `grade calibrate`.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .data import load_dataset


def make_private_test(dataset: str, data_dir: Path, out: Path, seed: int, shift: int = 0,
                      noise: int = 8) -> dict[str, int]:
    """Write the private variant of `dataset` to `out`; returns the counts written."""
    arrays, _, _ = load_dataset(dataset, data_dir)
    rng = np.random.default_rng(seed)
    x_test = arrays["x_test"]
    if shift:
        x_test = np.stack([_moved(image, rng, shift) for image in x_test])
    jitter = rng.integers(-noise, noise + 1, x_test.shape)
    x_test = np.clip(x_test.astype(np.int16) + jitter, 0, 255).astype(np.uint8)
    order = rng.permutation(len(x_test))       # nor does an image's position give it away
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("wb") as f:
        np.savez(f, x_train=arrays["x_train"], y_train=arrays["y_train"],
                 x_test=x_test[order], y_test=arrays["y_test"][order])
    os.replace(tmp, out)
    return {"train": len(arrays["y_train"]), "test": len(order)}


def _moved(image: np.ndarray, rng: np.random.Generator, shift: int) -> np.ndarray:
    """The image (C,H,W) moved by a random (dy, dx) in [-shift, shift]; zeros come in."""
    dy, dx = rng.integers(-shift, shift + 1, 2)
    out = np.zeros_like(image)
    h, w = image.shape[1:]
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        image[:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out
