"""`grade gradescope build`: the zip follows Gradescope's autograder specification, and its
run_autograder grades a submission in an autograder root laid out as Gradescope lays it out.

Gradescope (https://gradescope-autograders.readthedocs.io/en/latest/specs/) unpacks the zip
into /autograder/source, copies run_autograder to /autograder/run_autograder, puts the
student's files in /autograder/submission, runs run_autograder in /autograder and reads
/autograder/results/results.json. The test builds that tree in a temporary folder and points
run_autograder at it (AUTOGRADER_ROOT); the grader it runs is the one inside the zip.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile

import jsonschema
import pytest

from conftest import REPO, SCHEMAS, SOLUTIONS, grade, tiny_assignment

GRADESCOPE_SCHEMA = json.loads((SCHEMAS / "gradescope_results.json").read_text())

SOLUTION = SOLUTIONS / "cifar10_cnn" / "model.py"
BROKEN = SOLUTION.read_text().replace("nn.Conv2d(6, 16, kernel_size=5)",
                                      "nn.Conv2d(6, 16, kernel_size=3)")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The zip of a spec that trains in seconds on its own small .npz, and its members."""
    root = tmp_path_factory.mktemp("gs")
    spec = tiny_assignment(root, "cifar10_cnn", (0.5, 0.1), epochs=2, batch_size=32,
                           optimizer={"name": "adam", "lr": 0.003})
    zip_path = root / "autograder.zip"
    run = grade("gradescope", "build", spec, "--out", zip_path)
    assert run.code == 0, run.err
    with zipfile.ZipFile(zip_path) as zf:
        return spec, zip_path, {info.filename: info for info in zf.infolist()}


def autograder_root(tmp_path, zip_path, submission: dict[str, str]):
    root = tmp_path / "autograder"
    (root / "source").mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            zf.extract(info, root / "source")
            mode = info.external_attr >> 16
            if mode:
                os.chmod(root / "source" / info.filename, mode & 0o777)
    shutil.copy2(root / "source" / "run_autograder", root / "run_autograder")
    (root / "submission").mkdir()
    for name, text in submission.items():
        (root / "submission" / name).write_text(text)
    return root


def run_autograder(root):
    """As Gradescope runs it: in the root, the grader from the zip's source on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("GRADER_DATA", "GRADER_CACHE")}
    env.update(AUTOGRADER_ROOT=str(root), PYTHON=sys.executable,
               PYTHONPATH=str(root / "source" / "cnn-grader"))
    proc = subprocess.run([str(root / "run_autograder")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=900)
    return proc, root / "results" / "results.json"


def test_zip_has_what_the_specification_asks_for_at_its_root(built):
    _, _, members = built
    assert {"setup.sh", "run_autograder"} <= set(members)
    for script in ("setup.sh", "run_autograder"):
        assert members[script].external_attr >> 16 & 0o111, f"{script} is not executable"
    assert "cnn-grader/pyproject.toml" in members and "cnn-grader/grader/cli.py" in members
    assert "course/assignments/cifar10_cnn/spec.yaml" in members
    assert "course/assignments/cifar10_cnn/tiny.npz" in members     # the spec's own dataset
    assert not [n for n in members if n.startswith("solutions/") or n.endswith("model.py")
                or "__pycache__" in n]


def test_setup_script_is_valid_bash_that_installs_the_grader(built, tmp_path):
    _, zip_path, _ = built
    with zipfile.ZipFile(zip_path) as zf:
        setup = zf.read("setup.sh").decode()
    (tmp_path / "setup.sh").write_text(setup)
    assert subprocess.run(["bash", "-n", str(tmp_path / "setup.sh")]).returncode == 0
    assert "pip install" in setup and "./cnn-grader" in setup
    assert "grade download" not in setup        # the spec's dataset travels in the zip


def test_hidden_cases_travel_but_the_solution_does_not(tmp_path):
    zip_path = tmp_path / "conv.zip"
    run = grade("gradescope", "build", "conv_arithmetic", "--out", zip_path)
    assert run.code == 0, run.err
    names = zipfile.ZipFile(zip_path).namelist()
    assert "course/solutions/conv_arithmetic/hidden_cases.yaml" in names
    assert not [n for n in names if n.endswith("conv_arithmetic.py")]


def test_mnist_autograder_downloads_and_falls_back_to_the_sample(tmp_path):
    zip_path = tmp_path / "lenet.zip"
    assert grade("gradescope", "build", "lenet5_mnist", "--out", zip_path).code == 0
    setup = zipfile.ZipFile(zip_path).read("setup.sh").decode()
    assert "-m grader download mnist --data-dir /autograder/source/data ||" in setup


@pytest.mark.slow
def test_run_autograder_grades_a_submission_as_grade_does(built, tmp_path):
    spec, zip_path, _ = built
    root = autograder_root(tmp_path, zip_path, {"model.py": BROKEN})
    proc, results = run_autograder(root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(results.read_text())
    jsonschema.validate(out, GRADESCOPE_SCHEMA)
    tests = {t["name"]: t for t in out["tests"]}
    assert list(tests) == ["shapes", "params", "accuracy"]
    assert tests["shapes"]["status"] == "failed" and "K=3; the spec asks for K=5" in \
        tests["shapes"]["output"]
    (tmp_path / "alone").mkdir()
    (tmp_path / "alone" / "model.py").write_text(BROKEN)
    cli = grade(tmp_path / "alone", "--assignment", spec, "--format", "json").json()
    assert out["score"] == cli["score"] < cli["max_score"]
    assert [t["score"] for t in out["tests"]] == [c["score"] for c in cli["checks"]]


def test_an_autograder_problem_still_leaves_a_results_file(built, tmp_path):
    _, zip_path, _ = built
    root = autograder_root(tmp_path, zip_path, {"model.py": BROKEN})
    (root / "source" / "course" / "assignments" / "cifar10_cnn" / "spec.yaml").write_text(
        "name: [broken")
    proc, results = run_autograder(root)
    out = json.loads(results.read_text())
    jsonschema.validate(out, GRADESCOPE_SCHEMA)
    assert out["score"] == 0 and "not with your code" in out["output"]
    assert "spec.yaml" in proc.stderr           # the instructor's log says what broke


def test_building_outside_a_clone_says_why(tmp_path, monkeypatch):
    from grader import gradescope
    from grader.errors import UsageError
    from grader.spec import load_spec

    spec = load_spec(REPO / "assignments" / "lenet5_mnist" / "spec.yaml")
    with pytest.raises(UsageError, match="from a clone of cnn-grader"):
        gradescope.build(spec, tmp_path / "a.zip", tmp_path)
