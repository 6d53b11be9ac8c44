"""The functions stage: call the student's module-level functions on the parent's inputs.

Each case is called on fresh inputs (a function that changes its input in place
cannot spoil the next case; live inputs such as a model and its optimizer are
built by grader/worker/fixtures.py), under a time limit, while a TorchFunctionMode
notes which torch functions it used (so "write conv2d yourself" can be checked).
What comes back is what the case observes (the return value, or e.g. the model's
weights after a training step), encoded as JSON numbers: no pickle, nothing for the
parent to execute. A crash, a wrong type or a timeout in one case is recorded for
that case and the others still run. Expected values are never here.
"""
from __future__ import annotations

import contextlib
import math
import signal
import time
from pathlib import Path
from typing import Any

from .load import describe_exception

MAX_VALUES = 200_000      # per returned value; more cannot be a right answer here
MAX_ITEMS = 64            # entries of a returned mapping (a model's state_dict)


class TimeLimit(BaseException):
    """Raised inside a student's function that runs past its case's time limit.

    A BaseException, so that a student's `except Exception:` does not swallow it.
    """


def stage_functions(request: dict, state: dict) -> dict:
    job = Path(request["job"])
    student_root = (job / request["entry"]).parent
    spec = request["functions"]
    deadline = time.monotonic() + float(spec.get("budget_s", 90))
    return {"cases": [run_case(state["module"], case, student_root, deadline)
                      for case in spec["cases"]]}


def run_case(module: Any, case: dict, student_root: Path, deadline: float) -> dict:
    from . import fixtures

    name = case["function"]
    fn = vars(module).get(name)
    if not callable(fn):
        what = "is not defined" if fn is None else f"is a {type(fn).__name__}, not a function"
        return {"ok": False, "error": {"type": "MissingFunction", "message": f"{name} {what}",
                                       "frames": []}}
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return {"ok": False, "error": {"type": "NotRun", "message": "time ran out", "frames": []}}
    args, kwargs = fixtures.decode_inputs(case["args"], case["kwargs"])
    watch = _Watch(set(case.get("forbid", ())))
    start = time.perf_counter()
    try:
        with _time_limit(min(float(case.get("time_limit_s", 5)), remaining)), watch:
            out = fixtures.call(fn, args, kwargs)
            result = encode(fixtures.observe(case.get("observe"), out, args, kwargs))
    except BaseException as exc:  # noqa: B036 - sys.exit in a student's function is its own error
        if isinstance(exc, KeyboardInterrupt):
            raise
        return {"ok": False, "error": describe_exception(exc, student_root),
                "seconds": round(time.perf_counter() - start, 4)}
    return {"ok": True, "result": result, "calls": sorted(watch.seen),
            "seconds": round(time.perf_counter() - start, 4)}


# ---------------------------------------------------------------- outputs

def encode(value: Any, max_values: int = MAX_VALUES) -> dict[str, Any]:
    """A returned value as JSON: numbers and flat value lists with a shape, nothing else."""
    import numpy as np
    import torch

    if value is None:
        return {"kind": "none"}
    if isinstance(value, dict) and 0 < len(value) <= MAX_ITEMS and all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()):
        return {"kind": "mapping", "items": [[k[:200], encode(v, max_values)]
                                             for k, v in value.items()]}
    if isinstance(value, (bool, np.bool_)):
        return {"kind": "bool", "value": bool(value)}
    if isinstance(value, (int, np.integer)):
        return {"kind": "int", "value": int(value)}
    if isinstance(value, (float, np.floating)):
        return {"kind": "float", "value": _json_number(float(value))}
    if isinstance(value, torch.Tensor):
        if value.is_meta or value.is_sparse or value.is_complex():
            return {"kind": "other", "note": f"a {value.device.type}/{value.dtype} tensor that has no plain values"}
        t = value.detach().cpu()
        if t.dtype in (torch.float16, torch.bfloat16):
            t = t.float()
        return _array("tensor", t.shape, lambda: t.numpy(), max_values)
    if isinstance(value, np.ndarray):
        return _array("array", value.shape, lambda: value, max_values)
    if isinstance(value, (list, tuple)):  # torch.Size too
        try:
            arr = np.asarray(_plain(value, max_values))
        except (ValueError, TypeError, OverflowError):
            return {"kind": "other", "note": f"a {type(value).__name__} that is not a grid of numbers"}
        return _array("sequence", arr.shape, lambda: arr, max_values)
    return {"kind": "other", "note": f"a {type(value).__name__}"}


def _plain(value: Any, budget: int) -> Any:
    """Nested lists of Python numbers from lists, tuples, numpy scalars and small tensors."""
    import torch

    if isinstance(value, torch.Tensor):
        if value.numel() > budget:
            raise ValueError("too large")
        return value.detach().cpu().tolist()
    if isinstance(value, (list, tuple)):
        if len(value) > budget:
            raise ValueError("too large")
        return [_plain(v, budget) for v in value]
    if hasattr(value, "tolist") and hasattr(value, "dtype"):   # numpy arrays and scalars
        return value.tolist()
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    if isinstance(value, (bool, int, float)):
        return value
    raise TypeError(type(value).__name__)


def _array(kind: str, shape: Any, get: Any, max_values: int) -> dict[str, Any]:
    shape = [int(s) for s in shape]
    if math.prod(shape) > max_values:
        return {"kind": kind, "shape": shape, "too_large": True}
    arr = get()
    if arr.dtype.kind not in "biuf":
        return {"kind": "other", "note": f"a {kind} of {arr.dtype} values"}
    values = [_json_number(v) for v in arr.ravel().tolist()]
    return {"kind": kind, "shape": shape, "dtype_kind": arr.dtype.kind, "dtype": str(arr.dtype),
            "values": values}


def _json_number(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


# ---------------------------------------------------------------- limits and watching

@contextlib.contextmanager
def _time_limit(seconds: float):
    """Interrupt the call after `seconds` (Unix main thread; elsewhere only the worker timeout)."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def stop(signum, frame):
        raise TimeLimit(f"ran for more than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _Watch:
    """Notes which of the `forbidden` torch functions a call used (F.conv2d, nn.MaxPool2d, ...)."""

    def __init__(self, forbidden: set[str]):
        self.forbidden = forbidden
        self.seen: set[str] = set()
        self.mode = None

    def __enter__(self):
        if self.forbidden:
            from torch.overrides import TorchFunctionMode

            watch = self

            class Mode(TorchFunctionMode):
                def __torch_function__(self, func, types, args=(), kwargs=None):
                    name = getattr(func, "__name__", "")
                    if name in watch.forbidden:
                        watch.seen.add(name)
                    return func(*args, **(kwargs or {}))

            self.mode = Mode()
            self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        if self.mode is not None:
            self.mode.__exit__(*exc)
        return False
