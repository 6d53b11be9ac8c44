"""Pair each layer the spec expects with a layer the student's forward pass ran.

The pairing is an alignment of two sequences, as `diff` aligns lines: the
spec's layers in order, and the student's layers in call order. A dynamic
program finds the cheapest alignment, where pairing two layers of compatible
kinds costs little (less when their hyperparameters agree, less still when
the student kept the skeleton's name), and leaving a layer out on either side
costs more. So a missing, extra or substituted layer is one gap at its own
place, and every other layer is paired with its true counterpart whatever
the student named it (`nn.Sequential` indices, functional calls, renamed
attributes) and however the modules are shared (one pooling module used twice
is two calls, two layers).

A custom module whose insides are all one kind of layer is that layer: LeNet's
C3 (16 small convolutions), a subclass of `nn.Conv2d` with a forward of its
own, a trainable subsampling module around `F.avg_pool2d`. It is judged by
what it computes (the calls it made), never by its class name.

Equivalent forms (FORMS) pair a window of spec layers with a window of student
layers that computes the same function: C5 of LeNet-5 as `Linear(400, 120)`
after the flatten, instead of a 5x5 convolution before it. The spec decides
what such a form earns (`accept_forms`); by default the full credit, named in
the feedback.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .. import formulas
from ..forms import FORMS
from ..records import Event, Module
from ..spec import ExpectedLayer, FormSpec

COMPATIBLE = {
    "conv2d": {"conv2d"}, "conv_transpose2d": {"conv_transpose2d"}, "linear": {"linear"},
    "flatten": {"flatten"}, "maxpool2d": {"maxpool2d", "avgpool2d"},
    "avgpool2d": {"avgpool2d", "maxpool2d"}, "subsample": {"custom", "avgpool2d", "maxpool2d"},
    # issue 14 (cifar10_vgg): layers that keep the shape; matched like the others
    "batchnorm2d": {"norm"}, "dropout": {"dropout"},
}
LAYER_CATEGORIES = {"conv2d", "conv_transpose2d", "linear", "flatten", "maxpool2d", "avgpool2d",
                    "custom"}
WEIGHTED = {"conv2d", "conv_transpose2d", "linear"}
# Shape-keeping layers a spec may name (batch norm, dropout): candidates for matching, but
# left out of LAYER_CATEGORIES so that a block of conv + batch norm still collapses to a conv.
SHAPE_KEEPING_CATEGORIES = {"norm", "dropout"}
ACTIVATIONS = {"relu", "leaky_relu", "tanh", "sigmoid", "gelu", "elu"}
COMPARED = ("kernel_size", "stride", "padding", "out_channels", "out_features")

# Costs of the alignment. A paired layer always costs less than leaving both out
# (MISSING + EXTRA), so a layer with wrong hyperparameters is paired and explained,
# not reported as missing; a kept skeleton name outweighs any disagreement of numbers
# (a U-Net's up2 written with up1's kernel is still up2).
MISSING, EXTRA = 1.0, 1.0
PER_DIFFERENCE, MAX_DIFFERENCES = 0.25, 1.5
NAME_BONUS = 1.0
FORM_COST = 0.1
MAX_PARTS = 64                  # layers remembered inside one custom module


@dataclass(frozen=True)
class Match:
    """One spec layer and the student's layer paired with it (None: missing)."""

    expected: ExpectedLayer
    event: Event | None
    how: str = ""                     # "name" | "order" | "form"
    form: FormSpec | None = None      # the equivalent form this pairing used

    @property
    def found(self) -> bool:
        return self.event is not None

    @property
    def credit(self) -> float:
        """The share of this layer's credit its form earns (1 without a form)."""
        return 1.0 if self.form is None else self.form.credit


@dataclass(frozen=True)
class Alignment:
    matches: list[Match]
    extra: list[Event]                # student layers the spec has no place for
    layers: list[Event]               # every student layer, in call order


# ---------------------------------------------------------------- the student's layers

def student_layers(events: list[Event]) -> list[Event]:
    """Layer-like events in call order; a custom module made of one kind of layer is one
    layer of that kind (with the hyperparameters its calls agree on).

    One pass with a stack of open modules; what a module ran is handed to its parent
    when it closes, so the pass is linear in the number of events.
    """
    inner: dict[int, list[Event]] = {}        # module event index -> layer events inside it
    stack: list[Event] = []

    def close() -> None:
        done = stack.pop()
        if stack:
            into = inner.setdefault(stack[-1].index, [])
            into.extend(inner.get(done.index, [])[:MAX_PARTS - len(into)])

    for e in events:
        while stack and not within(e, stack[-1].path):
            close()
        if stack and e.category in LAYER_CATEGORIES and e.category != "custom":
            into = inner.setdefault(stack[-1].index, [])
            if len(into) < MAX_PARTS:
                into.append(e)
        if e.kind == "module" and e.category in ("custom", "container"):
            stack.append(e)
    while stack:
        close()
    return _collapse(events, inner)


def _collapse(events: list[Event], inner: dict[int, list[Event]]) -> list[Event]:
    out: list[Event] = []
    collapsed: str | None = None
    for e in events:
        if collapsed is not None and within(e, collapsed):
            continue
        collapsed = None
        parts = inner.get(e.index, [])
        if e.kind == "module" and e.category == "custom" and len({p.category for p in parts}) == 1:
            out.append(_as_one_layer(e, parts))
            collapsed = e.path
        elif e.category in SHAPE_KEEPING_CATEGORIES or (
                e.category in LAYER_CATEGORIES and not (e.category == "custom" and parts)):
            out.append(e)
    return out


def _as_one_layer(module: Event, parts: list[Event]) -> Event:
    """A custom module judged by the one kind of layer it runs inside."""
    kind = parts[0].category
    hyper = {k: v for k, v in parts[0].hyper.items()
             if all(p.hyper.get(k) == v for p in parts[1:])}
    if kind in ("conv2d", "conv_transpose2d"):
        if module.in_shape and len(module.in_shape) == 4:
            hyper["in_channels"] = module.in_shape[1]
        if module.out_shape and len(module.out_shape) == 4:
            hyper["out_channels"] = module.out_shape[1]
    return replace(module, category=kind, hyper=hyper)


def within(event: Event, path: str) -> bool:
    """Whether an event ran inside the module at `path` (a later call of that same module
    is not inside it: a shared module's calls are layers of their own)."""
    if event.kind == "module":
        return event.path.startswith(path + ".") if path else True
    return event.parent == path or event.parent.startswith(path + ".")


def events_from_modules(modules: list[Module], first_index: int) -> list[Event]:
    """Stand-in events in definition order, for modules the forward pass never reached."""
    return [Event(first_index + i, "module", m.path, m.path.rpartition(".")[0], m.category,
                  m.cls, m.hyper, None, None)
            for i, m in enumerate(x for x in modules if x.path)]


# ---------------------------------------------------------------- equivalent forms

def _window_form(spec: list[ExpectedLayer], student: list[Event]) -> FormSpec | None:
    """The spec's terms for a form that pairs these windows, if one does and earns credit
    (a form the spec does not mention earns full credit, with a note)."""
    for form in FORMS.values():
        if tuple(x.spec.type for x in spec) != form.spec_types or \
                tuple(e.category for e in student) != form.student_kinds:
            continue
        terms = next((f for f in spec[form.target].spec.accept_forms if f.form == form.name),
                     FormSpec(form.name, 1.0, form.note))
        if terms.credit > 0 and form.applies(spec, student):
            return terms
    return None


# ---------------------------------------------------------------- the alignment

def match_layers(expected: list[ExpectedLayer], events: list[Event]) -> Alignment:
    """The cheapest alignment of the spec's layers with the student's (see the module doc)."""
    layers = student_layers(events)
    n, m = len(expected), len(layers)
    inf = float("inf")
    cost = [[inf] * (m + 1) for _ in range(n + 1)]
    move: list[list[tuple[str, FormSpec | None]]] = [[("", None)] * (m + 1) for _ in range(n + 1)]
    cost[0][0] = 0.0
    for i in range(n + 1):
        for j in range(m + 1):
            here = cost[i][j]
            if here == inf:
                continue
            _relax(cost, move, i + 1, j, here + MISSING, ("missing", None))
            _relax(cost, move, i, j + 1, here + EXTRA, ("extra", None))
            if i < n and j < m:
                pair = pair_cost(expected[i], layers[j])
                if pair is not None:
                    _relax(cost, move, i + 1, j + 1, here + pair, ("pair", None))
            if i + 2 <= n and j + 2 <= m:
                form = _window_form(expected[i:i + 2], layers[j:j + 2])
                if form is not None:
                    _relax(cost, move, i + 2, j + 2, here + FORM_COST, ("form", form))
    return _trace_back(expected, layers, move)


def _relax(cost, move, i, j, value, step) -> None:
    if i < len(cost) and j < len(cost[0]) and value < cost[i][j]:
        cost[i][j], move[i][j] = value, step


def pair_cost(x: ExpectedLayer, e: Event) -> float | None:
    """What pairing spec layer `x` with student layer `e` costs; None where the kinds
    cannot be the same layer."""
    if e.category not in COMPATIBLE[x.spec.type] and not _unknown(e):
        return None
    differences = sum(differs(e.hyper, x.spec.hp, key) for key in COMPARED)
    if _unknown(e) and e.in_shape:   # all it shows is what it was given
        differences += tuple(e.in_shape[1:]) != tuple(x.in_shape)
    pool_kind = x.spec.type in ("maxpool2d", "avgpool2d") and e.category != x.spec.type
    value = min(MAX_DIFFERENCES, PER_DIFFERENCE * (differences + pool_kind))
    return value - NAME_BONUS if named(x, e) else value


def _unknown(e: Event) -> bool:
    """A custom module that never finished (the forward stopped inside it, or never reached
    it) has not run what would say which layer it is: LeNet-5's C3 stopped before its
    convolution looks like a custom subsampling layer. It may pair with any spec layer;
    its name, the input it was given and its place decide which."""
    return e.category == "custom" and e.out_shape is None


def named(x: ExpectedLayer, e: Event) -> bool:
    return bool(e.path) and (e.path == x.spec.name or e.path.endswith("." + x.spec.name))


def differs(hp: dict, want: dict, key: str) -> bool:
    """Whether a hyperparameter both sides state differs (5 and (5, 5) are the same; a
    pooling stride left out is its kernel size, as in PyTorch)."""
    return key in hp and key in want and _value(hp, key) != _value(want, key)


def _value(hp: dict, key: str):
    v = hp[key]
    if v is None and key == "stride":
        v = hp.get("kernel_size")
    return formulas.pair(v) if isinstance(v, (int, list, tuple)) and not isinstance(v, bool) \
        else v


def _trace_back(expected: list[ExpectedLayer], layers: list[Event], move) -> Alignment:
    i, j = len(expected), len(layers)
    matches: list[Match | None] = [None] * len(expected)
    paired: set[int] = set()
    while i or j:
        step, form = move[i][j]
        if step == "pair":
            i, j = i - 1, j - 1
            e = layers[j]
            matches[i] = Match(expected[i], e, "name" if named(expected[i], e) else "order")
            paired.add(j)
        elif step == "form":
            shape = FORMS[form.form]
            i, j = i - len(shape.spec_types), j - len(shape.student_kinds)
            for a, b in shape.pairs:
                matches[i + a] = Match(expected[i + a], layers[j + b], "form",
                                       form if a == shape.target else None)
                paired.add(j + b)
        elif step == "missing":
            i -= 1
            matches[i] = Match(expected[i], None)
        else:
            j -= 1
    extra = [e for k, e in enumerate(layers) if k not in paired]
    return Alignment([mt for mt in matches if mt is not None], extra, layers)


# ---------------------------------------------------------------- earlier mistakes

def after_a_mistake(alignment: Alignment) -> list[bool]:
    """Per spec layer: whether an earlier layer is already wrong (missing, extra, or with
    an output the spec does not give), which explains an input other than the spec's.

    Only then is a layer judged against what the spec's layer makes of the input it
    really got, so one mistake is reported once. Where nothing before it is wrong, an
    unexpected input is the layer's own business: a U-Net decoder that reads 16 maps
    instead of the 32 of a skip connection has lost the concatenation, and says so.
    """
    extra = sorted(e.index for e in alignment.extra)
    out: list[bool] = []
    wrong = False
    for mt in alignment.matches:
        e = mt.event
        out.append(wrong or (e is not None and bool(extra) and extra[0] < e.index))
        wrong = wrong or e is None or (e.out_shape is not None and not _as_expected(mt))
    return out


def _as_expected(mt: Match) -> bool:
    """Whether a layer's output is the spec's; in an equivalent form's window the layers
    come in another order (the flatten before C5), so there only the values count."""
    got, want = tuple(mt.event.out_shape[1:]), tuple(mt.expected.out_shape)
    return got == want or (mt.how == "form" and (mt.form is None or
                                                 math.prod(got) == math.prod(want)))


# ---------------------------------------------------------------- activations

def activation_after(match: Match, alignment: Alignment, events: list[Event]) -> str | None:
    """The first activation applied between this layer and the next layer with weights.

    Pooling or flattening in between is fine: relu(pool(x)) equals pool(relu(x)).
    """
    start = match.event.index
    stop = min((e.index for e in alignment.layers if e.index > start and e.category in WEIGHTED),
               default=len(events))
    for e in events:
        if start < e.index < stop and e.category in ACTIVATIONS:
            return e.category
    return None
