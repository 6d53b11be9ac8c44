"""Readers of a spec's sections: input_shape, layers (with accepted forms and parameter
counts), checks (with accuracy bars and measured figures) and the training recipe with its
scheduler. The cases of a functions check are read in cases.py.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import SpecError
from ..forms import FORMS
from . import cases
from .reader import Reader
from .types import (ACTIVATIONS, CHECK_KINDS, DATASETS, LAYER_TYPES, SCHEDULERS,
                    THRESHOLD_VARIANTS, AltParams, CheckSpec, FormSpec, FunctionSpec, LayerSpec,
                    TrainingSpec)


def shape(path: Path, raw: list) -> tuple[int, ...]:
    if raw and not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in raw):
        raise SpecError(path, "input_shape", f"expected positive integers, got {raw!r}",
                        "write it as [channels, height, width], e.g. [1, 32, 32]")
    return tuple(raw)


def layer(path: Path, raw: Any, i: int) -> LayerSpec:
    r = Reader(path, raw, f"layers[{i}]")
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
    r = Reader(path, raw, where)
    r.unknown({"count", "credit", "note"})
    return AltParams(r.positive("count"), _credit(path, r), r.get("note", str, ""))


def _form(path: Path, raw: Any, where: str) -> FormSpec:
    r = Reader(path, raw, where)
    r.unknown({"form", "credit", "note"})
    name = r.get("form", str)
    if name not in FORMS:
        raise SpecError(path, r.key("form"), f"unknown form {name!r}",
                        f"use one of: {', '.join(FORMS)}")
    return FormSpec(name, _credit(path, r), r.get("note", str, "") or FORMS[name].note)


def _credit(path: Path, r: Reader) -> float:
    credit = float(r.get("credit", (int, float)))
    if not 0 <= credit <= 1:
        raise SpecError(path, r.key("credit"), f"must be between 0 and 1, got {credit}",
                        "credit is the share of the layer's points: 0.5 for half")
    return credit


def check(path: Path, raw: Any, i: int, functions: tuple[FunctionSpec, ...] = ()) -> CheckSpec:
    r = Reader(path, raw, f"checks[{i}]")
    kind = r.get("kind", str)
    if kind not in CHECK_KINDS:
        raise SpecError(path, r.key("kind"), f"unknown check kind {kind!r}",
                        f"use one of: {', '.join(CHECK_KINDS)}")
    options = {k: v for k, v in raw.items() if k not in ("id", "kind", "points")}
    if kind == "accuracy":
        _accuracy_options(path, r)
    elif kind == "functions":
        options = cases.functions_options(path, r, functions)
    else:
        r.unknown({"id", "kind", "points"})
    return CheckSpec(id=r.get("id", str, kind), kind=kind,
                     points=float(r.positive("points", kind=float)), options=options)



def _accuracy_options(path: Path, r: Reader) -> None:
    r.unknown({"id", "kind", "points", "min_accuracy", "partial_from", "measured",
               *THRESHOLD_VARIANTS})
    _threshold(path, r)
    for variant in THRESHOLD_VARIANTS:
        if variant in r.data:
            bar = Reader(path, r.data[variant], r.key(variant))
            bar.unknown({"min_accuracy", "partial_from", "measured"})
            _threshold(path, bar)


def _measured(path: Path, r: Reader) -> None:
    """`measured:` records both sides of a bar, as `grade calibrate` prints them: the
    reference's accuracy per seed and the negative controls'."""
    if "measured" not in r.data:
        return
    m = Reader(path, r.data["measured"], r.key("measured"))
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


def _threshold(path: Path, r: Reader) -> None:
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


def training(path: Path, raw: Any) -> TrainingSpec:
    r = Reader(path, raw, "training")
    r.unknown({"dataset", "epochs", "batch_size", "optimizer", "scheduler", "normalize", "pad",
               "hflip", "crop_padding", "max_train"})
    dataset = r.get("dataset", str)
    if dataset not in DATASETS and not dataset.endswith(".npz"):
        raise SpecError(path, r.key("dataset"), f"unknown dataset {dataset!r}",
                        f"use one of {', '.join(DATASETS)} or a path to an .npz file "
                        "with x_train, y_train, x_test, y_test")
    opt = Reader(path, r.get("optimizer", dict), r.key("optimizer"))
    opt.unknown({"name", "lr", "momentum", "weight_decay", "nesterov"})
    if opt.get("name", str) not in ("sgd", "adam", "adamw"):
        raise SpecError(path, opt.key("name"), f"unknown optimizer {opt.data['name']!r}",
                        "use sgd, adam or adamw")
    opt.positive("lr", kind=float)
    sched = r.get("scheduler", dict, None)
    if sched is not None:
        _scheduler(path, Reader(path, sched, r.key("scheduler")))
    norm = Reader(path, r.get("normalize", dict), r.key("normalize"))
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



def _scheduler(path: Path, s: Reader) -> None:
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
