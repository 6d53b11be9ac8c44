"""Shapes: does each layer turn its input into the feature map the spec expects?

Expected shapes come from the spec through O = floor((I - K + 2P)/S) + 1 (and
its pooling and transposed-convolution forms). Each layer is judged on its
own: against what the spec's layer makes of the input it really got, so one
wrong layer is reported once, at its place, and the right layers after it
stay right. When a layer is off, the feedback redoes the formula with the
student's own numbers and names the hyperparameter that differs, because that
is the mistake to fix. The activation after a layer is a verdict of its own.
"""
from __future__ import annotations

import math
from typing import Any

from .. import formulas
from ..measurements import Measurements
from ..records import Event, ProbeRecord
from ..results import CheckResult, score_fraction, status_for
from ..spec import (SHAPE_KEEPING, CheckSpec, ExpectedLayer, Spec, expected_shapes,
                    layer_output_shape)
from .matching import (COMPATIBLE, LAYER_CATEGORIES, Alignment, Match, activation_after,
                       after_a_mistake, differs, match_layers)

HYPER_LETTERS = (("kernel_size", "K"), ("padding", "P"), ("stride", "S"), ("dilation", "D"))


def fmt(shape: Any) -> str:
    return "x".join(str(v) for v in shape) if shape else "?"


def run(check: CheckSpec, spec: Spec, m: Measurements) -> CheckResult:
    expected = expected_shapes(spec)
    probe: ProbeRecord | None = m.record("probe")
    if probe is None:
        return CheckResult(check.id, "shapes", 0.0, check.points, "error",
                           f"No shapes could be measured: {m.blocker('probe')}",
                           {"layers": [_row_unmeasured(x) for x in expected]})
    events = list(probe.events)
    alignment = match_layers(expected, events)
    rows = [_row(mt, alignment, events, drift)
            for mt, drift in zip(alignment.matches, after_a_mistake(alignment))]
    crash = None if m.ok("probe") else crash_message(probe, alignment, m)
    if crash:
        _mark_unfinished(rows)
    output_problem = _output_problem(probe, expected) if m.ok("probe") else None
    units = len(rows) + sum(r["activation"] is not None for r in rows)
    earned = sum(r["credit"] for r in rows) + sum(bool(r["activation"] and r["activation"]["ok"])
                                                  for r in rows)
    fraction = earned / units if units else 0.0
    if output_problem or crash:
        # a model whose forward does not finish, or returns no usable scores, cannot be
        # trained or used, however right its layers are: one unit's worth is lost
        fraction = min(fraction, (units - 1) / units)
    score = score_fraction(check.points, fraction)
    feedback = "\n".join([_header(rows), *_problems(rows, alignment, crash, output_problem),
                          *_softmax_at_the_end(events)])
    output = probe.output
    return CheckResult(check.id, "shapes", score, check.points, status_for(score, check.points),
                       feedback, {"layers": rows, "crash": crash,
                                  "extra": [_extra_text(e) for e in alignment.extra],
                                  "output": None if output is None else
                                  {"shape": output.shape and list(output.shape),
                                   "finite": output.finite}})


def _mark_unfinished(rows: list[dict[str, Any]]) -> None:
    """After a crash: the layer that was running did not finish, and the ones after the
    last measured layer were never reached (neither is wrong: nothing was measured)."""
    last = max((k for k, r in enumerate(rows) if r["got"] is not None), default=-1)
    for k, row in enumerate(rows):
        if row["got"] is not None:
            continue
        if row["matched"] is not None:
            row["message"] = f"{row['name']}: did not finish (the forward pass stopped in it)"
        elif k > last:
            row["how"] = "not reached"
            row["message"] = f"{row['name']}: not reached (the forward pass stopped before it)"


def _header(rows: list[dict[str, Any]]) -> str:
    shapes = f"{sum(r['shape_ok'] for r in rows)} of {len(rows)} layers have the expected shape"
    acts = [r["activation"] for r in rows if r["activation"] is not None]
    if not acts:
        return shapes + "."
    return f"{shapes}; {sum(a['ok'] for a in acts)} of {len(acts)} activations are the spec's."


def _problems(rows: list[dict[str, Any]], alignment: Alignment, crash: str | None,
              output_problem: str | None) -> list[str]:
    """What to fix, cause first: wrong layers, extra ones, the crash, then what it cost."""
    lines = [r["message"] for r in rows if not r["shape_ok"] and r["got"] is not None]
    lines += [r["activation"]["message"] for r in rows
              if r["activation"] is not None and r["activation"]["message"]
              and not r["activation"]["ok"]]
    lines += [f"{_extra_text(e)}: the spec has no such layer here" for e in alignment.extra]
    if crash:
        lines.append(crash)
    lines += [r["message"] for r in rows if not r["shape_ok"] and r["got"] is None]
    lines += [r["note"] for r in rows if r["note"]]
    if output_problem:
        lines.append(output_problem)
    return lines


def _softmax_at_the_end(events: list[Event]) -> list[str]:
    """A note, not a deduction: scores squashed into probabilities before the loss (which
    applies its own softmax) still train, only slowly, and the accuracy check sees that.
    A log-softmax is harmless: the loss of log-probabilities is the loss of the scores."""
    ends = LAYER_CATEGORIES | {"softmax"}
    last = next((e for e in reversed(events) if e.category in ends), None)
    if last is None or last.category != "softmax":
        return []
    where = f"{last.path} (a Softmax)" if last.path else "a softmax call"
    return [f"The forward returns probabilities: it ends in {where}. CrossEntropyLoss "
            "applies the softmax itself, so the grader trains on scores squashed twice, which "
            "learns slowly; return the raw scores (logits) of the last Linear."]


def _extra_text(e: Event) -> str:
    what = f"{e.category} layer {e.path}" if e.path else f"{e.cls} call"
    shapes = f" ({fmt(e.in_shape[1:])} -> {fmt(e.out_shape[1:])})" if e.in_shape and \
        e.out_shape else ""
    return f"extra {what}{shapes}"


def _row_unmeasured(x: ExpectedLayer) -> dict[str, Any]:
    """A layer with nothing measured: it loses its shape unit and its activation unit (the
    spec's activations count whether or not the forward reached them)."""
    activation = None if x.spec.activation is None else \
        {"expected": x.spec.activation, "got": None, "ok": False, "message": ""}
    return {"name": x.spec.name, "type": x.spec.type, "expected_in": list(x.in_shape),
            "expected": list(x.out_shape), "in": None, "got": None, "shape_ok": False,
            "activation": activation, "ok": False, "credit": 0.0, "matched": None, "how": "",
            "form": None, "note": "", "formula": "", "message": f"{x.spec.name}: not measured"}


def _elsewhere(x: ExpectedLayer, alignment: Alignment) -> str:
    """A missing layer the student did write, at another place: say where it runs."""
    for e in alignment.extra:
        if e.category in COMPATIBLE[x.spec.type] and e.in_shape:
            return f"; your {e.path or e.cls} runs where the input is {fmt(list(e.in_shape[1:]))}"
    return ""


def label(mt: Match) -> str:
    """How feedback names a paired layer: the spec's name, and the student's where it differs."""
    e, name = mt.event, mt.expected.spec.name
    if mt.how == "name":
        return name
    return f"{name} ({e.path})" if e.path else f"{name} ({e.cls} call)"


def _row(mt: Match, alignment: Alignment, events: list[Event], drift: bool) -> dict[str, Any]:
    x = mt.expected
    row = _row_unmeasured(x)
    if not mt.found:
        row["how"] = "missing"
        row["message"] = (f"{x.spec.name}: no {x.spec.type} layer found where the spec expects "
                          f"one (input {fmt(x.in_shape)}, output {fmt(x.out_shape)})" +
                          _elsewhere(x, alignment) + (f"; {x.spec.note}" if x.spec.note else ""))
        return row
    e = mt.event
    got_in = list(e.in_shape[1:]) if e.in_shape else None
    got = list(e.out_shape[1:]) if e.out_shape else None
    name = label(mt)
    row.update({"in": got_in, "got": got, "matched": e.path or e.cls, "how": mt.how,
                "class": e.cls, "formula": _formula(x, e, got_in)})
    if mt.form is not None:
        row["form"] = mt.form.form
        row["note"] = f"{name}: {mt.form.note}" + \
            (f" ({mt.form.credit:.0%} of this layer's credit)" if mt.form.credit < 1 else "")
    if x.spec.activation and got is not None:
        row["activation"] = _activation(name, x, activation_after(mt, alignment, events))
    if got is None:
        return row
    # in an equivalent form's window the layers come in another order: judge each on its input
    here = _expected_here(x, got_in) if drift or mt.how == "form" else list(x.out_shape)
    problems = []
    if got != here and not _same_values(mt, got):
        problems.append(_explain_shape(name, x, e, got_in, got, here))
    if _wrong_pool_kind(x, e):
        problems.append(f"{name}: uses {e.category} where the spec asks for {x.spec.type}")
    if _dropout_on_at_test(x, e):
        problems.append(f"{name}: F.dropout(x, p={e.hyper.get('p', 0.5):g}) still drops values "
                        "in eval mode, because its training argument defaults to True; write "
                        "F.dropout(x, p, training=self.training) or use an nn.Dropout layer")
    row["shape_ok"] = not problems
    row["credit"] = mt.credit if row["shape_ok"] else 0.0
    row["ok"] = row["shape_ok"] and (row["activation"] is None or row["activation"]["ok"])
    if problems:
        row["message"] = "\n".join(problems)
    elif mt.how == "form" and mt.form is None:
        row["message"] = f"{name}: {fmt(got)}, in the order of the equivalent form noted below"
    elif got != list(x.out_shape) and not _same_values(mt, got):
        row["message"] = (f"{name}: {fmt(got)} from its {fmt(got_in)} input, as the spec's layer "
                          f"makes it ({fmt(x.out_shape)} once the layers before it are right)")
    else:
        row["message"] = f"{name}: {fmt(got)} as expected"
    return row


def _expected_here(x: ExpectedLayer, got_in: list[int] | None) -> list[int]:
    """What the spec's layer makes of the input this layer really got: a layer is judged on
    its own, so a mistake before it is not counted again here."""
    if got_in is None:
        return list(x.out_shape)
    try:
        return list(layer_output_shape(x.spec, tuple(got_in)))
    except (ValueError, KeyError):
        return list(x.out_shape)


def _same_values(mt: Match, got: list[int]) -> bool:
    """An equivalent form may shape its result differently: C5 as a Linear gives 120, not
    120x1x1; what counts is the same number of values."""
    return mt.form is not None and math.prod(got) == math.prod(mt.expected.out_shape)


def _activation(name: str, x: ExpectedLayer, found: str | None) -> dict[str, Any]:
    ok = found == x.spec.activation
    if ok:
        message = f"{name}: {found} after it, as the spec asks"
    elif found:
        message = f"{name}: {found} after it; the spec asks for {x.spec.activation}"
    else:
        message = (f"{name}: no activation after it; the spec asks for {x.spec.activation} "
                   "(without one, stacked layers collapse into one linear map)")
    return {"expected": x.spec.activation, "got": found, "ok": ok, "message": message}


def _dropout_on_at_test(x: ExpectedLayer, e: Event) -> bool:
    """The probe runs in eval mode: a functional dropout that was still told training=True
    (F.dropout's default) keeps dropping at test time."""
    return x.spec.type == "dropout" and e.hyper.get("training") is True


def _wrong_pool_kind(x: ExpectedLayer, e: Event) -> bool:
    pools = {"maxpool2d", "avgpool2d"}
    return x.spec.type in pools and e.category in pools and e.category != x.spec.type


def _formula(x: ExpectedLayer, e: Event, got_in: list[int] | None) -> str:
    """The size formula with the student's own numbers (height axis)."""
    hp = e.hyper
    if not got_in or len(got_in) != 3 or "kernel_size" not in hp:
        return ""
    i = got_in[1]
    k = formulas.pair(hp["kernel_size"])[0]
    p = _int_padding(hp.get("padding", 0), k, hp.get("dilation", 1))
    s = formulas.pair(hp.get("stride") or k)[0]
    d = formulas.pair(hp.get("dilation", 1))[0]
    if e.category == "conv_transpose2d":
        op = formulas.pair(hp.get("output_padding", 0))[0]
        return formulas.conv_transpose_formula_text(i, k, p, s, d, op)
    if e.category in ("maxpool2d", "avgpool2d") and hp.get("ceil_mode"):
        return f"O = ceil(({i} - {k} + 2*{p})/{s}) + 1 = " + str(
            formulas.pool_output_size(i, k, p, s, d, True))
    return formulas.conv_formula_text(i, k, p, s, d)


def _int_padding(padding: Any, k: int, d: Any) -> int:
    if padding == "same":
        return formulas.pair(d)[0] * (k - 1) // 2
    if padding == "valid":
        return 0
    return formulas.pair(padding)[0]


def _explain_shape(label: str, x: ExpectedLayer, e: Event, got_in: list[int] | None,
                   got: list[int], here: list[int]) -> str:
    """Why this layer's output differs from what the spec's layer makes of the same input:
    the size formula with the student's numbers, naming the hyperparameter that differs."""
    source = "" if got_in in (None, list(x.in_shape)) else f" from its {fmt(got_in)} input"
    head = f"{label}: got {fmt(got)}, expected {fmt(here)}{source}"
    hp, want = e.hyper, x.spec.hp
    if x.spec.type == "flatten":
        return f"{head}: a flatten keeps every value of its {fmt(got_in)} input"
    if x.spec.type == "linear":
        return f"{head} (out_features={got[0]}; the spec asks for {want['out_features']})"
    if x.spec.type in SHAPE_KEEPING:   # it keeps its input's shape, so its place is wrong
        where = f" ({x.spec.note})" if x.spec.note else ""
        return f"{head}: it runs where the input is {fmt(got_in)}; the spec places it where " \
               f"the input is {fmt(x.in_shape)}{where}"
    reasons = []
    if len(got) == 3 and "out_channels" in want and got[0] != want["out_channels"]:
        reasons.append(f"it has {got[0]} output channels; the spec asks for {want['out_channels']}")
    formula = _formula(x, e, got_in)
    if len(got) == 3 and got[1:] != here[1:]:
        differing = [(letter, key) for key, letter in HYPER_LETTERS if differs(hp, want, key)]
        if formula and differing:
            yours = ", ".join(f"{letter}={_hp_text(hp, key)}" for letter, key in differing)
            asks = ", ".join(f"{letter}={_hp_text(want, key)}" for letter, key in differing)
            reasons.append(f"{formula} means {yours}; the spec asks for {asks}")
        elif got_in and list(x.in_shape[1:]) != got_in[1:]:
            reasons.append(f"its input is {fmt(got_in)} where the spec expects {fmt(x.in_shape)}, "
                           "and no layer before it is wrong: code between the layers changes it")
        elif formula:
            reasons.append(formula)
    return head + (": " + "; ".join(reasons) if reasons else "")


def _hp_text(hp: dict[str, Any], key: str) -> str:
    v = hp.get(key)
    if key == "stride" and v is None:
        v = hp.get("kernel_size")
    a, b = formulas.pair(v) if not isinstance(v, str) else (v, v)
    return str(a) if a == b else f"{a}x{b}"


def _output_problem(probe: ProbeRecord, expected: list[ExpectedLayer]) -> str | None:
    out = probe.output
    want = list(expected[-1].out_shape)
    if out is None or out.shape is None:
        return "forward did not return a tensor"
    if list(out.shape[1:]) != want:
        return f"the model returns {fmt(out.shape[1:])} per image; expected {fmt(want)}"
    if not out.finite:
        return "the model's output contains NaN or infinity for a random input"
    return None


def crash_message(probe: ProbeRecord, alignment: Alignment, m: Measurements) -> str:
    """Where the forward pass stopped, by the tracer's own record of what was running:
    a layer still open when it raised (a shared module's second call is its own layer),
    a functional layer call being attempted, or the code between two layers."""
    reason = m.blocker("probe").removeprefix("the forward pass failed: ")
    site = probe.crash
    if site is None:
        return f"The forward pass stopped: {reason}"
    names = {mt.event.index: label(mt) for mt in alignment.matches if mt.event is not None}
    running = [e for e in alignment.layers
               if e.kind == "module" and e.out_shape is None and e.path in site.open_modules]
    if running:
        layer = running[-1]
        where = names.get(layer.index, f"the extra layer {layer.path}")
        return _stopped_in(where, layer, site, alignment, reason)
    done = [e for e in alignment.layers if e.out_shape is not None]
    after = f"after {names.get(done[-1].index, done[-1].path or done[-1].cls)}" if done \
        else "before the first layer"
    if site.kind == "function" and site.name:
        return f"The forward pass stopped in a {site.name} call {after}: {reason}"
    return f"The forward pass stopped {after}: {reason}"


def _stopped_in(where: str, layer: Event, site: Any, alignment: Alignment, reason: str) -> str:
    base = f"The forward pass stopped in {where}, a {layer.cls}"
    hyper = layer.hyper
    got = (site.inputs[0] if site.path == layer.path and site.inputs and site.inputs[0]
           else layer.in_shape)
    if "in_features" in hyper and got:
        feats = got[-1]
        last_map = next((e.out_shape[1:] for e in reversed(alignment.layers)
                         if e.index < layer.index and e.out_shape and len(e.out_shape) == 4), None)
        origin = f" = {fmt(last_map)}" if last_map and math.prod(last_map) == feats else ""
        return (f"{base}: it expects {hyper['in_features']} features, "
                f"the flattened map has {feats}{origin}")
    if "in_channels" in hyper and got and len(got) == 4:
        return (f"{base}: it expects {hyper['in_channels']} input channels, "
                f"its input has {got[1]} ({fmt(got[1:])})")
    return f"{base}: {reason}"
