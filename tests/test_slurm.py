"""`grade batch --executor submitit` on a real Slurm cluster: a job array, cancelled, resumed.

CI brings up a one-node cluster on its own machine (scripts/slurm-up.sh: Debian's slurmctld,
slurmd and munge) and sets GRADER_REQUIRE_SLURM=1; elsewhere these tests skip without a
cluster. The class is graded once with the local pool; through Slurm the gradebook must come
out the same, also when the array is cancelled half-way and the batch is run again.
"""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import ASSIGNMENTS, SOLUTIONS, grade

pytestmark = pytest.mark.slurm
LAB = (SOLUTIONS / "cifar10_cnn" / "model.py").read_text()
FAST = ("--assignment", "cifar10_cnn", "--only", "shapes,params", "--timeout", "120")


@pytest.fixture(scope="module")
def cluster() -> None:
    ready = shutil.which("sinfo") and subprocess.run(
        ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout.strip() in (
        "idle", "mixed", "allocated")
    if not ready:
        if os.environ.get("GRADER_REQUIRE_SLURM") == "1":
            pytest.fail("GRADER_REQUIRE_SLURM=1 but no Slurm cluster answers (scripts/slurm-up.sh)")
        pytest.skip("no Slurm cluster here (bash scripts/slurm-up.sh brings one up, as root)")


def make_class(root: Path) -> Path:
    """Eight students: solutions, planted bugs, the skeleton, code that does not import."""
    subs = root / "submissions"
    subs.mkdir(parents=True)
    for i in range(3):
        (subs / f"sol{i}.py").write_text(LAB)
    (subs / "bug_k3.py").write_text(LAB.replace("nn.Conv2d(6, 16, kernel_size=5)",
                                                "nn.Conv2d(6, 16, kernel_size=3)"))
    (subs / "bug_fc1.py").write_text(LAB.replace("nn.Linear(16 * 5 * 5, 120)",
                                                 "nn.Linear(16 * 5 * 5, 100)"))
    (subs / "skeleton.py").write_text((ASSIGNMENTS / "cifar10_cnn" / "model.py").read_text())
    (subs / "syntax.py").write_text("def forward(x:\n")
    (subs / "sol3").mkdir()
    (subs / "sol3" / "model.py").write_text(LAB)
    return subs


def gradebook(out: Path) -> list[dict[str, str]]:
    with (out / "gradebook.csv").open() as f:
        return sorted(csv.DictReader(f), key=lambda row: row["student"])


def test_a_slurm_job_array_grades_as_the_local_pool_and_resumes_after_a_cancel(cluster,
                                                                                tmp_path):
    subs = make_class(tmp_path)
    local = grade("batch", subs, "--out", tmp_path / "local", "--jobs", "2", *FAST, timeout=900)
    assert local.code == 0, local.err
    out = tmp_path / f"slurm-{uuid.uuid4().hex[:8]}"
    name = f"grade-{out.name}"
    # One task at a time, so that cancelling after the first result leaves work undone.
    first = subprocess.Popen([sys.executable, "-m", "grader", "batch", str(subs), "--out",
                              str(out), "--executor", "submitit", "--jobs", "1", *FAST],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600
        while not list(out.glob("*/result.json")) and time.monotonic() < deadline and \
                first.poll() is None:
            time.sleep(0.5)
        array = _job_ids(name)
        assert array, f"the array never reached the queue: {first.stderr.read() if first.poll() is not None else ''}"
        subprocess.run(["scancel", *array], check=True)
        _, err = first.communicate(timeout=600)
    finally:
        first.kill()
    assert first.returncode == 3, err            # some students could not be graded
    assert "the cluster task failed: it left the queue without a result" in " ".join(err.split())
    done = len(list(out.glob("*/key.json")))   # graded to the end before the cancel
    assert 0 < done < 8
    again = grade("batch", subs, "--out", out, "--executor", "submitit", "--jobs", "1", *FAST,
                  timeout=900)
    assert again.code == 0, again.err
    assert f"{8 - done} graded, {done} unchanged since the last run" in again.out
    assert gradebook(out) == gradebook(tmp_path / "local")


def _job_ids(name: str) -> list[str]:
    listing = subprocess.run(["squeue", "-h", "-n", name, "-o", "%A"], capture_output=True,
                             text=True).stdout.split()
    return sorted(set(listing))
