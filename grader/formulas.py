"""The arithmetic of CNN layers: output sizes and parameter counts.

Pure functions with no torch import, so the parent process can derive every
expected number from a spec's hyperparameters (and explain it in feedback)
without ever running student code.
"""
from __future__ import annotations

import math


def conv_output_size(i: int, k: int, p: int = 0, s: int = 1, d: int = 1) -> int:
    """O = floor((I + 2P - D(K-1) - 1) / S) + 1, i.e. (I - K + 2P)/S + 1 when D = 1."""
    return (i + 2 * p - d * (k - 1) - 1) // s + 1


def pool_output_size(i: int, k: int, p: int = 0, s: int | None = None, d: int = 1,
                     ceil_mode: bool = False) -> int:
    """Pooling uses the convolution formula; ceil_mode rounds up, but the last window
    must still start inside the (left-padded) input, as PyTorch requires."""
    s = k if s is None else s
    span = i + 2 * p - d * (k - 1) - 1
    if not ceil_mode:
        return span // s + 1
    o = math.ceil(span / s) + 1
    if (o - 1) * s >= i + p:
        o -= 1
    return o


def conv_transpose_output_size(i: int, k: int, p: int = 0, s: int = 1, d: int = 1,
                               output_padding: int = 0) -> int:
    """O = (I - 1)S - 2P + D(K-1) + output_padding + 1."""
    return (i - 1) * s - 2 * p + d * (k - 1) + output_padding + 1


def conv_params(c_in: int, c_out: int, k: int | tuple[int, int], groups: int = 1,
                bias: bool = True) -> int:
    """(K*K*Cin/groups + 1) * Cout: one K x K filter per input map, per output map."""
    kh, kw = pair(k)
    return (kh * kw * (c_in // groups) + (1 if bias else 0)) * c_out


def linear_params(n_in: int, n_out: int, bias: bool = True) -> int:
    """(in + 1) * out: one weight per connection plus one bias per output."""
    return (n_in + (1 if bias else 0)) * n_out


def batchnorm_params(channels: int) -> int:
    """Batch normalisation learns a scale and a shift per channel; its running mean and
    variance are buffers (statistics it keeps), not parameters."""
    return 2 * channels


def subsample_params(channels: int) -> int:
    """LeNet-5's trainable subsampling: one coefficient and one bias per map."""
    return 2 * channels


def pair(v: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """Accept PyTorch's int-or-pair hyperparameters."""
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


def conv_formula_text(i: int, k: int, p: int, s: int, d: int = 1) -> str:
    """The output-size formula with the numbers filled in, as shown to students."""
    o = conv_output_size(i, k, p, s, d)
    if d == 1:
        inner = f"({i} - {k} + 2*{p})/{s}"
        exact = (i - k + 2 * p) % s == 0
    else:
        inner = f"({i} + 2*{p} - {d}*({k}-1) - 1)/{s}"
        exact = (i + 2 * p - d * (k - 1) - 1) % s == 0
    # a stride that does not divide evenly drops the last positions: show the floor then
    return f"O = {inner} + 1 = {o}" if exact else f"O = floor({inner}) + 1 = {o}"


def conv_transpose_formula_text(i: int, k: int, p: int, s: int, d: int = 1,
                                output_padding: int = 0) -> str:
    o = conv_transpose_output_size(i, k, p, s, d, output_padding)
    dk = f"{k}" if d == 1 else f"{d}*({k}-1)+1"
    extra = f" + {output_padding}" if output_padding else ""
    return f"O = ({i}-1)*{s} - 2*{p} + {dk}{extra} = {o}"
