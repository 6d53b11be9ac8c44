"""`grade check` and `grader.check()`: the student's fast self-check."""
from __future__ import annotations

import shutil

import nbclient
import nbformat
import pytest

from conftest import ASSIGNMENTS, SOLUTIONS, grade, variant
from grader.runner import Options
from grader.selfcheck import smoke_run
from grader.spec import load_spec


def test_grade_check_in_skeleton_folder_fails_with_hint(tmp_path):
    folder = tmp_path / "cifar10_cnn"
    shutil.copytree(ASSIGNMENTS / "cifar10_cnn", folder)
    run = grade("check", folder, "--only", "shapes,params")
    assert run.code == 1
    assert "0 / 7 points (public checks)" in run.out
    assert "a TODO is still" in run.out  # the table wraps the rest of the hint


def smoke(path, assignment, data_dir):
    """The smoke run `grade check` adds to its table, as a check result."""
    spec = load_spec(ASSIGNMENTS / assignment / "spec.yaml")
    return smoke_run(path, spec, Options(data_dir=data_dir))


@pytest.mark.data
@pytest.mark.parametrize("assignment", ["cifar10_cnn", "lenet5_mnist", "fashion_mnist_strided",
                                        "unet_cifar10"])
def test_the_smoke_run_calls_every_reference_a_learner(tmp_path, data_dir, assignment):
    check = smoke(SOLUTIONS / assignment / "model.py", assignment, data_dir)
    assert check.status == "passed", check.feedback
    assert check.feedback.startswith("The model learns: on 64 fixed training images")


@pytest.mark.data
def test_the_smoke_run_does_not_call_a_zero_feature_net_a_learner(tmp_path, data_dir):
    """Features multiplied by 0: the loss still falls a little (the output bias learns the
    class frequencies), but the net cannot fit 64 images; with --full it reaches 10.5%."""
    path = variant(tmp_path, SOLUTIONS / "cifar10_cnn" / "model.py",
                   [("x = torch.flatten(x, 1)", "x = torch.flatten(x, 1) * 0")])
    check = smoke(path, "cifar10_cnn", data_dir)
    assert check.status == "failed"
    assert check.feedback.startswith("The model does not learn: on 64 fixed training images, "
                                     "training accuracy went from")
    assert "(chance: 10%)" in check.feedback


@pytest.mark.data
def test_grade_check_shows_the_smoke_run_in_its_table(tmp_path, data_dir):
    folder = tmp_path / "cifar10_cnn"
    shutil.copytree(ASSIGNMENTS / "cifar10_cnn", folder)
    shutil.copy(SOLUTIONS / "cifar10_cnn" / "model.py", folder / "model.py")
    run = grade("check", folder, "--data-dir", data_dir)
    assert run.code == 0, run.out
    assert "training (smoke run)" in run.out and "The model learns" in run.out


def test_check_in_notebook_shows_html_table(tmp_path):
    folder = tmp_path / "cifar10_cnn"
    shutil.copytree(ASSIGNMENTS / "cifar10_cnn", folder)
    nb = nbformat.v4.new_notebook()
    model = (SOLUTIONS / "cifar10_cnn" / "model.py").read_text().split("# %%\nclass Model")[1]
    nb.cells = [nbformat.v4.new_code_cell("import torch\nfrom torch import nn\nimport torch.nn.functional as F"),
                nbformat.v4.new_code_cell("class Model" + model.replace("kernel_size=5)\n        self.fc1",
                                                                        "kernel_size=3)\n        self.fc1")),
                nbformat.v4.new_code_cell('from grader import check\ncheck("shapes,params")')]
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(folder)}})
    client.execute()
    html = nb.cells[-1].outputs[0]["data"]["text/html"]
    # conv2 with K=3: shapes 6 of 12 units (fc1 then stops the forward pass), params 4 of 6 rows
    assert "cifar10_cnn: 4 / 7 points" in html
    assert "conv2: got 16x12x12, expected 16x10x10" in html
