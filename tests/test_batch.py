"""`grade batch`: a class folder of mixed submissions graded side by side, resumable, CPU only.

Most batches here run `--only shapes,params` (no training) to stay fast on two
cores; one small batch trains on a tiny .npz dataset kept in the spec folder.
"""
from __future__ import annotations

import csv
import io
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ASSIGNMENTS, SOLUTIONS, alive, grade, on_a_terminal, tiny_assignment
from grader import batchview
from grader.batch import Outcome, Running, discover

SOLUTION = (SOLUTIONS / "cifar10_cnn" / "model.py").read_text()
SKELETON = (ASSIGNMENTS / "cifar10_cnn" / "model.py").read_text()
FAST = ("--only", "shapes,params", "--timeout", "30")

# Planted bugs: (old, new) replacements in the reference solution.
BUGS = {
    "bug_conv2_k3": ("nn.Conv2d(6, 16, kernel_size=5)", "nn.Conv2d(6, 16, kernel_size=3)"),
    "bug_fc1_width": ("nn.Linear(16 * 5 * 5, 120)", "nn.Linear(16 * 5 * 5, 100)"),
    "bug_no_pool2": ("x = self.pool(F.relu(self.conv2(x)))", "x = F.relu(self.conv2(x))"),
    "bug_conv1_pad": ("nn.Conv2d(3, 6, kernel_size=5)", "nn.Conv2d(3, 6, kernel_size=5, padding=2)"),
}
BROKEN = {
    "syntax_error.py": "import torch\ndef forward(x:\n    return x\n",
    "hangs.py": "import time\nwhile True:\n    time.sleep(0.5)\n",
    "exits.py": "import sys\nsys.exit(3)\n",
    "killed.py": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
    "empty_folder": None,
}


def planted(old: str, new: str) -> str:
    assert SOLUTION.count(old) == 1, old
    return SOLUTION.replace(old, new)


def notebook(code: str) -> str:
    cell = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
            "source": code}
    return json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def make_class(root: Path) -> Path:
    """22 students: folders and files, solutions, the skeleton, planted bugs, broken code."""
    subs = root / "submissions"
    subs.mkdir()
    for i in range(1, 5):
        (subs / f"sol{i:02d}").mkdir()
        (subs / f"sol{i:02d}" / "model.py").write_text(SOLUTION)
    for i in (5, 6):
        (subs / f"sol{i:02d}.py").write_text(SOLUTION)
    (subs / "sol07.ipynb").write_text(notebook(SOLUTION))
    for name in ("skeleton_a.py", "skeleton_b.py"):
        (subs / name).write_text(SKELETON)
    for name, (old, new) in BUGS.items():
        (subs / f"{name}.py").write_text(planted(old, new))
        (subs / f"{name}_again.py").write_text(planted(old, new))
    for name, code in BROKEN.items():
        if code is None:
            (subs / name).mkdir()
        else:
            (subs / name).write_text(code)
    (subs / "README.txt").write_text("not a submission")
    return subs


STUDENTS = 4 + 2 + 1 + 2 + 2 * len(BUGS) + len(BROKEN)


def batch(subs: Path, out: Path, *extra: str, jobs: int = 2):
    return grade("batch", subs, "--assignment", "cifar10_cnn", "--out", out, "--jobs", str(jobs),
                 *FAST, *extra, timeout=600)


def gradebook(out: Path) -> list[dict[str, str]]:
    with (out / "gradebook.csv").open() as f:
        return list(csv.DictReader(f))


def result(out: Path, student: str) -> dict:
    return json.loads((out / student / "result.json").read_text())


def scores(res: dict) -> dict:
    return {"score": res["score"], "max": res["max_score"],
            "checks": [(c["id"], c["score"], c["status"], c["feedback"]) for c in res["checks"]]}


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """One uninterrupted batch over the whole class; the tests below compare against it."""
    root = tmp_path_factory.mktemp("class")
    subs = make_class(root)
    start = time.perf_counter()
    run = batch(subs, root / "out")
    return subs, root / "out", run, time.perf_counter() - start


def test_batch_grades_every_student_into_a_gradebook(graded_class):
    subs, out, run, _ = graded_class
    assert run.code == 0, run.err
    assert f"{STUDENTS} graded, 0 unchanged" in run.out
    assert f"[{STUDENTS}/{STUDENTS}]" in run.err and "ETA" in run.err  # a line per student
    rows = gradebook(out)
    assert list(rows[0]) == ["student", "score", "max_score", "shapes", "params", "flags",
                             "status", "reason"]
    assert len(rows) == STUDENTS and "README" not in {r["student"] for r in rows}
    by_student = {r["student"]: r for r in rows}
    for sol in ("sol01", "sol05", "sol07"):
        assert by_student[sol]["score"] == "7" and by_student[sol]["max_score"] == "7"
    assert by_student["skeleton_a"]["score"] == "0"
    assert float(by_student["bug_fc1_width"]["params"]) < 3
    for student in by_student:
        assert (out / student / "report.md").read_text().startswith("# cifar10\\_cnn:")
        assert (out / student / "report.html").read_text().startswith("<!doctype html>")
    assert not (out / ".running").exists() or not list((out / ".running").iterdir())


def test_gradebook_says_why_a_score_is_zero(graded_class):
    _, out, _, _ = graded_class
    rows = {r["student"]: r for r in gradebook(out)}
    status = {s: rows[s]["status"] for s in ("sol01", "skeleton_a", "syntax_error", "hangs",
                                             "killed", "exits", "bug_conv2_k3")}
    assert status == {"sol01": "graded", "skeleton_a": "unfinished", "syntax_error": "error",
                      "hangs": "timeout", "killed": "killed", "exits": "error",
                      "bug_conv2_k3": "error"}
    assert rows["sol01"]["reason"] == "" and "SyntaxError" in rows["syntax_error"]["reason"]
    assert "the forward pass failed" in rows["bug_conv2_k3"]["reason"]   # fc1 gets 16x6x6
    assert rows["bug_conv2_k3"]["score"] not in ("", "0")                 # still partly graded
    assert "timed out after 30 s" in rows["hangs"]["reason"]
    assert "NotImplementedError" in rows["skeleton_a"]["reason"]
    assert all("\n" not in r["reason"] for r in rows.values())


def test_broken_submissions_only_affect_themselves(graded_class):
    _, out, _, _ = graded_class
    assert "timed out after 30 s" in result(out, "hangs")["checks"][0]["feedback"]
    assert "ran out of memory" in result(out, "killed")["checks"][0]["feedback"]
    assert "SyntaxError" in result(out, "syntax_error")["checks"][0]["feedback"]
    assert "sys.exit(3)" in result(out, "exits")["checks"][0]["feedback"]
    assert result(out, "sol06")["score"] == 7  # graded beside them, untouched


def test_batch_scores_equal_single_runs(graded_class, tmp_path):
    subs, out, _, _ = graded_class
    for entry in ("sol02", "sol06.py", "sol07.ipynb", "skeleton_b.py", "bug_no_pool2_again.py",
                  "syntax_error.py"):
        single = grade(subs / entry, "--assignment", "cifar10_cnn", "--format", "json", *FAST)
        assert single.code in (0, 1), single.err
        assert scores(single.json()) == scores(result(out, Path(entry).stem)), entry


def test_summary_page_shows_histogram_and_every_failure(graded_class):
    _, out, _, _ = graded_class
    page = (out / "summary.html").read_text()
    assert f"{STUDENTS} of {STUDENTS} submissions graded" in page
    assert "<svg" in page and "90-100%" in page
    failures = page.split("<section id=failures>")[1].split("</section>")[0]
    assert "a TODO is still unfinished" in failures  # both skeletons, grouped as one failure
    for planted in ("conv2: got", "timed out after 30 s", "SyntaxError", "sys.exit(3)",
                    "memory"):
        assert planted in failures, planted
    statuses = page.split("<div class=counts id=statuses>")[1].split("</div>")[0]
    for status in ("graded", "unfinished", "error", "timeout", "killed"):
        assert f"{status}</span>" in statuses, status


def test_summary_links_each_students_html_report(graded_class):
    _, out, _, _ = graded_class
    page = (out / "summary.html").read_text()
    links = set(re.findall(r"href='([^'#]+)'", page))
    assert links and all(link.endswith("/report.html") for link in links)
    assert {link.split("/")[0] for link in links} == {r["student"] for r in gradebook(out)}
    assert all((out / link).is_file() for link in links)


def test_summary_and_a_student_report_render_in_headless_chromium(graded_class, tmp_path):
    from test_reporters import dom, red_pixels, screenshot

    _, out, _, _ = graded_class
    for page in (out / "summary.html", out / "bug_conv2_k3" / "report.html"):
        shot = screenshot(tmp_path, page)
        pixels = np.asarray(shot, dtype=int)
        assert len(shot.getcolors(1 << 20)) > 100, page             # not a blank page
        assert int((pixels.sum(axis=2) < 200).sum()) > 5000, page   # plenty of visible text
        assert red_pixels(shot) > 200, page                         # failures are shown in red
    summary = dom(tmp_path, out / "summary.html")
    assert re.search(r'id="score">\d+\.\d\d / 7<small>mean</small>', summary)
    student = dom(tmp_path, out / "bug_conv2_k3" / "report.html")
    assert re.search(r'id="score">[\d.]+ / 7<', student)


def test_batch_and_its_pool_never_import_torch(tmp_path):
    """Only the per-submission workers import torch; `grade batch` itself stays light."""
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "solo.py").write_text(SOLUTION)
    run = grade("batch", subs, "--assignment", "cifar10_cnn", "--out", tmp_path / "out",
                "--jobs", "1", *FAST, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert run.code == 0, run.err
    imported = [line.split("|")[-1].strip() for line in run.err.splitlines()
                if line.startswith("import time:")]
    assert imported.count("grader.batch") == 2  # the batch process and its pool process
    assert not [m for m in imported if m == "torch" or m.startswith("torch.")]


def test_second_run_skips_everything(graded_class):
    subs, out, _, _ = graded_class
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/result.json")}
    run = batch(subs, out)
    assert run.code == 0, run.err
    assert f"0 graded, {STUDENTS} unchanged since the last run" in run.out
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/result.json")} == before


def test_changed_code_is_regraded(graded_class, tmp_path):
    subs, out, _, _ = graded_class
    copy = tmp_path / "subs"
    shutil.copytree(subs, copy)
    shutil.copytree(out, tmp_path / "out")
    (copy / "sol01" / "model.py").write_text(planted(*BUGS["bug_fc1_width"]))
    run = batch(copy, tmp_path / "out")
    assert f"1 graded, {STUDENTS - 1} unchanged" in run.out
    assert {r["student"]: r for r in gradebook(tmp_path / "out")}["sol01"]["score"] != "7"


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_resumes_and_loses_nothing(graded_class, tmp_path):
    subs, full_out, _, _ = graded_class
    part = tmp_path / "subs"  # ten students are enough to be killed halfway through
    part.mkdir()
    for entry in [p for p in discover(subs) if p.stem != "hangs"][:10]:
        (shutil.copytree if entry.is_dir() else shutil.copy)(entry, part / entry.name)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "grader", "batch", str(part), "--assignment", "cifar10_cnn",
           "--out", str(out), "--jobs", "2", *FAST]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while len(list(out.glob("*/key.json"))) < 3 and time.time() < deadline:
        time.sleep(0.1)
    pool = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_at_kill = len(list(out.glob("*/key.json")))
    assert 3 <= done_at_kill < 10
    deadline = time.time() + 30
    while any(alive(p) for p in pool) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(alive(p) for p in pool), "grading processes outlived the killed batch"

    run = batch(part, out)
    assert run.code == 0, run.err
    graded = int(run.out.split(" graded")[0])
    assert graded <= 10 - done_at_kill + 1  # at most the one finishing as it was killed
    full = {r["student"]: r for r in gradebook(full_out)}
    assert gradebook(out) == [full[r["student"]] for r in gradebook(out)]
    assert len(gradebook(out)) == 10


def test_grader_failure_on_one_submission_is_recorded_and_retried(graded_class, tmp_path,
                                                                   monkeypatch):
    from grader import batch as batch_mod
    from grader.runner import Options

    subs, full_out, _, _ = graded_class
    spec = ASSIGNMENTS / "cifar10_cnn" / "spec.yaml"
    opts = Options(only=frozenset({"shapes", "params"}), timeout_s=30.0)

    def broken(*_):
        raise RuntimeError("grader bug")

    monkeypatch.setattr(batch_mod, "_grade", broken)
    outcome = batch_mod.grade_one(subs / "sol03", spec, opts, tmp_path)
    assert outcome.state == "error" and "grader bug" in outcome.message
    assert "RuntimeError: grader bug" in (tmp_path / "sol03" / "error.txt").read_text()
    monkeypatch.undo()
    outcome = batch_mod.grade_one(subs / "sol03", spec, opts, tmp_path)
    assert outcome.state == "graded" and outcome.score == 7
    assert not (tmp_path / "sol03" / "error.txt").exists()


@pytest.mark.slow
def test_training_batch_matches_single_runs(tmp_path):
    assignment = tiny_assignment(tmp_path, "cifar10_cnn", (0.5, 0.1), epochs=2, batch_size=32,
                                  optimizer={"name": "adam", "lr": 0.003})
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "ann.py").write_text(SOLUTION)
    (subs / "ben.py").write_text(planted("return self.fc3(x)", "return self.fc3(x) * 0"))
    run = grade("batch", subs, "--assignment", assignment, "--out", tmp_path / "out",
                "--jobs", "2", "--device", "cpu", timeout=600)
    assert run.code == 0, run.err
    ann = result(tmp_path / "out", "ann")
    accuracy = next(c for c in ann["checks"] if c["id"] == "accuracy")
    assert accuracy["status"] == "passed" and len(accuracy["details"]["curve"]) == 2
    assert result(tmp_path / "out", "ben")["checks"][-1]["status"] != "passed"
    single = grade(subs / "ann.py", "--assignment", assignment, "--format", "json",
                   "--device", "cpu")
    assert scores(single.json()) == scores(ann)
    assert single.check("accuracy")["details"]["accuracy"] == accuracy["details"]["accuracy"]


@pytest.mark.gpu
def test_packed_gpu_batch_gives_every_copy_the_same_grade(tmp_path):
    assignment = tiny_assignment(tmp_path, "cifar10_cnn", (0.5, 0.1), epochs=2, batch_size=32,
                                  optimizer={"name": "adam", "lr": 0.003})
    subs = tmp_path / "subs"
    subs.mkdir()
    for i in range(6):
        (subs / f"copy{i}.py").write_text(SOLUTION)
    run = grade("batch", subs, "--assignment", assignment, "--out", tmp_path / "out",
                "--jobs", "6", "--gpus", "0", "--device", "cuda", timeout=600)
    assert run.code == 0, run.err
    results = [result(tmp_path / "out", f"copy{i}") for i in range(6)]
    accuracy = [next(c for c in r["checks"] if c["id"] == "accuracy") for r in results]
    assert all(a["details"]["device"].startswith("cuda") for a in accuracy)
    assert len({json.dumps(scores(r)) for r in results}) == 1  # six processes, one GPU, one grade


# --- the display ------------------------------------------------------------------------------

def test_eta_counts_the_running_jobs_and_waits_for_a_first_result():
    tally = batchview.Tally(total=10, slots=2)
    assert tally.eta(running=[5.0, 5.0]) is None
    for student in ("a", "b"):
        tally.add(Outcome(student, "graded", 7, 7, seconds=10.0))
    # 6 not started at 10 s each, and two running for 4 s and 25 s: (60 + 6 + 0) / 2
    assert tally.eta(running=[4.0, 25.0]) == pytest.approx(33.0)
    tally.add(Outcome("c", "skipped", 7, 7))           # unchanged: no time, no weight
    assert tally.durations == [10.0, 10.0]


def test_without_a_terminal_the_running_students_are_named_when_nothing_finishes(tmp_path,
                                                                                monkeypatch):
    monkeypatch.setattr(batchview, "QUIET_S", 0.6)
    stream = io.StringIO()
    with Running(tmp_path, "hanging_hank"):
        with batchview.BatchView(3, 1, tmp_path, 900, stream) as view:
            view(Outcome("ann", "graded", 7, 7, seconds=2.0, status="graded"))
            time.sleep(1.5)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("[1/3] ann: 7/7 (graded in 2 s); ETA ")
    assert any(line.startswith("still grading: hanging_hank 0:0") and "15:00" in line
               for line in lines[1:]), lines


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a pseudo-terminal")
def test_a_hanging_student_shows_a_growing_time_on_the_terminal(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "hangs.py").write_text(BROKEN["hangs.py"])
    (subs / "quick.py").write_text(SOLUTION)
    cmd = [sys.executable, "-m", "grader", "batch", str(subs), "--assignment", "cifar10_cnn",
           "--out", str(tmp_path / "out"), "--jobs", "2", "--only", "shapes,params",
           "--timeout", "8"]
    code, screen = on_a_terminal(cmd, timeout=300)
    assert code == 0, screen
    shown = set(re.findall(r"running: hangs (\d+:\d\d)", screen))
    assert len(shown) >= 3, screen               # redrawn while nothing finished
    assert "of at most 0:08" in screen
