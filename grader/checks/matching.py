"""Pair each layer the spec expects with what the student's model actually ran.

First by name (the attribute names the skeleton declares, at any depth:
`c3` matches `c3` and `features.c3`), then, for the rest, by the order of
layer types in the forward pass. That lets `nn.Sequential`, renamed layers and
functional calls all pass when the architecture is right. A custom module
whose insides are all one kind of layer (LeNet's C3 as 16 small convolutions)
counts as one layer of that kind.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..records import Event, Module
from ..spec import ExpectedLayer

COMPATIBLE = {
    "conv2d": {"conv2d"}, "conv_transpose2d": {"conv_transpose2d"}, "linear": {"linear"},
    "flatten": {"flatten"}, "maxpool2d": {"maxpool2d", "avgpool2d"},
    "avgpool2d": {"avgpool2d", "maxpool2d"}, "subsample": {"custom", "avgpool2d", "maxpool2d"},
    # issue 14 (cifar10_vgg): layers that keep the shape; matched like the others
    "batchnorm2d": {"norm"}, "dropout": {"dropout"},
}
LAYER_CATEGORIES = {"conv2d", "conv_transpose2d", "linear", "flatten", "maxpool2d", "avgpool2d",
                    "custom"}
# Shape-keeping layers a spec may name (issue 14): candidates for matching, but left out of
# LAYER_CATEGORIES so that a block of conv + batch norm still collapses as it did before.
SHAPE_KEEPING = {"norm", "dropout"}
ACTIVATIONS = {"relu", "leaky_relu", "tanh", "sigmoid", "gelu", "elu"}


@dataclass
class Match:
    expected: ExpectedLayer
    event: Event | None               # the traced call
    how: str = ""                     # "name" or "order"

    @property
    def found(self) -> bool:
        return self.event is not None


def inside(event: Event, path: str) -> bool:
    """Whether an event ran inside the module at `path` (or is that module)."""
    own = event.path if event.kind == "module" else event.parent
    return own == path or own.startswith(path + ".")


def match_layers(expected: list[ExpectedLayer], events: list[Event]) -> list[Match]:
    matches = [Match(x, _by_name(x.spec.name, events), "name") for x in expected]
    claimed = [m.event.path for m in matches if m.event]
    candidates = [e for e in _candidates(events)
                  if not any(inside(e, p) for p in claimed)]
    cursor = -1
    for m in matches:
        if m.event:
            cursor = max(cursor, m.event.index)
            continue
        allowed = COMPATIBLE[m.expected.spec.type]
        for e in candidates:
            if e.index > cursor and e.category in allowed:
                m.event, m.how, cursor = e, "order", e.index
                break
        else:
            m.how = ""
    return matches


def _by_name(name: str, events: list[Event]) -> Event | None:
    for e in events:
        if e.kind == "module" and (e.path == name or e.path.endswith("." + name)):
            return e
    return None


def _candidates(events: list[Event]) -> list[Event]:
    """Layer-like events in call order, with one-kind composites collapsed into one event."""
    out: list[Event] = []
    collapsed: list[str] = []
    for e in events:
        if any(inside(e, p) for p in collapsed):
            continue
        if e.kind == "module" and e.category in ("custom", "container"):
            kinds = {d.category for d in events
                     if d is not e and inside(d, e.path) and d.category in LAYER_CATEGORIES}
            if e.category == "custom" and len(kinds) == 1:
                out.append(replace(e, category=kinds.pop()))
                collapsed.append(e.path)
                continue
            if e.category == "container" or kinds:
                continue  # expanded: its children are events of their own
        if e.category in LAYER_CATEGORIES or e.category in SHAPE_KEEPING:
            out.append(e)
    return out


def activation_after(match: Match, matches: list[Match], events: list[Event]) -> str | None:
    """The first activation applied between this layer and the next layer with weights.

    Pooling or flattening in between is fine: relu(pool(x)) equals pool(relu(x)).
    """
    start = match.event.index
    later = [m.event.index for m in matches
             if m.event and m.event.index > start and m.expected.spec.type in
             ("conv2d", "conv_transpose2d", "linear")]
    stop = min(later, default=len(events))
    for e in events[start + 1:stop]:
        if e.category in ACTIVATIONS:
            return e.category
    return None


def events_from_modules(modules: list[Module], first_index: int) -> list[Event]:
    """Stand-in events in definition order, for params when the forward pass never ran."""
    return [Event(first_index + i, "module", m.path, m.path.rpartition(".")[0], m.category,
                  m.cls, m.hyper, None, None)
            for i, m in enumerate(x for x in modules if x.path)]
