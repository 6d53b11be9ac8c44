"""Write a student's model as a graded artifact (format: grader/worker/artifact.py).

Runs in the submission's own process. Library modules (nn.Conv2d, nn.Linear,
nn.Sequential, ... the exact classes in ops.LIBRARY_MODULES) are written as
their class and constructor arguments; every other module's forward is
captured as a tensor program (grader/worker/capture.py), with its children
kept whole, so each module stays a module when replayed and the shapes check
sees the same tree the student wrote. A subclass of a library class is
captured like any other module: its forward may be the student's own.

Each forward is captured twice, in eval and in training mode, so code that
reads `self.training` (dropout, batch norm by hand, `if self.training:`)
replays as it runs in each mode. Tensors are copied before any forward runs:
what a forward does to a buffer while being captured does not change what
the grader trains.
"""
from __future__ import annotations

import inspect
import os
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.fx
from torch import nn
from torch.nn.utils import prune

from ..protocol import write_json_atomic
from . import ops
from .artifact import FORMAT, MANIFEST, TENSORS, ArtifactError, encode, function_name
from .capture import Capture, DataDependent, first_inputs
from .trace import walk_modules

MODES = ("eval", "train")


def export_model(model: nn.Module, folder: Path, student_root: Path | None,
                 probe: torch.Tensor | None = None) -> dict[str, Any]:
    """Write `model` into `folder`; a summary for the stage's JSON.

    Without `student_root`, only the module tree and its tensors are written, and no
    student code runs: that part cannot hang or crash, so the parameters can be
    measured even when forward cannot. With it (and the `probe` input), each
    module's forward is captured too, and the files are replaced by the complete
    ones (tensors first: a worker killed in between leaves a manifest whose
    tensors all exist). A module that cannot be captured keeps no graph and says
    why ("untraced"); the rest of the model is still exported.
    """
    model.eval()
    tree = [("", model), *walk_modules(model)]
    if len(tree) > 5_000:
        raise ArtifactError(f"the model has {len(tree):,} modules; the grader measures at most "
                            "5,000")
    entries, tensors, dtypes = [], {}, {}
    for path, module in tree:
        entry, own = _describe(path, module)
        entries.append(entry)
        for name, t in own.items():
            tensors[f"{path}:{name}"] = _array(path, name, t, dtypes)
    if student_root is not None:
        _capture_all(model, tree, entries, tensors, dtypes, student_root, probe)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "tensors.tmp", "wb") as f:
        np.savez(f, **tensors)
    os.replace(folder / "tensors.tmp", folder / TENSORS)
    write_json_atomic(folder / MANIFEST, {"format": FORMAT, "modules": entries, "dtypes": dtypes})
    untraced = {e["path"] or "Model": e["untraced"] for e in entries if "untraced" in e}
    return {"modules": len(entries), "traced": sum(e.get("graph") is not None for e in entries),
            "tensors": len(tensors), "untraced": untraced}


def _describe(path: str, module: nn.Module) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """One module's manifest entry and the tensors it owns (no student code runs here)."""
    params = {n: p for n, p in vars(module)["_parameters"].items() if p is not None}
    if any(nn.parameter.is_lazy(p) for p in params.values()):
        raise ArtifactError(f"{path or 'the model'} ({type(module).__name__}) creates its "
                            "parameters in its first forward pass, and the forward pass "
                            "never ran it")
    buffers = {n: b for n, b in vars(module)["_buffers"].items() if b is not None}
    entry: dict[str, Any] = {"path": path, "class": type(module).__name__,
                             "params": {n: bool(p.requires_grad) for n, p in params.items()},
                             "buffers": sorted(buffers), "constants": []}
    if is_library(module):
        entry.update(kind="library", kwargs=_constructor_kwargs(module))
        pruned = [h._tensor_name for h in vars(module)["_forward_pre_hooks"].values()
                  if isinstance(h, prune.BasePruningMethod)]
        if pruned:   # torch.nn.utils.prune: weight = weight_orig * weight_mask at each call
            entry["pruned"] = pruned
    else:
        entry.update(kind="traced", graph=None)
    return entry, {**params, **buffers}


def is_library(module: nn.Module) -> bool:
    """Exactly one of the torch.nn classes the replay worker builds (not a subclass)."""
    return ops.MODULE_CLASSES.get(type(module).__name__) is type(module)


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


def _capture_all(model: nn.Module, tree: list[tuple[str, nn.Module]], entries: list[dict],
                 tensors: dict, dtypes: dict, student_root: Path,
                 probe: torch.Tensor | None) -> None:
    """Each custom module's forward, in both modes, captured with its real inputs."""
    custom = [(path, m, entry) for (path, m), entry in zip(tree, entries)
              if entry["kind"] == "traced"]
    graphs: dict[str, dict[str, list]] = {path: {} for path, _, _ in custom}
    for mode in MODES:
        model.train(mode == "train")
        inputs = first_inputs(model, [m for _, m, _ in custom], probe) if probe is not None else {}
        for path, module, entry in custom:
            if "untraced" in entry:
                continue
            try:
                graph, constants = _trace(path, module, student_root, inputs.get(id(module)))
            except ArtifactError as exc:
                entry["untraced"] = str(exc) + (" (in training mode)" if mode == "train" else "")
                continue
            graphs[path][mode] = graph
            for name, value in constants.items():
                tensors[f"{path}:{name}"] = _array(path, name, value, dtypes)
                if name not in entry["constants"]:
                    entry["constants"].append(name)
    model.eval()
    for path, _, entry in custom:
        if "untraced" in entry:
            continue
        entry["graph"] = graphs[path]["eval"]
        if graphs[path]["train"] != entry["graph"]:
            entry["train_graph"] = graphs[path]["train"]


def _trace(path: str, module: nn.Module, student_root: Path, inputs: tuple | None
           ) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor]]:
    """The module's forward as nodes, and tensor constants it reads that it does not own."""
    where = f"{type(module).__name__}.forward" + (f" ({path})" if path else "")
    capture = Capture(module, student_root, inputs)
    try:
        graph = capture.trace(module)
    except DataDependent as exc:
        raise ArtifactError(f"{where}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - any failure to capture means: cannot export
        graph = _raised_here(capture, exc, student_root)
        if graph is None:
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise ArtifactError(f"{where} cannot be captured as a tensor program: "
                                f"{type(exc).__name__}: {first}") from exc
    constants: dict[str, torch.Tensor] = {}
    nodes = []
    for node in graph.nodes:
        if node.op == "get_attr":
            _note_constant(module, node.target, constants)
        try:
            target = function_name(node.target) if node.op == "call_function" else node.target
        except ArtifactError as exc:
            raise ArtifactError(f"{where}: {exc}") from exc
        nodes.append({"op": node.op, "name": node.name, "target": target,
                      "args": encode(list(node.args), _node_name),
                      "kwargs": encode(dict(node.kwargs), _node_name)["$dict"],
                      "frames": node.meta.get("student_frames", [])})
    return nodes, constants


def _raised_here(capture: Capture, exc: Exception, student_root: Path) -> torch.fx.Graph | None:
    """A forward that raised in the student's own code (a `raise`, an `assert`): the program
    as far as it got, then a node that raises the same, so the replayed model fails where the
    student's does and every layer before it is still measured."""
    if isinstance(exc, torch.fx.proxy.TraceError) or getattr(capture, "graph", None) is None:
        return None
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if os.path.realpath(f.filename).startswith(str(student_root.resolve()) + os.sep)]
    if not frames:
        return None
    node = capture.graph.create_node("call_function", ops.raise_error,
                                     (type(exc).__name__, str(exc)[:2000]), {})
    node.meta["student_frames"] = [{"file": Path(f.filename).name, "line": f.lineno,
                                    "function": f.name, "code": (f.line or "").strip()}
                                   for f in frames[-5:]]
    return capture.graph


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


def _array(path: str, name: str, tensor: torch.Tensor, dtypes: dict[str, str]) -> np.ndarray:
    """A tensor as numpy; bfloat16 as its bit patterns (numpy has no bfloat16)."""
    t = tensor.detach().cpu()
    if t.dtype == torch.bfloat16:
        dtypes[f"{path}:{name}"] = "bfloat16"
        return t.view(torch.int16).numpy().copy()
    try:
        return t.numpy().copy()
    except TypeError as exc:
        raise ArtifactError(f"{path or 'Model'}.{name} has dtype {tensor.dtype}, which cannot "
                            "be exported; use float32") from exc
