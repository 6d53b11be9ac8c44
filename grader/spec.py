"""Assignment specs: load `spec.yaml`, validate every key, derive expected shapes.

A spec is the instructor's whole statement of what a submission must be. It is
validated up front so that a typo fails loudly (file, key, fix) before any
student is graded against it, rather than silently costing students points.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import formulas
from .errors import SpecError

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
}


@dataclass(frozen=True)
class AltParams:
    """A parameter count that is not the spec's but still earns some credit."""

    count: int
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
        return 0  # pooling and flatten learn nothing; subsample is set in expected_shapes


@dataclass(frozen=True)
class CheckSpec:
    id: str
    kind: str
    points: float
    options: dict[str, Any] = field(default_factory=dict)


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
    functions: tuple[dict[str, Any], ...] = ()

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
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(path, "(file)", f"cannot be read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(file)"
        raise SpecError(path, where, f"is not valid YAML: {getattr(exc, 'problem', exc)}",
                        "check the indentation and the colons on that line") from exc
    top = _Reader(path, data, "")
    top.unknown({"name", "title", "input_shape", "layers", "checks", "training", "timeout_s",
                 "functions", "notes"})
    name = top.get("name", str)
    if name != path.parent.name:
        raise SpecError(path, "name", f"is {name!r} but the folder is {path.parent.name!r}",
                        f"set `name: {path.parent.name}` (assignment names are folder names)")
    layers = tuple(_layer(path, raw, i) for i, raw in enumerate(top.get("layers", list, [])))
    _check_unique(path, "layers", [layer.name for layer in layers])
    checks = tuple(_check(path, raw, i) for i, raw in enumerate(top.get("checks", list)))
    _check_unique(path, "checks", [c.id for c in checks])
    raw_training = top.get("training", dict, None)
    spec = Spec(
        path=path, name=name, title=top.get("title", str, name),
        input_shape=_shape(path, top.get("input_shape", list, [])),
        layers=layers, checks=checks,
        training=_training(path, raw_training) if raw_training is not None else None,
        timeout_s=float(top.positive("timeout_s", 600, kind=float)),
        functions=tuple(top.get("functions", list, [])),
    )
    _cross_check(spec)
    return spec


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
    r.unknown({"name", "type", "activation", "params", "accept_params", "input_from", "note",
               *required, *optional})
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
    return LayerSpec(name=r.get("name", str), type=ltype, hp=hp, activation=activation,
                     params=r.positive("params", None), accept_params=alts,
                     input_from=r.get("input_from", str, None), note=r.get("note", str, ""))


def _alt(path: Path, raw: Any, where: str) -> AltParams:
    r = _Reader(path, raw, where)
    r.unknown({"count", "credit", "note"})
    credit = float(r.get("credit", (int, float)))
    if not 0 <= credit <= 1:
        raise SpecError(path, r.key("credit"), f"must be between 0 and 1, got {credit}")
    return AltParams(r.positive("count"), credit, r.get("note", str, ""))


def _check(path: Path, raw: Any, i: int) -> CheckSpec:
    r = _Reader(path, raw, f"checks[{i}]")
    kind = r.get("kind", str)
    if kind not in CHECK_KINDS:
        raise SpecError(path, r.key("kind"), f"unknown check kind {kind!r}",
                        f"use one of: {', '.join(CHECK_KINDS)}")
    options = {k: v for k, v in raw.items() if k not in ("id", "kind", "points")}
    if kind == "accuracy":
        _accuracy_options(path, r)
    else:
        r.unknown({"id", "kind", "points"} | ({"cases"} if kind == "functions" else set()))
    return CheckSpec(id=r.get("id", str, kind), kind=kind,
                     points=float(r.positive("points", kind=float)), options=options)


def _accuracy_options(path: Path, r: _Reader) -> None:
    r.unknown({"id", "kind", "points", "min_accuracy", "partial_from", "measured", "subset"})
    _threshold(path, r)
    if "subset" in r.data:
        _threshold(path, _Reader(path, r.data["subset"], r.key("subset")))


def _threshold(path: Path, r: _Reader) -> None:
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
        s = _Reader(path, sched, r.key("scheduler"))
        s.unknown({"name", "milestones", "gamma"})
        if s.get("name", str) != "multistep":
            raise SpecError(path, s.key("name"), f"unknown scheduler {sched['name']!r}",
                            "use multistep (with milestones and gamma)")
        s.get("milestones", list)
        s.positive("gamma", kind=float)
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
