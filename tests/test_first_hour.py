"""A newcomer's first hour: a fresh clone grades with nothing downloaded, and says what it used.

The README's first command must work on a clone with no dataset anywhere: LeNet-5's accuracy is
graded on the MNIST sample shipped in the package, against that sample's own bar. Where no
data can be found for another dataset, the message names the command that gets it.
"""
from __future__ import annotations

import gzip
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, SOLUTIONS, grade
from grader import data
from grader.errors import DataUnavailable
from grader.spec import load_spec


def readme_first_grade_command() -> list[str]:
    """The `grade ...` part of the README's first command, as arguments."""
    readme = (REPO / "README.md").read_text()
    block = readme.split("```bash\n", 1)[1]
    first = block.splitlines()[0].split("#", 1)[0]
    install, command = first.split("&&")
    assert install.strip().startswith("pip install"), first
    words = shlex.split(command)
    assert words[0] == "grade", first
    return words[1:]


def head_clone(tmp_path: Path) -> Path:
    """A clone of this worktree's committed HEAD: what a newcomer gets, nothing more."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(clone)],
                   check=True, capture_output=True)
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", head], check=True)
    return clone


@pytest.mark.slow
def test_readme_first_command_grades_accuracy_on_a_fresh_clone(tmp_path):
    clone = head_clone(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("GRADER_DATA", "GRADER_CACHE", "XDG_CACHE_HOME", "PYTHONPATH")}
    env.update(HOME=str(home), PYTHONPATH=str(clone))
    args = readme_first_grade_command()
    proc = subprocess.run([sys.executable, "-m", "grader", *args, "--format", "json"],
                          cwd=clone, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    accuracy = next(c for c in result["checks"] if c["kind"] == "accuracy")
    assert accuracy["status"] == "passed" and accuracy["score"] == accuracy["max_score"] > 0
    assert accuracy["details"]["dataset"] == {"name": "mnist", "variant": "embedded",
                                              "n_train": 10000, "n_test": 1000}
    assert "sample shipped with the grader" in accuracy["feedback"]
    assert result["score"] == result["max_score"] == 10
    epochs = load_spec(REPO / "assignments" / "lenet5_mnist" / "spec.yaml").training.epochs
    assert f"epoch {epochs}/{epochs}" in proc.stderr          # it said what it was doing
    assert [p.name for p in home.rglob("*.npy")]            # the cache went into the empty HOME
    assert Path(result["submission"]).parts[0] == "solutions"


def test_embedded_bar_is_the_specs_own_and_separate():
    from grader.spec import load_spec

    spec = load_spec(REPO / "assignments" / "lenet5_mnist" / "spec.yaml")
    check = next(c for c in spec.checks if c.kind == "accuracy")
    embedded = check.options["embedded"]
    assert embedded["min_accuracy"] < check.options["min_accuracy"]
    assert "measured" in embedded


@pytest.mark.data
def test_embedded_sample_is_the_official_images_it_claims(data_dir):
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from make_mnist_sample import sample
    finally:
        sys.path.pop(0)
    rebuilt = sample(data_dir)
    with np.load(data.EMBEDDED["mnist"]) as shipped:
        for name, array in rebuilt.items():
            assert np.array_equal(shipped[name], array), name
    assert data.EMBEDDED["mnist"].stat().st_size < 3_000_000


def test_missing_dataset_says_what_to_run(tmp_path):
    empty = tmp_path / "nothing-here"
    for dataset, command in (("cifar10", f"grade download cifar10 --data-dir {empty}"),
                             ("fashion_mnist", "sudo apt-get install dataset-fashion-mnist")):
        with pytest.raises(DataUnavailable) as info:
            data.prepare(dataset, empty, tmp_path)
        assert command in str(info.value)


def test_missing_dataset_from_the_command_line_is_a_short_usage_error(tmp_path):
    run = grade(SOLUTIONS / "cifar10_cnn", "--only", "accuracy", "--data-dir",
                tmp_path / "empty")
    assert run.code == 2
    assert f"grade download cifar10 --data-dir {tmp_path / 'empty'}" in run.err
    assert "Traceback" not in run.err


def test_student_check_hint_keeps_the_command(tmp_path):
    """`grade check` without data: the smoke run's hint ends with the command, not a colon."""
    run = grade("check", SOLUTIONS / "cifar10_cnn", "--assignment", "cifar10_cnn",
                "--data-dir", tmp_path / "empty", env={"COLUMNS": "200"})
    assert "grade download cifar10" in run.out, run.out


@pytest.mark.data
def test_debian_fashion_mnist_is_found_where_the_package_installs_it(tmp_path, data_dir,
                                                                     monkeypatch):
    """dataset-fashion-mnist installs gzipped idx files in one folder; read as torchvision reads
    the same images from its own layout (here: the 1,003-image subset, gzipped like Debian's)."""
    raw = data_dir / "fashion-mnist-subset" / "FashionMNIST" / "raw"
    debian = tmp_path / "usr-share-datasets-fashion-mnist"
    debian.mkdir()
    for name in data.IDX_FILES.values():
        (debian / f"{name}.gz").write_bytes(gzip.compress((raw / name).read_bytes()))
    monkeypatch.setitem(data.SYSTEM_COPIES, "fashion_mnist", debian)
    monkeypatch.setenv("GRADER_CACHE", str(tmp_path / "cache"))
    from_debian = data.prepare("fashion_mnist", tmp_path / "no-data", tmp_path)
    from_torchvision = data.prepare("fashion_mnist", data_dir / "fashion-mnist-subset", tmp_path)
    assert from_debian.source == str(debian)
    assert from_debian.classes == from_torchvision.classes
    for part in ("train_x", "train_y", "test_x"):
        assert np.array_equal(np.load(from_debian.worker_files[part]),
                              np.load(from_torchvision.worker_files[part]))
    assert np.array_equal(from_debian.test_labels(), from_torchvision.test_labels())


def test_failed_download_leaves_no_folder_behind(tmp_path, monkeypatch):
    """Offline, torchvision creates MNIST/raw/ and a partial file before it fails."""
    import torchvision

    def offline(root, train, download):
        partial = Path(root) / "MNIST" / "raw"
        partial.mkdir(parents=True, exist_ok=True)
        (partial / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b partial")
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    target = tmp_path / "new" / "data"
    with pytest.raises(DataUnavailable, match="needs internet access"):
        data.download("mnist", target)
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "existing"
    (existing / "keep.txt").parent.mkdir()
    (existing / "keep.txt").write_text("mine")
    with pytest.raises(DataUnavailable):
        data.download("mnist", existing)
    assert sorted(p.name for p in existing.iterdir()) == ["keep.txt"]


def test_grade_help_describes_every_command():
    run = grade("--help")
    assert run.code == 0
    commands = [line for line in run.out.split("Commands:\n")[1].splitlines() if line.strip()]
    for line in commands:
        name, _, description = line.strip().partition(" ")
        assert description.strip() and not description.rstrip().endswith("..."), line
    names = {line.split()[0] for line in commands}
    assert {"batch", "check", "gradescope", "nbgrader", "download", "submission"} <= names


def test_what_students_get_never_mentions_ci_or_the_projects_data_folder():
    """Students do not have this project's CI or its ../shared/data; their copies say neither."""
    import re

    shipped = [p for pattern in ("*/README.md", "*/*.ipynb", "*/spec.yaml", "*/*.py")
               for p in (REPO / "assignments").glob(pattern)]
    assert shipped
    for path in shipped:
        text = path.read_text()
        assert not re.search(r"\bCI\b", text), path
        assert "shared/data" not in text and "../shared" not in text, path
