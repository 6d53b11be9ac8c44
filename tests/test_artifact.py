"""The graded artifact: a model exported by the submission's process and replayed elsewhere.

What a user relies on: the replayed model *is* the student's model (same outputs, same
module tree, same parameter tensors, same layer-by-layer trace, same training), a model
torch.fx cannot trace is still graded (and says so), and an artifact that asks for more than
tensor arithmetic is refused rather than run.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import ASSIGNMENTS, SOLUTIONS, grade, variant
from grader.spec import load_spec
from grader.worker.artifact import ArtifactError
from grader.worker.export import export_model
from grader.worker.replay import load_model
from grader.worker.trace import ForwardTracer, describe_model

MODEL_SOLUTIONS = sorted(p for p in SOLUTIONS.glob("*/model.py")
                         if "class Model" in p.read_text())
CIFAR = SOLUTIONS / "cifar10_cnn" / "model.py"


def import_file(path: Path, name: str = "submission"):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def round_trip(model: nn.Module, folder: Path, student_root: Path) -> nn.Module:
    export_model(model, folder, student_root)
    return load_model(folder)


@pytest.mark.parametrize("path", MODEL_SOLUTIONS, ids=lambda p: p.parent.name)
def test_every_reference_model_replays_exactly(tmp_path, path):
    torch.manual_seed(0)
    model = import_file(path).Model()
    replayed = round_trip(model, tmp_path / "artifact", path.parent)
    x = torch.randn(2, *load_spec(ASSIGNMENTS / path.parent.name / "spec.yaml").input_shape)
    model.eval(), replayed.eval()
    assert torch.equal(model(x), replayed(x))
    assert describe_model(replayed) == describe_model(model)
    traces = [ForwardTracer(m) for m in (model, replayed)]
    for t in traces:
        t.run(x)
    assert traces[0].events == traces[1].events


STYLES = '''
import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, 3, 3) * 0.1)
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.register_buffer("scale", torch.full((1, c_out, 1, 1), 0.5))
        self.shift = torch.tensor(0.25)   # a plain tensor attribute: exported as a constant

    def forward(self, x):
        return F.relu(F.conv2d(x, self.weight, self.bias, padding=1)) * self.scale + self.shift


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(Block(3, 8), nn.MaxPool2d(2), nn.BatchNorm2d(8))
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(8 * 16 * 16, 10)

    def forward(self, x):
        x = self.features(x)
        x = x.view(x.size(0), -1)
        return self.head(self.drop(x))
'''


def test_functional_buffers_constants_and_modes_replay(tmp_path):
    (tmp_path / "model.py").write_text(STYLES)
    torch.manual_seed(0)
    model = import_file(tmp_path / "model.py").Model()
    replayed = round_trip(model, tmp_path / "artifact", tmp_path)
    x = torch.randn(4, 3, 32, 32)
    model.eval(), replayed.eval()
    assert torch.equal(model(x), replayed(x))
    # one training step on each, from the same weights and random state: same weights after
    for m in (model, replayed):
        m.train()
        torch.manual_seed(1)
        optimizer = torch.optim.SGD(m.parameters(), lr=0.1)
        nn.functional.cross_entropy(m(x), torch.arange(4)).backward()
        optimizer.step()
    for (name, a), (_, b) in zip(model.state_dict().items(), replayed.state_dict().items()):
        assert torch.equal(a, b), name


UNTRACEABLE = [("x = torch.flatten(x, 1)",
                "if x.sum() > -1e9:\n            x = torch.flatten(x, 1)")]


def test_untraceable_forward_earns_no_shape_points_and_says_how_to_fix_it(tmp_path):
    # Python control flow on a tensor's value: no single tensor program is the model.
    path = variant(tmp_path, CIFAR, UNTRACEABLE)
    run = grade(path, "-a", "cifar10_cnn", "--only", "shapes,params", "--format", "json")
    assert run.code == 1, run.out
    data = run.json()
    assert [c["score"] for c in data["checks"]] == [0.0, 3.0, 0.0]   # params: the exported tree
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "x.sum()" in t)
    feedback = run.check("shapes")["feedback"]
    assert f"could not be measured apart from its code: Model.forward: its Python code needs " \
           f"a tensor's value (to use it in an `if` or `while`) at model.py, line {line}" in feedback
    assert "write the forward without Python `if`" in feedback
    assert data["notes"] == [] and data["flags"] == []


def test_a_spec_may_allow_self_reported_grading_and_every_report_says_so(tmp_path):
    spec = (ASSIGNMENTS / "cifar10_cnn" / "spec.yaml").read_text()
    folder = tmp_path / "cifar10_cnn"
    folder.mkdir()
    (folder / "spec.yaml").write_text(spec + "self_reported: true\n")
    path = variant(tmp_path, CIFAR, UNTRACEABLE)
    run = grade(path, "-a", folder, "--only", "shapes,params", "--format", "json")
    data = run.json()
    assert [c["score"] for c in data["checks"]] == [4.0, 3.0, 0.0]     # accuracy: left out
    assert data["flags"] == ["self-reported"]
    [note] = data["notes"]
    assert note.startswith("SELF-REPORTED: probe measured inside the submission's own process")
    markdown = grade(path, "-a", folder, "--only", "shapes,params", "--format", "markdown").out
    assert "SELF-REPORTED" in markdown


CAPTURED_IDIOMS = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    """The PyTorch tutorial's net, written with Python on sizes the way tutorials do."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        if x.dim() == 3:                      # a single image: add the batch axis
            x = x.unsqueeze(0)
        assert x.shape[1] == 3, "expects RGB images"
        print("input", x.shape)
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, self.num_flat_features(x))
        x = F.dropout(F.relu(self.fc1(x)), 0.5, self.training)
        for _ in range(len(x.shape) - 1):
            x = F.relu(self.fc2(x))
        return self.fc3(x)

    def num_flat_features(self, x):
        size = x.size()[1:]
        num_features = 1
        for s in size:
            num_features *= s
        return num_features
'''


def test_python_on_sizes_is_captured_and_replays_at_every_batch_size(tmp_path):
    (tmp_path / "model.py").write_text(CAPTURED_IDIOMS)
    torch.manual_seed(0)
    model = import_file(tmp_path / "model.py").Model()
    folder = tmp_path / "artifact"
    summary = export_model(model, folder, tmp_path, torch.randn(2, 3, 32, 32))
    assert summary["untraced"] == {}
    replayed = load_model(folder)
    model.eval(), replayed.eval()
    for batch in (1, 2, 7, 64):   # x.view(-1, ...) and the size arithmetic stay symbolic
        x = torch.randn(batch, 3, 32, 32)
        assert torch.equal(model(x), replayed(x))
    for m in (model, replayed):   # F.dropout(..., self.training) replays per mode
        m.train()
    torch.manual_seed(5)
    a = model(x)
    torch.manual_seed(5)
    assert torch.equal(a, replayed(x))


ITEM_ASSIGNMENT = '''
import torch
import torch.nn.functional as F
from torch import nn


class Model(nn.Module):
    """Writes into tensors in its forward: a kernel filled through a boolean mask (LeNet-5's
    C3 as one masked convolution) and a channel set to zero by index."""

    def __init__(self):
        super().__init__()
        self.register_buffer("links", torch.rand(4, 3, 3, 3) > 0.5, persistent=False)
        self.weight = nn.Parameter(torch.randn(int(self.links.sum())) * 0.1)
        self.fc = nn.Linear(4 * 30 * 30, 10)

    def forward(self, x):
        kernel = KERNEL
        kernel[self.links] = self.weight
        x = F.conv2d(x, kernel)
        x[:, 0] = 0
        return self.fc(x.flatten(1))
'''


@pytest.mark.parametrize("kernel", [
    "self.weight.new_zeros(self.links.shape)",   # computed from a parameter: a node
    "torch.zeros(4, 3, 3, 3)",                   # from constants only: traced as a constant
    "self.links.float().clone()",                # from a buffer outside the trace: likewise
])
def test_item_assignment_in_a_forward_trains_as_the_students_code_does(tmp_path, kernel):
    # A constant written into must be fresh at every call, and the same tensor within one:
    # otherwise the second training step fails (a graph already freed) or the convolution
    # reads the kernel before the write and the weights get no gradient.
    (tmp_path / "model.py").write_text(ITEM_ASSIGNMENT.replace("KERNEL", kernel))
    torch.manual_seed(0)
    model = import_file(tmp_path / "model.py").Model()
    summary = export_model(model, tmp_path / "artifact", tmp_path, torch.randn(2, 3, 32, 32))
    assert summary["untraced"] == {}
    replayed = load_model(tmp_path / "artifact")
    x, y = torch.randn(5, 3, 32, 32), torch.randint(0, 10, (5,))
    for _ in range(3):
        for m in (model, replayed):
            m.zero_grad()
            torch.nn.functional.cross_entropy(m(x), y).backward()
        assert torch.equal(model.weight.grad, replayed.weight.grad)
        assert torch.count_nonzero(replayed.weight.grad) > 0
        with torch.no_grad():
            for m in (model, replayed):
                for p in m.parameters():
                    p -= 0.01 * p.grad
    assert torch.equal(model(x), replayed(x))


def assert_lab_variant_replays_exactly(tmp_path, code: str) -> None:
    (tmp_path / "model.py").write_text(code)
    torch.manual_seed(0)
    model = import_file(tmp_path / "model.py").Model().eval()
    replayed = round_trip(model, tmp_path / "artifact", tmp_path).eval()
    x = torch.randn(3, 3, 32, 32)
    assert torch.equal(model(x), replayed(x))


def test_a_forward_with_star_args_replays(tmp_path):
    assert_lab_variant_replays_exactly(tmp_path, CIFAR.read_text().replace(
        "def forward(self, x):", "def forward(self, x, *args, **kwargs):"))


def test_modules_built_inside_a_forward_are_traced_through_unless_they_have_weights(tmp_path):
    lab = CIFAR.read_text()
    assert_lab_variant_replays_exactly(tmp_path, lab.replace(
        "x = F.relu(self.fc1(x))", "x = nn.ReLU()(self.fc1(x))").replace(
        "x = torch.flatten(x, 1)", "x = nn.Flatten()(x)"))
    (tmp_path / "model.py").write_text(lab.replace("return self.fc3(x)",
                                                   "return nn.Linear(10, 10)(self.fc3(x))"))
    run = grade(tmp_path / "model.py", "-a", "cifar10_cnn", "--only", "shapes", "--format", "json")
    assert "not installed as a submodule" in run.check("shapes")["feedback"]


def test_a_pruned_layer_replays_with_its_mask(tmp_path):
    """torch.nn.utils.prune (LeNet-5's C3 table as a mask on a full convolution): the replay
    computes weight = weight_orig * weight_mask at every call, as the student's model does."""
    from torch.nn.utils import prune

    torch.manual_seed(0)
    model = import_file(CIFAR).Model().eval()
    mask = (torch.rand(16, 6, 5, 5) > 0.5).float()
    prune.custom_from_mask(model.conv2, "weight", mask)
    replayed = round_trip(model, tmp_path / "artifact", CIFAR.parent).eval()
    x = torch.randn(3, 3, 32, 32)
    assert torch.equal(model(x), replayed(x))
    replayed(x).sum().backward()
    grad = replayed.conv2.weight_orig.grad
    assert torch.count_nonzero(grad[mask == 0]) == 0 and torch.count_nonzero(grad) > 0


def test_a_size_the_forward_was_traced_for_is_checked_when_replayed(tmp_path):
    (tmp_path / "model.py").write_text(CAPTURED_IDIOMS)
    model = import_file(tmp_path / "model.py").Model()
    export_model(model, tmp_path / "artifact", tmp_path, torch.randn(2, 3, 32, 32))
    replayed = load_model(tmp_path / "artifact").eval()
    with pytest.raises(ArtifactError, match="traced for a size of True, but got False"):
        replayed(torch.randn(2, 1, 32, 32))    # the traced `assert x.shape[1] == 3` guards it


def test_a_crash_in_the_replayed_forward_names_the_students_line(tmp_path):
    path = variant(tmp_path, CIFAR, [("x = torch.flatten(x, 1)", "x = x.undefined_method()")])
    run = grade(path, "-a", "cifar10_cnn", "--only", "shapes", "--format", "json")
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1)
                if "x = x.undefined_method()" in t)
    feedback = run.check("shapes")["feedback"]
    assert f"has no attribute 'undefined_method' at model.py, line {line} in forward()" in feedback
    assert run.json()["notes"] == []  # it was traced, and replayed: not self-reported


def write_artifact(folder: Path, modules: list[dict], tensors: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps({"format": 2, "modules": modules}))
    np.savez(folder / "tensors.npz", **(tensors or {}))
    return folder


def traced(graph: list[dict], path: str = "") -> dict:
    return {"path": path, "class": "Model", "kind": "traced", "params": {}, "buffers": [],
            "constants": [], "graph": graph}


def node(op: str, name: str, target: str, *args, **kwargs) -> dict:
    return {"op": op, "name": name, "target": target, "args": list(args), "kwargs": kwargs,
            "frames": []}


X = {"$node": "x"}


def call(target: str, *args) -> dict:
    return node("call_function", "y", target, *args)


ESCAPES = {   # what a forged graph might try; every one of them is outside ops' table
    "os.system": call("os.system", "true"),
    "torch.load": call("torch.load", "/etc/passwd"),
    "torch.from_file": call("torch.from_file", "/etc/passwd"),
    "__reduce__": node("call_method", "y", "__reduce__", X),
    "getattr __class__": call("getattr", X, "__class__"),
    "getattr grad_fn": call("getattr", X, "grad_fn"),
    "attrgetter": call("operator.attrgetter", "__class__.backward.__globals__"),
    "methodcaller": call("operator.methodcaller", "numpy"),
    "operator.call": call("operator.call", X),
    "apply_": node("call_method", "y", "apply_", X, X),
    "map_": node("call_method", "y", "map_", X, X, X),
    "register_hook": node("call_method", "y", "register_hook", X, X),
    "backward": node("call_method", "y", "backward", X),
    "numpy": node("call_method", "y", "numpy", X),
    "handle_torch_function": call("F.handle_torch_function", X, X),
    "set_default_dtype": call("torch.set_default_dtype", {"$dtype": "float64"}),
    "huge power": call("operator.pow", 10, 10 ** 9),
    "a secret attribute": node("get_attr", "y", "secret"),
}


@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_a_forged_graph_runs_nothing_but_tensor_arithmetic(tmp_path, name):
    graph = [node("placeholder", "x", "x"), ESCAPES[name], node("output", "out", "output",
                                                                {"$node": "y"})]
    model = load_model(write_artifact(tmp_path, [traced(graph)]))
    with pytest.raises(ArtifactError):
        model(torch.zeros(1))


def test_a_value_outside_the_table_cannot_even_be_held(tmp_path):
    """Every result is checked: a method of a tensor (a callable) is refused as a value."""
    from grader.worker import ops

    for value in (torch.zeros(1).add_, print, object(), b"bytes", {"a": 1}, nn.Linear(1, 1)):
        with pytest.raises(ops.ReplayRefused):
            ops.check_value(value)
    ops.check_value((torch.zeros(2), [1, 2.0, None, "mean"], slice(0, 2), torch.float32))


@pytest.mark.parametrize("manifest, message", [
    ({"format": 2, "modules": [traced([])] * 6000}, "more than 5,000 modules"),
    ({"format": 1, "modules": []}, "unknown artifact format"),
    ("[" * 200_000 + "]" * 200_000, "not valid JSON"),
    ({"format": 2, "modules": [{**traced([]), "graph": "x"}]}, "is malformed"),
])
def test_a_malformed_model_description_is_refused_quickly(tmp_path, manifest, message):
    tmp_path.joinpath("manifest.json").write_text(manifest if isinstance(manifest, str)
                                                  else json.dumps(manifest))
    np.savez(tmp_path / "tensors.npz")
    with pytest.raises(ArtifactError, match=message):
        load_model(tmp_path)


@pytest.mark.parametrize("entry, message", [
    ({"path": "", "class": "Parameter", "kind": "library", "kwargs": {}, "params": {},
      "buffers": []}, "not a torch.nn module"),
    ({"path": "", "class": "__import__", "kind": "library", "kwargs": {}, "params": {},
      "buffers": []}, "not a torch.nn module"),
    ({"path": "", "class": "Module", "kind": "library", "kwargs": {}, "params": {},
      "buffers": []}, "not a torch.nn module"),
    ({"path": "", "class": "Linear", "kind": "library", "kwargs": {"in_features": 2,
      "out_features": 2}, "params": {"weight": True, "bias": True}, "buffers": []},
     "has shape [5, 5], but its arguments make [2, 2]"),
    ({**traced([]), "path": "a;b"}, "is malformed"),
    ({"path": "", "class": "ReLU", "kind": "library", "kwargs": {}, "params": {},
      "buffers": [], "pruned": ["__class__"]}, "has no parameter '__class__' to prune"),
    ({"path": "", "class": "ReLU", "kind": "library", "kwargs": {}, "params": {},
      "buffers": [], "pruned": [{"$node": "x"}]}, "lists its tensors wrongly"),
])
def test_a_forged_module_tree_is_refused(tmp_path, entry, message):
    tensors = {":weight": np.zeros((5, 5), np.float32), ":bias": np.zeros(2, np.float32)}
    with pytest.raises(ArtifactError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_model(write_artifact(tmp_path, [entry], tensors))
