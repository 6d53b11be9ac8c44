"""Shapes: does each layer turn its input into the feature map the spec expects?

Expected shapes come from the spec through O = floor((I - K + 2P)/S) + 1 (and
its pooling and transposed-convolution forms). When a layer is off, the
feedback redoes that formula with the student's own numbers and names the
hyperparameter that differs, because that is the mistake to fix.
"""
from __future__ import annotations

import math
from typing import Any

from .. import formulas
from ..measurements import Measurements
from ..records import Event, ProbeRecord
from ..results import CheckResult, score_fraction, status_for
from ..spec import SHAPE_KEEPING, CheckSpec, ExpectedLayer, Spec, expected_shapes
from .matching import Match, activation_after, match_layers

HYPER_LETTERS = (("kernel_size", "K"), ("padding", "P"), ("stride", "S"), ("dilation", "D"))


def fmt(shape: Any) -> str:
    return "x".join(str(v) for v in shape) if shape else "?"


def run(check: CheckSpec, spec: Spec, m: Measurements) -> CheckResult:
    expected = expected_shapes(spec)
    probe: ProbeRecord | None = m.record("probe")
    if probe is None or (not m.ok("probe") and not probe.events):
        return CheckResult(check.id, "shapes", 0.0, check.points, "error",
                           f"No shapes could be measured: {m.blocker('probe')}",
                           {"layers": [_row_unmeasured(x) for x in expected]})
    events = list(probe.events)
    matches = match_layers(expected, events)
    rows = [_row(mt, matches, events) for mt in matches]
    crash = None if m.ok("probe") else crash_message(probe, events, matches, m)
    if crash:
        for row in rows:
            if row["got"] is None:
                row["message"] = f"{row['name']}: not reached (the forward pass stopped before it)"
    passed = sum(r["ok"] for r in rows)
    output_problem = _output_problem(probe, expected) if m.ok("probe") else None
    fraction = passed / len(rows) if rows else 0.0
    if output_problem or crash:
        # a model whose forward does not finish, or returns no usable scores, cannot be
        # trained or used, however right its layers are: one layer's worth is lost
        fraction = min(fraction, (len(rows) - 1) / len(rows))
    score = score_fraction(check.points, fraction)
    lines = [r["message"] for r in rows if not r["ok"] and r["got"] is not None]
    if crash:
        lines.append(crash)  # after the layers: the first wrong layer is usually the cause
    lines += [r["message"] for r in rows if not r["ok"] and r["got"] is None]
    if output_problem:
        lines.append(output_problem)
    header = f"{passed} of {len(rows)} layers have the expected shape."
    feedback = header if not lines else header + "\n" + "\n".join(lines)
    output = probe.output
    return CheckResult(check.id, "shapes", score, check.points, status_for(score, check.points),
                       feedback, {"layers": rows, "crash": crash,
                                  "output": None if output is None else
                                  {"shape": output.shape and list(output.shape),
                                   "finite": output.finite}})


def _row_unmeasured(x: ExpectedLayer) -> dict[str, Any]:
    return {"name": x.spec.name, "type": x.spec.type, "expected_in": list(x.in_shape),
            "expected": list(x.out_shape), "in": None, "got": None, "ok": False,
            "matched": None, "formula": "", "message": f"{x.spec.name}: not measured"}


def _row(mt: Match, matches: list[Match], events: list[dict[str, Any]]) -> dict[str, Any]:
    x = mt.expected
    row = _row_unmeasured(x)
    if not mt.found:
        row["message"] = (f"{x.spec.name}: no {x.spec.type} layer found where the spec expects "
                          f"one (output {fmt(x.out_shape)})")
        return row
    e = mt.event
    got_in = list(e.in_shape[1:]) if e.in_shape else None
    got = list(e.out_shape[1:]) if e.out_shape else None
    label = x.spec.name if mt.how == "name" or not e.path else f"{x.spec.name} ({e.path})"
    if not e.path and mt.how == "order":
        label = f"{x.spec.name} ({e.cls} call)"
    row.update({"in": got_in, "got": got, "matched": e.path or e.cls, "how": mt.how,
                "class": e.cls, "formula": _formula(x, e, got_in)})
    problems = []
    if got is not None and list(x.out_shape) != got:
        problems.append(_explain_shape(label, x, e, got_in, got))
    if _wrong_pool_kind(x, e):
        problems.append(f"{label}: uses {e.category} where the spec asks for {x.spec.type}")
    if _dropout_on_at_test(x, e):
        problems.append(f"{label}: F.dropout(x, p={e.hyper.get('p', 0.5):g}) still drops values "
                        "in eval mode, because its training argument defaults to True; write "
                        "F.dropout(x, p, training=self.training) or use an nn.Dropout layer")
    if x.spec.activation and got is not None:
        found = activation_after(mt, matches, events)
        row["activation"] = {"expected": x.spec.activation, "found": found}
        if found != x.spec.activation:
            what = f"{found} after it" if found else "no activation after it"
            why = "" if found else " (without one, stacked layers collapse into one linear map)"
            problems.append(f"{label}: {what}; the spec asks for {x.spec.activation}{why}")
    row["ok"] = got is not None and not problems
    row["message"] = "\n".join(problems) if problems else f"{label}: {fmt(got)} as expected"
    return row


def _dropout_on_at_test(x: ExpectedLayer, e: Event) -> bool:
    """The probe runs in eval mode: a functional dropout that was still told training=True
    (F.dropout's default) keeps dropping at test time (issue 14)."""
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
                   got: list[int]) -> str:
    head = f"{label}: got {fmt(got)}, expected {fmt(x.out_shape)}"
    hp, want = e.hyper, x.spec.hp
    if x.spec.type == "flatten":
        return f"{head}: the flattened map has {fmt(got)} features; expected " \
               f"{x.out_shape[0]} = {fmt(x.in_shape)}"
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
    if len(got) == 3 and got[1:] != list(x.out_shape[1:]):
        diffs = [f"{letter}={_hp_text(hp, key)}" for key, letter in HYPER_LETTERS
                 if key in want and key in hp and _norm(hp[key], hp) != _norm(want[key], want)]
        asks = [f"{letter}={_hp_text(want, key)}" for key, letter in HYPER_LETTERS
                if key in want and key in hp and _norm(hp[key], hp) != _norm(want[key], want)]
        if formula and diffs:
            reasons.append(f"{formula} means {', '.join(diffs)}; the spec asks for {', '.join(asks)}")
        elif got_in and list(x.in_shape[1:]) != got_in[1:]:
            reasons.append(f"its input is {fmt(got_in)}, but the spec expects {fmt(x.in_shape)}: "
                           "fix the layers before it first")
        elif formula:
            reasons.append(formula)
    return head + (": " + "; ".join(reasons) if reasons else "")


def _hp_text(hp: dict[str, Any], key: str) -> str:
    v = hp.get(key)
    if key == "stride" and v is None:
        v = hp.get("kernel_size")
    a, b = formulas.pair(v) if not isinstance(v, str) else (v, v)
    return str(a) if a == b else f"{a}x{b}"


def _norm(v: Any, hp: dict[str, Any]) -> Any:
    if v is None:
        v = hp.get("kernel_size")
    return formulas.pair(v) if not isinstance(v, str) else v


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


def crash_message(probe: ProbeRecord, events: list[Event], matches: list[Match],
                  m: Measurements) -> str:
    """Where the forward pass stopped, and which shapes met there."""
    site = probe.crash
    if site is None:
        return f"The forward pass stopped: {m.blocker('probe')}"
    where = site.path or site.name or "forward"
    label = next((mt.expected.spec.name for mt in matches
                  if mt.event and site.path and mt.event.path == site.path), where)
    got = site.inputs[0] if site.inputs and site.inputs[0] else None
    if site.kind == "module" and site.path and site.path not in site.open_modules:
        # The last layer called had already returned: the error came from code after it
        # (e.g. torch.cat of a skip connection whose sizes differ), so do not blame the layer.
        return f"The forward pass stopped after {label}: {m.blocker('probe')}"
    base = f"The forward pass stopped in {label} ({site.cls or site.name or '?'})"
    hyper = site.hyper
    if "in_features" in hyper and got:
        feats = got[-1]
        last_map = next((e.out_shape[1:] for e in reversed(events)
                         if e.out_shape and len(e.out_shape) == 4), None)
        origin = f" = {fmt(last_map)}" if last_map and math.prod(last_map) == feats else ""
        return (f"{base}: {label} expects {hyper['in_features']} features, "
                f"the flattened map has {feats}{origin}")
    if "in_channels" in hyper and got and len(got) == 4:
        return (f"{base}: {label} expects {hyper['in_channels']} input channels, "
                f"its input has {got[1]} ({fmt(got[1:])})")
    return f"{base}: {m.blocker('probe')}"
