"""Write a student's model as a graded artifact (format: grader/worker/artifact.py).

Runs in the submission's own process. Library modules (nn.Conv2d, nn.Linear,
nn.Sequential, ...) are written as their class and constructor arguments;
every other module's forward is traced by torch.fx with its children kept
whole, so each module stays a module when replayed and the shapes check sees
the same tree the student wrote. Tracing happens in eval mode: a functional
dropout's `training=self.training` is read once, and it must be off when the
replayed model predicts.
"""
from __future__ import annotations

import inspect
import linecache
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.fx
from torch import nn

from ..protocol import write_json_atomic
from .artifact import FORMAT, MANIFEST, TENSORS, ArtifactError, encode, function_name
from .trace import walk_modules


class _ChildrenWhole(torch.fx.Tracer):
    """Traces one module's own forward; calls to its submodules stay single calls.

    Each node keeps the lines of the student's files that made it, so a replayed
    forward that crashes can still point at the student's line. (fx's own
    record_stack_traces would do it too, but its first use imports torch._inductor:
    two seconds per submission.)
    """

    def __init__(self, root: nn.Module, student_root: Path):
        super().__init__()
        self.traced_root = root
        self.student_root = str(student_root.resolve()) + os.sep

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return m is not self.traced_root

    def create_node(self, *args: Any, **kwargs: Any) -> torch.fx.Node:
        node = super().create_node(*args, **kwargs)
        node.meta["student_frames"] = self._student_frames()
        return node

    def _student_frames(self) -> list[dict[str, Any]]:
        frames = []
        frame = sys._getframe(2)
        while frame is not None:
            code = frame.f_code
            if os.path.realpath(code.co_filename).startswith(self.student_root):
                frames.append({"file": Path(code.co_filename).name, "line": frame.f_lineno,
                               "function": code.co_name,
                               "code": linecache.getline(code.co_filename, frame.f_lineno).strip()})
            frame = frame.f_back
        return frames[::-1][-5:]


def export_model(model: nn.Module, folder: Path, student_root: Path | None) -> dict[str, Any]:
    """Write `model` into `folder`; a summary for the stage's JSON.

    Without `student_root`, only the module tree and its tensors are written, and no
    student code runs: that part cannot hang or crash, so the parameters can be
    measured even when forward cannot. With it, each module's forward is traced too,
    and the files are replaced by the complete ones (tensors first: a worker killed
    in between leaves a manifest whose tensors all exist).
    """
    model.eval()
    modules, tensors = [], {}
    for path, module in [("", model), *walk_modules(model)]:
        entry, own = _describe(path, module, student_root)
        modules.append(entry)
        tensors.update({f"{path}:{name}": _array(path, name, t) for name, t in own.items()})
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "tensors.tmp", "wb") as f:
        np.savez(f, **tensors)
    os.replace(folder / "tensors.tmp", folder / TENSORS)
    write_json_atomic(folder / MANIFEST, {"format": FORMAT, "modules": modules})
    traced = sum("graph" in m for m in modules)
    return {"modules": len(modules), "traced": traced, "tensors": len(tensors)}


def _describe(path: str, module: nn.Module, student_root: Path | None
              ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """One module's manifest entry and the tensors it owns."""
    params = {n: p for n, p in vars(module)["_parameters"].items() if p is not None}
    buffers = {n: b for n, b in vars(module)["_buffers"].items() if b is not None}
    entry: dict[str, Any] = {"path": path, "class": type(module).__name__,
                             "params": {n: bool(p.requires_grad) for n, p in params.items()},
                             "buffers": sorted(buffers), "constants": []}
    own = {**params, **buffers}
    if _is_library(module):
        entry.update(kind="library", kwargs=_constructor_kwargs(module))
        return entry, own
    entry["kind"] = "traced"
    if student_root is not None:
        graph, constants = _trace(path, module, student_root)
        entry.update(graph=graph, constants=sorted(constants))
        own.update(constants)
    return entry, own


def _is_library(module: nn.Module) -> bool:
    return type(module).__module__.startswith("torch.nn.modules")


def _constructor_kwargs(module: nn.Module) -> dict[str, Any]:
    """The arguments that rebuild a library module: its __init__ parameters, read back from
    the attributes PyTorch stores them in (bias is stored as a tensor or None)."""
    kwargs = {}
    for name, param in inspect.signature(type(module).__init__).parameters.items():
        if name in ("self", "device", "dtype") or param.kind in (param.VAR_POSITIONAL,
                                                                 param.VAR_KEYWORD):
            continue
        if name == "bias" and "bias" in vars(module)["_parameters"]:
            kwargs[name] = vars(module)["_parameters"]["bias"] is not None
        elif name in vars(module):
            kwargs[name] = encode(vars(module)[name], lambda _: None)
    return kwargs


def _trace(path: str, module: nn.Module, student_root: Path
           ) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor]]:
    """The module's forward as nodes, and tensor constants it reads that it does not own."""
    where = f"{type(module).__name__}.forward" + (f" ({path})" if path else "")
    try:
        graph = _ChildrenWhole(module, student_root).trace(module)
    except Exception as exc:  # noqa: BLE001 - any failure to trace means: cannot export
        raise ArtifactError(f"torch.fx cannot trace {where}: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
    constants: dict[str, torch.Tensor] = {}
    nodes = []
    for node in graph.nodes:
        if node.op == "get_attr":
            _note_constant(module, node.target, constants)
        target = function_name(node.target) if node.op == "call_function" else node.target
        nodes.append({"op": node.op, "name": node.name, "target": target,
                      "args": encode(list(node.args), _node_name),
                      "kwargs": encode(dict(node.kwargs), _node_name)["$dict"],
                      "frames": node.meta.get("student_frames", [])})
    return nodes, constants


def _node_name(value: Any) -> str | None:
    return value.name if isinstance(value, torch.fx.Node) else None


def _note_constant(module: nn.Module, target: str, constants: dict[str, torch.Tensor]) -> None:
    """A get_attr of a plain tensor attribute (not a parameter or buffer) is exported with the
    module that reads it; parameters and buffers are exported by their owners."""
    owner_path, _, name = target.rpartition(".")
    owner = module.get_submodule(owner_path) if owner_path else module
    if name in vars(owner)["_parameters"] or name in vars(owner)["_buffers"]:
        return
    value = getattr(owner, name, None)
    if owner is not module or not isinstance(value, torch.Tensor):
        raise ArtifactError(f"forward reads {target!r}, which is not a tensor the grader can export")
    constants[name] = value


def _array(path: str, name: str, tensor: torch.Tensor) -> np.ndarray:
    try:
        return tensor.detach().cpu().numpy()
    except TypeError as exc:  # e.g. bfloat16, which numpy lacks
        raise ArtifactError(f"{path or 'Model'}.{name} has dtype {tensor.dtype}, which cannot "
                            "be exported; use float32") from exc
