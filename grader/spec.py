"""Assignment specs: load `spec.yaml`, validate every key, derive expected shapes.

A spec is the instructor's whole statement of what a submission must be. It is
validated up front so that a typo fails loudly (file, key, fix) before any
student is graded against it, rather than silently costing students points.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import formulas
from .casekinds import DEVICES, LOSSES, MODEL_LAYERS, OBSERVATIONS, OPTIMIZERS
from .errors import SpecError
from .forms import FORMS

CHECK_KINDS = ("shapes", "params", "functions", "accuracy")
ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "gelu", "elu")
DATASETS = ("mnist", "fashion_mnist", "cifar10")

# Per layer type: required hyperparameters, then optional ones with defaults.
LAYER_TYPES: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "conv2d": (("in_channels", "out_channels", "kernel_size"),
               {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True}),
    "conv_transpose2d": (("in_channels", "out_channels", "kernel_size"),
                         {"stride": 1, "padding": 0, "dilation": 1, "groups": 1,
                          "bias": True, "output_padding": 0}),
    "maxpool2d": (("kernel_size",), {"stride": None, "padding": 0, "dilation": 1,
                                     "ceil_mode": False}),
    "avgpool2d": (("kernel_size",), {"stride": None, "padding": 0, "ceil_mode": False}),
    "subsample": (("kernel_size",), {"stride": None}),
    "linear": (("in_features", "out_features"), {"bias": True}),
    "flatten": ((), {}),
    # Layers that change values but not shapes (issue 14's cifar10_vgg): batch normalisation
    # learns a scale and a shift per channel; dropout learns nothing.
    "batchnorm2d": (("num_features",), {}),
    "dropout": ((), {}),
}
SHAPE_KEEPING = ("batchnorm2d", "dropout")


@dataclass(frozen=True)
class AltParams:
    """A parameter count that is not the spec's but still earns some credit."""

    count: int
    credit: float
    note: str


@dataclass(frozen=True)
class FormSpec:
    """An equivalent form of a layer (grader/checks/matching.py FORMS) and what it earns."""

    form: str
    credit: float
    note: str


@dataclass(frozen=True)
class LayerSpec:
    name: str
    type: str
    hp: dict[str, Any]
    activation: str | None = None
    params: int | None = None          # explicit count (e.g. LeNet's C3 table: 1516)
    accept_params: tuple[AltParams, ...] = ()
    accept_forms: tuple[FormSpec, ...] = ()   # default: every form the grader knows, full credit
    input_from: str | None = None      # spatial input from another layer (skip paths)
    note: str = ""

    @property
    def expected_params(self) -> int:
        if self.params is not None:
            return self.params
        hp = self.hp
        if self.type in ("conv2d", "conv_transpose2d"):
            return formulas.conv_params(hp["in_channels"], hp["out_channels"],
                                        hp["kernel_size"], hp["groups"], hp["bias"])
        if self.type == "linear":
            return formulas.linear_params(hp["in_features"], hp["out_features"], hp["bias"])
        if self.type == "batchnorm2d":
            return formulas.batchnorm_params(hp["num_features"])
        return 0  # pooling, flatten and dropout learn nothing; subsample is set in expected_shapes


@dataclass(frozen=True)
class CheckSpec:
    id: str
    kind: str
    points: float
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FunctionSpec:
    """A module-level function the student writes (top-level `functions:` entry)."""

    name: str
    signature: str = ""                # shown in feedback, e.g. "conv2d(x, weight, bias=None)"
    reference: str | None = None       # grader reference for cases without `expect`
    returns: str = "any"               # any | int | float | tensor
    rtol: float = 1e-4
    atol: float = 1e-5
    forbid: tuple[str, ...] = ()       # torch functions it must not call ("from scratch")
    time_limit_s: float = 5.0
    accept: tuple[str, ...] = ()       # other references whose answer also passes
    mistakes: tuple[Mistake, ...] = ()  # known wrong answers, named in feedback


@dataclass(frozen=True)
class Mistake:
    """A known wrong answer: a reference that makes the mistake, and what to tell a student
    whose answer equals it."""

    reference: str
    says: str


@dataclass(frozen=True)
class CaseSpec:
    """One call of a student function: inputs, and where the expected value comes from."""

    function: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    expect: Any = None
    has_expect: bool = False           # `expect:` given (else the reference computes it)
    reference: str | None = None
    rtol: float | None = None
    atol: float | None = None
    label: str = ""
    hidden: bool = False               # from hidden_cases.yaml: inputs never shown to students
    where: str = ""                    # file and key, for error messages
    observe: Any = None                # None (the return value), an OBSERVATIONS name, or
                                       # {apply_to: IMAGES, draws: N}


@dataclass(frozen=True)
class TrainingSpec:
    dataset: str
    epochs: int
    batch_size: int
    optimizer: dict[str, Any]
    scheduler: dict[str, Any] | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    pad: int = 0
    hflip: bool = False
    crop_padding: int = 0
    max_train: int | None = None


@dataclass(frozen=True)
class Spec:
    path: Path
    name: str
    title: str
    input_shape: tuple[int, ...]
    layers: tuple[LayerSpec, ...]
    checks: tuple[CheckSpec, ...]
    training: TrainingSpec | None
    timeout_s: float
    functions: tuple[FunctionSpec, ...] = ()
    self_reported: bool = False        # grade what could not be exported from the student's
                                       # own process (marked in every report; default off)

    @property
    def folder(self) -> Path:
        return self.path.parent

    def check_kinds(self) -> set[str]:
        return {c.kind for c in self.checks}


# ---------------------------------------------------------------- validation helpers

class _Reader:
    """Reads typed keys from one mapping and reports mistakes with their full key path."""

    def __init__(self, file: Path, data: Any, where: str):
        if not isinstance(data, dict):
            raise SpecError(file, where or "(top level)", f"expected a mapping, got {_kind(data)}",
                            "write it as `key: value` lines")
        self.file, self.data, self.where = file, data, where

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def get(self, name: str, types: type | tuple[type, ...], default: Any = ..., *,
            fix: str = "") -> Any:
        if name not in self.data:
            if default is ...:
                raise SpecError(self.file, self.key(name), "missing", fix or f"add `{name}:`")
            return default
        value = self.data[name]
        if isinstance(value, bool) and bool not in _tuple(types):
            raise SpecError(self.file, self.key(name), f"expected {_names(types)}, got a boolean",
                            fix)
        if not isinstance(value, types):
            raise SpecError(self.file, self.key(name),
                            f"expected {_names(types)}, got {_kind(value)} {value!r}", fix)
        return value

    def positive(self, name: str, default: Any = ..., *, kind: type = int) -> Any:
        types = (int,) if kind is int else (int, float)
        value = self.get(name, types, default)
        if value is not None and value is not default and value <= 0:
            raise SpecError(self.file, self.key(name), f"must be > 0, got {value}")
        return value

    def unknown(self, allowed: set[str]) -> None:
        extra = sorted(set(self.data) - allowed)
        if extra:
            raise SpecError(self.file, self.key(extra[0]), "unknown key",
                            f"remove it, or use one of: {', '.join(sorted(allowed))}")


def _tuple(t: Any) -> tuple:
    return t if isinstance(t, tuple) else (t,)


def _names(types: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", list: "a list",
             dict: "a mapping", bool: "true/false", type(None): "nothing"}
    return " or ".join(names.get(t, t.__name__) for t in _tuple(types))


def _kind(value: Any) -> str:
    return _names(type(value)) if not isinstance(value, bool) else "a boolean"


# ---------------------------------------------------------------- loading

def load_spec(path: Path | str) -> Spec:
    """Parse and validate a spec.yaml; raises SpecError naming the file and the key."""
    path = Path(path)
    top = _Reader(path, _read_yaml(path), "")
    top.unknown({"name", "title", "input_shape", "layers", "checks", "training", "timeout_s",
                 "functions", "notes", "self_reported"})
    name = top.get("name", str)
    if name != path.parent.name:
        raise SpecError(path, "name", f"is {name!r} but the folder is {path.parent.name!r}",
                        f"set `name: {path.parent.name}` (assignment names are folder names)")
    layers = tuple(_layer(path, raw, i) for i, raw in enumerate(top.get("layers", list, [])))
    _check_unique(path, "layers", [layer.name for layer in layers])
    functions = tuple(_function(path, raw, i)
                      for i, raw in enumerate(top.get("functions", list, [])))
    _check_unique(path, "functions", [f.name for f in functions])
    checks = tuple(_check(path, raw, i, functions)
                   for i, raw in enumerate(top.get("checks", list)))
    _check_unique(path, "checks", [c.id for c in checks])
    raw_training = top.get("training", dict, None)
    spec = Spec(
        path=path, name=name, title=top.get("title", str, name),
        input_shape=_shape(path, top.get("input_shape", list, [])),
        layers=layers, checks=checks,
        training=_training(path, raw_training) if raw_training is not None else None,
        timeout_s=float(top.positive("timeout_s", 600, kind=float)),
        functions=functions,
        self_reported=top.get("self_reported", bool, False),
    )
    _cross_check(spec)
    return spec


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(path, "(file)", f"cannot be read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(file)"
        raise SpecError(path, where, f"is not valid YAML: {getattr(exc, 'problem', exc)}",
                        "check the indentation and the colons on that line") from exc


def _check_unique(path: Path, key: str, names: list[str]) -> None:
    seen: set[str] = set()
    for i, n in enumerate(names):
        if n in seen:
            raise SpecError(path, f"{key}[{i}]", f"duplicate name {n!r}", "give each entry its own name")
        seen.add(n)


def _shape(path: Path, raw: list) -> tuple[int, ...]:
    if raw and not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in raw):
        raise SpecError(path, "input_shape", f"expected positive integers, got {raw!r}",
                        "write it as [channels, height, width], e.g. [1, 32, 32]")
    return tuple(raw)


def _layer(path: Path, raw: Any, i: int) -> LayerSpec:
    r = _Reader(path, raw, f"layers[{i}]")
    ltype = r.get("type", str)
    if ltype not in LAYER_TYPES:
        raise SpecError(path, r.key("type"), f"unknown layer type {ltype!r}",
                        f"use one of: {', '.join(LAYER_TYPES)}")
    required, optional = LAYER_TYPES[ltype]
    r.unknown({"name", "type", "activation", "params", "accept_params", "accept_forms",
               "input_from", "note", *required, *optional})
    hp: dict[str, Any] = {k: r.get(k, (int, list)) for k in required}
    for k, default in optional.items():
        hp[k] = r.get(k, (int, bool, list, type(None)), default)
    if "stride" in hp and hp["stride"] is None:
        hp["stride"] = hp["kernel_size"]  # PyTorch's pooling default
    activation = r.get("activation", (str, type(None)), None)
    if activation is not None and activation not in ACTIVATIONS:
        raise SpecError(path, r.key("activation"), f"unknown activation {activation!r}",
                        f"use one of: {', '.join(ACTIVATIONS)}")
    alts = tuple(_alt(path, a, f"{r.key('accept_params')}[{j}]")
                 for j, a in enumerate(r.get("accept_params", list, [])))
    forms = tuple(_form(path, a, f"{r.key('accept_forms')}[{j}]")
                  for j, a in enumerate(r.get("accept_forms", list, [])))
    return LayerSpec(name=r.get("name", str), type=ltype, hp=hp, activation=activation,
                     params=r.positive("params", None), accept_params=alts, accept_forms=forms,
                     input_from=r.get("input_from", str, None), note=r.get("note", str, ""))


def _alt(path: Path, raw: Any, where: str) -> AltParams:
    r = _Reader(path, raw, where)
    r.unknown({"count", "credit", "note"})
    return AltParams(r.positive("count"), _credit(path, r), r.get("note", str, ""))


def _form(path: Path, raw: Any, where: str) -> FormSpec:
    r = _Reader(path, raw, where)
    r.unknown({"form", "credit", "note"})
    name = r.get("form", str)
    if name not in FORMS:
        raise SpecError(path, r.key("form"), f"unknown form {name!r}",
                        f"use one of: {', '.join(FORMS)}")
    return FormSpec(name, _credit(path, r), r.get("note", str, "") or FORMS[name].note)


def _credit(path: Path, r: _Reader) -> float:
    credit = float(r.get("credit", (int, float)))
    if not 0 <= credit <= 1:
        raise SpecError(path, r.key("credit"), f"must be between 0 and 1, got {credit}",
                        "credit is the share of the layer's points: 0.5 for half")
    return credit


def _check(path: Path, raw: Any, i: int, functions: tuple[FunctionSpec, ...] = ()) -> CheckSpec:
    r = _Reader(path, raw, f"checks[{i}]")
    kind = r.get("kind", str)
    if kind not in CHECK_KINDS:
        raise SpecError(path, r.key("kind"), f"unknown check kind {kind!r}",
                        f"use one of: {', '.join(CHECK_KINDS)}")
    options = {k: v for k, v in raw.items() if k not in ("id", "kind", "points")}
    if kind == "accuracy":
        _accuracy_options(path, r)
    elif kind == "functions":
        options = _functions_options(path, r, functions)
    else:
        r.unknown({"id", "kind", "points"})
    return CheckSpec(id=r.get("id", str, kind), kind=kind,
                     points=float(r.positive("points", kind=float)), options=options)


# Bars for data other than the full dataset, keyed by the variant that was found (grader/data.py).
THRESHOLD_VARIANTS = ("subset", "embedded")


def _accuracy_options(path: Path, r: _Reader) -> None:
    r.unknown({"id", "kind", "points", "min_accuracy", "partial_from", "measured",
               *THRESHOLD_VARIANTS})
    _threshold(path, r)
    for variant in THRESHOLD_VARIANTS:
        if variant in r.data:
            bar = _Reader(path, r.data[variant], r.key(variant))
            bar.unknown({"min_accuracy", "partial_from", "measured"})
            _threshold(path, bar)


def _measured(path: Path, r: _Reader) -> None:
    """`measured:` records both sides of a bar, as `grade calibrate` prints them: the
    reference's accuracy per seed and the negative controls'."""
    if "measured" not in r.data:
        return
    m = _Reader(path, r.data["measured"], r.key("measured"))
    m.unknown({"reference", "linear", "no_activation", "setup"})
    fix = "paste what `grade calibrate` prints"
    values = [("reference", v) for v in m.get("reference", list, fix=fix)]
    for key in ("linear", "no_activation"):     # seed 0 alone, or one accuracy per seed
        got = m.get(key, (int, float, list), fix=fix)
        values += [(key, v) for v in (got if isinstance(got, list) else [got])]
    for key, value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise SpecError(path, m.key(key), f"must be accuracies in [0, 1], got {value!r}", fix)
    m.get("setup", str, "")


def _threshold(path: Path, r: _Reader) -> None:
    _measured(path, r)
    lo = r.get("partial_from", (int, float), None)
    hi = r.get("min_accuracy", (int, float))
    for key, v in (("min_accuracy", hi), ("partial_from", lo)):
        if v is not None and not 0 <= v <= 1:
            raise SpecError(path, r.key(key), f"must be a fraction in [0, 1], got {v}",
                            "write 0.98 for 98%")
    if lo is not None and lo >= hi:
        raise SpecError(path, r.key("partial_from"),
                        f"must be below min_accuracy ({lo} >= {hi})",
                        "partial credit grows linearly from partial_from up to min_accuracy")


# ---------------------------------------------------------------- functions checks
#
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

HIDDEN_CASES_FILE = "hidden_cases.yaml"
RETURNS = ("any", "int", "float", "tensor")
DTYPES = ("float32", "float64", "int64", "bool", "uint8")
RANDOM_DISTS = ("normal", "uniform", "integers", "simplex")
MAX_RANDOM_VALUES = 100_000
LIVE_KINDS = ("loader", "optimizer", "loss", "device")


def hidden_cases_file(spec_path: Path) -> Path:
    """Where an assignment's hidden cases live: $GRADER_SOLUTIONS/<name>/, else the course's
    solutions/<name>/ beside assignments/ (present on instructors' machines only)."""
    name = spec_path.parent.name
    root = os.environ.get("GRADER_SOLUTIONS")
    base = Path(root) if root else spec_path.resolve().parent.parent.parent / "solutions"
    return base / name / HIDDEN_CASES_FILE


def _function(path: Path, raw: Any, i: int) -> FunctionSpec:
    r = _Reader(path, raw, f"functions[{i}]")
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
    r = _Reader(path, raw, where)
    r.unknown({"reference", "says"})
    reference = r.get("reference", str, fix="the reference that makes this mistake")
    _known_reference(path, r.key("reference"), reference)
    return Mistake(reference, r.get("says", str, fix="what to tell a student who made it"))


def _tolerance(path: Path, r: _Reader, key: str, default: float | None) -> float | None:
    value = r.get(key, (int, float), default)
    if value is not None and value < 0:
        raise SpecError(path, r.key(key), f"must be >= 0, got {value}", "e.g. atol: 1.0e-5")
    return None if value is None else float(value)


def _known_reference(path: Path, key: str, name: str | None) -> None:
    from .references import REFERENCES

    if name is not None and name not in REFERENCES:
        raise SpecError(path, key, f"unknown reference {name!r}",
                        f"use one of: {', '.join(sorted(REFERENCES))}; or give `expect:` values")


def _functions_options(path: Path, r: _Reader,
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
    r = _Reader(path, raw, where)
    r.unknown({"hidden", "function"})
    group = r.get("hidden", str)
    function = r.get("function", str, default)
    file = hidden_cases_file(path)
    if not file.is_file():
        return None
    top = _Reader(file, _read_yaml(file), "")
    raws = top.get(group, list, fix=f"add `{group}:` with a list of cases, or remove "
                                    f"`hidden: {group}` from {path}")
    from dataclasses import replace

    return [replace(_case(file, c, f"{group}[{k}]", function, by_name), hidden=True)
            for k, c in enumerate(raws)]


def _case(file: Path, raw: Any, where: str, default: str | None,
          by_name: dict[str, FunctionSpec]) -> CaseSpec:
    r = _Reader(file, raw, where)
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


def _observe(file: Path, r: _Reader, values: list) -> Any:
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
        o = _Reader(file, observe, r.key("observe"))
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
        raise SpecError(file, where, f"cannot be used as a value ({_kind(raw)})")
    kinds = [k for k in ("tensor", "random", "model", *LIVE_KINDS) if k in raw]
    if len(kinds) != 1 or (expect and kinds[0] != "tensor"):
        allowed = "{tensor: [...]}" if expect else \
            "{tensor: [...]}, {random: SHAPE, seed: N}, {model: [...]}, {loader: {...}}, " \
            "{optimizer: NAME, lr: X}, {loss: NAME} or {device: NAME}"
        raise SpecError(file, where, "is a mapping but not a value the grader knows",
                        f"write it as {allowed}")
    r = _Reader(file, raw, where)
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


def _live_value(file: Path, r: _Reader, kind: str) -> None:
    """A loader, an optimizer, a loss or a device (see the grammar above)."""
    if kind == "loader":
        r.unknown({"loader"})
        spec = _Reader(file, r.get("loader", dict), r.key("loader"))
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


def _dtype(file: Path, r: _Reader, default: str) -> None:
    dtype = r.get("dtype", str, default)
    if dtype not in DTYPES:
        raise SpecError(file, r.key("dtype"), f"unknown dtype {dtype!r}", f"use one of: {', '.join(DTYPES)}")


def _training(path: Path, raw: Any) -> TrainingSpec:
    r = _Reader(path, raw, "training")
    r.unknown({"dataset", "epochs", "batch_size", "optimizer", "scheduler", "normalize", "pad",
               "hflip", "crop_padding", "max_train"})
    dataset = r.get("dataset", str)
    if dataset not in DATASETS and not dataset.endswith(".npz"):
        raise SpecError(path, r.key("dataset"), f"unknown dataset {dataset!r}",
                        f"use one of {', '.join(DATASETS)} or a path to an .npz file "
                        "with x_train, y_train, x_test, y_test")
    opt = _Reader(path, r.get("optimizer", dict), r.key("optimizer"))
    opt.unknown({"name", "lr", "momentum", "weight_decay", "nesterov"})
    if opt.get("name", str) not in ("sgd", "adam", "adamw"):
        raise SpecError(path, opt.key("name"), f"unknown optimizer {opt.data['name']!r}",
                        "use sgd, adam or adamw")
    opt.positive("lr", kind=float)
    sched = r.get("scheduler", dict, None)
    if sched is not None:
        _scheduler(path, _Reader(path, sched, r.key("scheduler")))
    norm = _Reader(path, r.get("normalize", dict), r.key("normalize"))
    norm.unknown({"mean", "std"})
    mean, std = tuple(norm.get("mean", list)), tuple(norm.get("std", list))
    if len(mean) != len(std) or any(v <= 0 for v in std):
        raise SpecError(path, norm.key("std"), "needs one positive value per mean value",
                        "e.g. mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]")
    return TrainingSpec(
        dataset=dataset, epochs=r.positive("epochs"), batch_size=r.positive("batch_size"),
        optimizer=dict(opt.data), scheduler=sched, mean=mean, std=std,
        pad=r.get("pad", int, 0), hflip=r.get("hflip", bool, False),
        crop_padding=r.get("crop_padding", int, 0), max_train=r.positive("max_train", None))


SCHEDULERS = {"multistep": {"milestones", "gamma"},
              "onecycle": {"max_lr", "pct_start", "anneal", "div_factor", "final_div_factor"}}


def _scheduler(path: Path, s: _Reader) -> None:
    """multistep: the rate times gamma at each milestone epoch. onecycle: every step, the
    rate climbs from max_lr / div_factor to max_lr over the first pct_start of training, then
    anneals to max_lr / (div_factor * final_div_factor) (PyTorch's OneCycleLR)."""
    name = s.get("name", str, fix="use multistep or onecycle")
    if name not in SCHEDULERS:
        raise SpecError(path, s.key("name"), f"unknown scheduler {name!r}",
                        "use multistep (with milestones and gamma) or onecycle (with max_lr)")
    s.unknown({"name"} | SCHEDULERS[name])
    if name == "multistep":
        milestones = s.get("milestones", list)
        if not all(isinstance(m, int) and not isinstance(m, bool) and m > 0 for m in milestones):
            raise SpecError(path, s.key("milestones"), "must be a list of epoch numbers > 0",
                            "e.g. milestones: [6, 9]")
        s.positive("gamma", kind=float)
        return
    s.positive("max_lr", kind=float)
    pct = s.get("pct_start", (int, float), 0.3)
    if not 0 < pct < 1:
        raise SpecError(path, s.key("pct_start"), f"must be between 0 and 1, got {pct}",
                        "the share of training spent warming up, e.g. 0.25")
    if s.get("anneal", str, "cos") not in ("cos", "linear"):
        raise SpecError(path, s.key("anneal"), f"unknown annealing {s.data['anneal']!r}",
                        "use cos or linear")
    s.positive("div_factor", 25.0, kind=float)
    s.positive("final_div_factor", 1e4, kind=float)


def _cross_check(spec: Spec) -> None:
    """Checks that span keys: the model checks need layers, accuracy needs training."""
    kinds = spec.check_kinds()
    names = {layer.name for layer in spec.layers}
    if kinds & {"shapes", "params"} and not (spec.layers and spec.input_shape):
        raise SpecError(spec.path, "layers", "shapes/params checks need `input_shape` and `layers`",
                        "list the layers the model must have, in call order")
    if "accuracy" in kinds and spec.training is None:
        raise SpecError(spec.path, "training", "an accuracy check needs a training recipe",
                        "add a `training:` section (dataset, epochs, batch_size, optimizer, normalize)")
    for i, layer in enumerate(spec.layers):
        if layer.input_from and layer.input_from not in names:
            raise SpecError(spec.path, f"layers[{i}].input_from",
                            f"names no layer: {layer.input_from!r}", "use another layer's name")
    expected_shapes(spec)  # raises on an impossible chain


# ---------------------------------------------------------------- expected shapes

@dataclass(frozen=True)
class ExpectedLayer:
    """One spec layer with the shapes and parameter count the formulas give for it."""

    spec: LayerSpec
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    params: int


def expected_shapes(spec: Spec) -> list[ExpectedLayer]:
    """Run the spec's layers through the output-size formulas, in call order.

    Each layer's spatial input is the previous layer's output (or `input_from`);
    its channel count comes from its own `in_channels` when it has one, which is
    what a concatenated skip connection needs.
    """
    out: list[ExpectedLayer] = []
    by_name: dict[str, tuple[int, ...]] = {}
    shape = spec.input_shape
    for i, layer in enumerate(spec.layers):
        src = by_name[layer.input_from] if layer.input_from else shape
        in_shape = _input_for(layer, src)
        try:
            out_shape = layer_output_shape(layer, in_shape)
        except ValueError as exc:
            raise SpecError(spec.path, f"layers[{i}]", str(exc),
                            "check this layer's hyperparameters against the one before it") from exc
        params = layer.expected_params
        if layer.type == "subsample" and layer.params is None:
            params = formulas.subsample_params(in_shape[0])
        out.append(ExpectedLayer(layer, in_shape, out_shape, params))
        by_name[layer.name] = shape = out_shape
    return out


def _input_for(layer: LayerSpec, src: tuple[int, ...]) -> tuple[int, ...]:
    if layer.type in ("conv2d", "conv_transpose2d") and len(src) == 3:
        return (layer.hp["in_channels"],) + src[1:]
    if layer.type == "linear":
        return (layer.hp["in_features"],)
    return src


def layer_output_shape(layer: LayerSpec, in_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Output shape (without batch) of one spec layer for a given input shape."""
    hp, t = layer.hp, layer.type
    if t in SHAPE_KEEPING:
        if t == "batchnorm2d" and (len(in_shape) != 3 or in_shape[0] != hp["num_features"]):
            raise ValueError(f"{layer.name} (batchnorm2d) normalises {hp['num_features']} "
                             f"channels, but its input is {_fmt(in_shape)}")
        return in_shape
    if t == "flatten":
        n = 1
        for v in in_shape:
            n *= v
        return (n,)
    if t == "linear":
        return (hp["out_features"],)
    if len(in_shape) != 3:
        raise ValueError(f"{layer.name} ({t}) needs a CxHxW input, but gets {_fmt(in_shape)}")
    c, h, w = in_shape
    kh, kw = formulas.pair(hp["kernel_size"])
    sh, sw = formulas.pair(hp["stride"])
    ph, pw = formulas.pair(hp.get("padding", 0))
    dh, dw = formulas.pair(hp.get("dilation", 1))
    if t == "conv2d":
        size = (formulas.conv_output_size(h, kh, ph, sh, dh),
                formulas.conv_output_size(w, kw, pw, sw, dw))
        c = hp["out_channels"]
    elif t == "conv_transpose2d":
        oh, ow = formulas.pair(hp["output_padding"])
        size = (formulas.conv_transpose_output_size(h, kh, ph, sh, dh, oh),
                formulas.conv_transpose_output_size(w, kw, pw, sw, dw, ow))
        c = hp["out_channels"]
    else:
        ceil = bool(hp.get("ceil_mode", False))
        size = (formulas.pool_output_size(h, kh, ph, sh, dh, ceil),
                formulas.pool_output_size(w, kw, pw, sw, dw, ceil))
    if min(size) < 1:
        raise ValueError(f"{layer.name} ({t}) would shrink {h}x{w} to {size[0]}x{size[1]}")
    return (c, *size)


def _fmt(shape: tuple[int, ...]) -> str:
    return "x".join(str(v) for v in shape) or "(nothing)"


# ---------------------------------------------------------------- finding a spec

def find_spec(submission: Path, assignment: str | None, search_roots: list[Path]) -> Path:
    """Where `--assignment` points, or the nearest spec.yaml beside/above the submission."""
    from .errors import UsageError

    if assignment:
        p = Path(assignment)
        if p.is_dir() and (p / "spec.yaml").is_file():
            return p / "spec.yaml"
        if p.name == "spec.yaml" and p.is_file():
            return p
        for root in search_roots:
            candidate = root / assignment / "spec.yaml"
            if candidate.is_file():
                return candidate
        known = sorted({d.name for r in search_roots if r.is_dir() for d in r.iterdir()
                        if (d / "spec.yaml").is_file()})
        raise UsageError(f"no assignment {assignment!r}: it is neither a folder with a spec.yaml "
                         f"nor one of: {', '.join(known) or '(none found)'}")
    start = submission.resolve()
    for folder in [start] + list(start.parents) if start.is_dir() else list(start.parents):
        if (folder / "spec.yaml").is_file():
            return folder / "spec.yaml"
        # a solution folder's spec lives in the matching assignments/ folder
        sibling = folder.parent.parent / "assignments" / folder.name / "spec.yaml"
        if folder.parent.name == "solutions" and sibling.is_file():
            return sibling
    raise UsageError(f"no spec.yaml found beside {submission} or in its parent folders; "
                     "pass --assignment NAME (e.g. --assignment cifar10_cnn) or a folder holding spec.yaml")
