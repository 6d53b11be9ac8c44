"""Calibration: a bar between what the reference reaches and what the negative controls reach.

Unit tests of the arithmetic on hand-written numbers; the controls graded as submissions;
`grade calibrate` refusing a task the linear control solves too; and, on the real data CI
has, every model assignment's bar checked from both sides.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from conftest import ASSIGNMENTS, MODEL_ASSIGNMENTS, SOLUTIONS, grade, tiny_assignment
from grader.calibrate import Calibration, Run, report, train_once, write_control
from grader.checks.accuracy import thresholds
from grader.runner import Options
from grader.spec import THRESHOLD_VARIANTS, load_spec



def measured(reference: list[float], linear: float, bare: float) -> Calibration:
    return Calibration(tuple(Run(s, a, 1.0) for s, a in enumerate(reference)), Run(0, linear, 1.0),
                       Run(0, bare, 1.0), "full", "cpu")


def test_a_wide_gap_gives_a_bar_below_the_reference_and_credit_above_the_control():
    cal = measured([0.9771, 0.9799, 0.9774], linear=0.9251, bare=0.9263)
    # worst seed 0.9771 less max(1 point, 2 x 0.0013 spread) = 0.9671 -> 0.96
    assert cal.proposed_min == 0.96
    # partial credit starts a point above the linear control: 0.9351 -> 0.94
    assert cal.proposed_partial_from == 0.94
    assert cal.fair and not cal.activation_free_passes()


def test_a_narrow_gap_is_refused_with_its_numbers():
    """The lab net on the 5,170-image CIFAR subset (seeds 0-2) against a linear classifier."""
    cal = measured([0.4388, 0.4624, 0.3991], linear=0.333, bare=0.45)
    # 0.3991 less 2 x 0.0261 = 0.3469 -> 0.34; the control gives partial credit from 0.35
    assert (cal.proposed_min, cal.proposed_partial_from) == (0.34, 0.35)
    assert not cal.fair


def test_the_linear_control_is_a_linear_classifier_on_the_flattened_image(tmp_path):
    spec = load_spec(ASSIGNMENTS / "cifar10_cnn" / "spec.yaml")
    path = write_control(tmp_path, "linear", spec, SOLUTIONS / "cifar10_cnn")
    assert "nn.Linear(3072, 10)" in path.read_text()            # 3*32*32 inputs, 10 classes


def test_the_activation_free_control_is_the_reference_without_activations(tmp_path):
    spec = load_spec(ASSIGNMENTS / "lenet5_mnist" / "spec.yaml")
    path = write_control(tmp_path, "no_activation", spec, SOLUTIONS / "lenet5_mnist")
    run = grade(path, "-a", "lenet5_mnist", "--only", "shapes,params", "--format", "json")
    shapes = run.check("shapes")
    assert shapes["feedback"].startswith("8 of 8 layers have the expected shape; 0 of 4 "
                                         "activations are the spec's.")
    assert run.check("params")["score"] == 3.0


def test_calibrate_refuses_when_the_linear_control_reaches_the_reference(tmp_path):
    """On the tiny band task a linear classifier is as good as the lab net: no fair bar."""
    (tmp_path / "assignments").mkdir()
    folder = tiny_assignment(tmp_path / "assignments", "bands", (0.5, 0.2), epochs=3)
    shutil.copytree(SOLUTIONS / "cifar10_cnn", tmp_path / "solutions" / "bands")
    run = grade("calibrate", folder, "--seeds", "0,1", "--device", "cpu")
    assert run.code == 2, run.err
    assert "linear control, seed 0:" in run.out
    assert "error: no fair bar: the reference's worst seed reaches" in run.err
    assert "more data" in run.err


def test_the_proposed_block_is_yaml_the_spec_reader_accepts(tmp_path):
    """What `grade calibrate` prints is pasted into spec.yaml: it must load as it reads."""
    cal = measured([0.4903, 0.4850, 0.4517], linear=0.2897, bare=0.40)
    subset = Calibration(cal.reference, cal.linear, cal.no_activation, "subset", "cpu")
    block = report(load_spec(ASSIGNMENTS / "cifar10_cnn" / "spec.yaml"), subset)
    pasted = block[block.index("Proposed for spec.yaml"):].split("\n", 1)[1]
    spec_text = (ASSIGNMENTS / "cifar10_cnn" / "spec.yaml").read_text()
    start = spec_text.index("    subset:")
    end = spec_text.index("training:")
    folder = tmp_path / "cifar10_cnn"
    shutil.copytree(ASSIGNMENTS / "cifar10_cnn", folder)
    (folder / "spec.yaml").write_text(spec_text[:start] + "    subset:\n" + pasted + "\n" +
                                      spec_text[end:])
    check = next(c for c in load_spec(folder / "spec.yaml").checks if c.kind == "accuracy")
    assert check.options["subset"]["measured"] == {
        "reference": [0.4903, 0.4850, 0.4517], "linear": 0.2897, "no_activation": 0.40,
        "setup": "cpu, seeds 0-2"}
    assert (check.options["subset"]["min_accuracy"], check.options["subset"]["partial_from"]) \
        == (0.41, 0.3)


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize("assignment", MODEL_ASSIGNMENTS)
def test_every_linear_control_fails_its_bar_as_recorded(assignment, data_dir):
    """On the data CI has, retrained: the linear control earns at most half the points and
    reproduces what the spec records for seed 0.

    The reference's side is held by the notebook tests: each solution notebook trains seed 0
    on the same data, must earn the accuracy points and reproduce its record
    (tests/test_notebooks_run.py). The fast test below holds every recorded seed to the bar;
    the activation-free control is recorded by `grade calibrate` and not retrained here."""
    spec = load_spec(ASSIGNMENTS / assignment / "spec.yaml")
    check = next(c for c in spec.checks if c.kind == "accuracy")
    with tempfile.TemporaryDirectory() as tmp:
        control = write_control(Path(tmp), "linear", spec, SOLUTIONS / assignment)
        linear, info = train_once(control, spec, 0, Options(device="cpu", data_dir=data_dir),
                                  "the linear control")
    bar = thresholds(check, info["dataset"]["variant"])
    lo, hi = bar["partial_from"], bar["min_accuracy"]
    assert (linear.accuracy - lo) / (hi - lo) <= 0.5, linear
    assert seed_zero(bar["measured"]["linear"]) == pytest.approx(linear.accuracy, abs=0.02)


def seed_zero(value):
    return value[0] if isinstance(value, list) else value

# Full-data bars with a record: the full dataset was on hand to calibrate these (full
# CIFAR-10 is not, so the CIFAR specs say their full bars are provisional).
FULL_DATA_MEASURED = {"lenet5_mnist", "fashion_mnist_strided"}


@pytest.mark.parametrize("assignment", MODEL_ASSIGNMENTS)
def test_each_recorded_bar_sits_between_the_reference_and_the_linear_control(assignment):
    """What each spec records agrees with its own bar: every reference seed clears it, and
    the linear control stays below partial credit."""
    check = next(c for c in load_spec(ASSIGNMENTS / assignment / "spec.yaml").checks
                 if c.kind == "accuracy")
    bars = {v: check.options[v] for v in THRESHOLD_VARIANTS if v in check.options}
    assert ("measured" in check.options) == (assignment in FULL_DATA_MEASURED), assignment
    if assignment in FULL_DATA_MEASURED:
        bars["full"] = check.options
    assert bars, assignment
    for variant, bar in bars.items():
        measured = bar["measured"]
        assert min(measured["reference"]) >= bar["min_accuracy"], (variant, measured)
        assert seed_zero(measured["linear"]) < bar["partial_from"], (variant, measured)
