"""The graded artifact: a model as data, so it can be measured away from the code that made it.

A submission's process can change anything in itself, including the grader's
measuring code. So that process only *exports* the model (grader/worker/
export.py): its module tree, its tensors, and the operations each
non-library module's forward performs (traced by torch.fx). A second worker
that never imports student code *replays* that description (grader/worker/
replay.py) and measures, probes and trains the replayed model. Whatever the
submission does to its own process, what gets graded is the network it
exported, computed by the grader's own code.

The format is JSON plus one .npz of tensors (never a pickle):

    manifest.json  {"format": 1, "modules": [module, ...]}   parents before children
    tensors.npz    "<module path>:<name>" -> array          parameters, buffers, constants

    module = {"path": "conv1", "class": "Conv2d", "kind": "library" | "traced",
              "kwargs": {...} (library: constructor arguments),
              "graph": [node, ...] (traced: its forward),
              "params": {name: trainable}, "buffers": [name, ...], "constants": [name, ...]}
    node   = {"op": "placeholder" | "get_attr" | "call_module" | "call_function" |
                    "call_method" | "output",
              "name": ..., "target": ..., "args": [...], "kwargs": {...}, "frames": [...]}

Values inside args are JSON with tagged objects for what JSON lacks ($node,
$tuple, $slice, ...). Function targets are names in CALLABLES, a fixed table of
PyTorch and operator functions; anything else cannot be exported.
"""
from __future__ import annotations

import builtins
import math
import operator
import re
from typing import Any, Callable

import torch
import torch.functional
import torch.nn.functional as F

from ..protocol import ARTIFACT_MANIFEST, ARTIFACT_TENSORS

FORMAT = 1
MANIFEST, TENSORS = ARTIFACT_MANIFEST, ARTIFACT_TENSORS
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PATH = re.compile(r"^([A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*)?$")
# Functions a forward may call that reach outside the tensor world.
EXCLUDED = {"from_file", "load", "save", "set_default_device", "set_default_dtype"}


class ArtifactError(Exception):
    """The model cannot be written as (or read back from) the artifact format."""


def _callables() -> dict[str, Callable]:
    """name -> function for every function a replayed forward may call."""
    table: dict[str, Callable] = {}
    torch_names = {*dir(torch._C._VariableFunctions), *torch.functional.__all__}
    for name in sorted(torch_names - EXCLUDED):
        if not name.startswith("_") and callable(getattr(torch, name, None)):
            table[f"torch.{name}"] = getattr(torch, name)
    for name in dir(F):
        if not name.startswith("_") and callable(getattr(F, name)):
            table[f"F.{name}"] = getattr(F, name)
    for name in dir(torch.Tensor):
        if not name.startswith("_") and callable(getattr(torch.Tensor, name)):
            table[f"Tensor.{name}"] = getattr(torch.Tensor, name)
    for name in dir(operator):
        if not name.startswith("_"):
            table[f"operator.{name}"] = getattr(operator, name)
    table["getattr"] = _tensor_getattr
    return table


def _tensor_getattr(obj: Any, name: str) -> Any:
    """fx writes `x.shape` as getattr(x, "shape"); only public attributes of values."""
    if not isinstance(name, str) or name.startswith("_"):
        raise ArtifactError(f"getattr of {name!r} is not replayable")
    return builtins.getattr(obj, name)


CALLABLES = _callables()
NAMES_BY_ID = {id(fn): name for name, fn in reversed(list(CALLABLES.items()))}
NAMES_BY_ID[id(builtins.getattr)] = "getattr"
NAMES_BY_ID.update({id(getattr(torch._C._VariableFunctions, n)): f"torch.{n}"
                    for n in dir(torch._C._VariableFunctions) if f"torch.{n}" in CALLABLES})


def function_name(fn: Any) -> str:
    name = NAMES_BY_ID.get(id(fn))
    if name is None:
        label = getattr(fn, "__qualname__", None) or repr(fn)
        raise ArtifactError(f"forward calls {getattr(fn, '__module__', '')}.{label}, which is "
                            "not a PyTorch function the grader can replay")
    return name


def encode(value: Any, node_name: Callable[[Any], str | None]) -> Any:
    """A forward's argument as JSON; `node_name` names the values computed by the graph."""
    ref = node_name(value)
    if ref is not None:
        return {"$node": ref}
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, list):
        return [encode(v, node_name) for v in value]
    if isinstance(value, tuple):  # torch.Size too
        return {"$tuple": [encode(v, node_name) for v in value]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"$dict": {k: encode(v, node_name) for k, v in value.items()}}
    if isinstance(value, slice):
        return {"$slice": [encode(v, node_name) for v in (value.start, value.stop, value.step)]}
    if value is Ellipsis:
        return {"$ellipsis": True}
    if isinstance(value, torch.dtype):
        return {"$dtype": str(value).removeprefix("torch.")}
    if isinstance(value, torch.device):
        return {"$device": str(value)}
    if isinstance(value, (torch.memory_format, torch.layout)):
        return {"$torch": str(value).removeprefix("torch.")}
    raise ArtifactError(f"a {type(value).__name__} value in forward cannot be exported")


def decode(value: Any, env: dict[str, Any]) -> Any:
    """The inverse of `encode`, with graph values looked up in `env`."""
    if isinstance(value, list):
        return [decode(v, env) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1:
        raise ArtifactError(f"malformed value {str(value)[:80]}")
    (tag, inner), = value.items()
    if tag == "$node":
        if inner not in env:
            raise ArtifactError(f"node {inner!r} is used before it is computed")
        return env[inner]
    if tag == "$tuple":
        return tuple(decode(v, env) for v in inner)
    if tag == "$dict":
        return {str(k): decode(v, env) for k, v in inner.items()}
    if tag == "$slice":
        return slice(*(decode(v, env) for v in inner))
    if tag == "$ellipsis":
        return Ellipsis
    if tag == "$float":
        return float(inner)
    if tag == "$device":
        return torch.device(inner)
    if tag in ("$dtype", "$torch"):
        attr = getattr(torch, str(inner), None)
        if isinstance(attr, (torch.dtype, torch.memory_format, torch.layout)):
            return attr
    raise ArtifactError(f"unknown value {str(value)[:80]}")


def library_class(name: str) -> type[torch.nn.Module]:
    """The torch.nn module class called `name`, refusing anything defined elsewhere."""
    cls = getattr(torch.nn, name, None) if NAME.match(name or "") else None
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)
            and cls.__module__.startswith("torch.nn.modules")):
        raise ArtifactError(f"{name!r} is not a torch.nn module")
    return cls
