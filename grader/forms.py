"""Equivalent forms: other ways of writing a spec layer that compute the same function.

The most common in real code: LeNet-5's C5 is a 5x5 convolution on a 5x5 map
(120x1x1, then flattened), and most tutorials write it as a flatten followed
by `nn.Linear(400, 120)`: the same 48,120 parameters, the same function. The
alignment (grader/checks/matching.py) pairs such windows of layers; the spec
decides what a form earns (`accept_forms`), by default full credit with the
note below. A leaf module, so that the spec reader can validate form names.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from .records import Event
    from .spec import ExpectedLayer


@dataclass(frozen=True)
class Form:
    """A window of student layers that computes what a window of spec layers computes."""

    name: str
    spec_types: tuple[str, ...]
    student_kinds: tuple[str, ...]
    applies: Callable[[list[ExpectedLayer], list[Event]], bool]
    pairs: tuple[tuple[int, int], ...]   # (spec offset, student offset) in the windows
    target: int                           # the spec layer the form stands in for
    note: str


def _conv_as_linear(spec: list[ExpectedLayer], student: list[Event]) -> bool:
    """A convolution whose kernel covers its whole input map, then a flatten, is a flatten,
    then a Linear(C*K*K, out_channels): the same weights in another order.

    Only the structure decides the pairing (the spec's convolution ends at 1x1, the
    Linear has its out_channels); whether the Linear reads the right number of features
    is judged afterwards, like any layer's numbers, so a wrong in_features is reported
    at C5, not as a missing C5 and a wrong F6.
    """
    conv, linear = spec[0], student[1]
    hp = conv.spec.hp
    return (conv.out_shape[1:] == (1, 1) and hp["padding"] == 0 and hp["groups"] == 1
            and linear.hyper.get("out_features") == hp["out_channels"])


FORMS = {f.name: f for f in (
    Form("linear", ("conv2d", "flatten"), ("flatten", "linear"), _conv_as_linear,
         pairs=((0, 1), (1, 0)), target=0,
         note="a Linear on the flattened map; where the kernel covers the whole map, that "
              "computes what the convolution does, with the same parameters"),
)}
