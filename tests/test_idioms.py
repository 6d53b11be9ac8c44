"""Real-world ways of writing the course's nets, graded through the CLI: exact points, and
the layer each line of feedback names.

The files in tests/idioms/ are written the way tutorials and students write these nets
(one pooling module used twice, `nn.Sequential` with indices, the functional style, a
subclass of `nn.Conv2d`, LeNet-5's C3 as sixteen small convolutions, its C5 as a Linear, a
28x28 LeNet with padding 2, tanh where ReLU is asked, no activations at all, nn.LazyLinear).
A right layer must never be reported wrong because another layer is wrong.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import grade

IDIOMS = Path(__file__).parent / "idioms"
LAB_UNITS = 8 + 4              # cifar10_cnn: 8 layers, 4 of them with an activation
LENET_UNITS = 8 + 4            # lenet5_mnist: likewise
LENET_PARAM_ROWS = 8           # c1, s2, c3, s4, c5, f6, output, total


def graded(name: str, assignment: str):
    run = grade(IDIOMS / f"{name}.py", "-a", assignment, "--only", "shapes,params",
                "--format", "json")
    assert "Traceback" not in run.err, run.err
    return run, run.check("shapes"), run.check("params")


@pytest.mark.parametrize("name", ["lab_shared_pool", "lab_sequential", "lab_functional",
                                  "lab_conv_subclass"])
def test_a_right_lab_net_gets_full_marks_however_it_is_written(name):
    run, shapes, params = graded(name, "cifar10_cnn")
    assert run.code == 0, shapes["feedback"] + params["feedback"]
    assert (shapes["score"], params["score"]) == (4.0, 3.0)


@pytest.mark.parametrize("name, found", [("lab_tanh", "tanh after it"),
                                         ("lab_no_relu", "no activation after it")])
def test_a_wrong_activation_costs_its_own_points_and_no_shape(name, found):
    run, shapes, params = graded(name, "cifar10_cnn")
    assert run.code == 1
    assert shapes["score"] == pytest.approx(4 * 8 / LAB_UNITS, abs=1e-4) and params["score"] == 3
    assert all(r["shape_ok"] for r in shapes["details"]["layers"])
    for layer in ("conv1", "conv2", "fc1", "fc2"):
        assert f"{layer}: {found}; the spec asks for relu" in shapes["feedback"]
    assert shapes["feedback"].startswith("8 of 8 layers have the expected shape")


def test_lenet_with_c3_as_sixteen_small_convolutions_gets_full_marks():
    """The paper's drawing of C3 (one convolution per map over its row of the table) and the
    reference's single convolution with a masked kernel are the same layer."""
    run, shapes, params = graded("lenet_c3_per_map", "lenet5_mnist")
    assert run.code == 0, shapes["feedback"] + params["feedback"]
    assert (shapes["score"], params["score"]) == (4.0, 3.0)
    c3 = next(r for r in params["details"]["layers"] if r["name"] == "c3")
    assert c3["got"] == 6 * (3 * 25 + 1) + 9 * (4 * 25 + 1) + (6 * 25 + 1)


def test_lenet_with_c5_as_a_linear_is_judged_layer_by_layer():
    """The most common real LeNet-5: C5 as Linear(400, 120), average pooling without
    trainable weights, a fully connected C3. Only s2, s4 and C3's table are wrong."""
    run, shapes, params = graded("lenet_c5_linear", "lenet5_mnist")
    assert shapes["score"] == 4.0
    assert "c5 (fc1): a Linear on the flattened map" in shapes["feedback"]
    by_name = {r["name"]: r for r in params["details"]["layers"]}
    assert (by_name["c5"]["got"], by_name["f6"]["got"], by_name["output"]["got"]) == \
        ((5 * 5 * 16 + 1) * 120, (120 + 1) * 84, (84 + 1) * 10)
    credits = 1 + 0 + 0.5 + 0 + 1 + 1 + 1 + 0          # s2, s4 and the total wrong; C3 half
    assert params["score"] == pytest.approx(3 * credits / LENET_PARAM_ROWS, abs=1e-4)
    assert "s2: got 0 parameters, expected (1 + 1)*6 = 12" in params["feedback"]
    assert "f6" not in params["feedback"] and "output:" not in params["feedback"]


def test_a_28x28_lenet_with_padding_2_loses_c1_once():
    """Against the 32x32 spec, C1's padding is the one mistake; every layer after it does
    what the spec's layer does to its input, and F6 only stops on the 480 features."""
    run, shapes, params = graded("lenet_padding2", "lenet5_mnist")
    rows = {r["name"]: r for r in shapes["details"]["layers"]}
    assert [n for n, r in rows.items() if r["got"] is not None and not r["shape_ok"]] == ["c1"]
    assert "c1: got 6x32x32, expected 6x28x28: O = (32 - 5 + 2*2)/1 + 1 = 32 means P=2; the " \
           "spec asks for P=0" in shapes["feedback"]
    assert "The forward pass stopped in f6, a Linear: it expects 120 features, the flattened " \
           "map has 480 = 120x2x2" in shapes["feedback"]
    right_shapes = 5                                     # s2, c3, s4, c5, flatten
    assert shapes["score"] == pytest.approx(4 * right_shapes / LENET_UNITS, abs=1e-4)
    assert params["score"] == pytest.approx(3 * 4.5 / LENET_PARAM_ROWS, abs=1e-4)


def test_a_lazy_linear_is_counted_once_its_first_forward_pass_made_it():
    run, shapes, params = graded("fashion_lazy_linear", "fashion_mnist_strided")
    assert run.code == 0, shapes["feedback"] + params["feedback"]
    assert (shapes["score"], params["score"]) == (4.0, 3.0)
    fc1 = next(r for r in params["details"]["layers"] if r["name"] == "fc1")
    assert fc1["got"] == (128 * 2 * 2 + 1) * 512


def test_a_lazy_linear_behind_a_crash_shows_the_crash(tmp_path):
    """Its parameters cannot exist without the forward pass, so the forward's own error (the
    wrong channel count and its line) is what the student reads."""
    path = tmp_path / "model.py"
    path.write_text((IDIOMS / "fashion_lazy_linear.py").read_text()
                    .replace("nn.Conv2d(32, 64, 3, 2)", "nn.Conv2d(16, 64, 3, 2)"))
    run = grade(path, "-a", "fashion_mnist_strided", "--only", "shapes,params", "--format", "json")
    assert run.code == 1 and "Traceback" not in run.err
    assert "expected input[2, 32, 13, 13] to have 16 channels" in run.check("shapes")["feedback"]
