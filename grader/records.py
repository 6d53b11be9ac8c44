"""The boundary: every file a worker wrote, decoded once into typed records, or refused.

Workers run student code (or a student's exported program), so nothing they
write is trusted: not its size, its nesting, its types, its numbers. Each
stage file is read here, once, and becomes a frozen dataclass whose every
field has been checked (type, length, range, finiteness); checks and
reporters only ever see these records. Anything malformed becomes that
stage's error, with a sentence, and grading goes on (DESIGN.md invariant 7).
Nothing is unpickled: JSON is parsed without NaN or Infinity and with a depth
limit, and the predictions array is read only after its header is checked.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import protocol

MAX_JSON_BYTES = protocol.MAX_JSON_BYTES
MAX_TEXT = 2_000           # a message, a line of code
MAX_NAME = 200             # a module path, a class name
MAX_EVENTS = 20_000
MAX_MODULES = 5_000
MAX_CASES = 10_000
MAX_DIMS = 8
MAX_DIM = 1 << 31
HYPER_KEYS = frozenset({"in_channels", "out_channels", "kernel_size", "stride", "padding",
                        "dilation", "groups", "output_padding", "ceil_mode", "in_features",
                        "out_features", "bias", "p", "num_features", "training"})


class Malformed(ValueError):
    """A worker file that is not what its stage writes; the message says what was wrong."""


# ---------------------------------------------------------------- records

@dataclass(frozen=True)
class Frame:
    file: str
    line: int
    function: str
    code: str


@dataclass(frozen=True)
class ErrorInfo:
    type: str
    message: str
    frames: tuple[Frame, ...] = ()
    line: int | None = None        # SyntaxError: where
    code: str = ""


@dataclass(frozen=True)
class Param:
    name: str
    shape: tuple[int, ...]
    trainable: bool

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Module:
    path: str
    cls: str
    category: str
    hyper: dict[str, Any]
    params: tuple[Param, ...]
    leaf: bool
    buffers: tuple[Param, ...] = ()   # buffers and constants: shapes only, never trainable


@dataclass(frozen=True)
class ModelRecord:
    cls: str
    modules: tuple[Module, ...]


@dataclass(frozen=True)
class Event:
    """One call the probe's forward pass made: a module, or a functional layer call."""

    index: int
    kind: str                     # "module" | "function"
    path: str                     # module path ("" for a function call)
    parent: str                   # the module it ran inside
    category: str                 # conv2d, linear, maxpool2d, relu, custom, container, ...
    cls: str                      # class name or function name
    hyper: dict[str, Any]
    in_shape: tuple[int, ...] | None
    out_shape: tuple[int, ...] | None
    params: int = 0               # parameters a functional call used


@dataclass(frozen=True)
class Output:
    shape: tuple[int, ...] | None
    finite: bool
    type: str


@dataclass(frozen=True)
class CrashSite:
    kind: str
    path: str
    name: str
    cls: str
    hyper: dict[str, Any]
    inputs: tuple[tuple[int, ...] | None, ...]
    open_modules: tuple[str, ...]


@dataclass(frozen=True)
class ProbeRecord:
    events: tuple[Event, ...]
    output: Output | None = None
    crash: CrashSite | None = None


@dataclass(frozen=True)
class CurvePoint:
    epoch: int
    loss: float
    train_accuracy: float


@dataclass(frozen=True)
class TrainRecord:
    curve: tuple[CurvePoint, ...]
    stopped: str | None
    train_seconds: float
    device: str
    torch: str
    perturbed_predictions: bool = False
    final_train_accuracy: float | None = None   # on training images, after training
    ensemble: int = 0      # models stepped together with this one (worker/members.py); 0: alone


@dataclass(frozen=True)
class CaseRecord:
    ok: bool
    result: dict[str, Any] | None = None     # an encoded value (checks/functions.decode reads it)
    error: ErrorInfo | None = None
    calls: tuple[str, ...] = ()


@dataclass(frozen=True)
class FunctionsRecord:
    cases: tuple[CaseRecord, ...]


@dataclass(frozen=True)
class LoadRecord:
    torch: str


@dataclass(frozen=True)
class ExportRecord:
    modules: int
    untraced: dict[str, str] = field(default_factory=dict)   # module -> why not captured


@dataclass(frozen=True)
class StageResult:
    """A stage that finished: its record when it succeeded (a probe that crashed keeps the
    events it saw in `record`), or the error it stopped with."""

    ok: bool
    record: Any = None
    error: ErrorInfo | None = None


# ---------------------------------------------------------------- field readers

def _dict(v: Any, where: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise Malformed(f"{where} is not a mapping")
    return v


def _str(v: Any, where: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(v, str):
        raise Malformed(f"{where} is not text")
    return v if len(v) <= limit else v[:limit] + " [...]"


def _opt_str(v: Any, where: str, limit: int = MAX_TEXT) -> str | None:
    return None if v is None else _str(v, where, limit)


def _int(v: Any, where: str, lo: int = -MAX_DIM, hi: int = MAX_DIM) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise Malformed(f"{where} is not a whole number between {lo} and {hi}")
    return v


def _float(v: Any, where: str, lo: float = -1e300, hi: float = 1e300) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
            or not lo <= v <= hi:
        raise Malformed(f"{where} is not a finite number")
    return float(v)


def _bool(v: Any, where: str) -> bool:
    if not isinstance(v, bool):
        raise Malformed(f"{where} is not true/false")
    return v


def _list(v: Any, where: str, limit: int) -> list:
    if not isinstance(v, list):
        raise Malformed(f"{where} is not a list")
    if len(v) > limit:
        raise Malformed(f"{where} has {len(v):,} entries (at most {limit:,})")
    return v


def _shape(v: Any, where: str) -> tuple[int, ...] | None:
    if v is None:
        return None
    return tuple(_int(d, where, 0) for d in _list(v, where, MAX_DIMS))


def _hyper(v: Any, where: str) -> dict[str, Any]:
    """Layer hyperparameters: small ints, bools, short strings, or short lists of ints."""
    out: dict[str, Any] = {}
    for key, value in _dict(v, where).items():
        if key not in HYPER_KEYS:
            continue
        if value is None or isinstance(value, bool):
            out[key] = value
        elif isinstance(value, int):
            out[key] = _int(value, f"{where}.{key}")
        elif isinstance(value, float):
            out[key] = _float(value, f"{where}.{key}")
        elif isinstance(value, str):
            out[key] = _str(value, f"{where}.{key}", 20)
        else:
            out[key] = [_int(d, f"{where}.{key}") for d in _list(value, f"{where}.{key}", 4)]
    return out


# ---------------------------------------------------------------- stage decoders

def error_info(v: Any, where: str = "error") -> ErrorInfo:
    e = _dict(v, where)
    frames = tuple(Frame(_str(f.get("file", ""), "frame file", MAX_NAME),
                         _int(f.get("line", 0), "frame line", 0),
                         _str(f.get("function", ""), "frame function", MAX_NAME),
                         _str(f.get("code", ""), "frame code"))
                   for f in (_dict(x, "frame") for x in _list(e.get("frames", []), "frames", 50)))
    line = e.get("line")
    return ErrorInfo(type=_str(e.get("type", "Error"), "error type", MAX_NAME),
                     message=_str(e.get("message", ""), "error message"), frames=frames[-5:],
                     line=None if line is None else _int(line, "error line", 0),
                     code=_str(e.get("code") or "", "error code"))


def _load(d: dict) -> LoadRecord:
    return LoadRecord(torch=_version(d.get("torch", "")))


def _version(v: Any) -> str:
    text = _str(v, "torch version", 40)
    if not all(c.isalnum() or c in ".+-_" for c in text):
        raise Malformed("the torch version is not a version string")
    return text


def _export(d: dict) -> ExportRecord:
    untraced = _dict(d.get("untraced", {}), "untraced")
    if len(untraced) > MAX_MODULES:
        raise Malformed("untraced lists too many modules")
    return ExportRecord(modules=_int(d.get("modules", 0), "modules", 0),
                        untraced={_str(k, "module", MAX_NAME): _str(v, "reason")
                                  for k, v in untraced.items()})


def _param(v: Any, where: str) -> Param:
    p = _dict(v, where)
    return Param(_str(p.get("name"), f"{where} name", MAX_NAME), _shape(p.get("shape"), where) or (),
                 _bool(p.get("trainable", False), f"{where} trainable"))


def _model(d: dict) -> ModelRecord:
    modules = []
    for i, raw in enumerate(_list(d.get("modules"), "modules", MAX_MODULES)):
        m = _dict(raw, f"modules[{i}]")
        modules.append(Module(
            path=_str(m.get("path"), "module path", MAX_NAME * 8),
            cls=_str(m.get("class"), "module class", MAX_NAME),
            category=_str(m.get("category"), "module category", 40),
            hyper=_hyper(m.get("hyper", {}), "hyper"),
            params=tuple(_param(p, "param") for p in _list(m.get("params", []), "params", 64)),
            leaf=_bool(m.get("leaf", True), "leaf"),
            buffers=tuple(_param(p, "buffer") for p in _list(m.get("buffers", []), "buffers", 64))))
    if not modules or modules[0].path != "":
        raise Malformed("the module list does not start with the model itself")
    return ModelRecord(cls=_str(d.get("class", ""), "class", MAX_NAME), modules=tuple(modules))


def _event(i: int, v: Any) -> Event:
    e = _dict(v, f"events[{i}]")
    kind = e.get("kind")
    if kind not in ("module", "function"):
        raise Malformed(f"events[{i}] has an unknown kind")
    return Event(index=i, kind=kind, path=_str(e.get("path", ""), "event path", MAX_NAME * 8),
                 parent=_str(e.get("parent", ""), "event parent", MAX_NAME * 8),
                 category=_str(e.get("category", ""), "event category", 40),
                 cls=_str(e.get("class", ""), "event class", MAX_NAME),
                 hyper=_hyper(e.get("hyper", {}), "event hyper"),
                 in_shape=_shape(e.get("in"), "event input shape"),
                 out_shape=_shape(e.get("out"), "event output shape"),
                 params=_int(e.get("params", 0), "event params", 0, 1 << 40))


def _output(v: Any) -> Output | None:
    if v is None:
        return None
    o = _dict(v, "output")
    return Output(shape=_shape(o.get("shape"), "output shape"),
                  finite=_bool(o.get("finite", False), "output finite"),
                  type=_str(o.get("type", "Tensor"), "output type", MAX_NAME))


def _crash(v: Any) -> CrashSite | None:
    if v is None:
        return None
    c = _dict(v, "crash_site")
    return CrashSite(kind=_str(c.get("kind", ""), "crash kind", 20),
                     path=_str(c.get("path", ""), "crash path", MAX_NAME * 8),
                     name=_str(c.get("name", ""), "crash name", MAX_NAME),
                     cls=_str(c.get("class", ""), "crash class", MAX_NAME),
                     hyper=_hyper(c.get("hyper", {}), "crash hyper"),
                     inputs=tuple(_shape(s, "crash input") for s in
                                  _list(c.get("inputs", []), "crash inputs", 8)),
                     open_modules=tuple(_str(p, "open module", MAX_NAME * 8) for p in
                                        _list(c.get("open_modules", []), "open modules", 256)))


def _probe(d: dict) -> ProbeRecord:
    events = tuple(_event(i, e) for i, e in enumerate(_list(d.get("events", []), "events",
                                                             MAX_EVENTS)))
    return ProbeRecord(events=events, output=_output(d.get("output")),
                       crash=_crash(d.get("crash_site")))


def _train(d: dict) -> TrainRecord:
    curve = tuple(CurvePoint(_int(p.get("epoch"), "epoch", 0, 100_000),
                             _float(p.get("loss"), "loss"),
                             _float(p.get("train_accuracy"), "train accuracy", 0, 1))
                  for p in (_dict(x, "curve point") for x in
                            _list(d.get("curve", []), "curve", 100_000)))
    return TrainRecord(curve=curve, stopped=_opt_str(d.get("stopped"), "stopped"),
                       train_seconds=_float(d.get("train_seconds", 0), "train seconds", 0),
                       device=_str(d.get("device", "cpu"), "device", 40),
                       torch=_version(d.get("torch", "")),
                       perturbed_predictions=_bool(d.get("perturbed", False), "perturbed"),
                       final_train_accuracy=None if d.get("final_train_accuracy") is None else
                       _float(d["final_train_accuracy"], "final train accuracy", 0, 1),
                       ensemble=_int(d.get("ensemble", 0), "ensemble", 0, 4096))


def _functions(d: dict) -> FunctionsRecord:
    cases = []
    for raw in _list(d.get("cases"), "cases", MAX_CASES):
        c = _dict(raw, "case")
        ok = _bool(c.get("ok"), "case ok")
        cases.append(CaseRecord(
            ok=ok, result=_dict(c.get("result"), "case result") if ok else None,
            error=None if ok else error_info(c.get("error", {})),
            calls=tuple(_str(n, "call", MAX_NAME) for n in _list(c.get("calls", []), "calls", 256))))
    return FunctionsRecord(tuple(cases))


DECODERS: dict[str, Callable[[dict], Any]] = {
    "load": _load, "build": lambda d: _str(d.get("class", ""), "class", MAX_NAME),
    "export": _export, "trace": _export, "model": _model, "probe": _probe, "train": _train,
    "functions": _functions, "hidden": _functions,
}


def decode_stage(stage: str, raw: Any) -> StageResult:
    """One stage's parsed JSON as a StageResult; malformed input is that stage's error."""
    try:
        d = _dict(raw, f"the {stage} file")
        if _bool(d.get("ok"), "ok"):
            return StageResult(True, DECODERS[stage](d))
        partial = _probe(d) if stage == "probe" else None
        return StageResult(False, partial, error_info(d.get("error", {})))
    except (Malformed, TypeError, ValueError, KeyError, AttributeError) as exc:
        return corrupt(stage, str(exc))


def corrupt(stage: str, reason: str) -> StageResult:
    return StageResult(False, None, ErrorInfo("CorruptOutput",
                                              f"the {stage} measurements cannot be read: {reason}"))


def read_stage(job: Path, stage: str) -> StageResult | None:
    """The stage's result, or None when the worker never finished that stage."""
    path = protocol.worker_file(job, protocol.stage_file(stage))
    if path is None:
        return None
    if path.stat().st_size > MAX_JSON_BYTES:
        return corrupt(stage, f"the file is larger than {MAX_JSON_BYTES >> 20} MiB")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
    except RecursionError:
        return corrupt(stage, "it is nested too deeply")
    except (ValueError, UnicodeDecodeError) as exc:
        return corrupt(stage, f"it is not valid JSON ({str(exc)[:80]})")
    return decode_stage(stage, raw)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# ---------------------------------------------------------------- predictions

def read_predictions(job: Path, expected_len: int, rows: int = 1) -> np.ndarray | str:
    """Test-set predictions as an int64 array of shape (rows, expected_len), or a sentence
    saying what was wrong. The header is checked before any data is read."""
    path = protocol.worker_file(job, protocol.PREDICTIONS)
    if path is None:
        return "the worker wrote no predictions"
    if path.stat().st_size > 8 * rows * expected_len + 4096:
        return "the predictions file is larger than the test set allows"
    try:
        with path.open("rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                return "the predictions file is not a .npy array"
            shape, fortran, dtype = read_header(f, max_header_size=1024)
            if dtype.kind not in "iu" or dtype.hasobject or fortran or \
                    tuple(shape) != (rows, expected_len):
                return (f"predictions have shape {tuple(shape)} and dtype {dtype}, expected "
                        f"({rows}, {expected_len}) integers")
            data = np.fromfile(f, dtype=dtype, count=rows * expected_len)
    except Exception as exc:  # noqa: BLE001 - numpy's header parser raises many kinds
        return f"the predictions file cannot be read: {type(exc).__name__}"
    if data.size != rows * expected_len:
        return "the predictions file is cut short"
    return data.reshape(rows, expected_len).astype(np.int64)
