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


def test_untraceable_forward_is_graded_in_its_own_process_and_says_so(tmp_path):
    # Python control flow on a tensor's value cannot be traced symbolically.
    path = variant(tmp_path, CIFAR, [("x = torch.flatten(x, 1)",
                                      "if x.sum() > -1e9:\n            x = torch.flatten(x, 1)")])
    run = grade(path, "-a", "cifar10_cnn", "--only", "shapes,params", "--format", "json")
    assert run.code == 0, run.out
    data = run.json()
    assert [c["score"] for c in data["checks"]] == [4.0, 3.0]
    [note] = data["notes"]
    assert "torch.fx cannot trace Model.forward" in note and "self-reported" in note


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
    (folder / "manifest.json").write_text(json.dumps({"format": 1, "modules": modules}))
    np.savez(folder / "tensors.npz", **(tensors or {}))
    return folder


def traced(graph: list[dict], path: str = "") -> dict:
    return {"path": path, "class": "Model", "kind": "traced", "params": {}, "buffers": [],
            "constants": [], "graph": graph}


def node(op: str, name: str, target: str, *args, **kwargs) -> dict:
    return {"op": op, "name": name, "target": target, "args": list(args), "kwargs": kwargs,
            "frames": []}


X = {"$node": "x"}


@pytest.mark.parametrize("graph, refused", [
    ([node("placeholder", "x", "x"), node("call_function", "y", "os.system", "true")],
     ArtifactError),
    ([node("placeholder", "x", "x"), node("call_function", "y", "torch.load", "/etc/passwd")],
     ArtifactError),
    ([node("placeholder", "x", "x"), node("call_method", "y", "__reduce__", X)], ArtifactError),
    ([node("placeholder", "x", "x"), node("call_function", "y", "getattr", X, "__class__")],
     ArtifactError),
    ([node("placeholder", "x", "x"), node("get_attr", "y", "secret")], ArtifactError),
])
def test_a_forged_graph_runs_nothing_but_tensor_arithmetic(tmp_path, graph, refused):
    graph.append(node("output", "out", "output", {"$node": "y"}))
    model = load_model(write_artifact(tmp_path, [traced(graph)]))
    with pytest.raises(refused):
        model(torch.zeros(1))


@pytest.mark.parametrize("entry, message", [
    ({"path": "", "class": "Parameter", "kind": "library", "kwargs": {}, "params": {},
      "buffers": []}, "not a torch.nn module"),
    ({"path": "", "class": "__import__", "kind": "library", "kwargs": {}, "params": {},
      "buffers": []}, "not a torch.nn module"),
    ({"path": "", "class": "Linear", "kind": "library", "kwargs": {"in_features": 2,
      "out_features": 2}, "params": {"weight": True, "bias": True}, "buffers": []},
     "has shape [5, 5], but its arguments make [2, 2]"),
    ({**traced([]), "path": "a;b"}, "bad module path"),
])
def test_a_forged_module_tree_is_refused(tmp_path, entry, message):
    tensors = {":weight": np.zeros((5, 5), np.float32), ":bias": np.zeros(2, np.float32)}
    with pytest.raises(ArtifactError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_model(write_artifact(tmp_path, [entry], tensors))
