"""Train a submitted model with the spec's recipe and predict the test images.

The whole dataset lives on the device as uint8 and is normalised, padded and
augmented there, batch by batch, so no DataLoader or per-image Python work
sits between the GPU and the arithmetic. All randomness (initial weights,
batch order, flips, crops) comes from CPU generators seeded from the run's
seed, so a run is repeatable and the same on any device.
The worker gets test *images* only; labels stay with the parent.

Nothing in the training loop waits for the device: a step's loss and hits
are written into per-epoch device tensors and read once per epoch, so the
CPU can queue the next step while the GPU runs this one (a per-step
`.item()` makes the CPU wait for the GPU at every step, which the small,
launch-bound nets of a course feel most).
"""
from __future__ import annotations

import functools
import os
import time
import warnings
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .members import Single, Stacked, TrainingStopped, check_logits, stacking, twin


def load_arrays(paths: dict[str, str], device: torch.device) -> dict[str, torch.Tensor]:
    """Map the prepared .npy files read-only and move them to the device.

    Mapping instead of reading means workers graded side by side share one copy
    of the dataset in the page cache instead of each holding its own. A warm
    trainer (grader/worker/serve.py) keeps the last dataset it loaded, so the
    device holds it once for every submission; nothing writes to these tensors
    (batches are float copies; on the CPU the pages are mapped read-only).
    """
    return dict(_load_arrays(tuple(sorted(paths.items())), str(device)))


@functools.lru_cache(maxsize=1)
def _load_arrays(paths: tuple[tuple[str, str], ...], device: str
                 ) -> tuple[tuple[str, torch.Tensor], ...]:
    arrays = {k: np.load(v, mmap_mode="r", allow_pickle=False) for k, v in paths}
    with warnings.catch_warnings():
        # torch warns that the map is read-only; nothing writes to it (batches are copies).
        warnings.simplefilter("ignore", UserWarning)
        return tuple((k, torch.from_numpy(v).to(device)) for k, v in arrays.items())


def make_deterministic() -> None:
    """Ask for deterministic kernels, so one seed gives one score on a GPU too.

    warn_only: a student's op without a deterministic kernel still trains.
    cuBLAS reads its workspace setting when first used, which is after this.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)


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


def make_optimizer(params: list[torch.Tensor], recipe: dict[str, Any], steps_per_epoch: int):
    opt = recipe["optimizer"]
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
    return optimizer, Schedule(optimizer, recipe.get("scheduler"), int(recipe["epochs"]),
                               steps_per_epoch)


class Schedule:
    """When the learning rate changes: after each epoch (multistep), or after every step
    (onecycle: warm up to max_lr, then anneal, over the whole run; PyTorch's OneCycleLR)."""

    def __init__(self, optimizer, sched: dict[str, Any] | None, epochs: int, steps: int):
        self.per_step = bool(sched) and sched["name"] == "onecycle"
        self.scheduler = None
        if not sched:
            return
        if self.per_step:
            self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=sched["max_lr"], epochs=epochs, steps_per_epoch=steps,
                pct_start=sched.get("pct_start", 0.3), anneal_strategy=sched.get("anneal", "cos"),
                div_factor=sched.get("div_factor", 25.0),
                final_div_factor=sched.get("final_div_factor", 1e4))
        else:
            self.scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, sched["milestones"],
                                                                  sched["gamma"])

    def after_step(self) -> None:
        if self.per_step:
            self.scheduler.step()

    def after_epoch(self) -> None:
        if self.scheduler is not None and not self.per_step:
            self.scheduler.step()


def train_and_predict(model: nn.Module, recipe: dict[str, Any], data: dict[str, torch.Tensor],
                      seed: int, num_classes: int,
                      progress: Callable[[dict], None] = lambda _: None,
                      ensembles: bool = False) -> dict[str, Any]:
    """Train one model for the recipe's epochs; returns the curve and the test predictions
    (numpy). With `ensembles`, a model that can be stacked trains with a twin
    (grader/worker/members.py), exactly as it would in any ensemble."""
    outcome = train_together([model], recipe, data, seed, num_classes, [progress], ensembles)[0]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def train_together(models: list[nn.Module], recipe: dict[str, Any],
                   data: dict[str, torch.Tensor], seed: int, num_classes: int,
                   progress: list[Callable[[dict], None]], ensembles: bool = False
                   ) -> list[dict[str, Any] | Exception]:
    """Train models that share one program, recipe and seed; each one's outcome (a result,
    or the exception that stopped it) as if it had been trained alone.

    Without `ensembles` each is trained as itself, one after the other. With them,
    those that can be stacked the same way are trained as one ensemble, and one that
    is alone with a twin; should an ensemble fail as a whole, each member is trained
    again alone, and a model whose twin fails trains as itself. So every model ends
    where it would alone, and one model's failure is its own.
    """
    make_deterministic()
    device = data["train_x"].device
    models = [m.to(device) for m in models]
    pipe = DevicePipeline(recipe, int(data["train_x"].shape[1]), device)
    outcomes: list[dict[str, Any] | Exception | None] = [None] * len(models)
    plans: list[frozenset[str] | None] = [None] * len(models)
    if ensembles:
        sample = pipe(data["train_x"][:2], None)
        plans = [stacking(m, sample, num_classes) for m in models]
    for shared in {p for p in plans if p is not None}:
        group = [k for k, p in enumerate(plans) if p == shared]
        if len(group) > 1:
            _train_apart(group, outcomes, lambda: _train(
                Stacked([models[k] for k in group], shared), pipe, recipe, data, seed,
                num_classes, [progress[k] for k in group]))
    for k, model in enumerate(models):   # alone: with a twin, else (or failing that) as itself
        if outcomes[k] is None and plans[k] is not None:
            _train_apart([k], outcomes, lambda: _train(
                Stacked(twin(model), plans[k]), pipe, recipe, data, seed, num_classes,
                [progress[k]]), keep=TrainingStopped)
        if outcomes[k] is None:
            _train_apart([k], outcomes, lambda: _train(
                Single(model), pipe, recipe, data, seed, num_classes, [progress[k]]),
                keep=Exception)
    return outcomes


def _train_apart(members: list[int], outcomes: list, train: Callable[[], list[dict[str, Any]]],
                 keep: type[Exception] | None = None) -> None:
    """Fill the members' outcomes from one training run; an exception that is an instance of
    `keep` becomes the outcome of each, any other leaves them to be trained another way.
    Out of memory is the caller's (a fresh worker may get further)."""
    try:
        results = train()
    except (torch.cuda.OutOfMemoryError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - the forward is the student's program
        if keep is None or not isinstance(exc, keep):
            return
        results = [exc] * len(members)
    for k, result in zip(members, results):
        outcomes[k] = result


def _train(members: Single | Stacked, pipe: DevicePipeline, recipe: dict[str, Any],
           data: dict[str, torch.Tensor], seed: int, num_classes: int,
           progress: list[Callable[[dict], None]]) -> list[dict[str, Any]]:
    """The training loop proper, over every member at once; a result for each of the first
    `len(progress)` members (a twin's copy is stepped, never looked at)."""
    torch.manual_seed(seed)
    wanted = range(len(progress))
    bs = int(recipe["batch_size"])
    optimizer, schedule = make_optimizer(members.parameters(), recipe,
                                         (data["train_x"].shape[0] + bs - 1) // bs)
    gen = torch.Generator().manual_seed(seed)
    curves: list[list[dict[str, float]]] = [[] for _ in wanted]
    stopped: list[str | None] = [None for _ in wanted]
    final: dict[int, dict[str, torch.Tensor]] = {}    # the weights of members that stopped
    start = time.perf_counter()
    for epoch in range(int(recipe["epochs"])):
        points, bad = train_epoch(members, pipe, optimizer, schedule, data, gen, recipe,
                                  num_classes)
        schedule.after_epoch()
        for k in (k for k in wanted if stopped[k] is None):
            if points[k] is not None:
                curves[k].append({"epoch": epoch + 1, **points[k]})
                progress[k](curves[k][-1])
            if bad[k] is not None:
                stopped[k] = f"the loss became {bad[k][1]} at epoch {epoch + 1}, step {bad[k][0]}"
                final[k] = members.snapshot()
        if all(stopped):
            break
    train_s = time.perf_counter() - start
    for k, state in final.items():
        members.restore(k, state)
    results = []
    for k, model in zip(wanted, members.models()):
        predictions = np.stack([predict(model, pipe, x, num_classes)
                                for x in (data["test_x"], shifted(data["test_x"]))])
        results.append({"curve": curves[k], "stopped": stopped[k],
                        "train_seconds": round(train_s, 3), "predictions": predictions,
                        "device": str(data["train_x"].device), "perturbed": True,
                        "ensemble": members.count if isinstance(members, Stacked) else 0,
                        "final_train_accuracy": final_train_accuracy(model, pipe, data,
                                                                     num_classes)})
    return results


def final_train_accuracy(model: nn.Module, pipe: DevicePipeline, data: dict[str, torch.Tensor],
                         num_classes: int) -> float:
    """Accuracy of the trained model on training images (the first as many as there are test
    images, unaugmented), measured as the test images are.

    A network that learned is about as accurate here as on the test images, or more; a
    lookup of the public test labels is at chance. The curve's last point cannot stand in
    for this: it averages over the last epoch, which a one-epoch recipe spends learning
    (grader/checks/accuracy.py, `looked_up`).
    """
    n = min(data["train_x"].shape[0], data["test_x"].shape[0])
    preds = predict(model, pipe, data["train_x"][:n], num_classes)
    return float(np.mean(preds == data["train_y"][:n].to("cpu", torch.int64).numpy()))


def shifted(images: torch.Tensor) -> torch.Tensor:
    """The test images moved one pixel right and down (a zero row and column come in).

    A trained network's accuracy barely changes on these; predictions looked up by the
    exact image fall to chance (grader/checks/accuracy.py, `looked_up`).
    """
    out = torch.zeros_like(images)
    out[:, :, 1:, 1:] = images[:, :, :-1, :-1]
    return out


def train_epoch(members: Single | Stacked, pipe: DevicePipeline, optimizer, schedule: Schedule,
                data: dict[str, torch.Tensor], gen: torch.Generator, recipe: dict[str, Any],
                num_classes: int) -> tuple[list[dict[str, float] | None],
                                           list[tuple[int, float] | None]]:
    """One pass in seeded random order; per member, its curve point and first bad (step, loss).

    Losses are checked once, at the end: a member whose loss was not finite goes
    back to the weights it had when the epoch started (the last ones known to be
    finite), and its curve point covers the steps before the bad one. Each
    member's loss is its own scalar, as it would be alone; their sum has a
    gradient of exactly 1 for each, so no member's step depends on another's.
    """
    members.train(True)
    device = data["train_x"].device
    n, bs = data["train_x"].shape[0], int(recipe["batch_size"])
    start_state = members.snapshot()
    order = torch.randperm(n, generator=gen).to(device)
    steps = (n + bs - 1) // bs
    losses = torch.zeros(steps, members.count, device=device)
    hits = torch.zeros(steps, members.count, device=device)
    sizes = torch.tensor([min(bs, n - i) for i in range(0, n, bs)], dtype=torch.float32)
    for step in range(steps):
        idx = order[step * bs:(step + 1) * bs]
        x, y = pipe(data["train_x"][idx], gen), data["train_y"][idx]
        logits = members.forward(x, num_classes)
        loss = torch.stack([F.cross_entropy(member, y) for member in logits])
        optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()
        optimizer.step()
        schedule.after_step()
        losses[step] = loss.detach()
        hits[step] = (logits.detach().argmax(2) == y).sum(1)
    losses, hits = losses.cpu(), hits.cpu()
    points, bads = [], []
    for k in range(members.count):
        bad = (~torch.isfinite(losses[:, k])).nonzero()
        good = int(bad[0]) if len(bad) else steps
        if good < steps:
            members.restore(k, start_state)
        bads.append((good + 1, losses[good, k].item()) if good < steps else None)
        seen = float(sizes[:good].sum())
        points.append(None if good == 0 else
                      {"loss": float((losses[:good, k] * sizes[:good]).sum()) / seen,
                       "train_accuracy": float(hits[:good, k].sum()) / seen})
    return points, bads


@torch.no_grad()
def predict(model: nn.Module, pipe: DevicePipeline, x_test: torch.Tensor, num_classes: int,
            batch: int = 1024) -> np.ndarray:
    model.eval()
    out = []
    for i in range(0, x_test.shape[0], batch):
        logits = model(pipe(x_test[i:i + batch], None))
        check_logits(logits, min(batch, x_test.shape[0] - i), num_classes)
        out.append(logits.argmax(1).to("cpu", torch.int64))
    return torch.cat(out).numpy()
