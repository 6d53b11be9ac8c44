"""Warm workers (grader/warm.py): the same grades as fresh ones, and nothing shared between
submissions that one could use against another.

The fork server forks a child per submission from a process that imported torch; the warm
trainer measures one exported model after another. These tests grade with `--workers warm`
and check what a user would notice: scores equal to fresh single runs, a submission that
exhausts or outlasts the trainer getting its own error while the others keep their grades,
and hostile submissions that find nothing of the ones before them and no privilege to use.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import uuid
import zlib
from pathlib import Path

import pytest

from conftest import (BROKEN_CONV2, FULL, GREEDY, LAB, NOISY, SLOW, grade, grade_contained,
                      leftovers, submission, tiny_assignment)

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="bubblewrap is Linux-only")

FAST = ("--only", "shapes,params")



def comparable(result: dict) -> dict:
    """A result without what may differ between two runs of the same grading: durations."""
    result = json.loads(json.dumps(result))
    result.pop("duration_s")
    for check in result["checks"]:
        check["details"].pop("train_seconds", None)
    return result


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / f"{name}.py").write_text(text)
    return folder


def batch(subs: Path, out: Path, *args: str):
    return grade("batch", subs, "--out", out, "--workers", "warm", *args, timeout=900)


def single(path: Path, *args: str) -> dict:
    run = grade(path, "--format", "json", "--workers", "fresh", *args, timeout=900)
    assert run.code in (0, 1), run.err
    return comparable(run.json())


def result(out: Path, student: str) -> dict:
    return comparable(json.loads((out / student / "result.json").read_text()))


@pytest.mark.slow
def test_a_warm_batch_trains_every_model_exactly_as_a_fresh_worker_does(tmp_path):
    assignment = tiny_assignment(tmp_path, "cifar10_cnn", (0.5, 0.1), epochs=2, batch_size=32,
                                 optimizer={"name": "adam", "lr": 0.003})
    subs = write(tmp_path / "subs", {"a_noisy": NOISY, "b_lab": LAB, "c_noisy_again": NOISY})
    run = batch(subs, tmp_path / "out", "--assignment", str(assignment), "--jobs", "1",
                "--device", "cpu")
    assert run.code == 0, run.err
    for student in ("a_noisy", "b_lab", "c_noisy_again"):
        alone = single(subs / f"{student}.py", "--assignment", str(assignment), "--device", "cpu")
        assert result(tmp_path / "out", student) == alone, student
    noisy = result(tmp_path / "out", "a_noisy")["checks"][-1]["details"]
    assert noisy["curve"] == result(tmp_path / "out", "c_noisy_again")["checks"][-1]["details"]["curve"]
    assert "measuring" not in run.err   # nothing had to be measured again


@pytest.mark.slow
@pytest.mark.parametrize("name, code, args, message", [
    ("greedy", GREEDY, ("--memory-limit", "1G"), "killed: exceeded 1 GiB memory"),
    ("slow", SLOW, ("--timeout", "15"), "timed out after 15 s"),
], ids=["greedy", "slow"])
def test_a_model_that_exhausts_the_trainer_gets_its_own_error_and_no_one_else_does(
        tmp_path, name, code, args, message):
    assignment = tiny_assignment(tmp_path, "cifar10_cnn", (0.5, 0.1), epochs=1, batch_size=32,
                                 optimizer={"name": "adam", "lr": 0.003})
    subs = write(tmp_path / "subs", {"ann": LAB, name: code, "zed": NOISY})
    common = ("--assignment", str(assignment), "--device", "cpu", *args)
    run = batch(subs, tmp_path / "out", "--jobs", "1", *common)
    assert run.code == 0, run.err
    accuracy = result(tmp_path / "out", name)["checks"][-1]
    assert accuracy["score"] == 0 and message in accuracy["feedback"]
    assert f"measuring {subs / (name + '.py')} again, alone in a fresh worker" in run.err
    assert run.err.count("again, alone in a fresh worker") == 1
    for student in ("ann", "zed"):   # before it and after it in the same slot
        assert result(tmp_path / "out", student) == single(subs / f"{student}.py", *common)


def test_nothing_one_submission_leaves_reaches_the_next_in_the_same_fork_server(tmp_path):
    token = f"hostile-{uuid.uuid4().hex}"
    values = {"token": token, "key": zlib.crc32(token.encode()) & 0x7FFFFFFF,
              "broken": BROKEN_CONV2}
    subs = traces_class(tmp_path, values)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    run = grade("batch", subs, "--assignment", "cifar10_cnn", "--out", tmp_path / "out",
                "--jobs", "1", "--workers", "warm", "--sandbox", "on", *FAST,
                env={"TMPDIR": str(tmp)}, timeout=600)
    assert run.code == 0, run.err
    scores = class_scores(tmp_path / "out")
    assert scores["a_leaver"] == 7 and scores["b_looker"] == scores["c_honest"] < 7, run.err
    assert list(tmp.iterdir()) == [] and leftovers([token, str(tmp)]) == []


def traces_class(tmp_path: Path, values: dict) -> Path:
    """a leaves traces, b looks for them (its own net is broken), c is b's honest twin."""
    subs = tmp_path / "subs"
    for name, attack in (("a_leaver", "leave_traces"), ("b_looker", "look_for_traces"),
                         ("c_honest", None)):
        path = submission(tmp_path, attack, values, broken=name != "a_leaver")
        write(subs / name, {"model": path.read_text()})
    return subs


def class_scores(out: Path) -> dict[str, float]:
    return {folder.name: json.loads((folder / "result.json").read_text())["score"]
            for folder in out.iterdir() if (folder / "result.json").is_file()}


def test_without_the_sandbox_the_same_traces_are_found(tmp_path):
    """The test above can fail: where children share the machine's /tmp, b finds a's file."""
    token = f"hostile-{uuid.uuid4().hex}"
    values = {"token": token, "key": zlib.crc32(token.encode()) & 0x7FFFFFFF,
              "broken": BROKEN_CONV2}
    subs = traces_class(tmp_path, values)
    try:
        run = grade("batch", subs, "--assignment", "cifar10_cnn", "--out", tmp_path / "out",
                    "--jobs", "1", "--workers", "warm", "--sandbox", "off", *FAST, timeout=600)
        assert run.code == 0, run.err
        scores = class_scores(tmp_path / "out")
        assert scores["b_looker"] == 7 > scores["c_honest"]
    finally:
        for folder in ("/tmp", "/dev/shm"):
            Path(folder, token).unlink(missing_ok=True)
        _remove_segment(values["key"])


def _remove_segment(key: int) -> None:
    import ctypes

    libc = ctypes.CDLL(None)
    segment = libc.shmget(key, 0, 0)
    if segment >= 0:
        libc.shmctl(segment, 0, None)   # IPC_RMID


@pytest.mark.parametrize("sandbox", ["on", "off"])
def test_a_forked_child_holds_no_privilege_of_the_fork_server(tmp_path, sandbox):
    """The fork server keeps CAP_SYS_ADMIN to give each child its namespaces; the child must
    drop it. Without the sandbox (run as root here) the same attack finds root's powers."""
    if sandbox == "off" and os.geteuid() != 0:
        pytest.skip("the privileges found without a sandbox are root's")
    path = submission(tmp_path, "escalate", {"broken": BROKEN_CONV2}, broken=True)
    graded = grade_contained(tmp_path, path, *FAST, "--workers", "warm", sandbox=sandbox)
    honest = grade_contained(tmp_path / "honest", submission(tmp_path / "honest", None,
                                                             broken=True), *FAST)
    assert graded.scores == (honest.scores if sandbox == "on" else FULL), graded.run.err


def test_a_fork_server_that_dies_leaves_its_work_to_fresh_workers(tmp_path):
    from grader import warm
    from grader.reporters import render
    from grader.runner import Options, grade as grade_in_process
    from grader.spec import load_spec
    from conftest import ASSIGNMENTS

    spec = load_spec(ASSIGNMENTS / "cifar10_cnn" / "spec.yaml")
    opts = Options(only=frozenset({"shapes", "params"}), workers="warm", sandbox="on")
    code = write(tmp_path / "subs", {"ann": LAB, "bob": LAB.replace(*BROKEN_CONV2)})
    try:
        first = grade_in_process(code / "ann.py", spec, opts)
        services = warm.services(opts)
        os.kill(services.forks.proc.pid, signal.SIGKILL)
        services.forks.proc.wait()
        second = grade_in_process(code / "bob.py", spec, opts)
        assert services.forks is None and "fork server" in services.forks_problem
    finally:
        warm.close_all()
    fresh = Options(only=frozenset({"shapes", "params"}), sandbox="on")
    for path, graded in ((code / "ann.py", first), (code / "bob.py", second)):
        expected = grade_in_process(path, spec, fresh)
        assert comparable(json.loads(render(graded, "json"))) == \
            comparable(json.loads(render(expected, "json")))
    assert second.score < first.score == 7


@pytest.mark.gpu
def test_a_warm_batch_on_the_gpu_trains_as_fresh_workers_do(tmp_path):
    """CUDA in the warm trainer's sandbox, deterministic kernels, the same records as fresh."""
    assignment = tiny_assignment(tmp_path, "cifar10_cnn", (0.5, 0.1), epochs=2, batch_size=32,
                                 optimizer={"name": "adam", "lr": 0.003})
    subs = write(tmp_path / "subs", {"a_noisy": NOISY, "b_lab": LAB})
    run = batch(subs, tmp_path / "out", "--assignment", str(assignment), "--jobs", "1",
                "--device", "cuda")
    assert run.code == 0, run.err
    for student in ("a_noisy", "b_lab"):
        graded = result(tmp_path / "out", student)
        assert graded["device"].startswith("cuda")
        assert graded == single(subs / f"{student}.py", "--assignment", str(assignment),
                                "--device", "cuda"), student


def test_a_fork_server_lost_in_the_middle_of_a_job_leaves_that_job_to_a_fresh_worker(tmp_path):
    import threading

    from grader import warm
    from grader.reporters import render
    from grader.runner import Options, grade as grade_in_process
    from grader.spec import load_spec
    from conftest import ASSIGNMENTS

    spec = load_spec(ASSIGNMENTS / "cifar10_cnn" / "spec.yaml")
    opts = Options(only=frozenset({"shapes", "params"}), workers="warm", sandbox="on")
    code = write(tmp_path / "subs", {"ann": LAB, "slow_import": "import time\ntime.sleep(6)\n" + LAB})
    try:
        grade_in_process(code / "ann.py", spec, opts)          # the fork server is up
        services = warm.services(opts)
        server = services.forks.proc
        killer = threading.Timer(2.0, lambda: os.kill(server.pid, signal.SIGKILL))
        killer.start()
        graded = grade_in_process(code / "slow_import.py", spec, opts)
        killer.join()
        assert services.forks is None and "fork server" in services.forks_problem
    finally:
        warm.close_all()
    fresh = grade_in_process(code / "slow_import.py", spec,
                             Options(only=frozenset({"shapes", "params"}), sandbox="on"))
    assert comparable(json.loads(render(graded, "json"))) == \
        comparable(json.loads(render(fresh, "json")))
    assert graded.score == 7


def test_hidden_cases_in_a_forked_child_stay_hidden_and_grade_as_fresh(tmp_path):
    """The hidden cases run last, in a child of their own; their input reaches no report."""
    import yaml

    secret = 73519.0
    spec = tmp_path / "course" / "assignments" / "twice"
    spec.mkdir(parents=True)
    (spec / "spec.yaml").write_text(yaml.safe_dump({
        "name": "twice", "functions": [{"name": "twice", "returns": "tensor"}],
        "checks": [{"id": "twice", "kind": "functions", "points": 2, "function": "twice",
                    "cases": [{"args": [{"tensor": [1.0, 2.0]}], "expect": {"tensor": [2.0, 4.0]}},
                              {"hidden": "more"}]}]}))
    solutions = tmp_path / "course" / "solutions" / "twice"
    solutions.mkdir(parents=True)
    (solutions / "hidden_cases.yaml").write_text(yaml.safe_dump(
        {"more": [{"args": [{"tensor": [secret, 8.0]}], "expect": {"tensor": [2 * secret, 16.0]}}]}))
    (tmp_path / "twice.py").write_text(
        "def twice(x):\n"
        "    print('inputs:', x.tolist())\n"
        "    if x[0] > 1000:\n"
        "        raise ValueError(f'leaking {x.tolist()}')\n"
        "    return 2 * x\n")
    runs = {workers: grade(tmp_path / "twice.py", "-a", spec, "--format", "json", "--workers",
                           workers) for workers in ("warm", "fresh")}
    assert all(str(int(secret)) not in run.out + run.err for run in runs.values())
    warm, fresh = (comparable(runs[w].json()) for w in ("warm", "fresh"))
    assert warm == fresh and warm["score"] == 1.0
