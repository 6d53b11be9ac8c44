"""Params: does each layer learn as many numbers as the spec's formula says?

Counts come from the parameter tensors found in the module tree itself (the
worker reads `_parameters` directly), never from a method a submission could
override. Feedback writes out the formula, e.g. (5*5*3 + 1)*6 = 456.
"""
from __future__ import annotations

from typing import Any

from .. import formulas
from ..measurements import Measurements
from ..records import Event, Module
from ..results import CheckResult, score_fraction, status_for
from ..spec import CheckSpec, ExpectedLayer, Spec, expected_shapes
from .matching import Match, after_a_mistake, events_from_modules, match_layers


def run(check: CheckSpec, spec: Spec, m: Measurements) -> CheckResult:
    expected = expected_shapes(spec)
    if not m.ok("model"):
        return CheckResult(check.id, "params", 0.0, check.points, "error",
                           f"No parameters could be counted: {m.blocker('model')}",
                           {"layers": [], "expected_total": sum(x.params for x in expected)})
    modules = m.record("model").modules
    counts = _subtree_counts(modules)
    probe = m.record("probe")
    events = list(probe.events) if probe is not None else []
    called = {e.path for e in events}
    # modules the forward never reached (it crashed, or never calls them) still have parameters
    events += events_from_modules([mod for mod in modules if mod.path not in called], len(events))
    alignment = match_layers(expected, events)
    rows = [_row(mt, counts, drift)
            for mt, drift in zip(alignment.matches, after_a_mistake(alignment))
            if mt.expected.params or _has_params(mt, counts)]
    total, want_total = counts.get("", 0), sum(x.params for x in expected)
    total_row = {"name": "total", "expected": want_total, "got": total,
                 "credit": 1.0 if total == want_total else 0.0,
                 "message": f"total: {total:,} parameters, expected {want_total:,}"}
    if total == want_total:
        total_row["message"] += " ✓"
    credits = [r["credit"] for r in rows] + [total_row["credit"]]
    score = score_fraction(check.points, sum(credits) / len(credits))
    lines = [r["message"] for r in rows if r["credit"] < 1] + \
            ([total_row["message"]] if total_row["credit"] < 1 else [])
    good = sum(1 for r in rows if r["credit"] == 1)
    header = f"{good} of {len(rows)} layers have the expected parameter count; " \
             f"total {total:,} (expected {want_total:,})."
    return CheckResult(check.id, "params", score, check.points, status_for(score, check.points),
                       "\n".join([header, *lines]),
                       {"layers": rows, "total": total, "expected_total": want_total})


def _subtree_counts(modules: tuple[Module, ...]) -> dict[str, int]:
    """Parameters per module path including its children ('' is the whole model), in one
    pass: each module's own count is added to every module above it."""
    counts: dict[str, int] = {}
    for mod in modules:
        counts.setdefault(mod.path, 0)
        own = sum(p.numel for p in mod.params)
        path = mod.path
        while True:
            counts[path] = counts.get(path, 0) + own
            if not path:
                break
            path = path.rpartition(".")[0]
    return counts


def _has_params(mt: Match, counts: dict[str, int]) -> bool:
    return bool(mt.event) and _got(mt, counts) > 0


def _got(mt: Match, counts: dict[str, int]) -> int:
    e = mt.event
    return counts.get(e.path, 0) if e.kind == "module" else e.params


def _row(mt: Match, counts: dict[str, int], drift: bool) -> dict[str, Any]:
    x = mt.expected
    want = x.params
    row: dict[str, Any] = {"name": x.spec.name, "expected": want, "got": None, "credit": 0.0,
                           "formula": expected_formula(x)}
    if not mt.found:
        row["message"] = f"{x.spec.name}: not found; expected {row['formula']}"
        return row
    got = row["got"] = _got(mt, counts)
    alt = next((a for a in x.spec.accept_params if a.count == got), None)
    if got == want and mt.form is not None:
        row["credit"] = mt.credit
        row["message"] = f"{x.spec.name}: {row['formula']} ✓ ({mt.form.note})"
    elif got == want:
        row["credit"], row["message"] = 1.0, f"{x.spec.name}: {row['formula']} ✓"
    elif drift and got == _count_here(x, mt.event):
        row["credit"] = 1.0
        row["message"] = (f"{x.spec.name}: {student_formula(mt.event)} ✓ for the input it gets "
                          f"({row['formula']} once the layers before it are right)")
    elif alt:
        row["credit"] = alt.credit
        row["message"] = f"{x.spec.name}: got {got:,}, expected {want:,}; " \
                         f"{alt.note} ({alt.credit:.0%} of this layer's credit)"
    else:
        yours = student_formula(mt.event)
        # a spec's note on the layer (e.g. what a skip connection adds to in_channels) says why
        why = f" ({x.spec.note})" if x.spec.note and x.spec.params is None else ""
        row["message"] = (f"{x.spec.name}: got {got:,} parameters, expected {row['formula']}{why}"
                          + (f"; yours: {yours}" if yours else ""))
    return row


def _count_here(x: ExpectedLayer, e: Event) -> int | None:
    """The spec layer's count for the input this layer really reads (None: not computable),
    so that a layer after a mistake is not counted wrong for its in_channels/in_features."""
    hp, shape = x.spec.hp, e.in_shape
    if x.spec.params is not None or not shape:
        return None
    if x.spec.type in ("conv2d", "conv_transpose2d") and len(shape) == 4:
        return formulas.conv_params(shape[1], hp["out_channels"], hp["kernel_size"],
                                    hp["groups"], hp["bias"])
    if x.spec.type == "linear":
        return formulas.linear_params(shape[-1], hp["out_features"], hp["bias"])
    if x.spec.type == "subsample" and len(shape) == 4:
        return formulas.subsample_params(shape[1])
    return None


def expected_formula(x: ExpectedLayer) -> str:
    hp, t = x.spec.hp, x.spec.type
    if x.spec.params is not None:
        return f"{x.params:,}" + (f" ({x.spec.note})" if x.spec.note else "")
    if t in ("conv2d", "conv_transpose2d"):
        return _conv_text(hp["in_channels"], hp["out_channels"], hp["kernel_size"],
                          hp["groups"], hp["bias"])
    if t == "linear":
        return _linear_text(hp["in_features"], hp["out_features"], hp["bias"])
    if t == "subsample":
        return f"(1 + 1)*{x.in_shape[0]} = {x.params}"
    if t == "batchnorm2d":   # a scale and a shift per channel; running statistics are buffers
        return f"2*{hp['num_features']} = {x.params:,}"
    return "0"


def student_formula(e: Event) -> str:
    hp = e.hyper
    if e.category in ("conv2d", "conv_transpose2d") and "kernel_size" in hp:
        return _conv_text(hp["in_channels"], hp["out_channels"], hp["kernel_size"],
                          hp.get("groups", 1), hp.get("bias", True))
    if e.category == "linear" and "in_features" in hp:
        return _linear_text(hp["in_features"], hp["out_features"], hp.get("bias", True))
    return ""


def _conv_text(cin: int, cout: int, k: Any, groups: int, bias: bool) -> str:
    kh, kw = formulas.pair(k)
    n = formulas.conv_params(cin, cout, k, groups, bias)
    per = f"{kh}*{kw}*{cin // groups}" + (" + 1" if bias else "")
    return f"({per})*{cout} = {n:,}"


def _linear_text(n_in: int, n_out: int, bias: bool) -> str:
    return f"({n_in}{' + 1' if bias else ''})*{n_out} = {formulas.linear_params(n_in, n_out, bias):,}"
