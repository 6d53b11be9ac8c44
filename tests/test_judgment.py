"""The pure checks in-process: alignment, shapes and params on hand-built traces.

Each trace is what the replay worker records for a real way of writing the model
(events in call order, shapes with the batch axis). Expected numbers come from the
course's formulas written out here, never from the grader's own formula module.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from conftest import ASSIGNMENTS
from grader.checks import params, shapes
from grader.checks.matching import match_layers, student_layers
from grader.measurements import Measurements
from grader.records import CrashSite, Event, ModelRecord, Module, Param, ProbeRecord, \
    StageResult, ErrorInfo, Output
from grader.spec import expected_shapes, load_spec
from grader.submission import Source

LAB = load_spec(ASSIGNMENTS / "cifar10_cnn" / "spec.yaml")
LENET = load_spec(ASSIGNMENTS / "lenet5_mnist" / "spec.yaml")
B = 2                                                    # the probe's batch


class Trace:
    """Builds events as the tracer records them: modules, functional calls, nesting."""

    def __init__(self):
        self.events: list[Event] = []
        self.params: dict[str, int] = {}

    def module(self, path, category, cls, hyper, shape_in, shape_out, params=0, parent=""):
        self.events.append(Event(len(self.events), "module", path, parent, category, cls, hyper,
                                 (B, *shape_in), None if shape_out is None else (B, *shape_out)))
        if params:
            self.params[path] = params
        return self

    def call(self, name, category, hyper, shape_in, shape_out, parent="", params=0):
        self.events.append(Event(len(self.events), "function", "", parent, category, name, hyper,
                                 (B, *shape_in), (B, *shape_out), params))
        return self

    def conv(self, path, cin, cout, k, shape_in, shape_out, padding=0, stride=1, **kw):
        hyper = {"in_channels": cin, "out_channels": cout, "kernel_size": [k, k],
                 "stride": [stride, stride], "padding": [padding, padding], "dilation": [1, 1],
                 "groups": 1, "bias": True}
        return self.module(path, "conv2d", "Conv2d", hyper, shape_in, shape_out,
                           (k * k * cin + 1) * cout, **kw)

    def linear(self, path, n_in, n_out, **kw):
        return self.module(path, "linear", "Linear", {"in_features": n_in, "out_features": n_out},
                           (n_in,), (n_out,), (n_in + 1) * n_out, **kw)

    def pool(self, path, shape_in, shape_out, category="maxpool2d", **kw):
        hyper = {"kernel_size": 2, "stride": 2, "padding": 0, "dilation": 1, "ceil_mode": False}
        return self.module(path, category, "MaxPool2d" if category == "maxpool2d" else "AvgPool2d",
                           hyper, shape_in, shape_out, **kw)

    def act(self, name="relu"):
        return self.call(name, name, {}, (1,), (1,))

    def flatten(self, shape_in):
        n = 1
        for v in shape_in:
            n *= v
        return self.call("flatten", "flatten", {}, shape_in, (n,))

    def extend(self, other: "Trace", start: int = 0) -> "Trace":
        """Append another trace's events from `start` on, renumbered, with their parameters."""
        for e in other.events[start:]:
            self.events.append(Event(len(self.events), e.kind, e.path, e.parent, e.category,
                                     e.cls, e.hyper, e.in_shape, e.out_shape, e.params))
            if e.path in other.params:
                self.params[e.path] = other.params[e.path]
        return self

    def measured(self, crash: CrashSite | None = None, output=(10,)) -> Measurements:
        probe = ProbeRecord(tuple(self.events), Output((B, *output), True, "Tensor"), crash)
        error = None if crash is None else ErrorInfo("RuntimeError", "boom")
        modules = (Module("", "Model", "root", {}, (), False),) + tuple(
            Module(p, "X", "conv2d", {}, (Param("weight", (n,), True),), True)
            for p, n in self.params.items())
        m = Measurements(source=Source.__new__(Source))
        m.stages["probe"] = StageResult(crash is None, probe, error)
        m.stages["model"] = StageResult(True, ModelRecord("Model", modules))
        return m


def lab(trace: Trace | None = None, c1=6, relu="relu", pools=("pool1", "pool2")) -> Trace:
    """The lab net: conv(3->6, 5) relu pool conv(6->16, 5) relu pool flatten fc fc fc."""
    t = trace or Trace()
    t.conv("conv1", 3, c1, 5, (3, 32, 32), (c1, 28, 28))
    if relu:
        t.act(relu)
    t.pool(pools[0], (c1, 28, 28), (c1, 14, 14))
    t.conv("conv2", c1, 16, 5, (c1, 14, 14), (16, 10, 10))
    if relu:
        t.act(relu)
    t.pool(pools[1], (16, 10, 10), (16, 5, 5))
    t.flatten((16, 5, 5)).linear("fc1", 400, 120)
    if relu:
        t.act(relu)
    t.linear("fc2", 120, 84)
    if relu:
        t.act(relu)
    return t.linear("fc3", 84, 10)


def grade_shapes(spec, m):
    return shapes.run(next(c for c in spec.checks if c.kind == "shapes"), spec, m)


def grade_params(spec, m):
    return params.run(next(c for c in spec.checks if c.kind == "params"), spec, m)


def rows(result):
    return {r["name"]: r for r in result.details["layers"]}


# ---------------------------------------------------------------- alignment

def test_a_shared_pooling_module_is_two_layers():
    alignment = match_layers(expected_shapes(LAB), lab(pools=("pool", "pool")).events)
    pools = [mt.event for mt in alignment.matches if mt.expected.spec.name.startswith("pool")]
    assert [e.path for e in pools] == ["pool", "pool"] and pools[0].index != pools[1].index
    assert alignment.extra == []


def test_a_missing_layer_is_one_gap_and_the_rest_keep_their_partners():
    t = Trace()
    t.conv("conv1", 3, 6, 5, (3, 32, 32), (6, 28, 28)).act().pool("pool1", (6, 28, 28), (6, 14, 14))
    t.pool("pool2", (6, 14, 14), (6, 7, 7)).flatten((6, 7, 7)).linear("fc1", 294, 120).act()
    t.linear("fc2", 120, 84).act().linear("fc3", 84, 10)
    alignment = match_layers(expected_shapes(LAB), t.events)
    paired = {mt.expected.spec.name: mt.event.path if mt.event else None for mt in alignment.matches}
    assert paired == {"conv1": "conv1", "pool1": "pool1", "conv2": None, "pool2": "pool2",
                      "flatten": "", "fc1": "fc1", "fc2": "fc2", "fc3": "fc3"}


def test_an_extra_layer_is_reported_once_where_it_is():
    t = Trace()
    t.conv("conv1", 3, 6, 5, (3, 32, 32), (6, 28, 28)).act()
    t.conv("extra", 6, 6, 3, (6, 28, 28), (6, 28, 28), padding=1).act()
    t.extend(lab(), start=2)
    alignment = match_layers(expected_shapes(LAB), t.events)
    assert [e.path for e in alignment.extra] == ["extra"]
    assert all(mt.found for mt in alignment.matches)
    result = grade_shapes(LAB, t.measured())
    assert result.score == 4.0          # every spec layer right; the extra one is named once
    assert result.feedback.count("extra conv2d layer extra") == 1


def test_names_win_over_order_but_sequential_indices_pair_by_role():
    t = Trace()
    for e in lab().events:
        path = e.path and f"net.{e.index}"
        t.events.append(Event(e.index, e.kind, path, "net" if e.path else e.parent, e.category,
                              e.cls, e.hyper, e.in_shape, e.out_shape, e.params))
    alignment = match_layers(expected_shapes(LAB), t.events)
    assert [mt.how for mt in alignment.matches] == ["order"] * 8
    assert [mt.event.path for mt in alignment.matches if mt.event.path] == \
        ["net.0", "net.2", "net.3", "net.5", "net.7", "net.9", "net.11"]


def test_a_custom_module_running_one_kind_of_layer_is_that_layer():
    """A subclass of nn.Conv2d with its own forward is replayed as a custom module whose
    forward calls F.conv2d: judged by that call, it is a convolution."""
    t = Trace()
    hyper = {"in_channels": 3, "out_channels": 6, "kernel_size": [5, 5], "stride": 1,
             "padding": 0, "dilation": 1, "groups": 1}
    t.module("features1", "custom", "MaskedConv", {}, (3, 32, 32), (6, 28, 28), params=456)
    t.call("conv2d", "conv2d", hyper, (3, 32, 32), (6, 28, 28), parent="features1")
    t.extend(lab(), start=1)
    layers = student_layers(t.events)
    assert layers[0].category == "conv2d" and layers[0].path == "features1"
    assert layers[0].hyper["kernel_size"] == [5, 5]
    assert grade_shapes(LAB, t.measured()).score == 4.0


def test_scoring_is_linear_in_the_number_of_events():
    """65,000 modules once made matching quadratic; the alignment is spec x events."""
    t = lab()
    for k in range(19_000):
        t.module(f"noise{k}", "custom", "Nothing", {}, (10,), (10,))
    start = time.perf_counter()
    grade_shapes(LAB, t.measured())
    assert time.perf_counter() - start < 30


# ---------------------------------------------------------------- equivalent forms

def lenet_with_c5_as_linear(in_features=400) -> Trace:
    t = Trace()
    t.conv("conv1", 1, 6, 5, (1, 32, 32), (6, 28, 28)).act("tanh")
    t.module("s2", "custom", "Subsample", {}, (6, 28, 28), (6, 14, 14), params=12)
    t.call("avg_pool2d", "avgpool2d", {"kernel_size": 2, "stride": 2, "padding": 0},
           (6, 28, 28), (6, 14, 14), parent="s2")
    t.conv("conv2", 6, 16, 5, (6, 14, 14), (16, 10, 10)).act("tanh")
    t.module("s4", "custom", "Subsample", {}, (16, 10, 10), (16, 5, 5), params=32)
    t.call("avg_pool2d", "avgpool2d", {"kernel_size": 2, "stride": 2, "padding": 0},
           (16, 10, 10), (16, 5, 5), parent="s4")
    t.flatten((16, 5, 5)).linear("fc1", in_features, 120).act("tanh")
    return t.linear("fc2", 120, 84).act("tanh").linear("fc3", 84, 10)


def test_c5_written_as_a_linear_is_c5_with_a_note_and_full_credit():
    m = lenet_with_c5_as_linear().measured()
    result = grade_shapes(LENET, m)
    c5 = rows(result)["c5"]
    assert (c5["matched"], c5["form"], c5["shape_ok"]) == ("fc1", "linear", True)
    assert rows(result)["f6"]["matched"] == "fc2" and rows(result)["output"]["matched"] == "fc3"
    assert result.score == 4.0 and "c5 (fc1): a Linear on the flattened map" in result.feedback
    p = rows(grade_params(LENET, m))
    assert p["c5"]["got"] == (5 * 5 * 16 + 1) * 120 and p["c5"]["credit"] == 1.0
    assert p["f6"]["got"] == (120 + 1) * 84 and p["output"]["got"] == (84 + 1) * 10


def test_a_spec_decides_what_the_form_earns(tmp_path):
    text = (ASSIGNMENTS / "lenet5_mnist" / "spec.yaml").read_text()
    marker = "{name: c5, type: conv2d, in_channels: 16, out_channels: 120, kernel_size: 5, activation: tanh}"
    assert marker in text
    folder = tmp_path / "lenet5_mnist"
    folder.mkdir()
    half = marker[:-1] + ", accept_forms: [{form: linear, credit: 0.5, note: \"C5 is a convolution in 1998\"}]}"
    (folder / "spec.yaml").write_text(text.replace(marker, half))
    spec = load_spec(folder / "spec.yaml")
    result = grade_shapes(spec, lenet_with_c5_as_linear().measured())
    assert rows(result)["c5"]["credit"] == 0.5
    units = 8 + 4                                          # layers + activations
    assert result.score == pytest.approx(4 * (units - 0.5) / units, abs=1e-4)
    assert "C5 is a convolution in 1998 (50% of this layer's credit)" in result.feedback


def test_a_c5_linear_with_the_wrong_input_size_is_blamed_at_c5():
    crash = CrashSite("module", "fc1", "", "Linear", {"in_features": 256, "out_features": 120},
                      ((B, 400),), ("fc1",))
    t = lenet_with_c5_as_linear(in_features=256)
    t.events = t.events[:-4]                               # the forward stopped in fc1
    t.events[-1] = Event(t.events[-1].index, "module", "fc1", "", "linear", "Linear",
                         {"in_features": 256, "out_features": 120}, (B, 400), None)
    result = grade_shapes(LENET, t.measured(crash=crash))
    assert "The forward pass stopped in c5 (fc1), a Linear: it expects 256 features, the " \
           "flattened map has 400 = 16x5x5" in result.feedback
    assert rows(result)["f6"]["how"] == "not reached"


# ---------------------------------------------------------------- verdicts

def test_a_right_shape_stays_right_when_the_activation_is_missing():
    result = grade_shapes(LAB, lab(relu=None).measured())
    layers = rows(result)
    assert all(r["shape_ok"] for r in layers.values())
    assert layers["conv1"]["activation"] == {"expected": "relu", "got": None, "ok": False,
                                             "message": layers["conv1"]["activation"]["message"]}
    assert layers["pool1"]["activation"] is None
    assert result.score == pytest.approx(4 * 8 / 12, abs=1e-4)   # 8 shapes + 0 of 4 activations
    assert result.feedback.startswith("8 of 8 layers have the expected shape; 0 of 4 activations")


def test_tanh_where_relu_is_asked_is_named():
    layers = rows(grade_shapes(LAB, lab(relu="tanh").measured()))
    assert layers["fc1"]["activation"]["got"] == "tanh" and not layers["fc1"]["activation"]["ok"]
    assert layers["fc1"]["shape_ok"]


def test_one_wrong_layer_is_reported_once_and_the_layers_after_it_stay_right():
    """conv1 with 8 maps: conv2 reads 8 maps and makes 16x10x10, as the spec's conv2 would."""
    t = lab(c1=8)
    result = grade_shapes(LAB, t.measured())
    layers = rows(result)
    assert [n for n, r in layers.items() if not r["shape_ok"]] == ["conv1"]
    assert "pool1: 8x14x14 from its 8x28x28 input, as the spec's layer makes it (6x14x14 once " \
           "the layers before it are right)" == layers["pool1"]["message"]
    assert result.score == pytest.approx(4 * 11 / 12, abs=1e-4)


def test_the_crash_site_of_a_shared_module_is_the_call_that_was_running():
    """A pool reused after C5 (a 1x1 map) fails on its third call: that call is an extra
    layer, not S2 (the first call of the same module)."""
    t = Trace()
    t.conv("c1", 1, 6, 5, (1, 32, 32), (6, 28, 28)).act("tanh").pool("pool", (6, 28, 28), (6, 14, 14))
    t.conv("c3", 6, 16, 5, (6, 14, 14), (16, 10, 10)).act("tanh").pool("pool", (16, 10, 10), (16, 5, 5))
    t.conv("c5", 16, 120, 5, (16, 5, 5), (120, 1, 1)).act("tanh")
    t.pool("pool", (120, 1, 1), None)
    crash = CrashSite("module", "pool", "", "MaxPool2d", {}, ((B, 120, 1, 1),), ("pool",))
    result = grade_shapes(LENET, t.measured(crash=crash))
    assert "The forward pass stopped in the extra layer pool, a MaxPool2d" in result.feedback
    assert rows(result)["s2"]["shape_ok"] and rows(result)["s4"]["shape_ok"]


def test_a_crash_before_any_layer_says_so():
    crash = CrashSite("function", "", "view", "", {}, ((B, 1, 32, 32),), ())
    result = grade_shapes(LENET, Trace().measured(crash=crash))
    assert "The forward pass stopped in a view call before the first layer" in result.feedback
    assert all(r["how"] == "not reached" for r in result.details["layers"])
