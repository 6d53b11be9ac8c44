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
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import SOLUTIONS, Run, grade, tiny_assignment
from grader.limits import format_size, parse_size
from grader.process import Capture

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="bubblewrap is Linux-only")

HOSTILE = Path(__file__).parent / "hostile"
SOLUTION = SOLUTIONS / "cifar10_cnn" / "model.py"
BROKEN_CONV2 = ("self.conv2 = nn.Conv2d(6, 16, kernel_size=5)",
                "self.conv2 = nn.Conv2d(6, 16, kernel_size=3)")
FAST = ("--only", "shapes,params")
STARTUP_S = 60.0   # importing torch on a loaded 2-core CI machine, with room to spare
FULL = {"shapes": 4.0, "params": 3.0}
ZERO = {"shapes": 0.0, "params": 0.0}


@dataclass
class Graded:
    run: Run
    report: dict
    seconds: float

    @property
    def scores(self) -> dict[str, float]:
        return {c["id"]: c["score"] for c in self.report["checks"]}

    @property
    def messages(self) -> str:
        return "\n".join([c["feedback"] for c in self.report["checks"]] + self.report["notes"])


def submission(tmp_path: Path, attack: str | None, values: dict | None = None,
               broken: bool = False) -> Path:
    """The reference solution (conv2 broken if asked) with tests/hostile/ATTACK.py appended."""
    text = SOLUTION.read_text()
    if broken:
        assert text.count(BROKEN_CONV2[0]) == 1
        text = text.replace(*BROKEN_CONV2)
    if attack:
        text += f"\n\nTEST_VALUES = {values or {}!r}\n" + (HOSTILE / f"{attack}.py").read_text()
    folder = tmp_path / "submissions" / (attack or "honest")
    folder.mkdir(parents=True)
    (folder / "model.py").write_text(text)
    return folder / "model.py"


def grade_contained(tmp_path: Path, path: Path, *args: str, sandbox: str = "on",
                    assignment: str | Path = "cifar10_cnn", token: str | None = None,
                    env: dict[str, str] | None = None) -> Graded:
    """Grade with a private TMPDIR; check stdout is the report alone and nothing is left behind."""
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    start = time.monotonic()
    run = grade(path, "--assignment", assignment, "--format", "json", "--sandbox", sandbox,
                *args, env={"TMPDIR": str(tmp), **(env or {})})
    seconds = time.monotonic() - start
    assert run.code in (0, 1), run.err
    report = json.loads(run.out)  # the whole of stdout parses: nothing else was printed there
    assert token is None or token not in run.out + run.err
    assert list(tmp.iterdir()) == [], "the job folder was left behind"
    assert leftovers([str(tmp), *([token] if token else [])]) == []
    return Graded(run, report, seconds)


def leftovers(markers: list[str]) -> list[str]:
    """Command lines of live (not zombie) processes that mention any of `markers`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and any(m in cmdline for m in markers):
            found.append(f"{pid}: {cmdline}")
    return found


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


# attack, broken model?, TEST_VALUES, extra arguments, expected scores ("honest": those of the
# broken model without the attack), words the student is told
CASES = {
    "early_exit": (False, {}, (), ZERO, "exited with status 0 during the load step"),
    "forge_results": (True, {"then_exit": False}, (), "honest", ""),
    "patch_grader_in_memory": (True, {}, (), "honest", ""),
    "override_parameters": (True, {}, (), "honest", ""),
    "memory_bomb": (False, {}, ("--memory-limit", "1G"), ZERO, "killed: exceeded 1 GiB memory"),
    "fork_bomb": (False, {"generations": 8}, ("--max-processes", "16"), ZERO,
                  "killed: started more than 16 processes and threads"),
    "output_flood": (False, {"lines": 5000}, ("--output-limit", "64K"), FULL, ""),
    "disk_fill": (False, {"huge_bytes": 64 << 20}, ("--file-size-limit", "8M"), FULL, ""),
    "result_folder_flood": (False, {}, ("--file-size-limit", "8M"), ZERO,
                            "killed: wrote more than 8 MiB or 1000 files into the grader's "
                            "result folder"),
    "leave_processes": (False, {"then_hang": False}, (), FULL, ""),
}


@pytest.mark.parametrize("attack", sorted(CASES))
def test_attack_is_contained(tmp_path, attack, honest_broken):
    broken, values, args, expected, message = CASES[attack]
    token = f"hostile-{uuid.uuid4().hex}"
    path = submission(tmp_path, attack, {**values, "token": token}, broken=broken)
    graded = grade_contained(tmp_path, path, *FAST, "--timeout", "120", *args, token=token)
    assert graded.scores == (honest_broken if expected == "honest" else expected), graded.messages
    assert message in graded.messages
    assert graded.seconds < 120


def test_forged_measurements_then_exit_are_not_believed(tmp_path):
    """Stage files written by the submission's process are not measurements of its model:
    the model is measured by a worker that never runs its code (grader/worker/artifact.py)."""
    path = submission(tmp_path, "forge_results", {"then_exit": True}, broken=True)
    graded = grade_contained(tmp_path, path, *FAST)
    assert graded.scores == ZERO
    assert "exited with status 0 during the export step" in graded.messages


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

    def accuracy(attack: str | None, sandbox: str) -> float:
        folder = tmp_path / f"{attack}-{sandbox}"
        graded = grade_contained(folder, submission(folder, attack, values), *args,
                                 sandbox=sandbox, assignment=assignment)
        return graded.report["checks"][0]["details"]["accuracy"]

    honest = accuracy(None, "on")
    assert honest < 1.0
    assert accuracy("read_labels", "on") == honest
    assert accuracy("read_labels", "off") == 1.0  # the attack works where nothing stops it
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
