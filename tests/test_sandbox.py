"""Hostile submissions: each attack is contained and scored as the submission's honest model.

Every attack in tests/hostile/ is appended to the lab's reference solution (sometimes with a
planted bug in conv2, so that cheating would show in the score). Each test checks what a user
notices: the score, the reason given, that grading finished within its limits, that the
grader's stdout is exactly its JSON report, and that no process or file is left behind.
Grading runs with `--sandbox on`, so a machine where the sandbox cannot run fails loudly here
instead of quietly testing the fallback. Where an attack is harmless to the test machine it
also runs with `--sandbox off`, to show that the attack works when nothing stops it.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import (BROKEN_CONV2, FULL, HOSTILE, SOLUTION, ZERO, Graded, grade,
                      grade_contained, leftovers, submission, tiny_assignment)
from grader.limits import format_size, parse_size
from grader.process import Capture

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="bubblewrap is Linux-only")

FAST = ("--only", "shapes,params")
STARTUP_S = 60.0   # importing torch on a loaded 2-core CI machine, with room to spare


@pytest.fixture(scope="module")
def honest_broken(tmp_path_factory) -> dict[str, float]:
    """Scores of the conv2-broken model with no attack: what every cheat on it must get."""
    tmp = tmp_path_factory.mktemp("honest")
    graded = grade_contained(tmp, submission(tmp, None, broken=True), *FAST)
    assert 0 < sum(graded.scores.values()) < 7
    return graded.scores


def test_solution_is_graded_inside_the_sandbox(tmp_path):
    graded = grade_contained(tmp_path, submission(tmp_path, None), *FAST)
    assert graded.scores == FULL
    assert graded.report["notes"] == []  # no fallback warning: the sandbox ran


def test_without_bwrap_auto_falls_back_loudly_and_on_refuses(tmp_path):
    path = submission(tmp_path, None)
    no_bwrap = {"GRADER_BWRAP": str(tmp_path / "missing" / "bwrap")}
    graded = grade_contained(tmp_path, path, *FAST, sandbox="auto", env=no_bwrap)
    assert graded.scores == FULL
    assert any(n.startswith("WARNING: graded WITHOUT the sandbox") for n in graded.report["notes"])
    refused = grade(path, "-a", "cifar10_cnn", *FAST, "--sandbox", "on", env=no_bwrap)
    assert refused.code == 2 and refused.out == ""
    assert "--sandbox on, but the sandbox cannot run here" in refused.err


@dataclass(frozen=True)
class Attack:
    """One hostile submission: the lab net (conv2 broken if `broken`) plus tests/hostile/NAME.

    `expected` is the scores it must get ("honest": those of the broken net without the
    attack); `message` what the student is told (None: a clean grade, with no note at all).
    """

    expected: dict | str
    message: str | None
    broken: bool = False
    values: dict = field(default_factory=dict)
    args: tuple[str, ...] = ()
    env: dict = field(default_factory=dict)


MEMORY = "killed: exceeded 1 GiB memory"
CASES = {
    "early_exit": Attack(ZERO, "exited with status 0 during the load step"),
    "forge_results": Attack("honest", None, broken=True, values={"then_exit": False}),
    "patch_grader_in_memory": Attack("honest", None, broken=True),
    "override_parameters": Attack("honest", None, broken=True),
    "memory_bomb": Attack(ZERO, MEMORY, args=("--memory-limit", "1G")),
    "memfd_hoard": Attack(ZERO, MEMORY, values={"count": 14}, args=("--memory-limit", "1G")),
    "memfd_hoard_without_cgroups": Attack(ZERO, MEMORY, values={"count": 14},
                                          args=("--memory-limit", "1G"),
                                          env={"GRADER_CGROUPS": "off"}),
    "sysv_hoard": Attack(ZERO, MEMORY, values={"count": 14}, args=("--memory-limit", "1G")),
    "inode_flood": Attack(ZERO, "killed: created more than 10,000 files in its scratch space",
                          values={"files": 400_000}),
    "fork_bomb": Attack(ZERO, "killed: started more than 16 processes and threads",
                        values={"generations": 8}, args=("--max-processes", "16")),
    "output_flood": Attack(FULL, None, values={"lines": 5000}, args=("--output-limit", "64K")),
    "disk_fill": Attack(FULL, None, values={"huge_bytes": 64 << 20},
                        args=("--file-size-limit", "8M")),
    "result_folder_flood": Attack(ZERO, "killed: wrote more than 8 MiB or 1000 files into the "
                                        "grader's result folder",
                                  args=("--file-size-limit", "8M")),
    "leave_processes": Attack(FULL, None, values={"then_hang": False}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_attack_is_contained(tmp_path, name, honest_broken):
    attack = CASES[name]
    token = f"hostile-{uuid.uuid4().hex}"
    payload = name.removesuffix("_without_cgroups")
    path = submission(tmp_path, payload, {**attack.values, "token": token}, broken=attack.broken)
    graded = grade_contained(tmp_path, path, *FAST, "--timeout", "60", *attack.args, token=token,
                             env=attack.env)
    expected = honest_broken if attack.expected == "honest" else attack.expected
    assert graded.scores == expected, graded.messages
    if attack.message is None:
        assert graded.report["notes"] == [], graded.messages
    else:
        assert attack.message in graded.messages
    assert "timed out" not in graded.messages   # its own limit stopped it, not the clock


def test_cgroups_hold_every_worker_on_this_machine():
    """CI runs as root on cgroup v1 with pids and memory mounted: both limits are the kernel's
    there (elsewhere the watchdog alone applies; docs/SECURITY.md)."""
    from grader.cgroups import WorkerCgroup
    from grader.limits import Limits

    if os.geteuid() != 0:
        pytest.skip("cgroups are made as root here")
    cgroup = WorkerCgroup.create(Limits())
    try:
        assert cgroup is not None and set(cgroup.folders) == {"pids", "memory"}
    finally:
        cgroup.remove()


def test_forged_measurements_then_exit_are_not_believed(tmp_path):
    """Stage files written by the submission's process are not measurements of its model:
    the model is measured by a worker that never runs its code (grader/worker/artifact.py)."""
    path = submission(tmp_path, "forge_results", {"then_exit": True}, broken=True)
    graded = grade_contained(tmp_path, path, *FAST)
    assert graded.scores == ZERO
    assert "exited with status 0 during the build step" in graded.messages


def test_hang_with_children_times_out_and_leaves_nothing(tmp_path):
    token = f"hostile-{uuid.uuid4().hex}"
    path = submission(tmp_path, "leave_processes", {"then_hang": True, "token": token})
    graded = grade_contained(tmp_path, path, *FAST, "--timeout", "5", token=token)
    assert graded.scores == ZERO
    assert "timed out after 5 s" in graded.messages
    assert graded.seconds < 5 + STARTUP_S


def test_grader_and_torch_on_disk_cannot_be_changed(tmp_path):
    import torch

    import grader.worker.trace

    files = [Path(grader.worker.trace.__file__), Path(torch.__file__)]
    before = [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    graded = grade_contained(tmp_path, submission(tmp_path, "patch_grader_on_disk"), *FAST)
    assert [hashlib.sha256(f.read_bytes()).hexdigest() for f in files] == before
    assert graded.scores == FULL


@pytest.mark.parametrize("sandbox, reached", [("on", False), ("off", True)])
def test_network_is_unreachable(tmp_path, sandbox, reached):
    received = []
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(60)
        listener = threading.Thread(target=lambda: _receive(server, received), daemon=True)
        listener.start()
        path = submission(tmp_path, "exfiltrate", {"port": server.getsockname()[1]})
        graded = grade_contained(tmp_path, path, *FAST, sandbox=sandbox)
        socket.create_connection(server.getsockname()).close()  # let the listener return
        listener.join(10)
    assert graded.scores == FULL
    assert any(b"exfiltrated" in r for r in received) == reached


def _receive(server: socket.socket, received: list[bytes]) -> None:
    try:
        conn, _ = server.accept()
        with conn:
            received.append(conn.recv(4096))
    except OSError:
        pass


@pytest.mark.parametrize("sandbox", ["on", "off"])
def test_hidden_files_are_invisible(tmp_path, sandbox, honest_broken):
    home = tmp_path / "home"
    other = tmp_path / "other-student"
    for folder in (home / "answers", other):
        folder.mkdir(parents=True)
        (folder / "model.py").write_text(SOLUTION.read_text())
    secrets = [str(SOLUTION), str(home / "answers" / "model.py"), str(other / "model.py")]
    path = submission(tmp_path, "read_hidden_files", {"paths": secrets}, broken=True)
    graded = grade_contained(tmp_path, path, *FAST, sandbox=sandbox, env={"HOME": str(home)})
    assert graded.scores == (honest_broken if sandbox == "on" else FULL)


def test_test_labels_cannot_be_read(tmp_path, monkeypatch):
    # A cache of its own: other tests' tiny datasets have 100 test labels too, and the attack
    # must find this assignment's labels where nothing stops it.
    monkeypatch.setenv("GRADER_CACHE", str(tmp_path / "cache"))
    assignment = tiny_assignment(tmp_path, "tiny_cnn", (0.99, 0.0), epochs=1, batch_size=32)
    label_globs = [f"{os.environ['GRADER_CACHE']}/labels/*.npy", f"{assignment}/*.npz"]
    values = {"label_globs": label_globs, "n_test": 100}
    args = ("--only", "accuracy", "--device", "cpu")

    def graded(attack: str | None, sandbox: str) -> Graded:
        folder = tmp_path / f"{attack}-{sandbox}"
        return grade_contained(folder, submission(folder, attack, values), *args,
                               sandbox=sandbox, assignment=assignment)

    def accuracy(attack: str | None, sandbox: str) -> float:
        return graded(attack, sandbox).ran[0]["details"]["accuracy"]

    honest = accuracy(None, "on")
    assert 0 < honest < 1.0
    assert accuracy("read_labels", "on") == honest    # nothing found: the honest model's grade
    found = graded("read_labels", "off")              # where nothing hides them, they are found
    assert "found the test labels" in found.messages
    [labels] = glob.glob(label_globs[0])  # where the honest run cached them: known to an attacker
    values["label_path"] = labels
    assert accuracy("link_labels", "on") == accuracy("link_labels", "off") == 0.0


@pytest.mark.gpu
def test_cuda_works_inside_the_sandbox(tmp_path):
    assignment = tiny_assignment(tmp_path, "tiny_cnn", (0.99, 0.0), epochs=1, batch_size=32)
    graded = grade_contained(tmp_path, submission(tmp_path, None), "--only", "accuracy",
                             "--device", "cuda", assignment=assignment)
    assert graded.report["device"].startswith("cuda")
    assert graded.report["notes"] == []


def test_device_nodes_reach_the_sandbox(monkeypatch):
    """What CUDA needs, checked without a GPU: a device node bound in is usable inside."""
    from grader import sandbox

    monkeypatch.setattr(sandbox, "gpu_args", lambda: ["--dev-bind", "/dev/zero", "/dev/nvidia0"])
    cmd = [sandbox.plan("on").bwrap, *sandbox.system_args(sandbox.Limits(), "cuda"),
           "--", "head", "-c", "4", "/dev/nvidia0"]
    assert subprocess.run(cmd, capture_output=True, timeout=60).stdout == b"\0" * 4


def test_output_keeps_head_and_tail_and_says_what_was_cut():
    capture = Capture(keep=1000)
    for i in range(100):
        capture.add(f"line {i:03d}\n".encode() * 10)
    text = capture.content().decode()
    assert text.startswith("line 000\n") and text.endswith("line 099\n")
    assert "bytes cut: the submission printed 9,000 bytes, more than the 1000 bytes" in text
    assert len(text) < 1200


def test_sizes_read_and_print_in_binary_units():
    assert parse_size("2G") == parse_size("2GiB") == 2 << 30
    assert parse_size("512m") == 512 << 20 and parse_size("100000") == 100000
    assert format_size(2 << 30) == "2 GiB" and format_size(1536 << 20) == "1.5 GiB"
    with pytest.raises(ValueError, match="is not a size"):
        parse_size("lots")
