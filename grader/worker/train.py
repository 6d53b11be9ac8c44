"""Train a submitted model with the spec's recipe and predict the test images.

The whole dataset lives on the device as uint8 and is normalised, padded and
augmented there, batch by batch, so no DataLoader or per-image Python work
sits between the GPU and the arithmetic. All randomness (initial weights,
batch order, flips, crops) comes from CPU generators seeded from the run's
seed, so a run is repeatable and the same on any device.
The worker gets test *images* only; labels stay with the parent.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class TrainingStopped(Exception):
    """Training cannot go on (non-finite loss, wrong output shape); carries a student-facing reason."""


def load_arrays(paths: dict[str, str], device: torch.device) -> dict[str, torch.Tensor]:
    arrays = {k: torch.from_numpy(np.load(v, allow_pickle=False)) for k, v in paths.items()}
    return {k: v.to(device) for k, v in arrays.items()}


class DevicePipeline:
    """uint8 images -> float batches: pad, augment (train only) and normalise, on the device."""

    def __init__(self, recipe: dict[str, Any], channels: int, device: torch.device):
        self.pad = int(recipe.get("pad", 0))
        self.hflip = bool(recipe.get("hflip", False))
        self.crop = int(recipe.get("crop_padding", 0))
        self.mean = torch.tensor(recipe["mean"], device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(recipe["std"], device=device).view(1, -1, 1, 1)
        if self.mean.shape[1] != channels:
            raise TrainingStopped(f"the recipe normalises {self.mean.shape[1]} channels but the "
                                  f"images have {channels}")

    def __call__(self, xb: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        x = xb.float().div_(255.0)
        if self.pad:
            x = F.pad(x, (self.pad,) * 4)
        if gen is not None and self.hflip:
            flip = torch.rand(x.shape[0], generator=gen).lt(0.5).to(x.device)
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        if gen is not None and self.crop:
            x = random_crop(x, self.crop, gen)
        return (x - self.mean) / self.std


def random_crop(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Zero-pad by `pad` and cut a random same-size window per image, in one gather."""
    n, c, h, w = x.shape
    xp = F.pad(x, (pad,) * 4)
    oy = torch.randint(0, 2 * pad + 1, (n, 1), generator=gen).to(x.device)
    ox = torch.randint(0, 2 * pad + 1, (n, 1), generator=gen).to(x.device)
    rows = (oy + torch.arange(h, device=x.device)).view(n, 1, h, 1).expand(n, c, h, w + 2 * pad)
    xp = xp.gather(2, rows)
    cols = (ox + torch.arange(w, device=x.device)).view(n, 1, 1, w).expand(n, c, h, w)
    return xp.gather(3, cols)


def make_optimizer(model: nn.Module, recipe: dict[str, Any]):
    opt = recipe["optimizer"]
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise TrainingStopped("the model has no trainable parameters")
    wd = float(opt.get("weight_decay", 0.0))
    if opt["name"] == "sgd":
        optimizer = torch.optim.SGD(params, lr=opt["lr"], momentum=opt.get("momentum", 0.0),
                                    weight_decay=wd, nesterov=bool(opt.get("nesterov", False)))
    elif opt["name"] == "adam":
        optimizer = torch.optim.Adam(params, lr=opt["lr"], weight_decay=wd)
    else:
        optimizer = torch.optim.AdamW(params, lr=opt["lr"], weight_decay=wd)
    sched = recipe.get("scheduler")
    scheduler = None
    if sched:
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, sched["milestones"],
                                                         sched["gamma"])
    return optimizer, scheduler


def train_and_predict(model: nn.Module, recipe: dict[str, Any], data: dict[str, torch.Tensor],
                      seed: int, num_classes: int,
                      progress: Callable[[dict], None] = lambda _: None) -> dict[str, Any]:
    """Train for the recipe's epochs; returns the curve and the test predictions (numpy)."""
    device = data["train_x"].device
    model.to(device)
    pipe = DevicePipeline(recipe, int(data["train_x"].shape[1]), device)
    optimizer, scheduler = make_optimizer(model, recipe)
    gen = torch.Generator().manual_seed(seed)
    n, bs = data["train_x"].shape[0], int(recipe["batch_size"])
    curve: list[dict[str, float]] = []
    stopped = None
    start = time.perf_counter()
    for epoch in range(int(recipe["epochs"])):
        model.train()
        order = torch.randperm(n, generator=gen).to(device)
        total, correct, seen = torch.zeros((), device=device), torch.zeros((), device=device), 0
        for step, i in enumerate(range(0, n, bs)):
            idx = order[i:i + bs]
            x, y = pipe(data["train_x"][idx], gen), data["train_y"][idx]
            logits = model(x)
            _check_logits(logits, x.shape[0], num_classes)
            loss = F.cross_entropy(logits, y)
            if not torch.isfinite(loss):
                stopped = f"the loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}"
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(idx)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(idx)
        if scheduler is not None:
            scheduler.step()
        if seen:
            curve.append({"epoch": epoch + 1, "loss": float(total) / seen,
                          "train_accuracy": float(correct) / seen})
            progress(curve[-1])
        if stopped:
            break
    train_s = time.perf_counter() - start
    predictions = predict(model, pipe, data["test_x"], num_classes)
    return {"curve": curve, "stopped": stopped, "train_seconds": round(train_s, 3),
            "predictions": predictions, "device": str(device)}


@torch.no_grad()
def predict(model: nn.Module, pipe: DevicePipeline, x_test: torch.Tensor, num_classes: int,
            batch: int = 1024) -> np.ndarray:
    model.eval()
    out = []
    for i in range(0, x_test.shape[0], batch):
        logits = model(pipe(x_test[i:i + batch], None))
        _check_logits(logits, min(batch, x_test.shape[0] - i), num_classes)
        out.append(logits.argmax(1).to("cpu", torch.int64))
    return torch.cat(out).numpy()


def _check_logits(logits: Any, batch: int, num_classes: int) -> None:
    if not isinstance(logits, torch.Tensor):
        raise TrainingStopped(f"forward returned {type(logits).__name__}, not a tensor of scores")
    if tuple(logits.shape) != (batch, num_classes):
        raise TrainingStopped(f"forward returned shape {tuple(logits.shape)}; the loss needs "
                              f"({batch}, {num_classes}): one score per class for each image")

