"""nbgrader end to end: the course pack's notebooks work with the real nbgrader command,
and the gradebook's scores equal the CLI's for the same code."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import nbformat
import pytest

from conftest import REPO, SOLUTIONS, grade
from grader import course

ASSIGNMENT = "cifar10_cnn"


def nbgrader(course_dir, *args, env=None):
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course_dir,
                          capture_output=True, text=True, env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    """The course pack rebuilt by `grade course build`'s code in a scratch copy."""
    root = tmp_path_factory.mktemp("pack")
    names = course.assignment_names(REPO)
    for tree in ("assignments", "solutions"):
        for name in names:
            shutil.copytree(REPO / tree / name, root / tree / name)
    return root, course.build(root, names)


@pytest.mark.parametrize("name", course.assignment_names(REPO))
def test_generated_files_are_up_to_date(rebuilt, name):
    """`grade course build` reproduces the committed skeleton and notebooks byte for byte."""
    root, written = rebuilt
    mine = [path for path in written if path.parent.name == name]
    assert len(mine) == 3
    for path in mine:
        committed = REPO / path.relative_to(root)
        assert path.read_bytes() == committed.read_bytes(), \
            f"{committed} is out of date: run `grade course build {name}`"


def test_skeleton_replaces_solution_regions():
    text = "def f(x):\n    # hint stays\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n"
    assert course.make_skeleton(text) == \
        "def f(x):\n    # hint stays\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"


def submitted_notebook(release, solution_code: str):
    nb = nbformat.read(release, as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = solution_code
    return nb


def model_cell(text: str) -> str:
    return "class Model" + text.split("# %%\nclass Model")[1]


@pytest.mark.data
@pytest.mark.slow
def test_autograde_round_trip_matches_cli(tmp_path, data_dir):
    course_dir = tmp_path / "course"
    run = grade("nbgrader", "init", course_dir, "-a", ASSIGNMENT)
    assert run.code == 0, run.err
    nbgrader(course_dir, "generate_assignment", ASSIGNMENT)
    release = course_dir / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    good = model_cell((SOLUTIONS / ASSIGNMENT / "model.py").read_text())
    buggy = good.replace("nn.Conv2d(6, 16, kernel_size=5)", "nn.Conv2d(6, 16, kernel_size=3)")
    for student, code in (("alice", good), ("bob", buggy)):
        folder = course_dir / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(submitted_notebook(release, code), folder / release.name)
    nbgrader(course_dir, "autograde", ASSIGNMENT, env={"GRADER_DATA": str(data_dir)})

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}") as gb:
        for student, code in (("alice", good), ("bob", buggy)):
            py = tmp_path / student / "model.py"
            py.parent.mkdir()
            py.write_text("import torch\nimport torch.nn.functional as F\nfrom torch import nn\n\n" + code)
            cli = grade(py, "--assignment", ASSIGNMENT, "--format", "json", "--data-dir", data_dir).json()
            for check in cli["checks"]:
                cell = gb.find_grade(f"test-{check['id']}", ASSIGNMENT, ASSIGNMENT, student)
                assert cell.score == pytest.approx(check["score"]), (student, check["id"])
    assert cli["score"] < cli["max_score"]  # bob lost points


def test_init_includes_every_assignment_of_the_pack(tmp_path):
    """`grade nbgrader init` with no names takes every assignment with a solution, the
    training loop, data pipeline and the two later CIFAR-10 nets among them."""
    run = grade("nbgrader", "init", tmp_path / "course")
    assert run.code == 0, run.err
    names = course.assignment_names(REPO)
    assert {"training_loop", "data_pipeline", "cifar10_strided", "cifar10_vgg"} <= set(names)
    for name in names:
        assert (tmp_path / "course" / "source" / name / f"{name}.ipynb").is_file()
        assert (tmp_path / "course" / "grader_specs" / name / "spec.yaml").is_file()
    assert not list((tmp_path / "course" / "grader_specs").rglob("hidden_cases.yaml"))
