"""Every notebook of the course pack runs top to bottom in a real Jupyter kernel.

Released (student) notebooks must run without errors even untouched: their test cells report
0 points instead of crashing. Solution notebooks must earn every test cell's points, with
nothing on stderr (nbgrader scores any stderr output as zero).
"""
from __future__ import annotations

import os
import re

import nbclient
import nbformat
import pytest

from conftest import ASSIGNMENTS, MODEL_ASSIGNMENTS, REPO, SOLUTIONS
from grader.checks.accuracy import thresholds
from grader.course import assignment_names
from grader.spec import load_spec

NAMES = assignment_names(REPO)
# Trained on the sample shipped with the grader, as on a fresh clone (an empty data folder):
# LeNet-5's training on the full MNIST is tested through the CLI (tests/test_accuracy.py).
ON_THE_SAMPLE = {"lenet5_mnist"}


def execute(path, data_dir):
    nb = nbformat.read(path, as_version=4)
    os.environ["GRADER_DATA"] = str(data_dir)
    client = nbclient.NotebookClient(nb, timeout=1800, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return nb


def graded_cells(nb):
    return [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]


def outputs(cell, kind):
    return [o for o in cell.outputs if o.output_type == kind]


@pytest.mark.data
@pytest.mark.parametrize("name", NAMES)
def test_released_notebook_runs_and_scores_zero(name, data_dir):
    nb = execute(ASSIGNMENTS / name / f"{name}.ipynb", data_dir)
    for cell in graded_cells(nb):
        assert not [o for o in cell.outputs if o.get("name") == "stderr"]
        assert float(outputs(cell, "execute_result")[0].data["text/plain"]) == 0.0


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_solution_notebook_earns_every_point(name, data_dir, tmp_path):
    nb = execute(SOLUTIONS / name / f"{name}.ipynb", tmp_path if name in ON_THE_SAMPLE else data_dir)
    for cell in graded_cells(nb):
        assert not [o for o in cell.outputs if o.get("name") == "stderr"], cell.source
        points = cell.metadata["nbgrader"]["points"]
        assert float(outputs(cell, "execute_result")[0].data["text/plain"]) == points, cell.outputs
    if name in MODEL_ASSIGNMENTS:
        assert_reference_reproduces_its_record(name, nb)


def assert_reference_reproduces_its_record(name, nb):
    """The notebook trained seed 0 of the reference: its accuracy is what the spec records
    for that seed on the same data (the calibration tests retrain only the linear control)."""
    text = "".join(o.get("text", "") for cell in graded_cells(nb) for o in outputs(cell, "stream"))
    accuracy = float(re.search(r"Test accuracy ([\d.]+)%", text).group(1)) / 100
    variant = re.search(r"Data: \w+ \((\w+):", text).group(1)
    check = next(c for c in load_spec(ASSIGNMENTS / name / "spec.yaml").checks
                 if c.kind == "accuracy")
    recorded = thresholds(check, variant)["measured"]["reference"][0]
    assert accuracy == pytest.approx(recorded, abs=0.02), (variant, text)
