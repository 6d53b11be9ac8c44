"""The layer arithmetic, checked against PyTorch itself and against the course's numbers."""
from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from conftest import ASSIGNMENTS
from grader import formulas
from grader.spec import expected_shapes, load_spec


@pytest.mark.parametrize("i,k,p,s,d", [(i, k, p, s, d) for i, k, p, s, d in
                                        itertools.product([5, 14, 32], [1, 3, 5], [0, 1, 2], [1, 2, 3], [1, 2])
                                        if i + 2 * p >= d * (k - 1) + 1])
def test_conv_output_size_matches_torch(i, k, p, s, d):
    out = nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d)(torch.zeros(1, 1, i, i))
    assert formulas.conv_output_size(i, k, p, s, d) == out.shape[-1]


@pytest.mark.parametrize("i,k,s,p,ceil", [(i, k, s, p, c) for i, k, s, p, c in
                                          itertools.product([5, 7, 14, 15], [2, 3], [1, 2, 3], [0, 1], [False, True])
                                          if p <= k // 2])
def test_pool_output_size_matches_torch(i, k, s, p, ceil):
    out = nn.MaxPool2d(k, stride=s, padding=p, ceil_mode=ceil)(torch.zeros(1, 1, i, i))
    assert formulas.pool_output_size(i, k, p, s, 1, ceil) == out.shape[-1]


@pytest.mark.parametrize("i,k,p,s,op", [(4, 2, 0, 2, 0), (8, 4, 1, 2, 0), (5, 3, 1, 2, 1), (7, 6, 2, 4, 0)])
def test_conv_transpose_output_size_matches_torch(i, k, p, s, op):
    layer = nn.ConvTranspose2d(1, 1, k, stride=s, padding=p, output_padding=op)
    assert formulas.conv_transpose_output_size(i, k, p, s, 1, op) == layer(torch.zeros(1, 1, i, i)).shape[-1]


def test_param_formulas_match_torch():
    assert formulas.conv_params(3, 6, 5) == sum(p.numel() for p in nn.Conv2d(3, 6, 5).parameters())
    assert formulas.conv_params(4, 8, 3, groups=2, bias=False) == \
        sum(p.numel() for p in nn.Conv2d(4, 8, 3, groups=2, bias=False).parameters())
    assert formulas.linear_params(400, 120) == sum(p.numel() for p in nn.Linear(400, 120).parameters())


def test_formula_text_shows_the_numbers():
    assert formulas.conv_formula_text(14, 3, 0, 1) == "O = (14 - 3 + 2*0)/1 + 1 = 12"
    assert formulas.conv_transpose_formula_text(8, 4, 1, 2) == "O = (8-1)*2 - 2*1 + 4 = 16"


def test_formula_text_shows_the_floor_when_the_stride_does_not_divide():
    # Fashion-MNIST's stride-2 convolutions: 28 -> 13 -> 6 -> 2
    assert formulas.conv_formula_text(28, 3, 0, 2) == "O = floor((28 - 3 + 2*0)/2) + 1 = 13"
    assert formulas.conv_formula_text(13, 3, 0, 2) == "O = (13 - 3 + 2*0)/2 + 1 = 6"
    assert formulas.conv_formula_text(6, 3, 0, 2) == "O = floor((6 - 3 + 2*0)/2) + 1 = 2"
    assert formulas.conv_formula_text(8, 3, 1, 2, d=2) == "O = floor((8 + 2*1 - 2*(3-1) - 1)/2) + 1 = 3"


def test_cifar10_lab_numbers_follow_from_the_formulas():
    """The spec's derived shapes and counts, against the formulas worked by hand here."""
    spec = load_spec(ASSIGNMENTS / "cifar10_cnn" / "spec.yaml")
    layers = expected_shapes(spec)
    c1 = (32 - 5 + 2 * 0) // 1 + 1                       # 28
    p1 = (c1 - 2) // 2 + 1                               # 14
    c2 = (p1 - 5 + 2 * 0) // 1 + 1                       # 10
    p2 = (c2 - 2) // 2 + 1                               # 5
    assert [x.out_shape for x in layers] == [
        (6, c1, c1), (6, p1, p1), (16, c2, c2), (16, p2, p2), (16 * p2 * p2,), (120,), (84,), (10,)]
    assert (c1, p1, c2, p2, 16 * p2 * p2) == (28, 14, 10, 5, 400)
    params = [(5 * 5 * 3 + 1) * 6, (5 * 5 * 6 + 1) * 16, (400 + 1) * 120, (120 + 1) * 84,
              (84 + 1) * 10]
    assert params == [456, 2416, 48120, 10164, 850]
    assert [x.params for x in layers if x.params] == params
    assert sum(params) == 62006


def test_lenet5_numbers_follow_from_the_formulas():
    spec = load_spec(ASSIGNMENTS / "lenet5_mnist" / "spec.yaml")
    by_name = {x.spec.name: x for x in expected_shapes(spec)}
    table = [3] * 6 + [4] * 9 + [6]                      # inputs per C3 map (LeCun 1998, Table I)
    c3 = sum((5 * 5 * n + 1) * 1 for n in table)
    expected = {"c1": (5 * 5 * 1 + 1) * 6, "s2": (1 + 1) * 6, "c3": c3, "s4": (1 + 1) * 16,
                "c5": (5 * 5 * 16 + 1) * 120, "f6": (120 + 1) * 84, "output": (84 + 1) * 10}
    assert expected == {"c1": 156, "s2": 12, "c3": 1516, "s4": 32, "c5": 48120, "f6": 10164, "output": 850}
    assert {n: by_name[n].params for n in expected} == expected
    assert formulas.conv_params(6, 16, 5) == (5 * 5 * 6 + 1) * 16 == 2416   # the half-credited C3
    assert by_name["c5"].out_shape == (120, (5 - 5) // 1 + 1, (5 - 5) // 1 + 1)   # 120x1x1
