"""Rebuild an exported model (format: grader/worker/artifact.py) without the code that made it.

Runs in a worker that never imports student code. Library modules are
constructed from the closed list in ops.LIBRARY_MODULES; every other module
becomes a `Replayed` module, given the student's class name, that interprets
its exported nodes one by one: functions and methods from ops' table only
(every argument and result checked there), its own children, and its own
tensors. Nothing else can be named, so nothing else can run. The result is an
ordinary nn.Module, so the grader's tracer, parameter count and trainer treat
it exactly as they would treat the student's original.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

from . import ops
from .artifact import (DTYPES, FORMAT, MANIFEST, MAX_MODULES, MAX_NODES, NAME, PATH, TENSORS,
                       ArtifactError, decode, library_class)

MAX_MANIFEST_BYTES = 8 * 1024 * 1024
OPS = ("placeholder", "get_attr", "call_module", "call_function", "call_method", "output")


class Replayed(nn.Module):
    """A module whose forward is a list of exported nodes (one list per mode, if they differ)."""

    def __init__(self, nodes: list[dict[str, Any]] | None, train_nodes: list | None = None,
                 untraced: str = "", per_call: frozenset[str] = frozenset()):
        super().__init__()
        self.nodes, self.train_nodes, self.untraced = nodes, train_nodes, untraced
        self.per_call = per_call   # the constants, copied afresh at every call

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        nodes = self.train_nodes if self.training and self.train_nodes else self.nodes
        if nodes is None:
            raise ArtifactError(self.untraced or f"{type(self).__name__}.forward was not "
                                "exported (the submission's process stopped before it was)")
        env: dict[str, Any] = {}
        fresh: dict[str, torch.Tensor] = {}   # this call's copies of the constants
        inputs = list(args)
        for node in nodes:
            try:
                if node["op"] == "output":
                    return decode(node["args"][0], env)
                env[node["name"]] = self._run(node, env, inputs, kwargs, fresh)
            except Exception as exc:
                # Where in the student's code this node came from: outer modules first.
                exc.student_frames = node.get("frames", []) + getattr(exc, "student_frames", [])
                raise
        raise ArtifactError(f"{type(self).__name__}.forward has no output node")

    def _run(self, node: dict[str, Any], env: dict[str, Any], inputs: list, kwargs: dict,
             fresh: dict[str, torch.Tensor]) -> Any:
        op, target = node["op"], node["target"]
        if op == "placeholder":
            if isinstance(target, str) and target.startswith("**"):   # forward(self, x, **kw)
                return dict(kwargs)
            if isinstance(target, str) and target.startswith("*"):    # forward(self, x, *args)
                rest = tuple(inputs)
                inputs.clear()
                return rest
            if inputs:
                return inputs.pop(0)
            if target in kwargs:
                return kwargs[target]
            if node["args"]:
                return decode(node["args"][0], env)
            raise TypeError(f"{type(self).__name__}.forward() missing argument {target!r}")
        if op == "get_attr":
            value = _attribute(self, target)
            if target not in self.per_call:
                return value
            # A constant is a value the student's forward computes afresh at every call
            # (`kernel = torch.zeros(16, 6, 5, 5)`): a write into it (`kernel[mask] = w`)
            # is seen by the rest of this call and by no later one.
            if target not in fresh:
                fresh[target] = value.clone()
            return fresh[target]
        args, kw = decode(node["args"], env), decode({"$dict": node["kwargs"]}, env)
        try:
            if op == "call_module":
                ops.check_arguments(args, kw)
                return _child(self, target)(*args, **kw)
            if op == "call_function":
                return ops.call_function(target, args, kw)
            return ops.call_method(target, args, kw)
        except ops.ReplayRefused as exc:
            raise ArtifactError(f"cannot replay {op} {str(target)[:60]!r}: {exc}") from exc


def load_model(folder: Path) -> nn.Module:
    """The exported model in `folder`, with the tensors it was exported with."""
    manifest = _read_manifest(folder)
    tensors = _read_tensors(folder, manifest.get("dtypes") or {})
    built: dict[str, nn.Module] = {}
    for entry in manifest["modules"]:
        module = _build(entry, tensors)
        path = entry["path"]
        if path:
            parent, _, name = path.rpartition(".")
            if parent not in built or path in built:
                raise ArtifactError(f"module {path!r} comes before its parent, or twice")
            built[parent].add_module(name, module)
        elif "" in built:
            raise ArtifactError("the artifact has two root modules")
        built[path] = module
    if "" not in built:
        raise ArtifactError("the artifact has no root module")
    return built[""]


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise ArtifactError("the model description is larger than the grader accepts")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise ArtifactError("the model description is not valid JSON") from exc
    modules = manifest.get("modules") if isinstance(manifest, dict) else None
    if manifest.get("format") != FORMAT or not isinstance(modules, list):
        raise ArtifactError(f"unknown artifact format {str(manifest.get('format'))[:20]!r}")
    if len(modules) > MAX_MODULES:
        raise ArtifactError(f"the model has more than {MAX_MODULES:,} modules")
    nodes = 0
    for entry in modules:
        _check_entry(entry)
        nodes += sum(len(entry.get(k) or []) for k in ("graph", "train_graph"))
    if nodes > MAX_NODES:
        raise ArtifactError(f"the model's forwards have more than {MAX_NODES:,} operations")
    return manifest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_entry(entry: Any) -> None:
    """The shape of one module entry, before anything is built from it."""
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or \
            not isinstance(entry.get("class"), str) or not PATH.match(entry["path"]) or \
            not NAME.match(entry["class"]):
        raise ArtifactError("a module entry of the model description is malformed")
    pruned = entry.get("pruned", [])
    if not isinstance(entry.get("params"), dict) or not isinstance(entry.get("buffers"), list) \
            or not isinstance(entry.get("constants", []), list) \
            or not (isinstance(pruned, list) and all(isinstance(n, str) for n in pruned)):
        raise ArtifactError(f"module {entry['path']!r} lists its tensors wrongly")
    for key in ("graph", "train_graph"):
        graph = entry.get(key)
        if graph is not None and not (isinstance(graph, list) and all(
                isinstance(n, dict) and n.get("op") in OPS and isinstance(n.get("name"), str)
                and isinstance(n.get("args"), list) and isinstance(n.get("kwargs"), dict)
                for n in graph)):
            raise ArtifactError(f"the forward of module {entry['path']!r} is malformed")


def _read_tensors(folder: Path, dtypes: dict[str, str]) -> dict[str, torch.Tensor]:
    with np.load(folder / TENSORS, allow_pickle=False) as arrays:
        tensors = {}
        for key in arrays.files:
            array = arrays[key]
            if array.dtype.kind not in "biuf":
                raise ArtifactError(f"tensor {key[:60]!r} has dtype {array.dtype}")
            tensor = torch.from_numpy(array.copy())
            if dtypes.get(key) in DTYPES:
                tensor = tensor.view(DTYPES[dtypes[key]])
            tensors[key] = tensor
    return tensors


def _build(entry: dict[str, Any], tensors: dict[str, torch.Tensor]) -> nn.Module:
    """One module of the tree, its children still to be attached."""
    path, cls_name = entry["path"], entry["class"]
    if entry.get("kind") == "library":
        kwargs = decode({"$dict": entry.get("kwargs") or {}}, {})
        ops.check_arguments((), kwargs)
        try:
            module = library_class(cls_name)(**kwargs)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ArtifactError(f"{cls_name} at {path or 'the root'} cannot be built: {exc}") from exc
        _prune_as_exported(module, entry)
    elif entry.get("kind") == "traced":
        module = type(cls_name, (Replayed,), {})(entry.get("graph"), entry.get("train_graph"),
                                                str(entry.get("untraced", ""))[:2000],
                                                frozenset(entry.get("constants", [])))
        for name in entry.get("constants", []):
            module.register_buffer(_name(name), _tensor(tensors, path, name), persistent=False)
    else:
        raise ArtifactError(f"unknown module kind {str(entry.get('kind'))[:20]!r}")
    _load_own_tensors(module, entry, tensors)
    return module


def _prune_as_exported(module: nn.Module, entry: dict[str, Any]) -> None:
    """A library module the student pruned (torch.nn.utils.prune, e.g. LeNet-5's C3 table
    as a mask) gets the same pruning hook: its `weight` is `weight_orig * weight_mask` at
    every call, with both tensors loaded from the export."""
    for name in entry.get("pruned", []):
        if name not in vars(module)["_parameters"]:
            raise ArtifactError(f"{entry['class']} has no parameter {str(name)[:40]!r} to prune")
        prune.identity(module, name)


def _load_own_tensors(module: nn.Module, entry: dict[str, Any],
                      tensors: dict[str, torch.Tensor]) -> None:
    """Put the exported parameters and buffers in place, and only those."""
    path = entry["path"]
    params, buffers = vars(module)["_parameters"], vars(module)["_buffers"]
    expected = {n for n, p in params.items() if p is not None}
    if isinstance(module, Replayed):
        expected = set(entry["params"])
    if expected != set(entry["params"]):
        raise ArtifactError(f"{entry['class']} at {path or 'the root'} should have parameters "
                            f"{sorted(expected)}, the export has {sorted(entry['params'])}")
    for name, trainable in entry["params"].items():
        value = _tensor(tensors, path, name)
        built = params.get(name)
        if built is not None and built.shape != value.shape:
            raise ArtifactError(f"{entry['class']}.{name} at {path or 'the root'} has shape "
                                f"{list(value.shape)}, but its arguments make {list(built.shape)}")
        if not (value.is_floating_point() or value.is_complex()):
            raise ArtifactError(f"parameter {path}.{name} is not a floating-point tensor")
        params[_name(name)] = nn.Parameter(value, requires_grad=bool(trainable))
    for name in entry["buffers"]:
        buffers[_name(name)] = _tensor(tensors, path, name)


def _tensor(tensors: dict[str, torch.Tensor], path: str, name: Any) -> torch.Tensor:
    key = f"{path}:{_name(name)}"
    if key not in tensors:
        raise ArtifactError(f"the export has no tensor {key!r}")
    return tensors[key]


def _child(module: nn.Module, target: Any) -> nn.Module:
    """Only a module's own descendants can be called."""
    if not isinstance(target, str) or not PATH.match(target) or not target:
        raise ArtifactError(f"cannot call module {str(target)[:60]!r}")
    try:
        return module.get_submodule(target)
    except AttributeError as exc:
        raise ArtifactError(f"the model has no module {target!r}") from exc


def _attribute(module: nn.Module, target: Any) -> Any:
    if not isinstance(target, str) or not PATH.match(target):
        raise ArtifactError(f"cannot read {str(target)[:60]!r}")
    owner_path, _, name = target.rpartition(".")
    owner = _child(module, owner_path) if owner_path else module
    for table in ("_parameters", "_buffers"):
        if name in vars(owner)[table]:
            return vars(owner)[table][name]
    raise ArtifactError(f"the model has no tensor {target!r}")


def _name(name: Any) -> str:
    if not isinstance(name, str) or not NAME.match(name) or name in (
            "nodes", "train_nodes", "per_call", "untraced", "training"):
        raise ArtifactError(f"bad tensor name {str(name)[:40]!r}")
    return name
