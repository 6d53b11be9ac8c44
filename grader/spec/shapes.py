"""Expected shapes: a spec's layers run through the output-size and parameter formulas."""
from __future__ import annotations

from dataclasses import dataclass

from .. import formulas
from ..errors import SpecError
from .types import SHAPE_KEEPING, LayerSpec, Spec


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
    if t in SHAPE_KEEPING:
        if t == "batchnorm2d" and (len(in_shape) != 3 or in_shape[0] != hp["num_features"]):
            raise ValueError(f"{layer.name} (batchnorm2d) normalises {hp['num_features']} "
                             f"channels, but its input is {_fmt(in_shape)}")
        return in_shape
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
