"""Planted-bug variants of the model assignments: exact points lost, key numbers in feedback.

Every variant is the reference solution with one mistake a student makes, graded through
the real CLI (`--only shapes,params`, so no training).
"""
from __future__ import annotations

import json

import pytest

from conftest import MODEL_ASSIGNMENTS, SOLUTIONS, grade, variant

CIFAR = SOLUTIONS / "cifar10_cnn" / "model.py"
LENET = SOLUTIONS / "lenet5_mnist" / "model.py"
IMPROVED = SOLUTIONS / "cifar10_improved" / "model.py"
STRIDED = SOLUTIONS / "fashion_mnist_strided" / "model.py"
UNET = SOLUTIONS / "unet_cifar10" / "model.py"
CIFAR_STRIDED = SOLUTIONS / "cifar10_strided" / "model.py"
VGG = SOLUTIONS / "cifar10_vgg" / "model.py"
# Units of a shapes check: one per layer, one per activation the spec asks for. A layer is
# judged on its own input, so a mistake costs its own units once.
LAB_UNITS = 8 + 4            # cifar10_cnn and cifar10_improved
STRIDED_UNITS = 6 + 4
UNET_UNITS = 12 + 5
CIFAR_STRIDED_UNITS = 6 + 4


def shape_points(right: int, units: int, points: float = 4) -> float:
    return pytest.approx(points * right / units, abs=1e-4)


def graded(path, assignment="cifar10_cnn"):
    run = grade(path, "--assignment", assignment, "--only", "shapes,params", "--format", "json")
    assert "Traceback" not in run.err, run.err
    return run


@pytest.mark.parametrize("assignment", MODEL_ASSIGNMENTS)
def test_solution_full_marks_and_skeleton_zero(assignment):
    good = grade(SOLUTIONS / assignment, "--only", "shapes,params", "--format", "json")
    assert good.code == 0 and good.json()["score"] == good.json()["max_score"] == 7
    skeleton = grade(SOLUTIONS.parent / "assignments" / assignment, "--only", "shapes,params")
    assert skeleton.code == 1
    assert "Traceback" not in skeleton.out + skeleton.err
    assert "0 / 7 points" in skeleton.out
    assert "a TODO is still unfinished" in skeleton.out


def test_wrong_kernel_explains_formula(tmp_path):
    run = graded(variant(tmp_path, CIFAR, [("nn.Conv2d(6, 16, kernel_size=5)",
                                            "nn.Conv2d(6, 16, kernel_size=3)")]))
    shapes, params = run.check("shapes"), run.check("params")
    assert run.code == 1
    # right: conv1, pool1, pool2 and flatten (on conv2's 12x12), relu after conv1 and conv2;
    # fc1 stops on 576 features, so fc1, fc2, fc3 and two activations are not measured
    assert shapes["score"] == shape_points(4 + 2, LAB_UNITS)
    assert "conv2: got 16x12x12, expected 16x10x10: O = (14 - 3 + 2*0)/1 + 1 = 12 means K=3; " \
           "the spec asks for K=5" in shapes["feedback"]
    assert "The forward pass stopped in fc1, a Linear: it expects 400 features, the flattened " \
           "map has 576 = 16x6x6" in shapes["feedback"]
    assert "pool2" not in shapes["feedback"]   # right on conv2's output: not blamed
    assert params["score"] == 2.0           # conv2 and the total wrong: 4 of 6 units
    assert "conv2: got 880 parameters, expected (5*5*6 + 1)*16 = 2,416; yours: (3*3*6 + 1)*16 = 880" \
        in params["feedback"]


def test_wrong_padding_costs_shapes_not_params(tmp_path):
    run = graded(variant(tmp_path, CIFAR, [("nn.Conv2d(3, 6, kernel_size=5)",
                                            "nn.Conv2d(3, 6, kernel_size=5, padding=2)")]))
    shapes, params = run.check("shapes"), run.check("params")
    assert shapes["score"] == shape_points(4 + 2, LAB_UNITS)   # pool1, conv2, pool2, flatten
    assert "conv1: got 6x32x32, expected 6x28x28: O = (32 - 5 + 2*2)/1 + 1 = 32 means P=2; " \
           "the spec asks for P=0" in shapes["feedback"]
    conv2 = next(r for r in shapes["details"]["layers"] if r["name"] == "conv2")
    assert conv2["shape_ok"] and conv2["message"] == (
        "conv2: 16x12x12 from its 6x16x16 input, as the spec's layer makes it (16x10x10 once "
        "the layers before it are right)")
    assert params["score"] == 3.0           # padding learns nothing


@pytest.mark.parametrize("ending, said", [
    ("F.softmax(self.fc3(x), dim=1)", "it ends in a softmax call"),
    ("nn.Softmax(dim=1)(self.fc3(x))", "it ends in a softmax call"),   # built in forward
    ("F.log_softmax(self.fc3(x), dim=1)", None),     # the same loss as the raw scores
])
def test_a_softmax_at_the_end_is_named_without_costing_shape_points(tmp_path, ending, said):
    run = graded(variant(tmp_path, CIFAR, [("return self.fc3(x)", f"return {ending}")]))
    shapes = run.check("shapes")
    assert shapes["score"] == 4.0
    if said is None:
        assert "probabilities" not in shapes["feedback"]
    else:
        assert said in shapes["feedback"]
        assert "CrossEntropyLoss applies the softmax itself" in shapes["feedback"]


def test_wrong_channel_count(tmp_path):
    run = graded(variant(tmp_path, CIFAR, [("nn.Conv2d(3, 6, kernel_size=5)", "nn.Conv2d(3, 8, kernel_size=5)"),
                                           ("nn.Conv2d(6, 16, kernel_size=5)", "nn.Conv2d(8, 16, kernel_size=5)")]))
    shapes, params = run.check("shapes"), run.check("params")
    assert shapes["score"] == shape_points(LAB_UNITS - 1, LAB_UNITS)   # conv1 alone is wrong
    assert "conv1: got 8x28x28, expected 6x28x28: it has 8 output channels; the spec asks for 6" \
        in shapes["feedback"]
    assert params["score"] == 2.0           # conv1 and the total wrong; conv2 reads conv1's 8 maps
    assert "conv1: got 608 parameters, expected (5*5*3 + 1)*6 = 456" in params["feedback"]
    assert "conv2" not in params["feedback"]
    assert "total: 62,958 parameters, expected 62,006" in params["feedback"]


def test_mismatched_fc1_says_where_forward_stopped(tmp_path):
    run = graded(variant(tmp_path, CIFAR, [("nn.Linear(16 * 5 * 5, 120)", "nn.Linear(16 * 4 * 4, 120)")]))
    shapes, params = run.check("shapes"), run.check("params")
    assert shapes["score"] == shape_points(5 + 2, LAB_UNITS)   # 5 layers, 2 activations before it
    assert "The forward pass stopped in fc1, a Linear: it expects 256 features, the flattened " \
           "map has 400 = 16x5x5" in shapes["feedback"]
    assert "fc2: not reached" in shapes["feedback"]
    assert params["score"] == 2.0
    assert "fc1: got 30,840 parameters, expected (400 + 1)*120 = 48,120" in params["feedback"]


def test_missing_activation(tmp_path):
    run = graded(variant(tmp_path, CIFAR, [("self.pool(F.relu(self.conv2(x)))", "self.pool(self.conv2(x))")]))
    assert run.check("shapes")["score"] == shape_points(LAB_UNITS - 1, LAB_UNITS)
    assert "conv2: no activation after it; the spec asks for relu" in run.check("shapes")["feedback"]
    assert run.check("params")["score"] == 3.0


def test_renamed_layers_match_by_order(tmp_path):
    renames = [(f"self.{old} = nn.", f"self.{new} = nn.") for old, new in RENAMES] + \
              [(f"self.{old}(x)", f"self.{new}(x)") for old, new in RENAMES]
    run = graded(variant(tmp_path, CIFAR, renames))
    assert run.code == 0, run.out
    assert {r["matched"] for r in run.check("shapes")["details"]["layers"]} >= \
        {new for _, new in RENAMES}


RENAMES = [("conv1", "first"), ("conv2", "second"), ("fc1", "hidden1"), ("fc2", "hidden2"),
           ("fc3", "scores")]


SEQUENTIAL = '''
import torch
from torch import nn

class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        self.classifier = nn.Sequential(
            nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))

    def forward(self, x):
        return self.classifier(self.features(x))
'''

FUNCTIONAL = '''
import torch
import torch.nn.functional as F
from torch import nn

class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 6, 5)
        self.b = nn.Conv2d(6, 16, 5)
        self.c = nn.Linear(400, 120)
        self.d = nn.Linear(120, 84)
        self.e = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(torch.relu(self.a(x)), 2)
        x = F.max_pool2d(self.b(x).relu(), 2, 2)
        x = x.view(x.size(0), -1)
        x = F.relu(self.c(x))
        x = F.relu(self.d(x))
        return self.e(x)
'''


@pytest.mark.parametrize("code", [SEQUENTIAL, FUNCTIONAL], ids=["sequential", "functional"])
def test_other_styles_earn_full_marks(tmp_path, code):
    path = tmp_path / "model.py"
    path.write_text(code)
    run = graded(path)
    assert run.code == 0, run.json()["checks"]
    assert run.json()["score"] == 7


def test_sequential_with_wrong_kernel_names_the_sequential_layer(tmp_path):
    path = tmp_path / "model.py"
    path.write_text(SEQUENTIAL.replace("nn.Conv2d(6, 16, 5)", "nn.Conv2d(6, 16, 3)"))
    run = graded(path)
    assert "conv2 (features.3): got 16x12x12, expected 16x10x10" in run.check("shapes")["feedback"]


def test_lenet_fully_connected_c3_gets_half_of_c3(tmp_path):
    run = graded(variant(tmp_path, LENET, [("        self.c3 = C3()\n",
                                            "        self.c3 = nn.Conv2d(6, 16, kernel_size=5)\n")]),
                 "lenet5_mnist")
    params = run.check("params")
    assert run.check("shapes")["score"] == 4.0
    assert params["score"] == pytest.approx(3 * 6.5 / 8)   # 7 layers + total; C3 half, total wrong
    assert "a fully connected C3 has (5*5*6+1)*16 = 2,416" in params["feedback"]
    assert "total: 61,750 parameters, expected 60,850" in params["feedback"]


@pytest.mark.parametrize("attribute", ["c3", "conv3"])
def test_lenet_stopping_inside_c3_is_reported_in_c3(tmp_path, attribute):
    # A custom C3 that fails before its convolution has not shown that it is a convolution;
    # the input it was given (6x14x14) and its name place the crash, not its looks (a
    # custom module with a weight and a bias vector, like S4).
    path = variant(tmp_path, LENET, [("return F.conv2d(x, kernel, self.bias)",
                                      "return F.conv2d(x, kernel[:, :5], self.bias)"),
                                     ("self.c3 = C3()", f"self.{attribute} = C3()"),
                                     ("self.c3(x)", f"self.{attribute}(x)")])
    shapes = graded(path, "lenet5_mnist").check("shapes")
    where = "c3" if attribute == "c3" else f"c3 ({attribute})"
    assert f"The forward pass stopped in {where}, a C3: RuntimeError" in shapes["feedback"]
    assert "c3: did not finish" in shapes["feedback"]
    assert "s4: not reached" in shapes["feedback"]


def test_lenet_untrainable_subsampling_loses_s2_params(tmp_path):
    run = graded(variant(tmp_path, LENET, [("        self.s2 = Subsample(6)\n",
                                            "        self.s2 = nn.AvgPool2d(2)\n")]), "lenet5_mnist")
    params = run.check("params")
    assert run.check("shapes")["score"] == 4.0
    assert params["score"] == pytest.approx(3 * 6 / 8)
    assert "s2: got 0 parameters, expected (1 + 1)*6 = 12" in params["feedback"]


def test_lenet_wrong_c5_kernel(tmp_path):
    run = graded(variant(tmp_path, LENET, [("nn.Conv2d(16, 120, kernel_size=5)",
                                            "nn.Conv2d(16, 120, kernel_size=3)")]), "lenet5_mnist")
    shapes = run.check("shapes")
    assert "c5: got 120x3x3, expected 120x1x1: O = (5 - 3 + 2*0)/1 + 1 = 3 means K=3; " \
           "the spec asks for K=5" in shapes["feedback"]
    assert "The forward pass stopped in f6, a Linear: it expects 120 features, the flattened " \
           "map has 1080 = 120x3x3" in shapes["feedback"]


# ---------------------------------------------------------------- cifar10_improved

def test_improved_average_pooling_loses_both_pools(tmp_path):
    run = graded(variant(tmp_path, IMPROVED, [("nn.MaxPool2d(kernel_size=2, stride=2)",
                                               "nn.AvgPool2d(kernel_size=2, stride=2)")]), "cifar10_improved")
    shapes = run.check("shapes")
    assert run.code == 1
    assert shapes["score"] == shape_points(LAB_UNITS - 2, LAB_UNITS)   # sizes right, kind not
    assert "pool1 (pool): uses avgpool2d where the spec asks for maxpool2d" in shapes["feedback"]
    assert "pool2 (pool): uses avgpool2d" in shapes["feedback"]
    assert run.check("params")["score"] == 3.0


def test_improved_lab_width_conv2(tmp_path):
    run = graded(variant(tmp_path, IMPROVED, [("nn.Conv2d(32, 64, kernel_size=5)", "nn.Conv2d(32, 16, kernel_size=5)"),
                                              ("nn.Linear(64 * 5 * 5, 120)", "nn.Linear(16 * 5 * 5, 120)")]),
                 "cifar10_improved")
    shapes, params = run.check("shapes"), run.check("params")
    # conv2 alone is wrong: pool2, flatten and fc1 do what the spec's layers do to 16 maps
    assert shapes["score"] == shape_points(LAB_UNITS - 1, LAB_UNITS)
    assert "conv2: got 16x10x10, expected 64x10x10: it has 16 output channels; the spec asks for 64" \
        in shapes["feedback"]
    assert "flatten" not in shapes["feedback"] and "fc1" not in shapes["feedback"]
    assert params["score"] == 2.0           # conv2 and the total wrong: 4 of 6
    assert "conv2: got 12,816 parameters, expected (5*5*32 + 1)*64 = 51,264" in params["feedback"]
    fc1 = next(r for r in params["details"]["layers"] if r["name"] == "fc1")
    assert fc1["credit"] == 1 and fc1["message"] == (
        "fc1: (400 + 1)*120 = 48,120 ✓ for the input it gets ((1600 + 1)*120 = 192,120 once the "
        "layers before it are right)")


def test_improved_fc1_still_sized_for_the_lab_net(tmp_path):
    run = graded(variant(tmp_path, IMPROVED, [("nn.Linear(64 * 5 * 5, 120)", "nn.Linear(16 * 5 * 5, 120)")]),
                 "cifar10_improved")
    shapes, params = run.check("shapes"), run.check("params")
    assert shapes["score"] == shape_points(5 + 2, LAB_UNITS)   # 5 layers, 2 activations before it
    assert "The forward pass stopped in fc1, a Linear: it expects 400 features, the flattened " \
           "map has 1600 = 64x5x5" in shapes["feedback"]
    assert params["score"] == 2.0           # fc1 and the total: 4 of 6
    assert "total: 112,830 parameters, expected 256,830" in params["feedback"]


# ---------------------------------------------------------------- fashion_mnist_strided

def test_strided_forgotten_stride(tmp_path):
    run = graded(variant(tmp_path, STRIDED, [("nn.Conv2d(1, 32, kernel_size=3, stride=2)",
                                              "nn.Conv2d(1, 32, kernel_size=3)")]), "fashion_mnist_strided")
    shapes, params = run.check("shapes"), run.check("params")
    # conv2, conv3 and flatten are right on conv1's 26x26 maps; fc1 stops on 3,200 features
    assert shapes["score"] == shape_points(3 + 3, STRIDED_UNITS)
    assert "conv1: got 32x26x26, expected 32x13x13: O = (28 - 3 + 2*0)/1 + 1 = 26 means S=1; " \
           "the spec asks for S=2" in shapes["feedback"]
    assert "conv2" not in shapes["feedback"]
    assert "The forward pass stopped in fc1, a Linear: it expects 512 features, the flattened " \
           "map has 3200 = 128x5x5" in shapes["feedback"]
    assert params["score"] == 3.0           # the stride learns nothing


def test_strided_flatten_size_from_halving(tmp_path):
    # 28 -> 14 -> 7 -> 3 by halving instead of the formula: fc1 waits for 128*3*3 = 1152 values
    run = graded(variant(tmp_path, STRIDED, [("nn.Linear(128 * 2 * 2, 512)", "nn.Linear(128 * 3 * 3, 512)")]),
                 "fashion_mnist_strided")
    shapes, params = run.check("shapes"), run.check("params")
    assert shapes["score"] == shape_points(4 + 3, STRIDED_UNITS)   # before the crash in fc1
    assert "The forward pass stopped in fc1, a Linear: it expects 1152 features, the flattened " \
           "map has 512 = 128x2x2" in shapes["feedback"]
    assert params["score"] == 2.0           # fc1 and the total: 4 of 6
    assert "fc1: got 590,336 parameters, expected (512 + 1)*512 = 262,656; yours: (1152 + 1)*512" \
        in params["feedback"]


def test_strided_padding_one_shows_the_floor(tmp_path):
    run = graded(variant(tmp_path, STRIDED, [
        ("nn.Conv2d(1, 32, kernel_size=3, stride=2)", "nn.Conv2d(1, 32, kernel_size=3, stride=2, padding=1)"),
        ("nn.Conv2d(32, 64, kernel_size=3, stride=2)", "nn.Conv2d(32, 64, kernel_size=3, stride=2, padding=1)"),
        ("nn.Conv2d(64, 128, kernel_size=3, stride=2)", "nn.Conv2d(64, 128, kernel_size=3, stride=2, padding=1)"),
        ("nn.Linear(128 * 2 * 2, 512)", "nn.Linear(128 * 4 * 4, 512)")]), "fashion_mnist_strided")
    shapes, params = run.check("shapes"), run.check("params")
    # each conv pads by 1, each is wrong on its own input; flatten, fc1, fc2 and the activations right
    assert shapes["score"] == shape_points(3 + 4, STRIDED_UNITS)
    assert "conv1: got 32x14x14, expected 32x13x13: O = floor((28 - 3 + 2*1)/2) + 1 = 14 means P=1; " \
           "the spec asks for P=0" in shapes["feedback"]
    assert "conv2: got 64x7x7, expected 64x7x7" not in shapes["feedback"]
    assert "conv2: got 64x7x7, expected 64x6x6 from its 32x14x14 input: O = floor((14 - 3 + " \
           "2*1)/2) + 1 = 7 means P=1" in shapes["feedback"]
    assert "conv3: got 128x4x4, expected 128x3x3 from its 64x7x7 input: O = (7 - 3 + 2*1)/2 + 1 " \
           "= 4 means P=1" in shapes["feedback"]   # no floor where the stride divides evenly
    # padding learns nothing; fc1 reads the 2,048 values the padded convs give (right for that
    # input), so only the total is off
    assert params["score"] == 2.5


# ---------------------------------------------------------------- unet_cifar10

def test_unet_without_skip_connections(tmp_path):
    run = graded(variant(tmp_path, UNET, [("nn.Conv2d(16 + 16, 16,", "nn.Conv2d(16, 16,"),
                                          ("nn.Conv2d(8 + 8, 8,", "nn.Conv2d(8, 8,"),
                                          ("torch.cat([self.up2(x), skip2], dim=1)", "self.up2(x)"),
                                          ("torch.cat([self.up1(x), skip1], dim=1)", "self.up1(x)")]),
                 "unet_cifar10")
    params = run.check("params")
    assert run.check("shapes")["score"] == 4.0   # same sizes without the skips
    assert params["score"] == 2.0                # dec2, dec1 and the total: 6 of 9
    assert "dec2: got 6,416 parameters, expected (5*5*32 + 1)*16 = 12,816 (the skip connection: " \
           "up2's 16 maps concatenated with enc2's 16 make in_channels 32); yours: (5*5*16 + 1)*16" \
        in params["feedback"]
    assert "dec1: got 1,608 parameters, expected (5*5*16 + 1)*8 = 3,208" in params["feedback"]


def test_unet_transposed_kernel_off_by_one(tmp_path):
    run = graded(variant(tmp_path, UNET, [("nn.ConvTranspose2d(16, 8, kernel_size=4, stride=2, padding=1)",
                                           "nn.ConvTranspose2d(16, 8, kernel_size=3, stride=2, padding=1)")]),
                 "unet_cifar10")
    shapes, params = run.check("shapes"), run.check("params")
    # up1 wrong; dec1 and what follows not reached: 7 layers and 4 activations measured right
    assert shapes["score"] == shape_points(7 + 4, UNET_UNITS)
    assert "up1: got 8x31x31, expected 8x32x32: O = (16-1)*2 - 2*1 + 3 = 31 means K=3; " \
           "the spec asks for K=4" in shapes["feedback"]
    # the error comes from torch.cat after up1 returned: say so, with torch's own sizes
    assert "The forward pass stopped after up1: RuntimeError: Sizes of tensors must match" \
        in shapes["feedback"]
    assert "Expected size 31 but got size 32" in shapes["feedback"]
    assert "expects 16 input channels, its input has 16" not in shapes["feedback"]
    assert params["score"] == pytest.approx(3 * 7 / 9, abs=1e-3)    # up1 and the total
    assert "up1: got 1,160 parameters, expected (4*4*16 + 1)*8 = 2,056" in params["feedback"]


def test_unet_upsampling_by_two_where_four_is_needed(tmp_path):
    run = graded(variant(tmp_path, UNET, [("nn.ConvTranspose2d(32, 16, kernel_size=8, stride=4, padding=2)",
                                           "nn.ConvTranspose2d(32, 16, kernel_size=4, stride=2, padding=1)")]),
                 "unet_cifar10")
    shapes, params = run.check("shapes"), run.check("params")
    assert shapes["score"] == shape_points(5 + 3, UNET_UNITS)
    assert "up2: got 16x8x8, expected 16x16x16: O = (4-1)*2 - 2*1 + 4 = 8 means K=4, P=1, S=2; " \
           "the spec asks for K=8, P=2, S=4" in shapes["feedback"]
    assert params["score"] == pytest.approx(3 * 7 / 9, abs=1e-3)
    assert "up2: got 8,208 parameters, expected (8*8*32 + 1)*16 = 32,784" in params["feedback"]


def test_unet_transposed_padding_forgotten(tmp_path):
    run = graded(variant(tmp_path, UNET, [("nn.ConvTranspose2d(16, 8, kernel_size=4, stride=2, padding=1)",
                                           "nn.ConvTranspose2d(16, 8, kernel_size=4, stride=2)")]),
                 "unet_cifar10")
    shapes = run.check("shapes")
    assert shapes["score"] == shape_points(7 + 4, UNET_UNITS)
    assert "up1: got 8x34x34, expected 8x32x32: O = (16-1)*2 - 2*0 + 4 = 34 means P=0; " \
           "the spec asks for P=1" in shapes["feedback"]
    assert run.check("params")["score"] == 3.0   # padding learns nothing


# ---------------------------------------------------------------- cifar10_strided

def test_cifar_strided_forgotten_stride(tmp_path):
    run = graded(variant(tmp_path, CIFAR_STRIDED, [("nn.Conv2d(3, 32, kernel_size=3, stride=2)",
                                                    "nn.Conv2d(3, 32, kernel_size=3)")]), "cifar10_strided")
    shapes, params = run.check("shapes"), run.check("params")
    # conv1 alone is wrong: conv2, conv3 and the flatten are right for what they get; fc1 then
    # stops the forward pass (its own mistake), so fc1, its ReLU and fc2 earn nothing
    assert shapes["score"] == shape_points(3 + 3, CIFAR_STRIDED_UNITS)
    assert "conv1: got 32x30x30, expected 32x15x15: O = (32 - 3 + 2*0)/1 + 1 = 30 means S=1; " \
           "the spec asks for S=2" in shapes["feedback"]
    assert "stopped in fc1, a Linear: it expects 1152 features, the flattened map has 4608 = 128x6x6" in shapes["feedback"]
    assert params["score"] == 3.0           # the stride learns nothing


def test_cifar_strided_flatten_size_from_halving(tmp_path):
    # 32 -> 16 -> 8 -> 4 by halving instead of the formula: fc1 waits for 128*4*4 = 2048 values
    run = graded(variant(tmp_path, CIFAR_STRIDED, [("nn.Linear(128 * 3 * 3, 1024)",
                                                    "nn.Linear(128 * 4 * 4, 1024)")]), "cifar10_strided")
    shapes, params = run.check("shapes"), run.check("params")
    assert shapes["score"] == shape_points(4 + 3, CIFAR_STRIDED_UNITS)   # all before fc1 stops
    assert "stopped in fc1, a Linear: it expects 2048 features, the flattened map has 1152 = 128x3x3" in shapes["feedback"]
    assert params["score"] == 2.0           # fc1 and the total: 4 of 6
    assert "fc1: got 2,098,176 parameters, expected (1152 + 1)*1024 = 1,180,672" in params["feedback"]


def test_cifar_strided_padding_one_shows_the_floor(tmp_path):
    convs = [("nn.Conv2d(3, 32, kernel_size=3, stride=2)", "nn.Conv2d(3, 32, kernel_size=3, stride=2, padding=1)"),
             ("nn.Conv2d(32, 64, kernel_size=3, stride=2)", "nn.Conv2d(32, 64, kernel_size=3, stride=2, padding=1)"),
             ("nn.Conv2d(64, 128, kernel_size=3, stride=2)", "nn.Conv2d(64, 128, kernel_size=3, stride=2, padding=1)")]
    run = graded(variant(tmp_path, CIFAR_STRIDED, convs + [("nn.Linear(128 * 3 * 3, 1024)",
                                                            "nn.Linear(128 * 4 * 4, 1024)")]),
                 "cifar10_strided")
    shapes, params = run.check("shapes"), run.check("params")
    # each padded conv is wrong for its own input; the flatten, fc1 (sized for what it gets)
    # and fc2 are right, and so are the four ReLUs
    assert shapes["score"] == shape_points(3 + 4, CIFAR_STRIDED_UNITS)
    assert "conv1: got 32x16x16, expected 32x15x15: O = floor((32 - 3 + 2*1)/2) + 1 = 16 means P=1; " \
           "the spec asks for P=0" in shapes["feedback"]
    assert "conv3: got 128x4x4, expected 128x3x3 from its 64x8x8 input: O = floor((8 - 3 + 2*1)/2) + 1 = 4 means P=1" \
        in shapes["feedback"]
    # padding learns nothing, and fc1 is sized for the 128x4x4 maps it really gets: only the
    # total differs from the spec's (5 of 6 rows)
    assert params["score"] == 2.5


def test_cifar_strided_missing_relu(tmp_path):
    run = graded(variant(tmp_path, CIFAR_STRIDED, [("x = F.relu(self.conv2(x))", "x = self.conv2(x)")]),
                 "cifar10_strided")
    assert run.check("shapes")["score"] == shape_points(6 + 3, CIFAR_STRIDED_UNITS)
    assert "conv2: no activation after it; the spec asks for relu" in run.check("shapes")["feedback"]
    assert run.check("params")["score"] == 3.0


# ---------------------------------------------------------------- cifar10_vgg
#
# 20 layers and 7 ReLUs in the shapes check (4 points); 14 layers with parameters and the
# total in the params check (3 points: 0.2 each).

VGG_UNITS, VGG_PARAM_ROWS = 20 + 7, 14 + 1


def test_vgg_functional_dropout_stays_on_at_test_time(tmp_path):
    run = graded(variant(tmp_path, VGG, [("x = F.relu(self.fc1(self.drop1(x)))",
                                          "x = F.relu(self.fc1(F.dropout(x, p=0.5)))")]), "cifar10_vgg")
    shapes = run.check("shapes")
    assert shapes["score"] == shape_points(VGG_UNITS - 1, VGG_UNITS)
    assert "drop1 (dropout call): F.dropout(x, p=0.5) still drops values in eval mode, because its " \
           "training argument defaults to True" in shapes["feedback"]
    assert run.check("params")["score"] == 3.0


def test_vgg_functional_dropout_told_the_mode_is_fine(tmp_path):
    run = graded(variant(tmp_path, VGG, [("x = F.relu(self.fc1(self.drop1(x)))",
                                          "x = F.relu(self.fc1(F.dropout(x, 0.5, self.training)))")]),
                 "cifar10_vgg")
    assert run.code == 0, run.check("shapes")["feedback"]


def test_vgg_dropout_after_a_convolution_block(tmp_path):
    run = graded(variant(tmp_path, VGG, [
        ("x = self.block3(self.block2(self.block1(x)))", "x = self.block3(self.block2(self.drop1(self.block1(x))))"),
        ("x = F.relu(self.fc1(self.drop1(x)))", "x = F.relu(self.fc1(x))")]), "cifar10_vgg")
    shapes = run.check("shapes")
    assert shapes["score"] == shape_points(VGG_UNITS - 1, VGG_UNITS)
    assert "drop1: no dropout layer found where the spec expects one (input 2048, output 2048); " \
           "your drop1 runs where the input is 32x16x16; dropout goes between the dense layers, " \
           "not after convolutions" in shapes["feedback"]


def test_vgg_batch_norm_without_its_scale_and_shift(tmp_path):
    run = graded(variant(tmp_path, VGG, [("nn.ReLU(), nn.BatchNorm2d(c_out),\n        nn.Conv2d",
                                          "nn.ReLU(), nn.BatchNorm2d(c_out, affine=False),\n        nn.Conv2d"),
                                         ("nn.ReLU(), nn.BatchNorm2d(c_out),\n        nn.MaxPool2d",
                                          "nn.ReLU(), nn.BatchNorm2d(c_out, affine=False),\n        nn.MaxPool2d")]),
                 "cifar10_vgg")
    params = run.check("params")
    assert run.check("shapes")["score"] == 4.0
    assert params["score"] == pytest.approx(3 * (VGG_PARAM_ROWS - 6 - 1) / VGG_PARAM_ROWS)   # 6 norms, total
    assert "bn1a: got 0 parameters, expected 2*32 = 64" in params["feedback"]
    assert f"total: {2_396_330 - 2 * 2 * (32 + 64 + 128):,} parameters, expected 2,396,330" in params["feedback"]


def test_vgg_block_without_its_second_relu(tmp_path):
    run = graded(variant(tmp_path, VGG, [("nn.Conv2d(c_out, c_out, kernel_size=3, padding=1), nn.ReLU(),",
                                          "nn.Conv2d(c_out, c_out, kernel_size=3, padding=1),")]), "cifar10_vgg")
    shapes = run.check("shapes")
    assert shapes["score"] == shape_points(VGG_UNITS - 3, VGG_UNITS)   # after conv1b, conv2b, conv3b
    assert "conv2b (block2.3): no activation after it; the spec asks for relu" in shapes["feedback"]
    assert run.check("params")["score"] == 3.0


def test_vgg_fc1_sized_for_two_poolings(tmp_path):
    run = graded(variant(tmp_path, VGG, [("nn.Linear(128 * 4 * 4, 1024)", "nn.Linear(128 * 8 * 8, 1024)")]),
                 "cifar10_vgg")
    shapes, params = run.check("shapes"), run.check("params")
    # the 17 layers before fc1 and their 6 ReLUs; fc1 stops the forward pass
    assert shapes["score"] == shape_points(17 + 6, VGG_UNITS)
    assert "stopped in fc1, a Linear: it expects 8192 features, the flattened map has 2048 = 128x4x4" in shapes["feedback"]
    assert params["score"] == pytest.approx(3 * (VGG_PARAM_ROWS - 2) / VGG_PARAM_ROWS)   # fc1, total


def test_json_is_schema_1():
    run = grade(SOLUTIONS / "cifar10_cnn", "--only", "shapes,params", "--format", "json")
    data = run.json()
    assert data["schema"] == 1
    assert set(data) >= {"assignment", "submission", "score", "max_score", "checks", "duration_s",
                         "device", "versions"}
    for c in data["checks"]:
        assert set(c) == {"id", "kind", "score", "max_score", "status", "feedback", "details"}
        assert c["status"] in ("passed", "failed", "error", "skipped")
    json.loads(run.out, parse_constant=_refuse)      # strict JSON: no NaN or Infinity


def _refuse(constant: str):
    raise AssertionError(f"{constant} in the JSON result")
