"""`grade check` and `grader.check()`: the student's fast self-check."""
from __future__ import annotations

import shutil

import nbclient
import nbformat
import pytest

from conftest import ASSIGNMENTS, SOLUTIONS, grade


def test_grade_check_in_skeleton_folder_fails_with_hint(tmp_path):
    folder = tmp_path / "cifar10_cnn"
    shutil.copytree(ASSIGNMENTS / "cifar10_cnn", folder)
    run = grade("check", folder, "--only", "shapes,params")
    assert run.code == 1
    assert "0 / 7 points (public checks)" in run.out
    assert "a TODO is still" in run.out  # the table wraps the rest of the hint


@pytest.mark.data
def test_grade_check_smoke_run_shows_the_loss_falling(tmp_path, data_dir):
    folder = tmp_path / "cifar10_cnn"
    shutil.copytree(ASSIGNMENTS / "cifar10_cnn", folder)
    shutil.copy(SOLUTIONS / "cifar10_cnn" / "model.py", folder / "model.py")
    run = grade("check", folder, "--data-dir", data_dir)
    assert run.code == 0, run.out
    assert "training (smoke run)" in run.out and "The loss fell from" in run.out


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
    assert "cifar10_cnn: 3 / 7 points" in html   # conv2 with K=3: shapes 1 of 4, params 2 of 3
    assert "conv2: got 16x12x12, expected 16x10x10" in html
