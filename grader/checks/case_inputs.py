"""A function case's inputs as the grading parent holds them, sends them and shows them.

Everything random is made here, from the seed the spec names (numpy's PCG64, the
same numbers on every platform): arrays, a loader's samples and labels, a model's
starting weights. What goes to the worker is that data as JSON (nothing to mount,
nothing to unpickle); grader/worker/fixtures.py turns it into live objects, and
the parent uses the same code for a reference that needs live objects too.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..spec import LIVE_KINDS, CaseSpec
from .values import shape_text, summarize


@dataclass(frozen=True)
class ModelValue:
    layers: tuple
    freeze: tuple[int, ...]
    weights: dict[str, np.ndarray] | None = None   # real starting weights (a seeded model)
    mode: str = "train"                            # the mode it is handed over in


@dataclass(frozen=True)
class NumpyValue:
    """An array the function receives as numpy, not as a tensor (`as: numpy`)."""

    array: np.ndarray


@dataclass(frozen=True)
class LoaderValue:
    x: np.ndarray
    y: np.ndarray
    batch_size: int


@dataclass(frozen=True)
class LiveValue:
    """An optimizer, a loss or a device: built by the fixtures from this description."""

    kind: str
    spec: dict


def materialize(raw: Any) -> Any:
    """A spec value as the parent holds it: numpy arrays for tensors, dataclasses for the rest."""
    if isinstance(raw, dict):
        if "tensor" in raw or "random" in raw:
            arr = np.asarray(raw["tensor"], dtype=raw.get("dtype", "float32")) \
                if "tensor" in raw else _random(raw)
            return NumpyValue(arr) if raw.get("as") == "numpy" else arr
        if "model" in raw:
            layers = tuple(tuple(layer) if not isinstance(layer, dict) else layer
                           for layer in raw["model"])
            weights = None
            if "seed" in raw:
                from ..worker.fixtures import initial_weights

                weights = initial_weights([list(layer) for layer in layers], raw["seed"])
            return ModelValue(layers, tuple(raw.get("freeze", [])), weights,
                              raw.get("mode", "train"))
        if "loader" in raw:
            return _loader(raw["loader"])
        kind = next(k for k in LIVE_KINDS if k in raw)
        return LiveValue(kind, dict(raw))
    if isinstance(raw, list):
        return [materialize(v) for v in raw]
    return raw


def _random(raw: dict) -> np.ndarray:
    """Seeded inputs; numpy's PCG64 gives the same numbers on every platform."""
    rng = np.random.default_rng(raw["seed"])
    shape, dist = tuple(raw["random"]), raw.get("dist", "normal")
    low, high, scale = raw.get("low", 0), raw.get("high", 1), raw.get("scale", 1.0)
    if dist == "normal":
        arr = rng.standard_normal(shape) * scale
    elif dist == "uniform":
        arr = rng.uniform(low, high, shape)
    elif dist == "integers":
        arr = rng.integers(low, high, shape)      # high is excluded, as in range()
    else:  # simplex: positive values that sum to 1 along the last axis (a probability vector)
        arr = rng.standard_exponential(shape)
        arr = arr / arr.sum(axis=-1, keepdims=True)
    default = "int64" if dist == "integers" else "float32"
    return arr.astype(raw.get("dtype", default))


def _loader(spec: dict) -> LoaderValue:
    """Samples drawn from a standard normal and labels uniform over the classes."""
    rng = np.random.default_rng(spec["seed"])
    n = spec["samples"]
    x = rng.standard_normal((n, *spec["shape"])).astype(np.float32)
    y = rng.integers(0, spec["classes"], n).astype(np.int64)
    return LoaderValue(x, y, spec["batch_size"])


def is_live(case: CaseSpec) -> bool:
    """Whether the case needs live objects (a model with weights, a loader, ...) or observes
    something other than the return value: then the reference runs on the fixtures too."""
    def live(raw: Any) -> bool:
        if isinstance(raw, list):
            return any(live(v) for v in raw)
        return isinstance(raw, dict) and (any(k in raw for k in LIVE_KINDS + ("loader",))
                                          or ("model" in raw and "seed" in raw))
    return case.observe is not None or any(live(v) for v in (*case.args, *case.kwargs.values()))


# ---------------------------------------------------------------- to the worker, to a reference

def to_worker(value: Any) -> dict[str, Any]:
    """An input as JSON: a float32 value survives the trip exactly (repr round-trips)."""
    if isinstance(value, np.ndarray):
        return {"array": {"shape": list(value.shape), "dtype": str(value.dtype),
                          "values": value.ravel().tolist()}}
    if isinstance(value, NumpyValue):
        return {**to_worker(value.array), "numpy": True}
    if isinstance(value, ModelValue):
        out: dict[str, Any] = {"model": [list(layer) for layer in value.layers],
                               "freeze": list(value.freeze)}
        if value.weights is not None:
            out["weights"] = {k: to_worker(v) for k, v in value.weights.items()}
            out["mode"] = value.mode
        return out
    if isinstance(value, LoaderValue):
        return {"loader": {"x": to_worker(value.x), "y": to_worker(value.y),
                           "batch_size": value.batch_size}}
    if isinstance(value, LiveValue) and value.kind == "optimizer":
        settings = {k: v for k, v in value.spec.items() if k != "optimizer"}
        return {"optimizer": {"name": value.spec["optimizer"], **settings}}
    if isinstance(value, LiveValue):   # a loss or a device: its name is all there is
        return {value.kind: value.spec[value.kind]}
    if isinstance(value, list) and any(isinstance(v, (np.ndarray, ModelValue, NumpyValue, list))
                                       for v in value):
        return {"list": [to_worker(v) for v in value]}
    return {"value": value}


def observe_to_worker(observe: Any) -> Any:
    """A case's `observe:` for the request: images to apply transforms to travel as data."""
    if isinstance(observe, dict):
        return {"apply_to": to_worker(NumpyValue(materialize(observe["apply_to"]))),
                "draws": observe["draws"]}
    return observe


def to_torch(value: Any) -> Any:
    """Inputs for a plain reference: float64 tensors (so the reference is the accurate side)."""
    if isinstance(value, np.ndarray):
        import torch

        return torch.from_numpy(value.astype(np.float64) if value.dtype.kind == "f" else value.copy())
    if isinstance(value, NumpyValue):
        return value.array.copy()
    if isinstance(value, ModelValue):
        from ..worker.fixtures import build_model

        return build_model([list(layer) for layer in value.layers], value.freeze)
    if isinstance(value, list):
        return [to_torch(v) for v in value]
    return value


# ---------------------------------------------------------------- shown in feedback

def describe_input(raw: Any) -> str:
    """An argument as students see it in feedback (from the spec, so no big dumps)."""
    if isinstance(raw, dict):
        if "random" in raw:
            dist = raw.get("dist", "normal")
            extra = f" in [{raw.get('low', 0)}, {raw.get('high', 1)})" if dist in ("uniform", "integers") else ""
            kind = "numpy array" if raw.get("as") == "numpy" else "tensor"
            dtype = f" {raw['dtype']}" if raw.get("dtype") == "uint8" else ""
            return f"random {dist}{extra}{dtype} {shape_text(raw['random'])} {kind} (seed {raw['seed']})"
        if "tensor" in raw:
            return summarize(np.asarray(raw["tensor"], dtype=raw.get("dtype", "float32")),
                             tensor=raw.get("as") != "numpy")
        if "model" in raw:
            return _describe_model(raw)
        if "loader" in raw:
            s = raw["loader"]
            return (f"a loader of {s['samples']} random samples of shape {shape_text(s['shape'])} "
                    f"with labels 0-{s['classes'] - 1}, batches of {s['batch_size']} (seed {s['seed']})")
        if "optimizer" in raw:
            extra = f", momentum={raw['momentum']}" if raw.get("momentum") else ""
            return f"torch.optim.SGD(model.parameters(), lr={raw['lr']}{extra})"
        if "loss" in raw:
            return "nn.CrossEntropyLoss()"
        if "device" in raw:
            return f"torch.device({raw['device']!r})"
    if isinstance(raw, list) and any(isinstance(v, (dict, list)) for v in raw):
        return "[" + ", ".join(describe_input(v) for v in raw) + "]"
    return repr(raw)


def _describe_model(raw: dict) -> str:
    layers = []
    for layer in raw["model"]:
        name, *args = layer
        text = [str(a) for a in args if not isinstance(a, dict)]
        text += [f"{k}={v}" for a in args if isinstance(a, dict) for k, v in a.items()]
        layers.append(f"{name}({', '.join(text)})")
    frozen = raw.get("freeze") or []
    note = f", frozen (requires_grad=False): layer {', '.join(map(str, frozen))}" if frozen else ""
    weights = f" with seeded weights (seed {raw['seed']})" if "seed" in raw else ""
    mode = ", left in eval mode" if raw.get("mode") == "eval" else ""
    return f"nn.Sequential({', '.join(layers)}){weights}{mode}{note}"


def call_text(case: CaseSpec) -> str:
    parts = [describe_input(v) for v in case.args]
    parts += [f"{k}={describe_input(v)}" for k, v in case.kwargs.items()]
    return f"{case.function}({', '.join(parts)})"
