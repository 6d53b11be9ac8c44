"""Every number the four function assignments quote, derived here from its formula.

Each derived number is compared with what the spec expects (so the grader holds students to the
right value), with the README (what students read) and with the reference solution's own
function. The only literals below are the formulas' inputs (28x28 pixels, 512 neurons, a 9x9
image, ...); the results come from the formulas, never from a copy of the spec.
"""
from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch
from torch import nn

from conftest import ASSIGNMENTS, SOLUTIONS
from grader.spec import load_spec


def spec(name):
    return load_spec(ASSIGNMENTS / name / "spec.yaml")


def readme(name) -> str:
    """The README with its line breaks folded, so a phrase is found however it is wrapped."""
    return " ".join((ASSIGNMENTS / name / "README.md").read_text().split())


def solution(name):
    path = SOLUTIONS / name / f"{name}.py"
    module_spec = importlib.util.spec_from_file_location(f"solution_{name}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def case(name, function, *args, label=None, **kwargs):
    """The visible case of `function` called with these plain arguments (or with this label)."""
    found = [c for check in spec(name).checks for c in check.options["cases"]
             if c.function == function and not c.hidden
             and (label in c.label if label else (list(c.args) == list(args) and c.kwargs == kwargs))]
    assert len(found) == 1, f"no single case {function}{args} {kwargs} in {name}"
    return found[0]


def expected(name, function, *args, label=None, **kwargs):
    c = case(name, function, *args, label=label, **kwargs)
    assert c.has_expect
    value = c.expect["tensor"] if isinstance(c.expect, dict) else c.expect
    return value, c


def truncated(x: float, decimals: int) -> float:
    return math.trunc(x * 10 ** decimals) / 10 ** decimals


# ---------------------------------------------------------------- fcn_parameters

def linear_params(n_in, n_out, bias=True):
    return n_in * n_out + (n_out if bias else 0)          # one weight per pair, one bias per output


def conv_params(k, c_in, c_out, bias=True):
    return k * k * c_in * c_out + (c_out if bias else 0)  # K*K*C_in weights per filter, one bias


MNIST_PIXELS = 28 * 28
IMAGENET_VALUES = 224 * 224 * 3


@pytest.mark.parametrize("n_in,n_out,bias", [(MNIST_PIXELS, 512, True), (IMAGENET_VALUES, 512, True),
                                             (MNIST_PIXELS, 10, False), (120, 84, True)])
def test_linear_layer_counts(n_in, n_out, bias):
    n = linear_params(n_in, n_out, bias)
    kwargs = {} if bias else {"bias": False}
    assert expected("fcn_parameters", "linear_params", n_in, n_out, **kwargs)[0] == n
    assert solution("fcn_parameters").linear_params(n_in, n_out, bias) == n
    layer = nn.Linear(n_in, n_out, bias=bias, device="meta")
    assert sum(p.numel() for p in layer.parameters()) == n   # PyTorch agrees
    assert solution("fcn_parameters").count_parameters(layer) == n
    if n_out == 512 or not bias:
        assert f"{n:,}" in readme("fcn_parameters")


def test_the_big_numbers_of_the_lecture():
    text = readme("fcn_parameters")
    assert f"= {MNIST_PIXELS}" in text
    assert f"= {IMAGENET_VALUES:,}" in text
    assert round(linear_params(IMAGENET_VALUES, 512) / 1e6) == 77 and "77 million" in text
    model = expected("fcn_parameters", "count_parameters", label="224x224 colour")
    assert model[0] == linear_params(IMAGENET_VALUES, 512)
    assert model[1].args[0] == {"model": [["Linear", IMAGENET_VALUES, 512]]}


@pytest.mark.parametrize("k,c_in,c_out,bias", [(5, 1, 64, False), (5, 1, 6, True), (5, 16, 120, True),
                                               (5, 3, 64, False)])
def test_convolution_counts(k, c_in, c_out, bias):
    n = conv_params(k, c_in, c_out, bias)
    kwargs = {} if bias else {"bias": False}
    assert expected("fcn_parameters", "conv_params", k, c_in, c_out, **kwargs)[0] == n
    assert solution("fcn_parameters").conv_params(k, c_in, c_out, bias) == n
    conv = nn.Conv2d(c_in, c_out, k, bias=bias, device="meta")
    assert sum(p.numel() for p in conv.parameters()) == n


def test_fc_against_conv_weights():
    fc, conv = linear_params(MNIST_PIXELS, 10, bias=False), conv_params(5, 1, 64, bias=False)
    text = readme("fcn_parameters")
    assert f"**{fc:,}**" in text and f"**{conv:,}**" in text
    assert expected("fcn_parameters", "count_parameters", label="64 5x5 filters")[0] == conv
    assert expected("fcn_parameters", "count_parameters", label="784 -> 10 without bias")[0] == fc
    assert f"(5*5*1 + 1)*6 = {conv_params(5, 1, 6)}" in text
    assert f"(5*5*16 + 1)*120 = {conv_params(5, 16, 120):,}" in text


def test_what_flattening_does_to_neighbours():
    width = 28
    patch = [(r * width + c) for r in range(3) for c in range(3)]
    assert expected("fcn_parameters", "patch_positions", 0, 0, width)[0] == patch
    assert solution("fcn_parameters").patch_positions(0, 0, width) == patch
    spread = max(patch) - min(patch) + 1
    assert spread == 2 * width + 3 and f"({spread} in a {width}-wide image)" in readme("fcn_parameters")
    assert expected("fcn_parameters", "flat_position", 1, 0, width)[0] == width  # the pixel below
    assert expected("fcn_parameters", "flat_position", width - 1, width - 1, width)[0] == MNIST_PIXELS - 1
    x = torch.randn(2, 1, 28, 28)
    assert solution("fcn_parameters").flatten_images(x).shape == (2, MNIST_PIXELS)


# ---------------------------------------------------------------- conv_arithmetic

def out_size(i, k, p=0, s=1):
    return math.floor((i - k + 2 * p) / s) + 1


def test_every_output_size_case_follows_the_formula():
    sol = solution("conv_arithmetic")
    for c in spec("conv_arithmetic").checks[0].options["cases"]:
        if c.function == "conv_output_size" and c.has_expect:
            assert c.expect == out_size(*c.args) == sol.conv_output_size(*c.args)
    text = readme("conv_arithmetic")
    assert f"a 5x5 kernel give {out_size(32, 5)}" in text
    pooled = out_size(32, 5) // 2
    assert f"({pooled}x{pooled}) a second 5x5 kernel gives {out_size(pooled, 5)}" in text


@pytest.mark.parametrize("n,k", [(9, 3), (32, 5), (7, 7)])
def test_valid_same_full(n, k):
    sizes = {"valid": n - k + 1, "same": n, "full": n + k - 1}
    paddings = {"valid": 0, "same": (k - 1) // 2, "full": k - 1}
    sol = solution("conv_arithmetic")
    for mode, size in sizes.items():
        assert out_size(n, k, paddings[mode]) == size == sol.output_length(n, k, mode)
        if n == 9:
            assert expected("conv_arithmetic", "output_length", n, k, mode)[0] == size
    assert "N - K + 1" in readme("conv_arithmetic") and "N + K - 1" in readme("conv_arithmetic")


def test_repeated_three_by_three_on_nine_by_nine():
    sizes, n = [], 9
    while n > 1:
        n = out_size(n, 3)
        sizes.append(n)
    assert expected("conv_arithmetic", "repeated_sizes", 9, 3, len(sizes))[0] == sizes
    assert solution("conv_arithmetic").repeated_sizes(9, 3, len(sizes)) == sizes
    twice = [out_size(32, 5), out_size(out_size(32, 5), 5)]
    assert expected("conv_arithmetic", "repeated_sizes", 32, 5, 2)[0] == twice
    assert f"gives {twice[0]} and then {twice[1]}" in readme("conv_arithmetic")


def x_image(n=9):
    """-1 everywhere, +1 on both diagonals of the inner 7x7 square."""
    return [[1 if 0 < r < n - 1 and (r == c or r + c == n - 1) else -1 for c in range(n)]
            for r in range(n)]


DIAGONAL = [[1 if r == c else -1 for c in range(3)] for r in range(3)]


def mean_of_products(image, kernel, padding=0):
    n, k = len(image), len(kernel)
    padded = [[0] * (n + 2 * padding) for _ in range(padding)] + \
             [[0] * padding + row + [0] * padding for row in image] + \
             [[0] * (n + 2 * padding) for _ in range(padding)]
    size = out_size(n, k, padding)
    return [[sum(padded[i + a][j + b] * kernel[a][b] for a in range(k) for b in range(k)) / (k * k)
             for j in range(size)] for i in range(size)]


def test_the_x_feature_map():
    value, c = expected("conv_arithmetic", "match_map", label="the lecture's X")
    assert c.args[0]["tensor"] == x_image() and c.args[1]["tensor"] == DIAGONAL
    derived = mean_of_products(x_image(), DIAGONAL)
    assert len(derived) == 7
    # the lecture cuts to two decimals: 7/9 = 0.777... is printed 0.77
    assert value == [[truncated(v, 2) if v >= 0 else -truncated(-v, 2) for v in row] for row in derived]
    assert np.abs(np.array(value) - np.array(derived)).max() <= c.atol
    assert derived[0][0] == 7 / 9 and max(max(r) for r in derived) == 1.0
    assert min(abs(v + 1 / 9) for row in derived for v in row) == 0      # -0.11 occurs
    got = solution("conv_arithmetic").match_map(torch.tensor(x_image(), dtype=torch.float32),
                                                torch.tensor(DIAGONAL, dtype=torch.float32))
    assert np.allclose(got.numpy(), derived, atol=1e-6)
    text = readme("conv_arithmetic")
    for shown in (truncated(7 / 9, 2), 1.0, -truncated(1 / 9, 2)):
        assert f"{shown:.2f}" in text


def test_the_x_with_padding_one():
    padded = mean_of_products(x_image(), DIAGONAL, padding=1)
    assert len(padded) == 9                                   # 'same' size
    assert padded[0][0] == (-1 + 1 + 1 + 1) / 9               # the padded zeros add nothing
    assert f"(-1 + 1 + 1 + 1)/9 = {truncated(padded[0][0], 2)}" in readme("conv_arithmetic")
    assert not case("conv_arithmetic", "match_map", label="padding 1").has_expect  # reference case
    got = solution("conv_arithmetic").match_map(torch.tensor(x_image(), dtype=torch.float32),
                                                torch.tensor(DIAGONAL, dtype=torch.float32), padding=1)
    assert np.allclose(got.numpy(), padded, atol=1e-6)


def test_the_four_by_four_example():
    image = [[10, 20, 30, 40], [0, 1, 0, 1], [30, 0, 10, 20], [0, 10, 20, 30]]
    kernel = [[1, 0], [0, 2]]
    first_row = [sum(image[a][j + b] * kernel[a][b] for a in range(2) for b in range(2)) for j in range(3)]
    c = case("conv_arithmetic", "conv2d", label="4x4 example")
    assert c.args[0]["tensor"] == [[image]] and c.args[1]["tensor"] == [[kernel]]
    assert f"starts {first_row[0]}, {first_row[1]}" in c.label
    assert f"= {first_row[0]}` and then {first_row[1]}" in readme("conv_arithmetic")
    got = solution("conv_arithmetic").conv2d(torch.tensor([[image]], dtype=torch.float32),
                                             torch.tensor([[kernel]], dtype=torch.float32))
    assert got[0, 0, 0].tolist() == first_row


def test_outline_emboss_blur():
    outline = [[8 if (r, c) == (1, 1) else -1 for c in range(3)] for r in range(3)]  # 8 neighbours
    emboss = [[1 if (r, c) == (1, 1) else r + c - 2 for c in range(3)] for r in range(3)]
    binomial = [1, 2, 1]
    blur = [[binomial[r] * binomial[c] / 16 for c in range(3)] for r in range(3)]
    sol = solution("conv_arithmetic")
    for name, kernel, total in (("outline", outline, 0), ("emboss", emboss, 1), ("blur", blur, 1)):
        assert expected("conv_arithmetic", "make_filter", name)[0] == kernel
        assert sol.make_filter(name).tolist() == kernel
        assert sum(map(sum, kernel)) == total
    # on a flat image a kernel gives (sum of the kernel) * value everywhere
    flat, c = expected("conv_arithmetic", "conv2d", label="outline filter on a flat")
    level = c.args[0]["tensor"][0][0][0][0]
    assert flat == [[[[sum(map(sum, outline)) * level] * 3] * 3]]
    kept, c = expected("conv_arithmetic", "conv2d", label="blur filter keeps")
    assert kept == [[[[sum(map(sum, blur)) * c.args[0]["tensor"][0][0][0][0]] * 3] * 3]]


def lecture_pattern(n):
    """The theory lecture's inputs: 1 2 3 0 repeated, each row the one above shifted right."""
    return [[(c - r + 1) % 4 for c in range(n)] for r in range(n)]


LECTURE_FILTER = [[2, 0, 1], [0, 1, 2], [1, 0, 2]]


def correlate(image, kernel, padding=0, stride=1):
    """Sum of products of the kernel with every window (no flip), the definition itself."""
    n, k = len(image), len(kernel)
    side = n + 2 * padding
    padded = [[image[r - padding][c - padding] if 0 <= r - padding < n and 0 <= c - padding < n
               else 0 for c in range(side)] for r in range(side)]
    size = out_size(n, k, padding, stride)
    return [[sum(padded[i * stride + a][j * stride + b] * kernel[a][b]
                 for a in range(k) for b in range(k)) for j in range(size)] for i in range(size)]


def rows_text(grid):
    return " / ".join(" ".join(str(v) for v in row) for row in grid)


def test_the_theory_lectures_worked_example():
    four = lecture_pattern(4)
    plain, same = correlate(four, LECTURE_FILTER), correlate(four, LECTURE_FILTER, padding=1)
    seven = lecture_pattern(7)
    stride2 = correlate(seven, LECTURE_FILTER, stride=2)
    for label, want, image in (("15 16 / 6 15", plain, four), ("the map stays 4x4", same, four),
                               ("7x7 input with stride 2", stride2, seven)):
        value, c = expected("conv_arithmetic", "conv2d", label=label)
        assert value == [[want]] and c.args[0]["tensor"] == [[image]]
        assert c.args[1]["tensor"] == [[LECTURE_FILTER]]
    assert plain == [[15, 16], [6, 15]]               # the lecture's printed map
    assert len(same) == 4 and stride2[0][:2] == [15, 17] and len(stride2) == out_size(7, 3, 0, 2)
    assert len(correlate(seven, LECTURE_FILTER)) == out_size(7, 3) == 5
    text = readme("conv_arithmetic")
    assert f"give the 2x2 map {rows_text(plain)}" in text
    assert f"the map stays 4x4: {rows_text(same)}" in text
    first = " + ".join(f"{four[a][b]}*{LECTURE_FILTER[a][b]}" for a in range(3) for b in range(3))
    assert f"{first} = {plain[0][0]}" in text
    assert f"starts {stride2[0][0]}, {stride2[0][1]}: OH = (7 - 3)/2 + 1 = {out_size(7, 3, 0, 2)}" in text
    got = solution("conv_arithmetic").conv2d(torch.tensor([[seven]], dtype=torch.float32),
                                             torch.tensor([[LECTURE_FILTER]], dtype=torch.float32), stride=2)
    assert got[0, 0].tolist() == stride2


def test_the_non_square_form():
    sol = solution("conv_arithmetic")
    shape_cases = [c for check in spec("conv_arithmetic").checks for c in check.options["cases"]
                   if c.function == "conv_output_shape" and not c.hidden]
    assert len(shape_cases) >= 4
    for c in shape_cases:
        h, w, fh, fw, *rest = c.args
        want = [out_size(h, fh, *rest), out_size(w, fw, *rest)]
        assert list(sol.conv_output_shape(*c.args)) == want
        if c.has_expect:
            assert c.expect == want
    assert f"A 28x32 input and a 5x3 filter give {out_size(28, 5)}x{out_size(32, 3)}" in \
        readme("conv_arithmetic")


# ---------------------------------------------------------------- pooling

def pool_size(i, k=2, s=None):
    return (i - k) // (s or k) + 1


@pytest.mark.parametrize("channels,side", [(6, 28), (16, 10), (1, 100)])
def test_two_by_two_pooling_halves_each_side(channels, side):
    shape = [1, channels, side, side]
    want = [1, channels, pool_size(side), pool_size(side)]
    assert pool_size(side) == side // 2
    assert expected("pooling", "pool_output_shape", shape)[0] == want     # channels unchanged
    assert list(solution("pooling").pool_output_shape(shape)) == want
    assert f"{side}x{side}" in readme("pooling") and f"{side // 2}x{side // 2}" in readme("pooling")


def test_pooling_learns_nothing():
    assert sum(p.numel() for p in nn.MaxPool2d(2).parameters()) == 0
    assert sum(p.numel() for p in nn.AvgPool2d(2).parameters()) == 0
    assert "has 0 parameters" in readme("pooling")


def pool(image, reduce, k=2):
    n = pool_size(len(image), k)
    return [[reduce([image[i * k + a][j * k + b] for a in range(k) for b in range(k)])
             for j in range(n)] for i in range(n)]


def test_pooling_the_small_example():
    image = case("pooling", "max_pool2d", label="a 4x4 map").args[0]["tensor"][0][0]
    assert expected("pooling", "max_pool2d", label="a 4x4 map")[0] == [[pool(image, max)]]
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    assert expected("pooling", "avg_pool2d", label="a 4x4 map")[0] == [[pool(image, mean)]]


def test_max_pooling_ignores_a_one_pixel_shift():
    before = case("pooling", "max_pool2d", label="a strong response at (0, 0)")
    after = case("pooling", "max_pool2d", label="shifted one pixel")
    a, b = (np.array(c.args[0]["tensor"][0][0]) for c in (before, after))
    (r0, c0), (r1, c1) = (np.unravel_index(np.argmax(m), m.shape) for m in (a, b))
    assert (r1 - r0, c1 - c0) == (1, 1) and a.max() == b.max()          # the same spike, moved
    assert pool(a.tolist(), max) == pool(b.tolist(), max)
    assert before.expect == after.expect == {"tensor": [[pool(a.tolist(), max)]]}


# ---------------------------------------------------------------- softmax_cross_entropy

def entropy(p):
    return -sum(x * math.log2(x) for x in p if x > 0)


def cross_entropy(p, q):
    return -sum(x * math.log2(y) for x, y in zip(p, q) if x > 0)


CARS = [1 / 2, 1 / 4, 1 / 8, 1 / 8]
UNIFORM = [1 / 4] * 4


def test_entropy_in_bits():
    sol = solution("softmax_cross_entropy")
    coin = [1 / 2, 1 / 2]
    bits_per_car = [-math.log2(p) for p in CARS]                      # 1, 2, 3, 3 bits
    assert entropy(CARS) == sum(p * b for p, b in zip(CARS, bits_per_car))
    for p, label in ((coin, "a fair coin"), (CARS, "cars seen"), (UNIFORM, "four equally likely")):
        assert expected("softmax_cross_entropy", "entropy_bits", label=label)[0] == entropy(p)
        assert math.isclose(float(sol.entropy_bits(torch.tensor(p))), entropy(p), abs_tol=1e-6)
    assert entropy(UNIFORM) == math.log2(4)
    text = readme("softmax_cross_entropy")
    assert f"**{entropy(coin):g} bit**" in text and f"**{entropy(CARS):g} bits**" in text
    assert f"**{entropy(UNIFORM):g} bits**" in text
    assert expected("softmax_cross_entropy", "entropy_bits", label="sure event")[0] == entropy([1, 0])


def test_cross_entropy_and_kl():
    ce, h = cross_entropy(CARS, UNIFORM), entropy(CARS)
    kl = sum(p * math.log2(p / q) for p, q in zip(CARS, UNIFORM))
    assert math.isclose(kl, ce - h)
    assert expected("softmax_cross_entropy", "cross_entropy_bits", label="uniform 2-bit code")[0] == ce
    assert expected("softmax_cross_entropy", "kl_divergence_bits", label="cross-entropy 2 minus")[0] == kl
    assert expected("softmax_cross_entropy", "kl_divergence_bits", label="against itself")[0] == 0
    text = readme("softmax_cross_entropy")
    assert f"costs **{ce:g} bits** instead of {h:g}" in text and f"= {kl:g} bits here" in text
    sol = solution("softmax_cross_entropy")
    p, q = torch.tensor(CARS), torch.tensor(UNIFORM)
    assert math.isclose(float(sol.kl_divergence_bits(p, q)), kl, abs_tol=1e-6)


@pytest.mark.parametrize("p", [0.9, 0.3, 0.1])
def test_loss_values(p):
    loss = -math.log(p)
    value, c = expected("softmax_cross_entropy", "loss_for_label", label=f"with {p}")
    assert abs(value - loss) <= c.atol <= 1e-4
    assert f"{value:.4f}" in readme("softmax_cross_entropy")
    assert f"{1 - p:g}" in readme("softmax_cross_entropy")                 # the L1 loss beside it
    got = solution("softmax_cross_entropy").loss_for_label(torch.tensor(c.args[0]["tensor"]), 0)
    assert math.isclose(float(got), loss, rel_tol=1e-6)


def test_softmax_and_activations():
    sol = solution("softmax_cross_entropy")
    two = expected("softmax_cross_entropy", "softmax", label="two equal scores")
    assert two[0] == [math.exp(0) / (2 * math.exp(0))] * 2
    x = case("softmax_cross_entropy", "relu", {"tensor": [-2, -0.5, 0, 3]}).args[0]["tensor"]
    assert expected("softmax_cross_entropy", "relu", {"tensor": x})[0] == [max(0, v) for v in x]
    leaky = expected("softmax_cross_entropy", "leaky_relu", label="slope 0.01")[0]
    assert np.allclose(leaky, [max(0.01 * v, v) for v in x])
    assert sol.leaky_relu(torch.tensor(x), 0.01).tolist() == pytest.approx([max(0.01 * v, v) for v in x])


# ---------------------------------------------------------------- the three later model assignments
#
# Sizes come from O = floor((I - K + 2P)/S) + 1 (out_size above) and, for transposed convolutions,
# O = (I - 1)S - 2P + K; parameter counts from conv_params / linear_params above. Each derived
# number is compared with the spec's expected shapes and counts, with the README, and with the
# reference model that PyTorch builds.

def up_size(i, k, p, s):
    return (i - 1) * s - 2 * p + k


def model_solution(name):
    path = SOLUTIONS / name / "model.py"
    module_spec = importlib.util.spec_from_file_location(f"solution_{name}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.Model()


def spec_layers(name):
    from grader.spec import expected_shapes

    return {x.spec.name: x for x in expected_shapes(spec(name))}


def torch_counts(model):
    """Parameters per named child that has any, as PyTorch counts them."""
    counts = {n: sum(p.numel() for p in m.parameters()) for n, m in model.named_children()}
    return {n: c for n, c in counts.items() if c}


def check_counts(name, counts):
    """The derived counts against the spec, the reference model, and the README's table."""
    layers, text = spec_layers(name), readme(name)
    assert {n: layers[n].params for n in counts} == counts
    assert torch_counts(model_solution(name)) == counts
    assert sum(x.params for x in layers.values()) == sum(counts.values())
    for n in counts.values():
        assert f"= {n:,}` |" in text
    assert f"Total: {sum(counts.values()):,} parameters" in text


def test_fashion_mnist_strided_sizes():
    sizes, i = [], 28
    for _ in range(3):
        i = out_size(i, 3, 0, 2)
        sizes.append(i)
    assert sizes == [13, 6, 2]
    flat = 128 * sizes[-1] ** 2
    assert flat == 512
    layers = spec_layers("fashion_mnist_strided")
    assert [layers[n].out_shape for n in ("conv1", "conv2", "conv3", "flatten")] == \
        [(32, sizes[0], sizes[0]), (64, sizes[1], sizes[1]), (128, sizes[2], sizes[2]), (flat,)]
    assert layers["fc1"].spec.hp["in_features"] == flat
    out = model_solution("fashion_mnist_strided").forward(torch.zeros(2, 1, 28, 28))
    assert out.shape == (2, 10)
    text = readme("fashion_mnist_strided")
    assert f"floor((28 - 3 + 2*0)/2) + 1 = floor({(28 - 3) / 2}) + 1 = {sizes[0]}" in text
    assert f"floor(({sizes[1]} - 3 + 2*0)/2) + 1 = floor({(sizes[1] - 3) / 2}) + 1 = {sizes[2]}" in text
    assert f"{flat} = 128*{sizes[2]}*{sizes[2]}" in text
    halved = [28 // 2, 28 // 4, 28 // 8]                  # the mistake the README warns about
    assert f"28, {halved[0]}, {halved[1]}, {halved[2]}" in text
    assert f"128*{halved[2]}*{halved[2]} = {128 * halved[2] ** 2}" in text


def test_fashion_mnist_strided_counts():
    check_counts("fashion_mnist_strided", {
        "conv1": conv_params(3, 1, 32), "conv2": conv_params(3, 32, 64),
        "conv3": conv_params(3, 64, 128), "fc1": linear_params(512, 512), "fc2": linear_params(512, 10)})


def test_cifar10_improved_sizes_and_counts():
    c1 = out_size(32, 5)
    p1 = pool_size(c1)
    c2 = out_size(p1, 5)
    p2 = pool_size(c2)
    assert (c1, p1, c2, p2) == (28, 14, 10, 5)            # the lab net's sizes: only depth changes
    layers = spec_layers("cifar10_improved")
    assert [layers[n].out_shape for n in ("conv1", "pool1", "conv2", "pool2", "flatten")] == \
        [(32, c1, c1), (32, p1, p1), (64, c2, c2), (64, p2, p2), (64 * p2 * p2,)]
    assert 64 * p2 * p2 == 1600 and f"64*{p2}*{p2} = {64 * p2 * p2}" in readme("cifar10_improved")
    counts = {"conv1": conv_params(5, 3, 32), "conv2": conv_params(5, 32, 64),
              "fc1": linear_params(64 * p2 * p2, 120), "fc2": linear_params(120, 84),
              "fc3": linear_params(84, 10)}
    check_counts("cifar10_improved", counts)
    lab = sum(x.params for x in spec_layers("cifar10_cnn").values())
    assert round(sum(counts.values()) / lab) == 4 and "about four times" in readme("cifar10_improved")
    assert f"{lab:,}" in readme("cifar10_improved")


@pytest.mark.parametrize("n", [2, 4, 8])
def test_upsampling_by_n_with_k_2n_s_n_p_half_n(n):
    for i in (1, 4, 7, 16):
        assert up_size(i, 2 * n, n // 2, n) == n * i
        layer = nn.ConvTranspose2d(1, 1, 2 * n, stride=n, padding=n // 2)
        assert layer(torch.zeros(1, 1, i, i)).shape[-1] == n * i   # PyTorch agrees


def test_unet_sizes():
    same = out_size(32, 5, 2)
    assert same == 32 and out_size(16, 5, 2) == 16 and out_size(4, 5, 2) == 4   # padding 2 keeps 5x5
    enc1 = 32
    enc2 = pool_size(enc1, 2)
    bottom = pool_size(enc2, 4)
    up2 = up_size(bottom, 8, 2, 4)
    up1 = up_size(up2, 4, 1, 2)
    assert (enc2, bottom, up2, up1) == (16, 4, 16, 32)
    assert up2 == enc2 and up1 == enc1                     # the skip connections fit
    head = pool_size(up1, 4)
    layers = spec_layers("unet_cifar10")
    want = {"enc1": (8, enc1, enc1), "pool1": (8, enc2, enc2), "enc2": (16, enc2, enc2),
            "pool2": (16, bottom, bottom), "bottom": (32, bottom, bottom), "up2": (16, up2, up2),
            "dec2": (16, up2, up2), "up1": (8, up1, up1), "dec1": (8, up1, up1),
            "pool3": (8, head, head), "flatten": (8 * head * head,), "fc": (10,)}
    assert {n: x.out_shape for n, x in layers.items()} == want
    # concatenation adds channels: each decoder convolution reads up + skip
    assert layers["dec2"].spec.hp["in_channels"] == want["up2"][0] + want["enc2"][0]
    assert layers["dec1"].spec.hp["in_channels"] == want["up1"][0] + want["enc1"][0]
    text = readme("unet_cifar10")
    assert f"({bottom} - 1)*4 - 2*2 + 8 = {up2}" in text and f"({up2} - 1)*2 - 2*1 + 4 = {up1}" in text
    assert "O = (I - 1)S - 2P + K" in text
    out = model_solution("unet_cifar10").forward(torch.zeros(2, 3, 32, 32))
    assert out.shape == (2, 10)


def test_unet_counts():
    check_counts("unet_cifar10", {
        "enc1": conv_params(5, 3, 8), "enc2": conv_params(5, 8, 16), "bottom": conv_params(5, 16, 32),
        "up2": conv_params(8, 32, 16), "dec2": conv_params(5, 16 + 16, 16),
        "up1": conv_params(4, 16, 8), "dec1": conv_params(5, 8 + 8, 8),
        "fc": linear_params(8 * 8 * 8, 10)})


# ---------------------------------------------------------------- issue 14's assignments

def points_text(name):
    """Every check's points as the README's grading list writes them: `**id** (points)`."""
    checks = spec(name).checks
    return [f"**{c.id}** ({c.points:g})" for c in checks], sum(c.points for c in checks)


@pytest.mark.parametrize("name", ["training_loop", "data_pipeline"])
def test_function_readmes_state_the_specs_points(name):
    items, total = points_text(name)
    text = readme(name)
    assert f"How it is graded ({total:g} points)" in text
    for item in items:
        assert item in text


def test_a_smaller_last_batch():
    ragged = [c for c in spec("training_loop").checks if c.id == "epoch_loss"][0].options["cases"]
    loader = next(a["loader"] for c in ragged for a in c.args
                  if "loader" in a and a["loader"]["samples"] % a["loader"]["batch_size"])
    n, b = loader["samples"], loader["batch_size"]
    last = n - b * (n // b)
    assert f"With {n} samples in batches of {b}, the last batch holds {last}" in readme("training_loop")
    # the two means differ: a batch of `last` counts b/last times too much when batches are averaged
    losses = [1.0] * (n // b) + [2.0]
    per_sample = (sum(losses[:-1]) * b + losses[-1] * last) / n
    assert per_sample != sum(losses) / len(losses)


def test_pixel_values_through_the_pipeline():
    text = readme("data_pipeline")
    grey = 51
    assert f"a value of {grey} becomes {grey / 255:g}" in text
    normalised = {x: (x - 0.5) / 0.5 for x in (0, 0.5, 1)}
    assert normalised == {0: -1, 0.5: 0, 1: 1}
    assert "0 becomes -1, 0.5 becomes 0 and 1 stays 1" in text
    value, c = expected("data_pipeline", "to_tensor", label="grey of 51")
    image = np.array(c.args[0]["tensor"])
    assert np.allclose(value, image.transpose(2, 0, 1) / 255)
    value, c = expected("data_pipeline", "normalize", label="maps 0, 0.5 and 1")
    assert np.allclose(value, (np.array(c.args[0]["tensor"]) - 0.5) / 0.5)
    rgb, c = expected("data_pipeline", "bgr_to_rgb", label="pure blue")
    bgr = c.args[0]["tensor"][0][0]
    assert rgb == [[bgr[::-1]]]
    assert f"({', '.join(map(str, bgr))}) in BGR and ({', '.join(map(str, bgr[::-1]))}) in RGB" in text


def test_random_crop_positions():
    side, pad = 32, 4
    padded = side + 2 * pad
    positions = (padded - side + 1) ** 2
    assert f"({padded}x{padded}) and cuts a random {side}x{side} window out of it " \
           f"({padded - side + 1} x {padded - side + 1} = {positions} positions)" in readme("data_pipeline")


def test_cifar10_strided_sizes_and_counts():
    sizes, i = [], 32
    for _ in range(3):
        i = out_size(i, 3, 0, 2)
        sizes.append(i)
    flat = 128 * sizes[-1] ** 2
    layers = spec_layers("cifar10_strided")
    assert [layers[n].out_shape for n in ("conv1", "conv2", "conv3", "flatten")] == \
        [(32, sizes[0], sizes[0]), (64, sizes[1], sizes[1]), (128, sizes[2], sizes[2]), (flat,)]
    text = readme("cifar10_strided")
    previous = 32
    for size in sizes:
        exact = (previous - 3) / 2
        shown = f"floor({exact})" if exact != int(exact) else f"{int(exact)}"
        assert f"floor(({previous} - 3 + 2*0)/2) + 1 = {shown} + 1 = {size}" in text
        previous = size
    halved = [32 // 2, 32 // 4, 32 // 8]                  # the mistake the README warns about
    assert f"32, {halved[0]}, {halved[1]}, {halved[2]}" in text
    assert f"128*{halved[2]}*{halved[2]} = {128 * halved[2] ** 2}" in text
    counts = {"conv1": conv_params(3, 3, 32), "conv2": conv_params(3, 32, 64),
              "conv3": conv_params(3, 64, 128), "fc1": linear_params(flat, 1024),
              "fc2": linear_params(1024, 10)}
    check_counts("cifar10_strided", counts)
    assert f"{round(100 * counts['fc1'] / sum(counts.values()))}% of them in fc1" in text


def test_cifar10_vgg_sizes_and_counts():
    assert all(out_size(i, 3, 1) == i for i in (32, 16, 8))      # padding 1 keeps the size
    sides = [pool_size(32), pool_size(pool_size(32)), pool_size(pool_size(pool_size(32)))]
    flat = 128 * sides[-1] ** 2
    layers = spec_layers("cifar10_vgg")
    assert [layers[f"pool{b}"].out_shape for b in (1, 2, 3)] == \
        [(c, s, s) for c, s in zip((32, 64, 128), sides)]
    assert layers["flatten"].out_shape == (flat,) == (2048,)
    blocks, text = {}, readme("cifar10_vgg")
    c_in = 3
    for b, c in zip((1, 2, 3), (32, 64, 128)):
        parts = [conv_params(3, c_in, c), 2 * c, conv_params(3, c, c), 2 * c]   # batch norm: 2 per channel
        assert [layers[f"{kind}{b}{ab}"].params for ab in "ab" for kind in ("conv", "bn")] == parts
        blocks[f"block{b}"] = sum(parts)
        assert f"`{' + '.join(f'{n:,}' for n in parts)} = {sum(parts):,}` |" in text
        c_in = c
    counts = {**blocks, "fc1": linear_params(flat, 1024), "fc2": linear_params(1024, 10)}
    model = model_solution("cifar10_vgg")
    assert torch_counts(model) == counts
    total = sum(counts.values())
    assert sum(x.params for x in layers.values()) == total and f"Total: {total:,} parameters" in text
    assert f"`(2048 + 1)*1024 = {counts['fc1']:,}` |" in text
    # the running statistics are buffers: as many values as the scale and shift, not counted
    buffers = sum(b.numel() for n, b in model.named_buffers() if "running" in n)
    assert buffers == sum(2 * c for c in (32, 64, 128)) * 2
    assert sum(p.numel() for p in model.parameters()) == total
    assert f"all {len(layers)} layers" in text
    assert model.forward(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("name", ["cifar10_strided", "cifar10_vgg"])
def test_model_readmes_state_the_specs_bars(name):
    acc = next(c for c in spec(name).checks if c.kind == "accuracy")
    text = readme(name)
    subset = acc.options["subset"]
    assert f"{subset['min_accuracy']:.0%} (partial from {subset['partial_from']:.0%})" in text
    assert f"Full marks from {acc.options['min_accuracy']:.0%}" in text


@pytest.mark.parametrize("name", ["cifar10_strided", "cifar10_vgg"])
def test_model_readmes_quote_the_specs_measurements(name):
    """The README quotes the spec's record: each side's range over seeds, or its one seed."""
    acc = next(c for c in spec(name).checks if c.kind == "accuracy")
    text = readme(name)
    measured = acc.options["subset"]["measured"]
    assert len(measured["reference"]) == 3
    for side in ("reference", "linear", "no_activation"):
        values = measured[side] if isinstance(measured[side], list) else [measured[side]]
        quoted = " to ".join(dict.fromkeys(f"{v:.1%}" for v in (min(values), max(values))))
        assert quoted in text, side
