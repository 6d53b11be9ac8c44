"""Values the functions check compares: decoded from the worker, compared, shown.

A worker's result is untrusted JSON (grader/worker/functions.py `encode`): numbers,
flat value lists with a shape, or a mapping of those (a model's state_dict). It is
checked and converted here into a `Value`; `compare` says in one sentence what is
wrong, or returns None. Pure numpy: no torch here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SMALL = 12                 # arrays up to this many values are shown in full
MAX_ITEMS = 64             # entries of a mapping


@dataclass
class Value:
    """A returned (or expected, or observed) value, as the parent compares it."""

    kind: str                   # int, float, bool, tensor, array, sequence, mapping, none, other, too_large
    array: np.ndarray | None = None
    note: str = ""              # for other / too_large: what it was
    items: dict[str, Value] = field(default_factory=dict)    # for a mapping

    def describe(self) -> str:
        if self.kind == "mapping":
            shapes = ", ".join(f"{k} {shape_text(v.array.shape) if v.array is not None else '?'}"
                               for k, v in list(self.items.items())[:6])
            more = ", ..." if len(self.items) > 6 else ""
            return f"{len(self.items)} tensors ({shapes}{more})"
        if self.array is None:
            return {"none": "None"}.get(self.kind, self.note or self.kind)
        return summarize(self.array, tensor=self.kind in ("tensor", "array"))


def decode(result: Any, depth: int = 0) -> Value:
    """Check and convert one encoded result from the worker (untrusted) into a Value."""
    if not isinstance(result, dict):
        return Value("other", note="an unreadable result")
    kind = result.get("kind")
    if kind in ("int", "float", "bool"):
        v = _number(result.get("value"))
        if v is None or (kind == "int" and not isinstance(v, int)):
            return Value("other", note="an unreadable number")
        dtype = {"int": np.int64, "float": np.float64, "bool": np.bool_}[kind]
        try:
            return Value(kind, np.asarray(v, dtype=dtype))
        except (OverflowError, ValueError):
            return Value("float", np.asarray(float(v)))
    if kind in ("tensor", "array", "sequence"):
        return _decode_array(kind, result)
    if kind == "mapping" and depth == 0:
        items = result.get("items")
        if not (isinstance(items, list) and 0 < len(items) <= MAX_ITEMS and all(
                isinstance(i, list) and len(i) == 2 and isinstance(i[0], str) for i in items)):
            return Value("other", note="an unreadable mapping")
        return Value("mapping", items={k[:200]: decode(v, depth + 1) for k, v in items})
    if kind == "none":
        return Value("none")
    return Value("other", note=str(result.get("note") or "something that is not a number or a tensor")[:200])


def _decode_array(kind: str, result: dict) -> Value:
    shape, values = result.get("shape"), result.get("values")
    if not (isinstance(shape, list) and all(isinstance(s, int) and s >= 0 for s in shape)):
        return Value("other", note=f"an unreadable {kind}")
    if result.get("too_large"):
        return Value("too_large", note=f"a {shape_text(shape)} {kind} (too large to compare)")
    if not (isinstance(values, list) and len(values) == math.prod(shape)):
        return Value("other", note=f"an unreadable {kind}")
    numbers = [_number(v) for v in values]
    if any(v is None for v in numbers):
        return Value("other", note=f"an unreadable {kind}")
    dtype = {"b": np.bool_, "i": np.int64, "u": np.int64}.get(result.get("dtype_kind"), np.float64)
    try:
        return Value(kind, np.asarray(numbers, dtype=dtype).reshape(shape))
    except (OverflowError, ValueError):
        return Value(kind, np.asarray(numbers, dtype=np.float64).reshape(shape))


def _number(v: Any) -> Any:
    if isinstance(v, bool) or isinstance(v, (int, float)):
        return v
    return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}.get(v) if isinstance(v, str) else None


# ---------------------------------------------------------------- comparing

def compare(expected: Value, got: Value, returns: str, rtol: float, atol: float) -> str | None:
    """None when `got` matches; otherwise what is wrong, in a sentence. `returns` is what the
    function must return (any, int, float, tensor)."""
    if expected.kind == "mapping":
        return _compare_mapping(expected, got, rtol, atol)
    if got.array is None:
        return f"returned {got.describe()}; expected {_what(expected)}"
    if returns == "tensor" and got.kind != "tensor":
        return f"returned {_what(got)}; return a torch.Tensor"
    kind = got.array.dtype.kind
    if returns == "int" and kind not in "iu":
        shown = fmt(got.array.flat[0]) if got.array.size else "[]"
        return (f"returned {'a float' if kind == 'f' else 'a ' + got.kind} ({shown}); "
                "expected a whole number (int): use // for floor division, or int()")
    if kind == "b" and expected.array.dtype.kind != "b":
        return f"returned true/false values; expected {_what(expected)}"
    exp = expected.array
    if got.array.shape != exp.shape:
        return f"shape {shape_text(got.array.shape)}, expected {shape_text(exp.shape)}"
    if exp.dtype.kind in "iub" and kind in "iub":
        bad = got.array != exp
        tolerance = "whole numbers must match exactly"
    else:
        g, e = got.array.astype(np.float64), exp.astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            bad = ~np.isclose(g, e, rtol=rtol, atol=atol, equal_nan=True)
        tolerance = f"tolerance: |got - expected| <= {atol:g} + {rtol:g}*|expected|"
    if not bad.any():
        return None
    worst = _worst(got.array, exp, bad)
    values = f"expected {fmt(exp[worst])}, got {fmt(got.array[worst])} ({tolerance})"
    if exp.ndim == 0:
        return values
    where = ", ".join(map(str, worst))
    return f"{int(bad.sum())} of {bad.size} values differ; the largest difference is at [{where}]: {values}"


def _compare_mapping(expected: Value, got: Value, rtol: float, atol: float) -> str | None:
    """Tensor by tensor, in the expected order; the first one that differs is named."""
    if got.kind != "mapping":
        return f"got {got.describe()}; expected {expected.describe()}"
    missing = [k for k in expected.items if k not in got.items]
    if missing:
        return f"{missing[0]} is missing"
    for name, want in expected.items.items():
        problem = compare(want, got.items[name], "any", rtol, atol)
        if problem:
            return f"{name}: {problem}"
    return None


def compare_calls(expected: Value, got: Value, what: str) -> str | None:
    """An observation noted at every call: each call must show the reference's one value."""
    if got.array is None or got.array.ndim != 1:
        return f"{what}: could not be read ({got.describe()})"
    if got.array.size == 0:
        return "the model was never called"
    want = bool(expected.array.reshape(-1)[0])
    off = int((got.array != want).sum())
    if not off:
        return None
    return f"{what}: expected {want} at every call, got {not want} at {off} of {got.array.size} calls"


def agreed(reference: Value) -> Value:
    """A per-call observation of the reference, as the one value every call shows."""
    values = set(reference.array.reshape(-1).tolist()) if reference.array is not None else set()
    if len(values) != 1:
        raise ValueError(f"the reference's calls do not agree ({sorted(values)}): "
                         "a case observing them cannot be graded")
    return Value("bool", np.asarray(values.pop(), dtype=np.bool_))


def _worst(got: np.ndarray, exp: np.ndarray, bad: np.ndarray) -> tuple[int, ...]:
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(got.astype(np.float64) - exp.astype(np.float64))
    diff = np.where(np.isnan(diff), np.inf, diff)
    diff = np.where(bad, diff, -1.0)
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(diff)), exp.shape))


def _what(v: Value) -> str:
    if v.array is None:
        return v.describe()
    if v.array.ndim == 0:
        return f"a number ({fmt(v.array[()])})"
    if v.kind == "tensor":
        return f"a {shape_text(v.array.shape)} tensor"
    if v.kind == "array":
        return f"a {shape_text(v.array.shape)} numpy array"
    if v.array.ndim == 1:
        return f"a list of {v.array.size} values"
    return f"a nested list of shape {shape_text(v.array.shape)}"


# ---------------------------------------------------------------- showing values

def shape_text(shape: Any) -> str:
    return "x".join(str(s) for s in shape) if len(shape) else "scalar"


def fmt(x: Any) -> str:
    if isinstance(x, np.ndarray):
        x = x[()]
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    x = float(x)
    if math.isnan(x) or math.isinf(x):
        return str(x)
    text = f"{x:.6g}" if x == 0 or 1e-4 <= abs(x) < 1e6 else f"{x:.4e}"
    return text if any(c in text for c in ".e") else text + ".0"   # 28.0 is not the int 28


def summarize(arr: np.ndarray, tensor: bool = True) -> str:
    """Small arrays in full; bigger ones as shape, range and first values."""
    if arr.ndim == 0:
        return fmt(arr)
    if arr.size <= SMALL:
        text = _nested(arr)
        return f"tensor({text})" if tensor else text
    flat = arr.ravel()
    finite = flat[np.isfinite(flat)] if flat.dtype.kind == "f" else flat
    if not finite.size:
        span = ", no finite values"
    elif finite.min() == finite.max() and finite.size == flat.size:
        return f"{shape_text(arr.shape)} {'tensor' if tensor else 'sequence'}, all {fmt(finite.min())}"
    else:
        span = f", values {fmt(finite.min())} to {fmt(finite.max())}"
    first = ", ".join(fmt(v) for v in flat[:4])
    return f"{shape_text(arr.shape)} {'tensor' if tensor else 'sequence'}{span}; first values {first}, ..."


def _nested(arr: np.ndarray) -> str:
    if arr.ndim == 0:
        return fmt(arr)
    return "[" + ", ".join(_nested(a) for a in arr) + "]"
