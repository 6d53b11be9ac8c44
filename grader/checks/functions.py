"""Functions: call the student's own functions and compare what they return.

Expected values come from the spec (`expect:`, numbers from the course material)
or from a reference below, computed here in the parent on the same inputs the
worker was given. Inputs are made here too (random ones from the seed the spec
names) and travel in the request as shaped lists of numbers (JSON, so nothing
to mount into the sandbox and nothing to unpickle); expected values never leave
this process. A check scores points * (cases passed / cases run). Feedback shows,
for each function, the first failing call: its input, the expected value, what
came back and the tolerance. Hidden cases (solutions/<name>/hidden_cases.yaml)
count only where that file exists, and their inputs and values are never shown.

torch is imported lazily: only references and model inputs need it, so the
shapes/params path of the parent never loads it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..measurements import Measurements, explain_error
from ..records import CaseRecord, ErrorInfo
from ..results import CheckResult, score_fraction, status_for
from ..references import REFERENCES, torch_module
from ..spec import CaseSpec, CheckSpec, FunctionSpec, Spec
from ..static import Finding, forbidden_uses

BUDGET_S = 90.0            # all cases together; below the runner's probe timeout
SMALL = 12                 # arrays up to this many values are shown in full


# ---------------------------------------------------------------- inputs

@dataclass(frozen=True)
class ModelValue:
    layers: tuple
    freeze: tuple[int, ...]


def materialize(raw: Any) -> Any:
    """A spec value as the parent holds it: numpy arrays for tensors, ModelValue for models."""
    if isinstance(raw, dict):
        if "tensor" in raw:
            return np.asarray(raw["tensor"], dtype=raw.get("dtype", "float32"))
        if "random" in raw:
            return _random(raw)
        return ModelValue(tuple(tuple(layer) if not isinstance(layer, dict) else layer
                                for layer in raw["model"]), tuple(raw.get("freeze", [])))
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


def all_cases(spec: Spec, hidden: bool) -> list[tuple[CheckSpec, CaseSpec]]:
    """Every visible (or hidden) case of every functions check, in spec order: index n is
    the worker's case n (visible and hidden cases go to different workers)."""
    return [(c, case) for c in spec.checks if c.kind == "functions"
            for case in c.options["cases"] if case.hidden == hidden]


def has_hidden_cases(spec: Spec) -> bool:
    return bool(all_cases(spec, hidden=True))


def prepare_request(spec: Spec, hidden: bool) -> dict[str, Any]:
    """The request's `functions` entry: the visible (or hidden) cases' inputs and limits."""
    functions = {f.name: f for f in spec.functions}
    cases = []
    for _, case in all_cases(spec, hidden):
        fn = functions[case.function]
        cases.append({"function": case.function,
                      "args": [_to_worker(materialize(v)) for v in case.args],
                      "kwargs": {k: _to_worker(materialize(v)) for k, v in case.kwargs.items()},
                      "forbid": list(fn.forbid), "time_limit_s": fn.time_limit_s})
    return {"cases": cases, "budget_s": BUDGET_S}


def _to_worker(value: Any) -> dict[str, Any]:
    """An input as JSON: a float32 value survives the trip exactly (repr round-trips)."""
    if isinstance(value, np.ndarray):
        return {"array": {"shape": list(value.shape), "dtype": str(value.dtype),
                          "values": value.ravel().tolist()}}
    if isinstance(value, ModelValue):
        return {"model": [list(layer) for layer in value.layers], "freeze": list(value.freeze)}
    if isinstance(value, list) and any(isinstance(v, (np.ndarray, ModelValue, list)) for v in value):
        return {"list": [_to_worker(v) for v in value]}
    return {"value": value}


def _to_torch(value: Any) -> Any:
    """Inputs for a reference: float64 tensors (so the reference is the accurate side)."""
    if isinstance(value, np.ndarray):
        torch = torch_module()
        return torch.from_numpy(value.astype(np.float64) if value.dtype.kind == "f" else value.copy())
    if isinstance(value, ModelValue):
        from ..worker.functions import build_model

        return build_model([list(layer) for layer in value.layers], value.freeze)
    if isinstance(value, list):
        return [_to_torch(v) for v in value]
    return value


# ---------------------------------------------------------------- values and comparison

@dataclass
class Value:
    """A returned (or expected) value, as the parent compares it."""

    kind: str                   # int, float, bool, tensor, array, sequence, none, other, too_large
    array: np.ndarray | None = None
    note: str = ""              # for other / too_large: what it was

    def describe(self) -> str:
        if self.array is None:
            return {"none": "None"}.get(self.kind, self.note or self.kind)
        return summarize(self.array, tensor=self.kind in ("tensor", "array"))


def decode(result: Any) -> Value:
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
        shape, values = result.get("shape"), result.get("values")
        if not (isinstance(shape, list) and all(isinstance(s, int) and s >= 0 for s in shape)):
            return Value("other", note=f"an unreadable {kind}")
        if result.get("too_large"):
            return Value("too_large", note=f"a {_shape(shape)} {kind} (too large to compare)")
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
    if kind == "none":
        return Value("none")
    return Value("other", note=str(result.get("note") or "something that is not a number or a tensor")[:200])


def _number(v: Any) -> Any:
    if isinstance(v, bool) or isinstance(v, (int, float)):
        return v
    return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}.get(v) if isinstance(v, str) else None


def expected_value(case: CaseSpec, fn: FunctionSpec) -> Value:
    """The value the case expects: the spec's literal, or the reference on the case's inputs."""
    if case.has_expect:
        arr = np.asarray(materialize(case.expect))
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float64)
        if arr.ndim == 0:
            kind = {"i": "int", "u": "int", "b": "bool"}.get(arr.dtype.kind, "float")
        else:
            kind = "tensor" if isinstance(case.expect, dict) else "sequence"
        return Value(kind, arr)
    from ..worker.functions import encode

    ref = REFERENCES[case.reference or fn.reference]
    args = [_to_torch(materialize(v)) for v in case.args]
    kwargs = {k: _to_torch(materialize(v)) for k, v in case.kwargs.items()}
    return decode(encode(ref(*args, **kwargs), max_values=10**8))


def compare(expected: Value, got: Value, fn: FunctionSpec, rtol: float, atol: float) -> str | None:
    """None when `got` matches; otherwise what is wrong, in a sentence."""
    if got.array is None:
        return f"returned {got.describe()}; expected {_what(expected)}"
    if fn.returns == "tensor" and got.kind != "tensor":
        return f"returned {_what(got)}; return a torch.Tensor"
    kind = got.array.dtype.kind
    if fn.returns == "int" and kind not in "iu":
        shown = _fmt(got.array.flat[0]) if got.array.size else "[]"
        return (f"returned {'a float' if kind == 'f' else 'a ' + got.kind} ({shown}); "
                "expected a whole number (int): use // for floor division, or int()")
    if kind == "b" and expected.array.dtype.kind != "b":
        return f"returned true/false values; expected {_what(expected)}"
    exp = expected.array
    if got.array.shape != exp.shape:
        return f"shape {_shape(got.array.shape)}, expected {_shape(exp.shape)}"
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
    values = f"expected {_fmt(exp[worst])}, got {_fmt(got.array[worst])} ({tolerance})"
    if exp.ndim == 0:
        return values
    where = ", ".join(map(str, worst))
    return f"{int(bad.sum())} of {bad.size} values differ; the largest difference is at [{where}]: {values}"


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
        return f"a number ({_fmt(v.array[()])})"
    if v.kind == "tensor":
        return f"a {_shape(v.array.shape)} tensor"
    if v.kind == "array":
        return f"a {_shape(v.array.shape)} numpy array"
    if v.array.ndim == 1:
        return f"a list of {v.array.size} values"
    return f"a nested list of shape {_shape(v.array.shape)}"


# ---------------------------------------------------------------- showing values

def _shape(shape: Any) -> str:
    return "x".join(str(s) for s in shape) if len(shape) else "scalar"


def _fmt(x: Any) -> str:
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
        return _fmt(arr)
    if arr.size <= SMALL:
        text = _nested(arr)
        return f"tensor({text})" if tensor else text
    flat = arr.ravel()
    finite = flat[np.isfinite(flat)] if flat.dtype.kind == "f" else flat
    if not finite.size:
        span = ", no finite values"
    elif finite.min() == finite.max() and finite.size == flat.size:
        return f"{_shape(arr.shape)} {'tensor' if tensor else 'sequence'}, all {_fmt(finite.min())}"
    else:
        span = f", values {_fmt(finite.min())} to {_fmt(finite.max())}"
    first = ", ".join(_fmt(v) for v in flat[:4])
    return f"{_shape(arr.shape)} {'tensor' if tensor else 'sequence'}{span}; first values {first}, ..."


def _nested(arr: np.ndarray) -> str:
    if arr.ndim == 0:
        return _fmt(arr)
    return "[" + ", ".join(_nested(a) for a in arr) + "]"


def describe_input(raw: Any) -> str:
    """An argument as students see it in feedback (from the spec, so no big dumps)."""
    if isinstance(raw, dict):
        if "random" in raw:
            dist = raw.get("dist", "normal")
            extra = f" in [{raw.get('low', 0)}, {raw.get('high', 1)})" if dist in ("uniform", "integers") else ""
            return f"random {dist}{extra} {_shape(raw['random'])} tensor (seed {raw['seed']})"
        if "tensor" in raw:
            return summarize(np.asarray(raw["tensor"], dtype=raw.get("dtype", "float32")))
        if "model" in raw:
            layers = []
            for layer in raw["model"]:
                name, *args = layer
                text = [str(a) for a in args if not isinstance(a, dict)]
                text += [f"{k}={v}" for a in args if isinstance(a, dict) for k, v in a.items()]
                layers.append(f"{name}({', '.join(text)})")
            frozen = raw.get("freeze") or []
            note = f", frozen (requires_grad=False): layer {', '.join(map(str, frozen))}" if frozen else ""
            return f"nn.Sequential({', '.join(layers)}){note}"
    if isinstance(raw, list) and any(isinstance(v, (dict, list)) for v in raw):
        return "[" + ", ".join(describe_input(v) for v in raw) + "]"
    return repr(raw)


def call_text(case: CaseSpec) -> str:
    parts = [describe_input(v) for v in case.args]
    parts += [f"{k}={describe_input(v)}" for k, v in case.kwargs.items()]
    return f"{case.function}({', '.join(parts)})"


# ---------------------------------------------------------------- scoring

@dataclass
class Outcome:
    n: int
    case: CaseSpec
    passed: bool
    problem: str = ""           # full sentence (may show values: visible cases only)
    short: str = ""             # what went wrong without any values (hidden cases)
    got: str = ""
    expected: str = ""
    error_type: str = ""


def run(check: CheckSpec, spec: Spec, m: Measurements) -> CheckResult:
    cases: tuple[CaseSpec, ...] = check.options["cases"]
    absent = check.options.get("hidden_absent", ())
    if not m.ok("functions"):
        return CheckResult(check.id, "functions", 0.0, check.points, "error",
                           f"No functions could be called: {m.blocker('functions')}",
                           {"cases": [], "passed": 0, "total": len(cases)})
    functions = {f.name: f for f in spec.functions}
    results = _results_by_case(check, spec, m)
    static = _static_findings(spec, m)
    outcomes = [_outcome(i + 1, case, functions[case.function], results[i], m,
                         static.get(case.function, []))
                for i, case in enumerate(cases)]
    passed = sum(o.passed for o in outcomes)
    score = score_fraction(check.points, passed / len(outcomes))
    hidden_run = sum(o.case.hidden for o in outcomes)
    lines = [f"{passed} of {len(outcomes)} cases passed"
             + (f" ({hidden_run} of them hidden)." if hidden_run else ".")]
    for name in dict.fromkeys(o.case.function for o in outcomes):
        lines += _function_feedback(functions[name], [o for o in outcomes if o.case.function == name],
                                    m)
    if absent:
        lines.append("Your instructor also grades this check on hidden cases.")
    details = {"cases": [{"n": o.n, "function": o.case.function,
                          "label": "" if o.case.hidden else o.case.label,
                          "hidden": o.case.hidden, "passed": o.passed,
                          "problem": o.short if o.case.hidden else o.problem} for o in outcomes],
               "passed": passed, "total": len(outcomes), "hidden_run": hidden_run,
               "hidden_absent": list(absent)}
    return CheckResult(check.id, "functions", score, check.points, status_for(score, check.points),
                       "\n".join(lines), details)


def _results_by_case(check: CheckSpec, spec: Spec, m: Measurements) -> list[CaseRecord | None]:
    """This check's cases' results, in its order: visible ones from the submission's worker,
    hidden ones from the hidden-case worker."""
    by_stage = {}
    for hidden, stage in ((False, "functions"), (True, "hidden")):
        record = m.record(stage)
        got = list(record.cases) if record is not None else []
        mine = [i for i, (c, _) in enumerate(all_cases(spec, hidden)) if c.id == check.id]
        by_stage[hidden] = iter([got[i] if i < len(got) else None for i in mine])
    return [next(by_stage[case.hidden]) for case in check.options["cases"]]


def _static_findings(spec: Spec, m: Measurements) -> dict[str, list[Finding]]:
    """For each function with forbidden calls: what the parent found in the source."""
    files = m.source.files()
    return {f.name: forbidden_uses(files, m.source.entry_name, f.name, f.forbid)
            for f in spec.functions if f.forbid}


def _outcome(n: int, case: CaseSpec, fn: FunctionSpec, result: CaseRecord | None,
             m: Measurements, findings: list[Finding]) -> Outcome:
    out = Outcome(n, case, False)
    if result is None:
        out.problem = out.short = "no result came back for this case"
        return out
    if not result.ok:
        err = result.error or ErrorInfo("Error", "")
        out.error_type = err.type
        out.problem = _error_text(err, fn, m)
        out.short = _error_text(err, fn, m, hidden=True)
        return out
    expected = expected_value(case, fn)
    got = decode(result.result)
    out.expected, out.got = expected.describe(), got.describe()
    rtol = fn.rtol if case.rtol is None else case.rtol
    atol = fn.atol if case.atol is None else case.atol
    problem = compare(expected, got, fn, rtol, atol)
    if problem is None:
        problem, out.short = _forbidden_problem(fn, result.calls, findings)
    out.passed = problem is None
    out.problem = problem or ""
    if problem and not out.short:
        out.short = "wrong shape" if problem.startswith("shape") else (
            "wrong type" if problem.startswith("returned") else "wrong values")
    return out


def _forbidden_problem(fn: FunctionSpec, calls: tuple[str, ...], findings: list[Finding]
                       ) -> tuple[str | None, str]:
    """Why a right answer still fails: a forbidden function was called (seen while it ran, or
    named in the source), or the source reaches names the grader cannot check."""
    used = sorted({c for c in calls if c in fn.forbid})
    named = [f for f in findings if not f.dynamic]
    if used or named:
        what = ", ".join(used) or named[0].what.removeprefix("uses torch's ")
        where = f" ({named[0].sentence()})" if named else ""
        return (f"calls torch's {what}; the assignment asks you to write {fn.name} yourself "
                f"with basic tensor operations{where}"), f"calls torch's {what}"
    if findings:
        return (f"{findings[0].sentence()}, so the grader cannot check that {fn.name} is "
                "written without torch's own version; write it with plain names"), \
            "cannot be checked (dynamic names)"
    return None, ""


def _error_text(err: ErrorInfo, fn: FunctionSpec, m: Measurements, hidden: bool = False) -> str:
    etype = err.type
    if etype == "MissingFunction":
        return f"{fn.name} is not defined in {m.source.origin.name}; write `def {fn.signature or fn.name + '(...)'}`"
    if etype == "TimeLimit":
        return f"ran for more than {fn.time_limit_s:g} s and was stopped (an endless loop?)"
    if etype == "NotRun":
        return "not run: the time for all cases ran out"
    if hidden:   # the type only: a message or a line could carry the hidden inputs out
        return f"raised {etype}"
    text = explain_error("functions", err, m.source)
    return text.replace("calling your functions failed: ", "", 1)


def _function_feedback(fn: FunctionSpec, outcomes: list[Outcome], m: Measurements) -> list[str]:
    failed = [o for o in outcomes if not o.passed]
    if not failed:
        return []
    head = f"{fn.signature or fn.name}: {len(failed)} of {len(outcomes)} cases failed."
    types = {o.error_type for o in failed}
    if len(failed) == len(outcomes) and len(types) == 1 and types & {"MissingFunction", "NotImplementedError"}:
        return [f"{head} {failed[0].problem}"]
    lines = [head]
    first = next((o for o in failed if not o.case.hidden), None)
    if first is not None:
        label = f" ({first.case.label})" if first.case.label else ""
        lines.append(f"  First failing case, #{first.n}{label}:")
        lines.append(f"    call:     {call_text(first.case)}")
        if first.expected:
            lines.append(f"    expected: {first.expected}")
            lines.append(f"    got:      {first.got}")
        lines.append(f"    problem:  {first.problem}")
    groups: dict[str, list[str]] = {}
    for o in failed:
        if o is not first:
            groups.setdefault(o.short, []).append(f"#{o.n}" + (" (hidden)" if o.case.hidden else ""))
    if groups:
        lines.append("  Also failed: " + "; ".join(f"{', '.join(cases)}: {short}"
                                                   for short, cases in groups.items()))
    return lines
