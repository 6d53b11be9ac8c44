"""How a functions check is written in spec.yaml: the grammar of its cases (documented below)
and their reader, from a function's declaration down to each argument value, hidden and live
ones included. grader/checks/functions.py runs and scores them.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from ..casekinds import DEVICES, LOSSES, MODEL_LAYERS, OBSERVATIONS, OPTIMIZERS
from ..errors import SpecError
from .reader import Reader, kind_of, read_yaml
from .types import DTYPES, LIVE_KINDS, RANDOM_DISTS, RETURNS, CaseSpec, FunctionSpec, Mistake

# Top level, once per student function:
#   functions:
#     - {name: conv2d, signature: "conv2d(x, weight, bias=None, stride=1, padding=0)",
#        reference: conv2d, returns: tensor, rtol: 1.0e-4, atol: 1.0e-5, forbid: [conv2d]}
# A check of kind `functions` lists the calls it grades; it scores points * (cases passed / cases):
#   - id: conv2d
#     kind: functions
#     points: 4
#     function: conv2d                       # default for the cases below
#     cases:
#       - {label: "...", args: [{random: [2, 3, 7, 7], seed: 1}, ...], kwargs: {stride: 2}}
#       - {args: [...], expect: {tensor: [[...]]}, atol: 0.01}
#       - {hidden: conv2d}                   # the cases under `conv2d:` in hidden_cases.yaml
# Values: numbers, strings, lists, {tensor: NESTED_LIST, dtype: float32},
# {random: SHAPE, seed: N, dist: normal|uniform|integers|simplex, low:, high:, scale:},
# {model: [[Linear, 784, 512], [ReLU], [Conv2d, 1, 64, 5, {bias: false}]], freeze: [0]}.
# A tensor or random value with `as: numpy` reaches the function as a numpy array (an image
# as OpenCV or a dataset's `.data` holds it: `dtype: uint8`, H x W x C).
# Random inputs depend only on the seed written here (not on --seed), so a student's self-check
# and the instructor's run call the functions on the same inputs. `returns: int` demands whole
# numbers (int or an integer tensor); `tensor` a torch.Tensor; `float` and `any` accept numbers.
# Hidden groups live in solutions/<name>/hidden_cases.yaml (or $GRADER_SOLUTIONS/<name>/):
# a mapping from group name to a list of cases in the same format.
#
# Live values, for functions that train or evaluate (grader/worker/fixtures.py builds them the
# same way in the worker and in the parent, from data the parent made):
#   {model: LAYERS, seed: N}   real weights drawn from the seed (without `seed`: meta tensors);
#                              `mode: eval` hands it over in eval mode (default: train)
#   {loader: {samples: 20, shape: [6], classes: 3, batch_size: 8, seed: N}}
#                              a DataLoader of seeded samples and labels, in order
#   {optimizer: sgd, lr: 0.1, momentum: 0.9}
#                              built over the parameters of the case's model
#   {loss: cross_entropy}      {device: cpu}
# `observe:` on a case compares something other than the return value: `weights` (the
# model's parameters and buffers after the call), `training_mode`, `grad_enabled` or
# `moved_to_device` (noted at each forward call; every call must agree with the reference),
# or {apply_to: IMAGES, draws: N}: the returned callable (e.g. torchvision transforms) applied
# N times to each image from a seeded generator. Such cases take their expected value from the
# reference, never from `expect:`.
# On a function, `accept: [REFERENCE, ...]` names other references whose answers also pass (the
# same augmentation in another order), and `mistakes: [{reference: NAME, says: TEXT}]` names
# known wrong answers: a failing case whose value equals one is told TEXT.
# The names these may use: RETURNS, DTYPES, RANDOM_DISTS and LIVE_KINDS in types.py,
# the rest in grader/casekinds.py.

HIDDEN_CASES_FILE = "hidden_cases.yaml"
MAX_RANDOM_VALUES = 100_000


def hidden_cases_file(spec_path: Path) -> Path:
    """Where an assignment's hidden cases live: $GRADER_SOLUTIONS/<name>/, else the course's
    solutions/<name>/ beside assignments/ (present on instructors' machines only)."""
    name = spec_path.parent.name
    root = os.environ.get("GRADER_SOLUTIONS")
    base = Path(root) if root else spec_path.resolve().parent.parent.parent / "solutions"
    return base / name / HIDDEN_CASES_FILE


def function(path: Path, raw: Any, i: int) -> FunctionSpec:
    r = Reader(path, raw, f"functions[{i}]")
    r.unknown({"name", "signature", "reference", "returns", "rtol", "atol", "forbid",
               "time_limit_s", "note", "accept", "mistakes"})
    name = r.get("name", str)
    if not name.isidentifier():
        raise SpecError(path, r.key("name"), f"{name!r} is not a Python function name",
                        "use the name students write after `def`, e.g. conv2d")
    reference = r.get("reference", str, None)
    _known_reference(path, r.key("reference"), reference)
    returns = r.get("returns", str, "any")
    if returns not in RETURNS:
        raise SpecError(path, r.key("returns"), f"unknown return kind {returns!r}",
                        f"use one of: {', '.join(RETURNS)}")
    forbid = r.get("forbid", list, [])
    if not all(isinstance(f, str) for f in forbid):
        raise SpecError(path, r.key("forbid"), "expected a list of torch function names",
                        "e.g. forbid: [conv2d, max_pool2d]")
    accept = r.get("accept", list, [])
    for n, other in enumerate(accept):
        if not isinstance(other, str):
            raise SpecError(path, f"{r.key('accept')}[{n}]", f"expected a reference name, got {other!r}")
        _known_reference(path, f"{r.key('accept')}[{n}]", other)
    return FunctionSpec(name=name, signature=r.get("signature", str, ""), reference=reference,
                        returns=returns, rtol=_tolerance(path, r, "rtol", 1e-4),
                        atol=_tolerance(path, r, "atol", 1e-5), forbid=tuple(forbid),
                        time_limit_s=float(r.positive("time_limit_s", 5.0, kind=float)),
                        accept=tuple(accept),
                        mistakes=tuple(_mistake(path, m, f"{r.key('mistakes')}[{n}]")
                                       for n, m in enumerate(r.get("mistakes", list, []))))


def _mistake(path: Path, raw: Any, where: str) -> Mistake:
    r = Reader(path, raw, where)
    r.unknown({"reference", "says"})
    reference = r.get("reference", str, fix="the reference that makes this mistake")
    _known_reference(path, r.key("reference"), reference)
    return Mistake(reference, r.get("says", str, fix="what to tell a student who made it"))


def _tolerance(path: Path, r: Reader, key: str, default: float | None) -> float | None:
    value = r.get(key, (int, float), default)
    if value is not None and value < 0:
        raise SpecError(path, r.key(key), f"must be >= 0, got {value}", "e.g. atol: 1.0e-5")
    return None if value is None else float(value)


def _known_reference(path: Path, key: str, name: str | None) -> None:
    from ..references import REFERENCES

    if name is not None and name not in REFERENCES:
        raise SpecError(path, key, f"unknown reference {name!r}",
                        f"use one of: {', '.join(sorted(REFERENCES))}; or give `expect:` values")


def functions_options(path: Path, r: Reader,
                       functions: tuple[FunctionSpec, ...]) -> dict[str, Any]:
    r.unknown({"id", "kind", "points", "function", "cases"})
    by_name = {f.name: f for f in functions}
    default = r.get("function", str, None)
    if default is not None and default not in by_name:
        raise SpecError(path, r.key("function"), f"names no function under `functions:` ({default!r})",
                        f"declare it at the top level: `functions: [{{name: {default}}}]`")
    raw_cases = r.get("cases", list, fix="list the calls to grade, e.g. `- {args: [32, 5], expect: 28}`")
    cases: list[CaseSpec] = []
    absent: list[str] = []
    for j, raw in enumerate(raw_cases):
        where = f"{r.key('cases')}[{j}]"
        if isinstance(raw, dict) and "hidden" in raw:
            hidden = _hidden_cases(path, raw, where, default, by_name)
            if hidden is None:
                absent.append(raw["hidden"])
            else:
                cases.extend(hidden)
        else:
            cases.append(_case(path, raw, where, default, by_name))
    if not any(not c.hidden for c in cases):
        raise SpecError(path, r.key("cases"), "has no visible case",
                        "give students at least one case they can run themselves")
    return {"function": default, "cases": tuple(cases), "hidden_absent": tuple(absent)}


def _hidden_cases(path: Path, raw: dict, where: str, default: str | None,
                  by_name: dict[str, FunctionSpec]) -> list[CaseSpec] | None:
    """The cases a `{hidden: GROUP}` entry stands for, or None where no solutions/ is present."""
    r = Reader(path, raw, where)
    r.unknown({"hidden", "function"})
    group = r.get("hidden", str)
    function = r.get("function", str, default)
    file = hidden_cases_file(path)
    if not file.is_file():
        return None
    top = Reader(file, read_yaml(file), "")
    raws = top.get(group, list, fix=f"add `{group}:` with a list of cases, or remove "
                                    f"`hidden: {group}` from {path}")
    from dataclasses import replace

    return [replace(_case(file, c, f"{group}[{k}]", function, by_name), hidden=True)
            for k, c in enumerate(raws)]


def _case(file: Path, raw: Any, where: str, default: str | None,
          by_name: dict[str, FunctionSpec]) -> CaseSpec:
    r = Reader(file, raw, where)
    r.unknown({"function", "label", "args", "kwargs", "expect", "reference", "rtol", "atol",
               "observe"})
    name = r.get("function", str, default)
    if name is None:
        raise SpecError(file, r.key("function"), "missing",
                        "name the student function this case calls, or set `function:` on the check")
    if name not in by_name:
        raise SpecError(file, r.key("function"), f"names no function under `functions:` ({name!r})",
                        f"declare it at the top level: `functions: [{{name: {name}}}]`")
    args = r.get("args", list, [])
    for n, value in enumerate(args):
        _value(file, value, f"{r.key('args')}[{n}]")
    kwargs = r.get("kwargs", dict, {})
    for k, value in kwargs.items():
        if not isinstance(k, str) or not k.isidentifier():
            raise SpecError(file, r.key("kwargs"), f"{k!r} is not an argument name",
                            "write keyword arguments as `name: value`")
        _value(file, value, f"{r.key('kwargs')}.{k}")
    has_expect = "expect" in r.data
    if has_expect:
        _value(file, r.data["expect"], r.key("expect"), expect=True)
        _numeric(file, r.key("expect"), r.data["expect"])
    reference = r.get("reference", str, None)
    _known_reference(file, r.key("reference"), reference)
    if not has_expect and reference is None and by_name[name].reference is None:
        raise SpecError(file, where, "has neither `expect:` nor a reference to compute it",
                        f"add `expect: VALUE`, or `reference: NAME` here or on function {name}")
    observe = _observe(file, r, [*args, *kwargs.values()])
    if observe is not None and has_expect:
        raise SpecError(file, r.key("expect"), "cannot be used with `observe:`",
                        "what a case observes comes from the reference: remove `expect:`")
    return CaseSpec(function=name, args=tuple(args), kwargs=dict(kwargs),
                    expect=r.data.get("expect"), has_expect=has_expect, reference=reference,
                    rtol=_tolerance(file, r, "rtol", None), atol=_tolerance(file, r, "atol", None),
                    label=str(r.get("label", (str, int, float), "")), where=f"{file.name}: {where}",
                    observe=observe)


def _observe(file: Path, r: Reader, values: list) -> Any:
    """The case's `observe:` (None: the return value), checked against what the case passes:
    observing a model, or building an optimizer, needs a model with real weights."""
    seeded = any(isinstance(v, dict) and "model" in v and "seed" in v for v in values)
    if not seeded and any(isinstance(v, dict) and "optimizer" in v for v in values):
        raise SpecError(file, r.key("args"), "has an optimizer but no model with weights",
                        "add a model argument with a seed: {model: [...], seed: N}")
    observe = r.get("observe", (str, dict), None)
    if isinstance(observe, str):
        if observe not in OBSERVATIONS:
            raise SpecError(file, r.key("observe"), f"unknown observation {observe!r}",
                            f"use one of: {', '.join(OBSERVATIONS)}, or {{apply_to: IMAGES, draws: N}}")
        if not seeded:
            raise SpecError(file, r.key("observe"), f"observes {observe} but the case has no "
                            "model with weights", "add {model: [...], seed: N} to the arguments")
    elif isinstance(observe, dict):
        o = Reader(file, observe, r.key("observe"))
        o.unknown({"apply_to", "draws"})
        images = o.get("apply_to", dict, fix="the images, e.g. {random: [2, 32, 32, 3], seed: 1, "
                                              "dist: integers, low: 0, high: 256, dtype: uint8}")
        _value(file, images, o.key("apply_to"))
        if images.get("dtype") != "uint8" or len(images.get("random", [])) != 4:
            raise SpecError(file, o.key("apply_to"), "must be random uint8 images, N x H x W x C",
                            "e.g. {random: [2, 32, 32, 3], seed: 1, dist: integers, low: 0, "
                            "high: 256, dtype: uint8}")
        o.positive("draws")
    return observe


def _value(file: Path, raw: Any, where: str, expect: bool = False) -> None:
    """Validate one argument (or expected) value: plain YAML, or a tensor/random/model mapping."""
    if raw is None or isinstance(raw, (bool, int, float, str)):
        return
    if isinstance(raw, list):
        for n, item in enumerate(raw):
            _value(file, item, f"{where}[{n}]", expect)
        return
    if not isinstance(raw, dict):
        raise SpecError(file, where, f"cannot be used as a value ({kind_of(raw)})")
    kinds = [k for k in ("tensor", "random", "model", *LIVE_KINDS) if k in raw]
    if len(kinds) != 1 or (expect and kinds[0] != "tensor"):
        allowed = "{tensor: [...]}" if expect else \
            "{tensor: [...]}, {random: SHAPE, seed: N}, {model: [...]}, {loader: {...}}, " \
            "{optimizer: NAME, lr: X}, {loss: NAME} or {device: NAME}"
        raise SpecError(file, where, "is a mapping but not a value the grader knows",
                        f"write it as {allowed}")
    r = Reader(file, raw, where)
    if kinds[0] in LIVE_KINDS:
        _live_value(file, r, kinds[0])
        return
    if kinds[0] in ("tensor", "random") and r.get("as", str, "tensor") not in ("tensor", "numpy"):
        raise SpecError(file, r.key("as"), f"unknown kind {raw['as']!r}", "use tensor or numpy")
    if kinds[0] == "tensor":
        r.unknown({"tensor", "dtype", "as"})
        _dtype(file, r, "float32")
        import numpy as np

        try:
            arr = np.asarray(raw["tensor"], dtype=float)
        except (ValueError, TypeError) as exc:
            raise SpecError(file, r.key("tensor"), "is not a rectangular list of numbers",
                            "give every row the same length") from exc
        if arr.size == 0:
            raise SpecError(file, r.key("tensor"), "is empty")
    elif kinds[0] == "random":
        r.unknown({"random", "seed", "dist", "low", "high", "scale", "dtype", "as"})
        shape = r.get("random", list, fix="the shape, e.g. random: [2, 3, 7, 7]")
        if not shape or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                for v in shape):
            raise SpecError(file, r.key("random"), f"expected a shape of positive integers, got {shape!r}",
                            "e.g. random: [2, 3, 7, 7]")
        size = math.prod(shape)
        if size > MAX_RANDOM_VALUES:
            raise SpecError(file, r.key("random"), f"has {size:,} values (at most {MAX_RANDOM_VALUES:,})",
                            "small inputs find the same mistakes and keep grading quick")
        seed = r.get("seed", int, fix="give each random input its own seed, e.g. seed: 1")
        if seed < 0:
            raise SpecError(file, r.key("seed"), f"must be >= 0, got {seed}")
        dist = r.get("dist", str, "normal")
        if dist not in RANDOM_DISTS:
            raise SpecError(file, r.key("dist"), f"unknown distribution {dist!r}",
                            f"use one of: {', '.join(RANDOM_DISTS)}")
        low, high = r.get("low", (int, float), 0), r.get("high", (int, float), 1)
        if dist in ("uniform", "integers") and not low < high:
            raise SpecError(file, r.key("high"), f"must be above low ({high} <= {low})")
        r.positive("scale", 1.0, kind=float)
        _dtype(file, r, "int64" if dist == "integers" else "float32")
    else:
        r.unknown({"model", "freeze", "seed", "mode"})
        layers = r.get("model", list, fix="e.g. model: [[Linear, 784, 512], [ReLU], [Linear, 512, 10]]")
        for n, layer in enumerate(layers):
            _model_layer(file, layer, f"{r.key('model')}[{n}]")
        if r.get("seed", int, 0) < 0:
            raise SpecError(file, r.key("seed"), f"must be >= 0, got {raw['seed']}")
        if r.get("mode", str, "train") not in ("train", "eval") or ("mode" in raw and "seed" not in raw):
            raise SpecError(file, r.key("mode"), "is train or eval, on a model with a seed",
                            "mode: eval hands the function a model left in eval mode")
        for index in r.get("freeze", list, []):
            if not (isinstance(index, int) and 0 <= index < len(layers)):
                raise SpecError(file, r.key("freeze"), f"{index!r} is not a layer index",
                                f"use 0 to {len(layers) - 1}")


def _model_layer(file: Path, layer: Any, key: str) -> None:
    """[Name, int args..., {keyword args}]; Dropout's probability may be a fraction."""
    if not (isinstance(layer, list) and layer and layer[0] in MODEL_LAYERS):
        raise SpecError(file, key, f"is not a layer: {layer!r}",
                        f"write [Name, args...] with Name one of: {', '.join(MODEL_LAYERS)}")
    for n_arg, a in enumerate(layer[1:], start=1):
        if isinstance(a, dict) and n_arg == len(layer) - 1:
            bad = sorted(set(a) - {"bias", "stride", "padding"})
            if bad or not all(isinstance(v, (bool, int)) for v in a.values()):
                raise SpecError(file, key, f"has keyword arguments the grader does not "
                                           f"build models with: {a!r}",
                                "use bias: true/false, stride: N or padding: N")
        elif layer[0] == "Dropout" and isinstance(a, float) and 0 <= a < 1:
            continue
        elif not isinstance(a, int) or isinstance(a, bool):
            raise SpecError(file, key, f"has an argument {a!r} that is not an integer",
                            "keyword arguments go last, as a mapping: {bias: false}")


def _live_value(file: Path, r: Reader, kind: str) -> None:
    """A loader, an optimizer, a loss or a device (see the grammar above)."""
    if kind == "loader":
        r.unknown({"loader"})
        spec = Reader(file, r.get("loader", dict), r.key("loader"))
        spec.unknown({"samples", "shape", "classes", "batch_size", "seed"})
        for key in ("samples", "classes", "batch_size"):
            spec.positive(key)
        shape = spec.get("shape", list, fix="the shape of one sample, e.g. shape: [1, 8, 8]")
        if not shape or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                for v in shape):
            raise SpecError(file, spec.key("shape"), f"expected positive integers, got {shape!r}")
        if spec.data["samples"] * math.prod(shape) > MAX_RANDOM_VALUES:
            raise SpecError(file, spec.key("samples"), "makes more values than a case may hold",
                            "small problems find the same mistakes and keep grading quick")
        if spec.get("seed", int, fix="give the loader its own seed, e.g. seed: 1") < 0:
            raise SpecError(file, spec.key("seed"), "must be >= 0")
        return
    names = {"optimizer": OPTIMIZERS, "loss": LOSSES, "device": DEVICES}[kind]
    r.unknown({kind, "lr", "momentum"} if kind == "optimizer" else {kind})
    name = r.get(kind, str)
    if name not in names:
        raise SpecError(file, r.key(kind), f"unknown {kind} {name!r}", f"use one of: {', '.join(names)}")
    if kind == "optimizer":
        for key, default in (("lr", ...), ("momentum", 0)):
            if r.get(key, (int, float), default, fix="e.g. lr: 0.1") < 0:
                raise SpecError(file, r.key(key), f"must be >= 0, got {r.data[key]}")


def _numeric(file: Path, key: str, raw: Any) -> None:
    """An expected value must be numbers in a rectangular grid, or true/false."""
    import numpy as np

    plain = raw["tensor"] if isinstance(raw, dict) else raw
    try:
        arr = np.asarray(plain)
        ok = arr.dtype.kind in "biuf"
    except ValueError:
        ok = False
    if not ok:
        raise SpecError(file, key, f"is not a number or a rectangular list of numbers: {raw!r}",
                        "write e.g. `expect: 28`, `expect: [7, 5, 3, 1]` or `expect: {tensor: [[...]]}`")


def _dtype(file: Path, r: Reader, default: str) -> None:
    dtype = r.get("dtype", str, default)
    if dtype not in DTYPES:
        raise SpecError(file, r.key("dtype"), f"unknown dtype {dtype!r}", f"use one of: {', '.join(DTYPES)}")
