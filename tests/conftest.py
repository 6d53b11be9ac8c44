"""Shared fixtures: run the real `grade` command, find real data, build planted-bug variants."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

# Attack payloads are appended to submissions, never run as tests, whatever their names.
collect_ignore_glob = ["hostile/*"]

REPO = Path(__file__).resolve().parent.parent
ASSIGNMENTS = REPO / "assignments"
SOLUTIONS = REPO / "solutions"
# The assignments whose students build and train a whole network (shapes, params, accuracy).
MODEL_ASSIGNMENTS = ["cifar10_cnn", "lenet5_mnist", "cifar10_improved", "fashion_mnist_strided",
                     "unet_cifar10", "cifar10_strided", "cifar10_vgg"]
HOSTILE = Path(__file__).parent / "hostile"
SCHEMAS = Path(__file__).parent / "schemas"     # formats other tools read, to validate against
SOLUTION = SOLUTIONS / "cifar10_cnn" / "model.py"     # the lab net: what attacks are added to
BROKEN_CONV2 = ("self.conv2 = nn.Conv2d(6, 16, kernel_size=5)",
                "self.conv2 = nn.Conv2d(6, 16, kernel_size=3)")
FULL = {"shapes": 4.0, "params": 3.0}
ZERO = {"shapes": 0.0, "params": 0.0}

LAB = SOLUTION.read_text()
# A model that trains and draws random numbers (dropout) and updates buffers (batch norm):
# whatever a warm trainer kept from one job to the next would show in its curve.
NOISY = LAB.replace("self.fc3 = nn.Linear(84, 10)",
                    "self.fc3 = nn.Linear(84, 10)\n        self.bn = nn.BatchNorm2d(6)\n"
                    "        self.drop = nn.Dropout(0.3)").replace(
    "x = self.pool(F.relu(self.conv1(x)))", "x = self.pool(F.relu(self.bn(self.conv1(x))))").replace(
    "x = F.relu(self.fc1(x))", "x = self.drop(F.relu(self.fc1(x)))")
# Fine at the probe's batch of 2 (74 MB), 1.2 GB at the training batch of 32.
GREEDY = LAB.replace("x = self.pool(F.relu(self.conv1(x)))",
                     "x = x + x.repeat(1, 3000, 1, 1).mean(1, keepdim=True) * 0\n"
                     "        x = self.pool(F.relu(self.conv1(x)))")
# Sixty wide 7x7 convolutions of the image repeated to 384 channels, all multiplied by 0:
# about 0.4 s at the probe's batch of 2, about 14 s for each training step of 32 on these
# CPUs (ten steps an epoch), and compute-bound with under 400 MB held at any step, so time,
# not memory, is what runs out.
SLOW = LAB.replace("x = self.pool(F.relu(self.conv1(x)))",
                   "z = x.repeat(1, 128, 1, 1)\n"
                   "        w = torch.ones(64, 384, 7, 7)\n"
                   "        for _ in range(60):\n"
                   "            x = x + F.conv2d(z, w).mean() * 0\n"
                   "        x = self.pool(F.relu(self.conv1(x)))")


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> dict:
        return json.loads(self.out)

    def check(self, check_id: str) -> dict:
        return next(c for c in self.json()["checks"] if c["id"] == check_id)


def grade(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 900) -> Run:
    """Run `python -m grader ARGS` as a user would, returning exit code and output."""
    proc = subprocess.run([sys.executable, "-m", "grader", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})
    return Run(proc.returncode, proc.stdout, proc.stderr)


def data_root() -> Path | None:
    env = os.environ.get("GRADER_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data")
    return next((p for p in candidates if (p / "MNIST" / "raw").is_dir()), None)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real datasets; a missing folder skips, unless CI demands them (GRADER_REQUIRE_DATA=1)."""
    root = data_root()
    if root is None:
        if os.environ.get("GRADER_REQUIRE_DATA") == "1":
            pytest.fail("GRADER_REQUIRE_DATA=1 but no real data found (set GRADER_DATA)")
        pytest.skip("real datasets not found: set GRADER_DATA to ../shared/data")
    return root


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Prepared arrays go to a per-run cache, so tests never depend on a developer's cache."""
    os.environ.setdefault("GRADER_CACHE", str(tmp_path_factory.mktemp("grader-cache")))


@pytest.fixture
def one_thread():
    """Tiny tensors: extra threads only spin against the other work on a shared CPU."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def banded_images(n: int = 96, seed: int = 0) -> dict:
    """Eight-pixel images of 3 classes, class k a bright row band at rows 2k..2k+1: learnable
    in a few steps, so a test sees training work. Test images are the first 32 training ones."""
    import torch

    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randint(0, 60, (n, 1, 8, 8), generator=g, dtype=torch.uint8)
    for i, k in enumerate(y.tolist()):
        x[i, :, 2 * k:2 * k + 2] += 180
    return {"train_x": x, "train_y": y, "test_x": x[:32].clone()}


def tiny_assignment(root: Path, name: str, bar: tuple[float, float], **training) -> Path:
    """The lab spec, trained on a tiny learnable .npz kept in the spec folder.

    Class k is a bright band at rows 3k..3k+2, which the lab net learns in a few dozen steps:
    training that finishes in seconds, for tests of what happens around training. `bar` is
    the accuracy check's (min_accuracy, partial_from); `training` overrides the recipe.
    """
    import numpy as np
    import yaml

    folder = root / name
    folder.mkdir()
    spec = yaml.safe_load((ASSIGNMENTS / "cifar10_cnn" / "spec.yaml").read_text())
    spec["name"] = name
    for shift in ("crop_padding", "hflip"):      # the lab's augmentation would move the bands
        spec["training"].pop(shift, None)
    spec["training"].update(dataset="tiny.npz", **training)
    for check in spec["checks"]:
        if check["kind"] == "accuracy":
            check.update(min_accuracy=bar[0], partial_from=bar[1])
            check.pop("subset", None)
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 420)
    x = rng.integers(0, 80, (420, 3, 32, 32)).astype(np.uint8)
    for i, k in enumerate(y):
        x[i, :, 3 * k:3 * k + 3] += 150
    np.savez(folder / "tiny.npz", x_train=x[:320], y_train=y[:320], x_test=x[320:],
             y_test=y[320:])
    return folder


def variant(tmp_path: Path, solution: Path, replacements: list[tuple[str, str]],
            name: str = "model.py") -> Path:
    """A copy of a solution file with planted bugs; each replacement must apply exactly once."""
    text = solution.read_text()
    for old, new in replacements:
        assert text.count(old) == 1, f"planted bug does not apply: {old!r}"
        text = text.replace(old, new)
    folder = tmp_path / "submission"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


def pytest_collection_modifyitems(config, items):
    """GPU tests skip cleanly without CUDA (checked once, only if any are collected)."""
    gpu = [i for i in items if "gpu" in i.keywords]
    if not gpu:
        return
    try:
        import torch
        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        for item in gpu:
            item.add_marker(pytest.mark.skip(reason="needs CUDA"))


# ---------------------------------------------------------------- hostile submissions

@dataclass
class Graded:
    run: Run
    report: dict
    seconds: float

    @property
    def ran(self) -> list[dict]:
        """The checks that ran (those left out by --only are listed as skipped)."""
        return [c for c in self.report["checks"] if c["status"] != "skipped"]

    @property
    def scores(self) -> dict[str, float]:
        return {c["id"]: c["score"] for c in self.ran}

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
        except OSError:
            continue
        if alive(int(pid)) and any(m in cmdline for m in markers):
            found.append(f"{pid}: {cmdline}")
    return found


def descendants(root: int) -> set[int]:
    """Every live process under `root`, whichever thread started it."""
    parents = {int(pid): int(fields[1]) for pid in filter(str.isdigit, os.listdir("/proc"))
               if (fields := _stat(int(pid)))}
    found, frontier = set(), {root}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    fields = _stat(pid)
    return bool(fields) and fields[0] != "Z"


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat after the command name (state, parent, ...); [] once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def graded_functions(tmp_path: Path, name: str, replacements: list[tuple[str, str]]):
    """A planted-bug copy of a function assignment's solution, graded in-process (the CLI's
    path minus one Python start) on its functions checks; solutions/ is present, so the
    hidden cases run too."""
    from grader.runner import Options
    from grader.runner import grade as grade_in_process
    from grader.spec import load_spec

    path = variant(tmp_path, SOLUTIONS / name / f"{name}.py", replacements, name=f"{name}.py")
    return grade_in_process(path, load_spec(ASSIGNMENTS / name / "spec.yaml"),
                            Options(only=frozenset({"functions"})))


def spec_error(tmp_path: Path, assignment: str, old: str, new: str):
    """The SpecError a copy of ASSIGNMENT's spec raises with `old` (found once) made `new`."""
    from grader.errors import SpecError
    from grader.spec import load_spec

    text = (ASSIGNMENTS / assignment / "spec.yaml").read_text()
    assert text.count(old) == 1, old
    folder = tmp_path / assignment
    folder.mkdir()
    (folder / "spec.yaml").write_text(text.replace(old, new))
    with pytest.raises(SpecError) as info:
        load_spec(folder / "spec.yaml")
    return info.value


def on_a_terminal(cmd: list[str], timeout: float) -> tuple[int, str]:
    """Run `cmd` with a pseudo-terminal as stdout and stderr (a 120-column xterm); its exit
    code and everything it drew, escape sequences included."""
    import pty

    controller, terminal = pty.openpty()
    proc = subprocess.Popen(cmd, stdout=terminal, stderr=terminal,
                            env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"})
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:       # the terminal closed: every process holding it has exited
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=timeout)
    os.close(controller)
    return proc.returncode, b"".join(chunks).decode("utf-8", "replace")
