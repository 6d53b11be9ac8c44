"""The course's reference functions: what a correct answer to each function case is.

A leaf module (formulas and, lazily, torch only): the spec reader checks that
a case names a known reference, and the functions check computes expected
values with them, in the grading parent, on the same inputs the worker got.
torch is imported only when a reference runs, so the shapes/params path of
the parent never loads it.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from . import formulas


def torch_module():
    """torch, imported on first use."""
    import torch

    return torch


def _F():
    import torch.nn.functional as F

    return F


def _conv_output_size(I, K, P=0, S=1):
    return formulas.conv_output_size(I, K, P, S)


def _output_length(N, K, mode):
    padding = {"valid": 0, "same": (K - 1) // 2, "full": K - 1}[mode]
    return formulas.conv_output_size(N, K, padding, 1)


def _repeated_sizes(N, K, times):
    sizes = []
    for _ in range(times):
        N = formulas.conv_output_size(N, K)
        sizes.append(N)
    return sizes


def _conv2d(x, weight, bias=None, stride=1, padding=0):
    return _F().conv2d(x, weight, bias, stride=stride, padding=padding)


def _match_map(image, kernel, padding=0):
    out = _F().conv2d(image[None, None], kernel[None, None], padding=padding)[0, 0]
    return out / kernel.numel()


def _max_pool2d(x, kernel_size=2, stride=None):
    return _F().max_pool2d(x, kernel_size, stride or kernel_size)


def _avg_pool2d(x, kernel_size=2, stride=None):
    return _F().avg_pool2d(x, kernel_size, stride or kernel_size)


def _pool_output_shape(shape, kernel_size=2, stride=None):
    n, c, h, w = shape
    s = stride or kernel_size
    return (n, c, formulas.pool_output_size(h, kernel_size, 0, s),
            formulas.pool_output_size(w, kernel_size, 0, s))


def _entropy_bits(p):
    return torch_module().special.entr(p).sum(-1) / math.log(2)


def _cross_entropy_bits(p, q):
    return -torch_module().xlogy(p, q).sum(-1) / math.log(2)


def _kl_divergence_bits(p, q):
    torch = torch_module()
    return (torch.xlogy(p, p) - torch.xlogy(p, q)).sum(-1) / math.log(2)


def _count_parameters(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _patch_positions(row, col, width, size=3):
    return [(row + i) * width + col + j for i in range(size) for j in range(size)]


REFERENCES: dict[str, Callable[..., Any]] = {
    "conv_output_size": _conv_output_size,
    "output_length": _output_length,
    "repeated_sizes": _repeated_sizes,
    "conv2d": _conv2d,
    "match_map": _match_map,
    "max_pool2d": _max_pool2d,
    "avg_pool2d": _avg_pool2d,
    "pool_output_shape": _pool_output_shape,
    "softmax": lambda z: torch_module().softmax(z, dim=-1),
    "entropy_bits": _entropy_bits,
    "cross_entropy_bits": _cross_entropy_bits,
    "kl_divergence_bits": _kl_divergence_bits,
    "loss_for_label": lambda probs, label: -math.log(float(probs[label])),
    "cross_entropy": lambda logits, targets: _F().cross_entropy(logits, targets),
    "relu": lambda x: _F().relu(x),
    "leaky_relu": lambda x, negative_slope=0.01: _F().leaky_relu(x, negative_slope),
    "count_parameters": _count_parameters,
    "linear_params": lambda n_in, n_out, bias=True: formulas.linear_params(n_in, n_out, bias),
    "conv_params": lambda kernel_size, in_channels, out_channels, bias=True:
        formulas.conv_params(in_channels, out_channels, kernel_size, 1, bias),
    "flatten_images": lambda x: torch_module().flatten(x, 1),
    "flat_position": lambda row, col, width: row * width + col,
    "patch_positions": _patch_positions,
}
