"""A broken spec is exit 2 with the file, the key and the fix, before anyone is graded."""
from __future__ import annotations

import shutil

import pytest

from conftest import ASSIGNMENTS, SOLUTIONS, grade


def broken_spec(tmp_path, old: str, new: str):
    folder = tmp_path / "cifar10_cnn"
    shutil.copytree(ASSIGNMENTS / "cifar10_cnn", folder)
    spec = folder / "spec.yaml"
    text = spec.read_text()
    assert old in text
    spec.write_text(text.replace(old, new, 1))
    return folder


@pytest.mark.parametrize("old,new,key,words", [
    ("kernel_size: 5, activation: relu}", "kernel_sise: 5, activation: relu}", "layers[0].kernel_sise",
     "unknown key"),
    ("kind: shapes", "kind: shape", "checks[0].kind", "unknown check kind 'shape'"),
    ("min_accuracy: 0.55", "min_accuracy: 55", "checks[2].min_accuracy", "write 0.98 for 98%"),
    ("partial_from: 0.40", "partial_from: 0.60", "checks[2].partial_from", "must be below min_accuracy"),
    ("epochs: 20", "epochs: ten", "training.epochs", "expected an integer"),
    ("name: cifar10_cnn", "name: cifar", "name", "set `name: cifar10_cnn`"),
    ("in_features: 400, out_features: 120", "in_features: 400", "layers[5].out_features", "missing"),
    ("{name: pool2, type: maxpool2d, kernel_size: 2, stride: 2}",
     "{name: pool2, type: maxpool2d, kernel_size: 12, stride: 2}", "layers[3]", "would shrink"),
])
def test_broken_spec_names_file_key_and_fix(tmp_path, old, new, key, words):
    folder = broken_spec(tmp_path, old, new)
    run = grade(SOLUTIONS / "cifar10_cnn", "--assignment", str(folder), "--only", "shapes")
    assert run.code == 2
    assert str(folder / "spec.yaml") in run.err
    assert key in run.err and words in run.err
    assert "Traceback" not in run.err


def test_invalid_yaml_gives_line(tmp_path):
    folder = broken_spec(tmp_path, "title: ", "title: : :\n  - [")
    run = grade(SOLUTIONS / "cifar10_cnn", "--assignment", str(folder))
    assert run.code == 2 and "is not valid YAML" in run.err


def test_unknown_only_kind_is_usage_error():
    run = grade(SOLUTIONS / "cifar10_cnn", "--only", "shapes,speed")
    assert run.code == 2 and "unknown check kind speed" in run.err


def test_no_spec_found(tmp_path):
    (tmp_path / "model.py").write_text("x = 1\n")
    run = grade(tmp_path / "model.py")
    assert run.code == 2 and "no spec.yaml found" in run.err and "--assignment" in run.err


def test_unknown_assignment_lists_known_ones(tmp_path):
    run = grade(SOLUTIONS / "cifar10_cnn", "--assignment", "cifar100")
    assert run.code == 2 and "cifar10_cnn" in run.err and "lenet5_mnist" in run.err


def test_missing_dataset_says_where_to_put_it(tmp_path):
    # MNIST is never missing (the grader ships a sample of it); CIFAR-10 can be.
    run = grade(SOLUTIONS / "cifar10_cnn", "--only", "accuracy", "--data-dir", str(tmp_path))
    assert run.code == 2
    assert "CIFAR10 was not found in the data folder" in run.err
    assert "grade download cifar10" in run.err


def test_only_kinds_the_spec_lacks_run_nothing():
    run = grade(SOLUTIONS / "cifar10_cnn", "--only", "functions", "--format", "json")
    assert {c["status"] for c in run.json()["checks"]} == {"skipped"}
    assert run.json()["max_score"] == 0


@pytest.mark.parametrize("scheduler,key,words", [
    ("{name: cosine}", "training.scheduler.name", "use multistep (with milestones and gamma) "
     "or onecycle (with max_lr)"),
    ("{name: onecycle}", "training.scheduler.max_lr", "missing"),
    ("{name: onecycle, max_lr: 0.01, pct_start: 1.5}", "training.scheduler.pct_start",
     "must be between 0 and 1"),
    ("{name: onecycle, max_lr: 0.01, anneal: step}", "training.scheduler.anneal",
     "use cos or linear"),
    ("{name: onecycle, max_lr: 0.01, milestones: [2]}", "training.scheduler.milestones",
     "unknown key"),
    ("{name: multistep, milestones: [two], gamma: 0.5}", "training.scheduler.milestones",
     "epoch numbers"),
])
def test_a_wrong_schedule_names_its_key_and_the_fix(tmp_path, scheduler, key, words):
    from grader.errors import SpecError
    from grader.spec import load_spec

    folder = broken_spec(tmp_path, "  epochs: 20\n", f"  epochs: 20\n  scheduler: {scheduler}\n")
    with pytest.raises(SpecError) as caught:
        load_spec(folder / "spec.yaml")
    assert key in str(caught.value) and words in str(caught.value)


def test_a_one_cycle_recipe_is_accepted_with_its_defaults(tmp_path):
    from grader.spec import load_spec

    folder = broken_spec(tmp_path, "  epochs: 20\n",
                         "  epochs: 20\n  scheduler: {name: onecycle, max_lr: 0.02}\n")
    assert load_spec(folder / "spec.yaml").training.scheduler == {"name": "onecycle",
                                                                  "max_lr": 0.02}
