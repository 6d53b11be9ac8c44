"""Submissions that fail in every way still get a complete result, exit 1 and an actionable message."""
from __future__ import annotations

import json

import pytest

from conftest import SOLUTIONS, grade, variant

CIFAR = SOLUTIONS / "cifar10_cnn" / "model.py"

CASES = {
    "syntax_error": ([("def forward(self, x):", "def forward(self, x)")],
                     "SyntaxError"),
    "missing_model": ([("class Model(nn.Module):", "class Net(nn.Module):")],
                      "no class named 'Model' is defined"),
    "init_raises": ([("super().__init__()", "super().__init__()\n        raise ValueError('bad channels')")],
                    "Model() could not be created: ValueError: bad channels"),
    "forward_raises": ([("x = torch.flatten(x, 1)", "x = x.undefined_method()")],
                       "AttributeError"),
    "sys_exit_on_import": ([("import torch\n", "import torch\nimport sys\nsys.exit(0)\n")],
                           "sys.exit(0)"),
    "hard_exit_on_import": ([("import torch\n", "import torch\nimport os\nos._exit(0)\n")],
                            "exited with status 0"),
}

ZERO = {"shapes": 0.0, "params": 0.0}
# forward_raises: the lab net stops after pool2; conv1, pool1, conv2, pool2 and the two ReLUs
# after the convolutions were measured right (6 of 12 units), and every parameter is there.
SCORES = {"forward_raises": {"shapes": 2.0, "params": 3.0}}


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_submission_gets_complete_result(tmp_path, case):
    replacements, message = CASES[case]
    path = variant(tmp_path, CIFAR, replacements)
    run = grade(path, "--assignment", "cifar10_cnn", "--only", "shapes,params", "--format", "json")
    assert run.code == 1, run.err
    data = run.json()
    assert [(c["id"], c["status"] == "skipped") for c in data["checks"]] == [
        ("shapes", False), ("params", False), ("accuracy", True)]
    graded = {c["id"]: c["score"] for c in data["checks"] if c["status"] != "skipped"}
    assert graded == SCORES.get(case, ZERO)
    feedback = "\n".join(c["feedback"] for c in data["checks"]) + "\n".join(data["notes"])
    assert message in feedback
    assert "Traceback" not in run.err


def test_syntax_error_names_the_line(tmp_path):
    path = variant(tmp_path, CIFAR, [("def forward(self, x):", "def forward(self, x)")])
    run = grade(path, "-a", "cifar10_cnn", "--only", "shapes", "--format", "json")
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "def forward(self, x)" in t)
    assert f"model.py, line {line}: `def forward(self, x)`: SyntaxError" in run.check("shapes")["feedback"]


def test_forward_crash_keeps_params_score(tmp_path):
    path = variant(tmp_path, CIFAR, [("x = torch.flatten(x, 1)", "x = x.undefined_method()")])
    run = grade(path, "-a", "cifar10_cnn", "--only", "shapes,params", "--format", "json")
    assert run.check("params")["score"] == 3.0
    assert "The forward pass stopped" in run.check("shapes")["feedback"]


def test_nan_output_is_reported(tmp_path):
    path = variant(tmp_path, CIFAR, [("return self.fc3(x)", "return self.fc3(x) * float('nan')")])
    run = grade(path, "-a", "cifar10_cnn", "--only", "shapes", "--format", "json")
    shapes = run.check("shapes")
    assert run.code == 1
    assert "NaN or infinity" in shapes["feedback"]
    assert shapes["score"] == pytest.approx(4 * 11 / 12, abs=1e-4)   # one of 12 units lost


def test_hang_times_out(tmp_path):
    path = variant(tmp_path, CIFAR, [("x = torch.flatten(x, 1)", "while True:\n            pass")])
    run = grade(path, "-a", "cifar10_cnn", "--only", "shapes,params", "--timeout", "20", "--format", "json")
    assert run.code == 1
    data = run.json()
    assert "timed out after 20 s" in data["checks"][0]["feedback"]
    assert data["checks"][1]["score"] == 3.0   # params were measured before the hang


def test_empty_folder_is_graded_zero(tmp_path):
    (tmp_path / "empty").mkdir()
    run = grade(tmp_path / "empty", "-a", "cifar10_cnn", "--only", "shapes", "--format", "json")
    assert run.code == 1
    assert "could not tell which file to grade" in run.check("shapes")["feedback"]


def test_printing_submission_does_not_pollute_stdout(tmp_path):
    path = variant(tmp_path, CIFAR, [("import torch\n", "import torch\nprint('hello ' * 100000)\n")])
    run = grade(path, "-a", "cifar10_cnn", "--only", "shapes", "--format", "json")
    json.loads(run.out)  # stdout is exactly the report
    assert run.code == 0
