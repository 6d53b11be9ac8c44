"""Notebook submissions: definitions are kept, training loops, shell lines and magics are not."""
from __future__ import annotations

import nbformat
import pytest

from conftest import ASSIGNMENTS, SOLUTIONS, grade
from grader.submission import from_notebook

MODEL_CELL = (SOLUTIONS / "cifar10_cnn" / "model.py").read_text().split("# %%\nclass Model")[1]


def student_notebook(path, model_cell: str):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# My CIFAR-10 net"),
        nbformat.v4.new_code_cell("!pip install torchvision\n%matplotlib inline\nimport torch\n"
                                  "import torch.nn as nn\nimport torch.nn.functional as F\nEPOCHS = 2\n"
                                  "WIDTH = 16 * 5 * 5"),
        nbformat.v4.new_code_cell("import torchvision\ntrainset = torchvision.datasets.CIFAR10("
                                  "root='./data', train=True, download=True)"),
        nbformat.v4.new_code_cell("class Model" + model_cell),
        nbformat.v4.new_code_cell("net = Model()\nfor epoch in range(EPOCHS):\n    print(epoch)\n"
                                  "    raise SystemExit('training must not run')"),
        nbformat.v4.new_code_cell("%%time\nprint('cell magic')"),
    ]
    nbformat.write(nb, path)
    return path


def test_notebook_with_training_cells_earns_full_marks(tmp_path):
    nb = student_notebook(tmp_path / "cifar10_cnn.ipynb", MODEL_CELL)
    run = grade(nb, "-a", "cifar10_cnn", "--only", "shapes,params", "--format", "json")
    assert run.code == 0, run.out
    skipped = run.json()["skipped_cells"]
    reasons = {(s["cell"], s["reason"]) for s in skipped}
    assert (1, "a shell command is not run") in reasons
    assert (1, "an IPython magic is not run") in reasons
    assert any(cell == 2 and "runs code" in why for cell, why in reasons)      # the download
    assert any(cell == 4 and "loops are not run" in why for cell, why in reasons)
    assert (5, "a cell magic is not run") in reasons


def test_notebook_error_points_at_cell_and_line(tmp_path):
    broken = MODEL_CELL.replace("self.conv2 = nn.Conv2d(6, 16, kernel_size=5)",
                                "self.conv2 = nn.Conv2d(6, 16, kernel_size=5, bogus=1)")
    nb = student_notebook(tmp_path / "cifar10_cnn.ipynb", broken)
    run = grade(nb, "-a", "cifar10_cnn", "--only", "shapes", "--format", "json")
    assert run.code == 1
    line = ("class Model" + broken).splitlines().index(
        "        self.conv2 = nn.Conv2d(6, 16, kernel_size=5, bogus=1)") + 1
    assert f"cifar10_cnn.ipynb, cell 3, line {line}" in run.check("shapes")["feedback"]


def test_constants_across_cells_are_kept(tmp_path):
    nb = student_notebook(tmp_path / "x.ipynb", MODEL_CELL.replace("16 * 5 * 5", "WIDTH"))
    source = from_notebook(nb)
    assert "WIDTH = 16 * 5 * 5" in source.text
    assert "EPOCHS = 2" in source.text
    assert "download=True" not in source.text


@pytest.mark.parametrize("assignment", ["cifar10_cnn", "lenet5_mnist", "cifar10_improved",
                                        "fashion_mnist_strided", "unet_cifar10", "cifar10_strided",
                                        "cifar10_vgg"])
def test_released_notebook_is_the_skeleton(assignment):
    run = grade(ASSIGNMENTS / assignment / f"{assignment}.ipynb", "--only", "shapes,params")
    assert run.code == 1 and "0 / 7 points" in run.out
    good = grade(SOLUTIONS / assignment / f"{assignment}.ipynb", "--only", "shapes,params")
    assert good.code == 0, good.out


def test_the_graders_own_test_cells_are_not_reported_as_left_out(tmp_path):
    run = grade(SOLUTIONS / "lenet5_mnist" / "lenet5_mnist.ipynb", "--only", "shapes",
                "--format", "json")
    assert run.code == 0, run.err
    assert run.json()["skipped_cells"] == []
    nb = student_notebook(tmp_path / "cifar10_cnn.ipynb", MODEL_CELL)
    nb_json = nbformat.read(nb, as_version=4)
    nb_json.cells.append(nbformat.v4.new_code_cell("import grader.nb as g\ng.check('shapes')"))
    nb_json.cells.append(nbformat.v4.new_code_cell("from grader import check\ncheck()"))
    nbformat.write(nb_json, nb)
    lines = {s.line for s in from_notebook(nb).skipped}
    assert not [line for line in lines if "grader" in line or "check(" in line], lines
    assert "net = Model()" in lines                       # the student's own lines still are
