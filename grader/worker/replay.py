"""Rebuild an exported model (format: grader/worker/artifact.py) without the code that made it.

Runs in a worker that never imports student code. Library modules are
constructed from torch.nn by name; every other module becomes a `Replayed`
module, given the student's class name, that runs its exported nodes one by
one: only functions from artifact.CALLABLES, tensor methods, its own
children, and its own tensors. The result is an ordinary nn.Module, so the
grader's tracer, parameter count and trainer treat it exactly as they would
treat the student's original.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .artifact import (CALLABLES, FORMAT, MANIFEST, NAME, PATH, TENSORS, ArtifactError, decode,
                       library_class)

MAX_MANIFEST_BYTES = 8 * 1024 * 1024


class Replayed(nn.Module):
    """A module whose forward is a list of exported nodes."""

    def __init__(self, nodes: list[dict[str, Any]] | None):
        super().__init__()
        self.nodes = nodes

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.nodes is None:
            raise ArtifactError(f"{type(self).__name__}.forward was not exported")
        env: dict[str, Any] = {}
        inputs = list(args)
        for node in self.nodes:
            try:
                if node["op"] == "output":
                    return decode(node["args"][0], env)
                env[node["name"]] = self._run(node, env, inputs, kwargs)
            except Exception as exc:
                # Where in the student's code this node came from: outer modules first.
                exc.student_frames = node.get("frames", []) + getattr(exc, "student_frames", [])
                raise
        raise ArtifactError(f"{type(self).__name__}.forward has no output node")

    def _run(self, node: dict[str, Any], env: dict[str, Any], inputs: list, kwargs: dict) -> Any:
        op, target = node["op"], node["target"]
        if op == "placeholder":
            if inputs:
                return inputs.pop(0)
            if target in kwargs:
                return kwargs[target]
            if node["args"]:
                return decode(node["args"][0], env)
            raise TypeError(f"{type(self).__name__}.forward() missing argument {target!r}")
        if op == "get_attr":
            return _attribute(self, target)
        args, kw = decode(node["args"], env), decode({"$dict": node["kwargs"]}, env)
        if op == "call_module":
            return self.get_submodule(target)(*args, **kw)
        if op == "call_function" and target in CALLABLES:
            return CALLABLES[target](*args, **kw)
        if op == "call_method" and isinstance(args[0], (torch.Tensor, torch.Size)) and \
                NAME.match(target) and not target.startswith("_"):
            return getattr(args[0], target)(*args[1:], **kw)
        raise ArtifactError(f"cannot replay {op} {target!r}")


def load_model(folder: Path) -> nn.Module:
    """The exported model in `folder`, with the tensors it was exported with."""
    manifest = _read_manifest(folder)
    with np.load(folder / TENSORS, allow_pickle=False) as arrays:
        tensors = {key: torch.from_numpy(arrays[key].copy()) for key in arrays.files}
    built: dict[str, nn.Module] = {}
    for entry in manifest["modules"]:
        module = _build(entry, tensors)
        path = entry["path"]
        if path:
            parent, _, name = path.rpartition(".")
            if parent not in built:
                raise ArtifactError(f"module {path!r} comes before its parent")
            built[parent].add_module(name, module)
        built[path] = module
    if "" not in built:
        raise ArtifactError("the artifact has no root module")
    return built[""]


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise ArtifactError("the model description is larger than the grader accepts")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT or not isinstance(manifest.get("modules"), list):
        raise ArtifactError(f"unknown artifact format {manifest.get('format')!r}")
    return manifest


def _build(entry: dict[str, Any], tensors: dict[str, torch.Tensor]) -> nn.Module:
    """One module of the tree, its children still to be attached."""
    path, cls_name = str(entry["path"]), str(entry["class"])
    if not PATH.match(path) or not NAME.match(cls_name):
        raise ArtifactError(f"bad module path {path!r} or class {cls_name!r}")
    if entry["kind"] == "library":
        module = library_class(cls_name)(**decode({"$dict": entry["kwargs"]}, {}))
    elif entry["kind"] == "traced":
        graph = entry.get("graph")
        module = type(cls_name, (Replayed,), {})(None if graph is None else list(graph))
        for name in entry["constants"]:
            module.register_buffer(_name(name), tensors[f"{path}:{name}"], persistent=False)
    else:
        raise ArtifactError(f"unknown module kind {entry['kind']!r}")
    _load_own_tensors(module, entry, tensors)
    return module


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
        value = tensors[f"{path}:{name}"]
        built = params.get(name)
        if built is not None and built.shape != value.shape:
            raise ArtifactError(f"{entry['class']}.{name} at {path or 'the root'} has shape "
                                f"{list(value.shape)}, but its arguments make {list(built.shape)}")
        params[_name(name)] = nn.Parameter(value, requires_grad=bool(trainable))
    for name in entry["buffers"]:
        buffers[_name(name)] = tensors[f"{path}:{name}"]


def _attribute(module: nn.Module, target: str) -> Any:
    owner_path, _, name = str(target).rpartition(".")
    owner = module.get_submodule(owner_path) if owner_path else module
    for table in ("_parameters", "_buffers"):
        if name in vars(owner)[table]:
            return vars(owner)[table][name]
    raise ArtifactError(f"the model has no tensor {target!r}")


def _name(name: Any) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise ArtifactError(f"bad tensor name {name!r}")
    return name
