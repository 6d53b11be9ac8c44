"""What the trainer steps: one model as itself, or several stacked into one ensemble.

Small course nets leave a GPU idle: each step is a few dozen tiny kernel
launches. Models that share one exported program (the spec fixes the
architecture, so most of a class does) can be trained as one ensemble
instead: their parameters and buffers stacked along a new first dimension,
the shared forward run once under `torch.func.vmap`, every member seeing the
same batches. grader/worker/train.py steps either kind the same way.

A grade must not depend on who else was in the ensemble (DESIGN.md
invariant 5). Measured (benchmarks/ensembles.py): a member's weights after
training are bitwise the same in every ensemble of two or more members,
whatever the others are and wherever it sits, but not the same as training
it unbatched. So where ensembles are used at all, every model that can be
stacked is: a model graded alone is stacked with a copy of itself (`twin`).
Which path a model takes depends on the model and the device only
(`batchable`), never on the company it is graded in.
"""
from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap

from ..protocol import ARTIFACT_MANIFEST


class TrainingStopped(Exception):
    """Training cannot go on (non-finite loss, wrong output shape); carries a student-facing reason."""


def check_logits(logits: Any, batch: int, num_classes: int) -> None:
    if not isinstance(logits, torch.Tensor):
        raise TrainingStopped(f"forward returned {type(logits).__name__}, not a tensor of scores")
    if tuple(logits.shape) != (batch, num_classes):
        raise TrainingStopped(f"forward returned shape {tuple(logits.shape)}; the loss needs "
                              f"({batch}, {num_classes}): one score per class for each image")


class Single:
    """One model trained as itself: the only path on a CPU, and a GPU's for a model that
    cannot be stacked. Its scores are `forward`'s with a leading member dimension of 1."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.count = 1

    def parameters(self) -> list[torch.Tensor]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def train(self, mode: bool = True) -> None:
        self.model.train(mode)

    def forward(self, x: torch.Tensor, num_classes: int) -> torch.Tensor:
        logits = self.model(x)
        check_logits(logits, x.shape[0], num_classes)
        return logits.unsqueeze(0)

    def snapshot(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def restore(self, member: int, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)

    def models(self) -> list[nn.Module]:
        return [self.model]


class Stacked:
    """Models with one program, trained as one: member k's tensors are slice k of stacked ones.

    The forward is the first member's module called with the stacked tensors
    (`functional_call`); its own tensors are never used, so the members only
    need the same program, not the same weights. Buffers a forward only reads
    (`shared`: masks, connection tables) are passed once, unbatched, as a lone
    model has them: vmap cannot index with a batched boolean mask. Dropout draws
    one mask for all members (`randomness="same"`), the mask a model alone draws.
    """

    def __init__(self, models: list[nn.Module], shared: frozenset[str] = frozenset()):
        self.members = models
        self.count = len(models)
        self.base = models[0]
        buffers = [dict(m.named_buffers()) for m in models]
        self.shared = {n: buffers[0][n] for n in shared}
        if any(not torch.equal(own[n], self.shared[n]) for own in buffers for n in shared):
            raise ValueError("the members' read-only buffers differ: they cannot share them")
        self.tensors = {
            **{n: torch.stack([dict(m.named_parameters())[n].detach() for m in models])
               .requires_grad_(p.requires_grad) for n, p in self.base.named_parameters()},
            **{n: torch.stack([own[n] for own in buffers])
               for n in buffers[0] if n not in shared}}
        self._forward = vmap(
            lambda tensors, x: functional_call(self.base, {**tensors, **self.shared}, (x,)),
            in_dims=(0, None), randomness="same")

    def parameters(self) -> list[torch.Tensor]:
        return [t for t in self.tensors.values() if t.requires_grad]

    def train(self, mode: bool = True) -> None:
        self.base.train(mode)

    def forward(self, x: torch.Tensor, num_classes: int) -> torch.Tensor:
        logits = self._forward(self.tensors, x)
        check_logits(logits[0] if isinstance(logits, torch.Tensor) else logits, x.shape[0],
                     num_classes)
        return logits

    def snapshot(self) -> dict[str, torch.Tensor]:
        return {n: t.detach().clone() for n, t in self.tensors.items()}

    @torch.no_grad()
    def restore(self, member: int, state: dict[str, torch.Tensor]) -> None:
        for name, tensor in self.tensors.items():
            tensor[member].copy_(state[name][member])

    @torch.no_grad()
    def models(self) -> list[nn.Module]:
        """The members as modules of their own again, holding their trained tensors."""
        for k, model in enumerate(self.members):
            own = {**dict(model.named_parameters()), **dict(model.named_buffers())}
            for name, tensor in self.tensors.items():
                own[name].copy_(tensor[k])
        return self.members


def twin(model: nn.Module) -> list[nn.Module]:
    """A lone model and a copy of itself: an ensemble of two, whose first member trains
    bitwise as it would in any larger ensemble."""
    return [model, copy.deepcopy(model)]


def stacking(model: nn.Module, sample: torch.Tensor, num_classes: int) -> frozenset[str] | None:
    """How `model` can be stacked: the buffers its members share (`Stacked`), or None where it
    cannot be (hooks, such as a pruning mask that rewrites a weight on every call, or an
    operation vmap lacks: a stacked twin must run a training step and an eval forward).

    A fact about the model alone, so a model takes the same path alone and in any batch.
    The trials run on copies, with the random state put back afterwards.
    """
    if any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
           for m in model.modules()):
        return None
    devices = [sample.device] if sample.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        try:
            copied = copy.deepcopy(model)
            shared = _read_only(copied, sample)
            trial = Stacked([copied, copied], shared)   # stacking copies the tensors
            trial.train(True)
            trial.forward(sample, num_classes).sum().backward()
            trial.train(False)
            with torch.no_grad():
                trial.forward(sample, num_classes)
        except Exception:  # noqa: BLE001 - any failure means: train it as itself
            return None
    return shared


def _read_only(model: nn.Module, sample: torch.Tensor) -> frozenset[str]:
    """The buffers a training forward of `model` (a copy: it runs one) leaves as they were;
    batch norm's statistics change."""
    before = {n: b.clone() for n, b in model.named_buffers()}
    with torch.no_grad():
        model.train()(sample)
    return frozenset(n for n, b in model.named_buffers()
                     if b.shape == before[n].shape and torch.equal(b, before[n]))


def signature(artifact: Path, model: nn.Module) -> str:
    """Models with the same signature can be stacked: the same exported program (the
    source lines it was captured from aside), parameters of the same names and shapes,
    and the same buffers (those a forward only reads are shared by all members)."""
    manifest = json.loads((artifact / ARTIFACT_MANIFEST).read_text(encoding="utf-8"))
    tensors = [(n, list(t.shape), str(t.dtype), bool(t.requires_grad))
               for n, t in [*model.named_parameters(), *model.named_buffers()]]
    h = hashlib.sha256(json.dumps([_without_frames(manifest), tensors], sort_keys=True).encode())
    for _, buffer in model.named_buffers():
        h.update(buffer.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _without_frames(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_frames(v) for k, v in value.items() if k != "frames"}
    if isinstance(value, list):
        return [_without_frames(v) for v in value]
    return value
