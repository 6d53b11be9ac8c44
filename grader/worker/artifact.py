"""The graded artifact: a model as data, so it can be measured away from the code that made it.

A submission's process can change anything in itself, including the grader's
measuring code. So that process only *exports* the model (grader/worker/
export.py): its module tree, its tensors, and the tensor program each
non-library module's forward performs (captured by grader/worker/capture.py).
A second worker that never imports student code *replays* that description
(grader/worker/replay.py) through the closed table of grader/worker/ops.py,
and measures, probes and trains the replayed model. Whatever the submission
does to its own process, what gets graded is the network it exported,
computed by the grader's own code.

The format is JSON plus one .npz of tensors (never a pickle):

    manifest.json  {"format": 2, "modules": [module, ...], "dtypes": {key: "bfloat16"}}
    tensors.npz    "<module path>:<name>" -> array          parameters, buffers, constants

    module = {"path": "conv1", "class": "Conv2d", "kind": "library" | "traced",
              "kwargs": {...} (library: constructor arguments),
              "graph": [node, ...] | null (traced: its forward in eval mode),
              "train_graph": [node, ...] (only where training mode runs other code),
              "untraced": "why there is no graph",
              "params": {name: trainable}, "buffers": [name, ...], "constants": [name, ...]}
    node   = {"op": "placeholder" | "get_attr" | "call_module" | "call_function" |
                    "call_method" | "output",
              "name": ..., "target": ..., "args": [...], "kwargs": {...}, "frames": [...]}

Values inside args are JSON with tagged objects for what JSON lacks ($node,
$tuple, $slice, ...). Function targets are names in ops.FUNCTIONS; anything
else cannot be exported. bfloat16 tensors (which numpy lacks) travel as their
raw 16-bit patterns, named in "dtypes".
"""
from __future__ import annotations

import math
import re
from typing import Any, Callable

import torch

from ..protocol import ARTIFACT_MANIFEST, ARTIFACT_TENSORS
from . import ops

FORMAT = 2
MANIFEST, TENSORS = ARTIFACT_MANIFEST, ARTIFACT_TENSORS
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
PATH = re.compile(r"^([A-Za-z0-9_]{1,100}(\.[A-Za-z0-9_]{1,100}){0,31})?$")
MAX_MODULES = 5_000
MAX_NODES = 20_000          # in all graphs together
DTYPES = {"bfloat16": torch.bfloat16}


class ArtifactError(Exception):
    """The model cannot be written as (or read back from) the artifact format."""


def function_name(fn: Any) -> str:
    name = ops.function_name(fn)
    if name is None:
        label = getattr(fn, "__qualname__", None) or repr(fn)
        raise ArtifactError(f"forward calls {getattr(fn, '__module__', '')}.{label}, which is "
                            "not a PyTorch operation the grader can replay")
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


def decode(value: Any, env: dict[str, Any], depth: int = 0) -> Any:
    """The inverse of `encode`, with graph values looked up in `env`."""
    if depth > ops.MAX_DEPTH:
        raise ArtifactError("a value in the model description is nested too deep")
    if isinstance(value, list):
        return [decode(v, env, depth + 1) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1:
        raise ArtifactError(f"malformed value {str(value)[:80]}")
    (tag, inner), = value.items()
    if tag == "$node":
        if not isinstance(inner, str) or inner not in env:
            raise ArtifactError(f"node {str(inner)[:40]!r} is used before it is computed")
        return env[inner]
    if tag in ("$tuple", "$slice") and isinstance(inner, list):
        items = tuple(decode(v, env, depth + 1) for v in inner)
        if tag == "$tuple":
            return items
        if len(items) == 3:
            return slice(*items)
    if tag == "$dict" and isinstance(inner, dict):
        return {str(k): decode(v, env, depth + 1) for k, v in inner.items()}
    if tag == "$ellipsis":
        return Ellipsis
    if tag == "$float" and inner in ("inf", "-inf", "nan"):
        return float(inner)
    if tag == "$device" and isinstance(inner, str) and re.fullmatch(r"(cpu|cuda|meta)(:\d+)?", inner):
        return torch.device(inner)
    if tag in ("$dtype", "$torch") and isinstance(inner, str) and NAME.match(inner):
        attr = getattr(torch, inner, None)
        if isinstance(attr, (torch.dtype, torch.memory_format, torch.layout)):
            return attr
    raise ArtifactError(f"unknown value {str(value)[:80]}")


def library_class(name: str) -> type[torch.nn.Module]:
    """The torch.nn module class called `name`, from the closed list in ops."""
    try:
        return ops.module_class(name)
    except ops.ReplayRefused as exc:
        raise ArtifactError(str(exc)) from exc
