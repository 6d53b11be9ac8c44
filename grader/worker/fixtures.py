"""Live inputs for function cases, built by the same code in the worker and in the parent.

Most case inputs are plain values: numbers, lists, arrays. A training loop needs
live objects instead: a model with weights, a loader, an optimizer over that
model's parameters, a loss, a device. The parent materialises everything random
(weights, samples, labels) from the spec's seeds, so what travels in the request
is data; this module turns that data into objects. The worker calls the student's
function on them, the parent calls the reference on an identical set, and both
read the outcome with `observe`, so the two sides are measured the same way.

What the objects notice, for the grader to compare:
- the model (`Probed`) notes, at every forward call, `model.training`,
  `torch.is_grad_enabled()` and whether its input went through `.to(device)`;
- the loss (`ProbedLoss`) notes whether its targets did;
- the loader yields `HostBatch` tensors, a subclass whose `.to()` and `.cuda()`
  return plain tensors: that is how "moved to the device" is seen on a machine
  whose only device is the CPU (the submission's worker never sees a GPU).

These notes are made inside the student's process, so they are exactly as
trustworthy as a value the student's function returns (docs/SECURITY.md).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, default_collate

from ..casekinds import MODEL_LAYERS


# ---------------------------------------------------------------- the objects that notice

class HostBatch(torch.Tensor):
    """A batch as the loader yields it. Moving it (`.to(...)`, `.cuda()`) gives a plain
    tensor, so the model can tell whether a batch was moved; every other operation keeps
    the mark."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if _moves(func, args, kwargs or {}):
            with torch._C.DisableTorchFunctionSubclass():
                return func(*args, **(kwargs or {})).as_subclass(torch.Tensor)
        return super().__torch_function__(func, types, args, kwargs)


def _moves(func: Any, args: tuple, kwargs: dict) -> bool:
    """`.cuda()`, or `.to(...)` given a device (a torch.device, a string, another tensor);
    `.to(torch.float32)` changes the type, not the place."""
    if func is torch.Tensor.cuda:
        return True
    return func is torch.Tensor.to and ("device" in kwargs or any(
        isinstance(a, (torch.device, str, torch.Tensor)) for a in args[1:]))


def plain(t: Any) -> Any:
    """A HostBatch as an ordinary tensor (same storage); anything else unchanged."""
    if not isinstance(t, HostBatch):
        return t
    with torch._C.DisableTorchFunctionSubclass():
        return t.as_subclass(torch.Tensor)


class Probed(nn.Sequential):
    """The grader's model: an nn.Sequential that notes how each forward call ran."""

    def __init__(self, *layers: nn.Module):
        super().__init__(*layers)
        self.calls: list[tuple[bool, bool, bool]] = []   # (training, grad enabled, moved)

    def forward(self, x):
        self.calls.append((self.training, torch.is_grad_enabled(), not isinstance(x, HostBatch)))
        return super().forward(plain(x))


class ProbedLoss(nn.CrossEntropyLoss):
    """Cross-entropy that notes whether each call's targets were moved to the device."""

    def __init__(self):
        super().__init__()
        self.calls: list[bool] = []

    def forward(self, logits, target):
        self.calls.append(not isinstance(target, HostBatch))
        return super().forward(plain(logits), plain(target))


# ---------------------------------------------------------------- decoding a case's inputs

def decode_inputs(args: list, kwargs: dict) -> tuple[list, dict]:
    """A case's arguments as live objects; an optimizer is bound to the case's model."""
    values = [decode(v) for v in args]
    named = {k: decode(v) for k, v in kwargs.items()}
    model = next((v for v in [*values, *named.values()] if isinstance(v, Probed)), None)

    def bound(v: Any) -> Any:
        return v.build(model) if isinstance(v, _Optimizer) else v
    return [bound(v) for v in values], {k: bound(v) for k, v in named.items()}


def decode(value: dict) -> Any:
    """One value from the request: plain, an array (a tensor, or numpy where asked), a list,
    a model, a loader, an optimizer (bound later), a loss or a device."""
    if "array" in value:
        a = value["array"]
        arr = np.asarray(a["values"], dtype=a["dtype"]).reshape(a["shape"])
        return arr if value.get("numpy") else torch.from_numpy(arr)
    if "list" in value:
        return [decode(v) for v in value["list"]]
    if "model" in value:
        model = build_model(value["model"], value.get("freeze", ()), value.get("weights"))
        return model.train(value.get("mode", "train") == "train")
    if "loader" in value:
        spec = value["loader"]
        return build_loader(decode(spec["x"]), decode(spec["y"]), int(spec["batch_size"]))
    if "optimizer" in value:
        return _Optimizer(value["optimizer"])
    if "loss" in value:
        return ProbedLoss()
    if "device" in value:
        return torch.device(value["device"])
    return value["value"]


def build_model(layers: list, freeze: Any = (), weights: dict | None = None) -> Any:
    """nn.Sequential from [[Name, *args, {kwargs}], ...].

    Without `weights` the layers live on the meta device, so a 77-million-parameter layer
    costs no memory and counting its parameters still works. With them (a dict of encoded
    arrays by state_dict name) it is a real `Probed` model holding exactly those values.
    """
    modules = []
    for name, *args in layers:
        if name not in MODEL_LAYERS:
            raise ValueError(f"unknown layer {name!r}")
        kwargs = dict(args.pop()) if args and isinstance(args[-1], dict) else {}
        if weights is None and name in ("Linear", "Conv2d", "BatchNorm1d", "BatchNorm2d"):
            kwargs["device"] = "meta"
        modules.append(getattr(nn, name)(*args, **kwargs))
    model = nn.Sequential(*modules) if weights is None else Probed(*modules)
    if weights is not None:
        model.load_state_dict({k: decode(v) for k, v in weights.items()})
    for index in freeze:
        for p in model[index].parameters():
            p.requires_grad_(False)
    return model


def initial_weights(layers: list, seed: int) -> dict[str, Any]:
    """Seeded starting values for every tensor of the model's state_dict, as numpy arrays
    (numpy's PCG64 gives the same numbers on every platform). Weights and biases are drawn
    like PyTorch's default, uniform in +-1/sqrt(fan_in); batch norm gets a scale near 1 and
    running statistics far from a batch's own, so that train and eval mode differ clearly."""
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    fan_in = 1
    for name, tensor in build_model(layers).state_dict().items():
        shape = tuple(tensor.shape)
        if name.endswith("num_batches_tracked"):
            out[name] = np.zeros(shape, dtype=np.int64)
            continue
        if name.endswith("running_mean"):
            arr = rng.normal(0.0, 0.5, shape)
        elif name.endswith("running_var"):
            arr = rng.uniform(0.5, 2.0, shape)
        elif len(shape) == 1 and _is_norm_weight(layers, name):
            arr = rng.uniform(0.5, 1.5, shape)
        else:
            if name.endswith("weight"):
                fan_in = max(1, math.prod(shape[1:]))
            bound = 1 / math.sqrt(fan_in)
            arr = rng.uniform(-bound, bound, shape)
        out[name] = arr.astype(np.float32)
    return out


def _is_norm_weight(layers: list, name: str) -> bool:
    index, _, attr = name.partition(".")
    return attr == "weight" and layers[int(index)][0].startswith("BatchNorm")


def build_loader(x: Any, y: Any, batch_size: int) -> Any:
    """A DataLoader over (x, y) in order, yielding HostBatch tensors."""
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=False,
                      collate_fn=_host_collate)


def _host_collate(items: list) -> list:
    return [t.as_subclass(HostBatch) for t in default_collate(items)]


class _Optimizer:
    """An optimizer described in the request, built once the case's model exists."""

    def __init__(self, spec: dict):
        self.spec = spec

    def build(self, model: Any) -> Any:
        if model is None:
            raise ValueError("an optimizer needs a model among the case's arguments")
        s = self.spec
        return torch.optim.SGD(model.parameters(), lr=s["lr"], momentum=s.get("momentum", 0.0))


# ---------------------------------------------------------------- calling and observing

def call(fn: Any, args: list, kwargs: dict) -> Any:
    """Call with torch's global generator seeded, as every case is (dropout draws from it)."""
    torch.manual_seed(0)
    return fn(*args, **kwargs)


def observe(what: Any, out: Any, args: list, kwargs: dict) -> Any:
    """What the case compares, read after the call: the return value, an observation of the
    case's model and loss, or the returned callable applied to images (`{apply_to, draws}`)."""
    if what in (None, "returned"):
        return out
    if isinstance(what, dict):
        return apply_to_images(out, decode(what["apply_to"]), int(what["draws"]))
    values = [*args, *kwargs.values()]
    model = next(v for v in values if isinstance(v, Probed))
    if what == "weights":
        return {k: v.detach().clone() for k, v in model.state_dict().items()}
    if what == "moved_to_device":
        losses = [v for v in values if isinstance(v, ProbedLoss)]
        moved = [c[2] for c in model.calls] + [c for loss in losses for c in loss.calls]
        return torch.tensor(moved, dtype=torch.bool)
    column = {"training_mode": 0, "grad_enabled": 1}[what]
    return torch.tensor([c[column] for c in model.calls], dtype=torch.bool)


def apply_to_images(transform: Any, images: Any, draws: int) -> Any:
    """`transform` (e.g. a torchvision Compose) applied `draws` times to each image (uint8,
    H x W x C, given as a PIL image like a torchvision dataset's), from a seeded generator:
    a tensor of shape (images, draws, *output shape)."""
    if not callable(transform):
        raise TypeError(f"expected transforms that can be called on an image, "
                        f"got {type(transform).__name__}")
    torch.manual_seed(0)
    return torch.stack([torch.stack([_as_tensor(transform(Image.fromarray(image)))
                                     for _ in range(draws)]) for image in images])


def _as_tensor(out: Any) -> Any:
    if isinstance(out, Image.Image):
        raise TypeError("the transforms return a PIL image, not a tensor: end them with "
                        "ToTensor() and Normalize(...)")
    return torch.as_tensor(out)
