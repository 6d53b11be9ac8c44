"""Measure a model: its module tree, and every layer a probe batch flows through.

Two tracers run together during one forward pass:
- forward pre/post hooks on every submodule record module calls (name, type,
  hyperparameters, input and output shapes);
- a TorchFunctionMode records functional calls made outside those modules
  (`F.relu`, `F.max_pool2d`, `torch.flatten`, `x.view(...)`), so a model
  written in the functional style is traced as fully as one built from modules.
Hooks are removed in `finally`, and a crash records how far the forward got.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

MODULE_CATEGORIES: tuple[tuple[type, str], ...] = (
    (nn.Conv2d, "conv2d"), (nn.ConvTranspose2d, "conv_transpose2d"), (nn.Linear, "linear"),
    (nn.MaxPool2d, "maxpool2d"), (nn.AvgPool2d, "avgpool2d"), (nn.Flatten, "flatten"),
    (nn.ReLU, "relu"), (nn.LeakyReLU, "leaky_relu"), (nn.Tanh, "tanh"),
    (nn.Sigmoid, "sigmoid"), (nn.GELU, "gelu"), (nn.ELU, "elu"),
    (nn.Sequential, "container"), (nn.ModuleList, "container"), (nn.ModuleDict, "container"),
    (nn.modules.batchnorm._BatchNorm, "norm"), (nn.Dropout, "dropout"),
    (nn.Dropout2d, "dropout"), (nn.Identity, "identity"), (nn.Softmax, "softmax"),
    (nn.LogSoftmax, "log_softmax"),
)
FUNCTION_CATEGORIES = {
    "conv2d": "conv2d", "conv_transpose2d": "conv_transpose2d", "linear": "linear",
    "max_pool2d": "maxpool2d", "max_pool2d_with_indices": "maxpool2d",
    "avg_pool2d": "avgpool2d", "relu": "relu", "relu_": "relu", "leaky_relu": "leaky_relu",
    "leaky_relu_": "leaky_relu", "tanh": "tanh", "tanh_": "tanh", "sigmoid": "sigmoid",
    "sigmoid_": "sigmoid", "gelu": "gelu", "elu": "elu", "elu_": "elu",
    "flatten": "flatten", "view": "flatten", "reshape": "flatten",
    "dropout": "dropout",   # F.dropout: its `training` argument is recorded (issue 14)
    "softmax": "softmax", "log_softmax": "log_softmax",   # at the end: a note (checks/shapes.py)
}
HYPER_ATTRS = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
               "groups", "output_padding", "ceil_mode", "in_features", "out_features")
# Modules whose insides are PyTorch's business: their own functional calls are not events.
OPAQUE = {"conv2d", "conv_transpose2d", "linear", "maxpool2d", "avgpool2d", "flatten", "relu",
          "leaky_relu", "tanh", "sigmoid", "gelu", "elu", "norm", "dropout", "identity",
          "softmax", "log_softmax"}


def category_of(module: nn.Module) -> str:
    for cls, cat in MODULE_CATEGORIES:
        if isinstance(module, cls):
            return cat
    return "custom"


def walk_modules(root: nn.Module, prefix: str = ""):
    """(path, module) for the whole tree, read from the module dicts themselves.

    Reading `_modules` directly rather than calling `named_modules()` means a
    submission cannot change what is counted by overriding a method.
    """
    for name, child in vars(root)["_modules"].items():
        if child is None:
            continue
        path = f"{prefix}.{name}" if prefix else name
        yield path, child
        yield from walk_modules(child, path)


def own_parameters(module: nn.Module) -> list[dict[str, Any]]:
    return [{"name": n, "shape": list(torch.Tensor.size(p)), "trainable": bool(p.requires_grad)}
            for n, p in vars(module)["_parameters"].items() if p is not None]


def describe_model(model: nn.Module) -> dict[str, Any]:
    """Every module with its type, hyperparameters and own parameter tensors' shapes."""
    modules = [{"path": "", "class": type(model).__name__, "category": "root",
                "hyper": {}, "params": own_parameters(model)}]
    for path, m in walk_modules(model):
        modules.append({"path": path, "class": type(m).__name__, "category": category_of(m),
                        "hyper": _module_hyper(m), "params": own_parameters(m),
                        "leaf": not any(c is not None for c in vars(m)["_modules"].values())})
    return {"class": type(model).__name__, "modules": modules}


def _module_hyper(m: nn.Module) -> dict[str, Any]:
    hyper = {}
    for attr in HYPER_ATTRS:
        value = vars(m).get(attr)
        if isinstance(value, (int, bool, str, tuple, list)):
            hyper[attr] = list(value) if isinstance(value, tuple) else value
    if "in_channels" in hyper:
        hyper["bias"] = vars(m)["_parameters"].get("bias") is not None
    return hyper


def _shape(x: Any) -> list[int] | None:
    return list(x.shape) if isinstance(x, torch.Tensor) else None


def _first_tensor(args: tuple) -> Any:
    for a in args:
        if isinstance(a, torch.Tensor):
            return a
        if isinstance(a, (list, tuple)):
            for b in a:
                if isinstance(b, torch.Tensor):
                    return b
    return None


class _FunctionTracer(TorchFunctionMode):
    """Records functional layer calls made by the model's own code (not PyTorch's)."""

    def __init__(self, tracer: "ForwardTracer"):
        super().__init__()
        self.tracer = tracer

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        category = FUNCTION_CATEGORIES.get(name)
        record = category is not None and not self.tracer.inside_opaque()
        if record:
            self.tracer.attempt = {"kind": "function", "name": name,
                                   "inputs": [_shape(a) for a in args if isinstance(a, torch.Tensor)]}
        out = func(*args, **kwargs)
        if record:
            self.tracer.function_event(name, category, args, kwargs, out)
        return out


class ForwardTracer:
    """Hooks every submodule and watches functional calls during one forward pass."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.events: list[dict[str, Any]] = []
        self.stack: list[tuple[str, str, int]] = []   # (path, category, event index)
        self.attempt: dict[str, Any] | None = None
        self.paths = {id(m): p for p, m in walk_modules(model)}
        self.categories = {id(m): category_of(m) for _, m in walk_modules(model)}

    def inside_opaque(self) -> bool:
        return any(cat in OPAQUE for _, cat, _ in self.stack)

    def parent(self) -> str:
        return self.stack[-1][0] if self.stack else ""

    def _pre(self, module, args):
        path, cat = self.paths[id(module)], self.categories[id(module)]
        idx = len(self.events)
        self.events.append({"kind": "module", "path": path, "parent": self.parent(),
                            "category": cat,
                            "class": type(module).__name__, "hyper": _module_hyper(module),
                            "in": _shape(_first_tensor(args)), "out": None})
        self.stack.append((path, cat, idx))
        self.attempt = {"kind": "module", "path": path, "class": type(module).__name__,
                        "hyper": _module_hyper(module), "inputs": [_shape(_first_tensor(args))]}

    def _post(self, module, args, output):
        while self.stack:
            path, _, idx = self.stack.pop()
            if path == self.paths[id(module)]:
                self.events[idx]["out"] = _shape(_first_tensor((output,)))
                break

    def function_event(self, name: str, category: str, args: tuple, kwargs: dict, out: Any):
        x = _first_tensor(args)
        in_shape, out_shape = _shape(x), _shape(out)
        if category == "flatten" and not (in_shape and out_shape and len(in_shape) >= 3
                                           and len(out_shape) == 2):
            return  # a view or reshape that does not flatten a feature map
        params = sum(a.numel() for a in (*args, *kwargs.values()) if isinstance(a, nn.Parameter))
        self.events.append({"kind": "function", "path": "", "parent": self.parent(),
                            "category": category, "class": name,
                            "hyper": _function_hyper(category, args, kwargs),
                            "in": in_shape, "out": out_shape, "params": params})

    def run(self, x: torch.Tensor) -> dict[str, Any]:
        handles = []
        try:
            for _, m in walk_modules(self.model):
                handles.append(m.register_forward_pre_hook(self._pre))
                handles.append(m.register_forward_hook(self._post))
            with _FunctionTracer(self):
                out = self.model(x)
            return {"ok": True, "output": _output_summary(out)}
        finally:
            for h in handles:
                h.remove()

    def crash_site(self) -> dict[str, Any]:
        """The innermost module still running, or the last call attempted, when forward raised."""
        site = dict(self.attempt or {})
        site["open_modules"] = [p for p, _, _ in self.stack]
        return site


def _function_hyper(category: str, args: tuple, kwargs: dict) -> dict[str, Any]:
    def arg(i: int, name: str, default: Any) -> Any:
        v = kwargs.get(name, args[i] if len(args) > i else default)
        return list(v) if isinstance(v, tuple) else v

    if category == "conv2d":   # conv2d(input, weight, bias, stride, padding, dilation, groups)
        out_c, in_per_group, *k = arg(1, "weight", None).shape
        groups = arg(6, "groups", 1)
        return {"in_channels": in_per_group * groups, "out_channels": out_c, "kernel_size": k,
                "stride": arg(3, "stride", 1), "padding": arg(4, "padding", 0),
                "dilation": arg(5, "dilation", 1), "groups": groups}
    if category == "conv_transpose2d":  # (input, weight, bias, stride, padding, output_padding, groups, dilation)
        in_c, out_per_group, *k = arg(1, "weight", None).shape
        groups = arg(6, "groups", 1)
        return {"in_channels": in_c, "out_channels": out_per_group * groups, "kernel_size": k,
                "stride": arg(3, "stride", 1), "padding": arg(4, "padding", 0),
                "output_padding": arg(5, "output_padding", 0), "groups": groups,
                "dilation": arg(7, "dilation", 1)}
    if category == "linear":
        w = arg(1, "weight", None)
        if isinstance(w, torch.Tensor):
            return {"in_features": int(w.shape[1]), "out_features": int(w.shape[0])}
    if category == "dropout":  # dropout(input, p=0.5, training=True): True unless told otherwise
        return {"p": arg(1, "p", 0.5), "training": bool(arg(2, "training", True))}
    if category in ("maxpool2d", "avgpool2d"):
        k = arg(1, "kernel_size", None)
        return {"kernel_size": k, "stride": arg(2, "stride", None) or k,
                "padding": arg(3, "padding", 0)}
    return {}


def _output_summary(out: Any) -> dict[str, Any]:
    t = _first_tensor((out,))
    if t is None:
        return {"shape": None, "finite": False, "type": type(out).__name__}
    finite = bool(torch.isfinite(t).all()) if t.is_floating_point() else True
    return {"shape": list(t.shape), "finite": finite, "dtype": str(t.dtype).replace("torch.", ""),
            "sample": [float(v) if math.isfinite(float(v)) else str(float(v))
                       for v in t.detach().flatten()[:10].tolist()]}
