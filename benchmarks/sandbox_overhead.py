"""What the sandbox costs per submission: the same work with and without bubblewrap.

    (a) once per grading process: the check that the sandbox can run (Python started in it);
    (b) per submission: one worker run (import torch, load, build and probe the lab model)
        through `grader.process.run_worker`, with `--sandbox on` and `off`;
    (c) end to end: `grade SOLUTION --only shapes,params`, a fresh process each time, so (a)
        is included;
    (d) what the trust boundary costs: the runner's two workers (the submission's, which
        exports the model and captures its forward, and the replay worker, started together,
        which rebuilds and measures it through the closed table of grader/worker/ops.py)
        against (b)'s single worker that measures the model in the submission's own process
        (the design before the boundary).

    (e) with --baseline REV: `grade --only shapes,params` of this checkout against the
        same command from a worktree of REV (e.g. the commit before a change), so a
        change's cost is measured against what it replaced, on the same machine, in the
        same run.

Runs alternate between the two modes, so a machine that slows down or speeds up
during the run affects both alike; medians are printed, with the date and the
hardware. The overhead is the difference of the medians.

    python benchmarks/sandbox_overhead.py --runs 10 --baseline 7256e2b
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from grader import protocol, sandbox  # noqa: E402
from grader.limits import Limits  # noqa: E402
from grader.process import run_worker  # noqa: E402
from grader.jobs import measure  # noqa: E402
from grader.runner import Options  # noqa: E402
from grader.stages import needed  # noqa: E402
from grader.spec import load_spec  # noqa: E402
from grader.submission import locate  # noqa: E402

SOLUTION = REPO / "solutions" / "cifar10_cnn"
MODES = ("off", "on")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=10, help="runs per mode and measurement")
    p.add_argument("--baseline", help="a git revision to compare `grade` end to end with (e)")
    return p.parse_args()


def probe_seconds() -> float:
    bwrap = sandbox.find_bwrap()
    start = time.perf_counter()
    problem = sandbox.probe(bwrap)
    if problem:
        sys.exit(f"the sandbox cannot run here: {problem}")
    return time.perf_counter() - start


def worker_seconds(mode: str) -> float:
    """One worker that loads the code, builds the model and measures it in its own process."""
    job = Path(tempfile.mkdtemp(prefix="grade-job-"))
    try:
        (job / "submission").mkdir()
        shutil.copy(SOLUTION / "model.py", job / "submission" / "model.py")
        protocol.write_json_atomic(job / protocol.REQUEST, {
            "job": str(job), "entry": "submission/model.py",
            "stages": ["load", "build", "model", "probe"],
            "seed": 0, "device": "cpu", "input_shape": [3, 32, 32], "class_name": "Model"})
        start = time.perf_counter()
        failure = run_worker(job, 120, Limits(), mode)
        if failure:
            sys.exit(f"the worker failed with --sandbox {mode}: {failure}")
        return time.perf_counter() - start
    finally:
        shutil.rmtree(job, ignore_errors=True)


def replay_seconds(design: str) -> float:
    """(d): `one` = (b) in the sandbox; `two` = the runner's export-and-replay workers."""
    if design == "one":
        return worker_seconds("on")
    spec = load_spec(REPO / "assignments" / "cifar10_cnn" / "spec.yaml")
    start = time.perf_counter()
    m = measure(locate(SOLUTION, spec.name), spec, needed({"shapes", "params"}),
                Options(device="cpu", sandbox="on"), None)
    if not m.ok("probe") or m.self_reported:
        sys.exit(f"the replay did not measure the model: {m.failure or m.blocker('probe')}")
    return time.perf_counter() - start


def grade_seconds(mode: str, checkout: Path = REPO) -> float:
    cmd = [sys.executable, "-m", "grader", str(checkout / "solutions" / "cifar10_cnn"),
           "--only", "shapes,params", "--sandbox", mode]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=checkout,
                   env={**os.environ, "PYTHONPATH": str(checkout)})
    return time.perf_counter() - start


def against_baseline(revision: str, runs: int) -> dict[str, float]:
    """(e): medians of `grade` from a worktree of `revision` and from this checkout."""
    worktree = Path(tempfile.mkdtemp(prefix="grade-baseline-")) / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(worktree), revision], cwd=REPO,
                   check=True, capture_output=True)
    try:
        checkouts = {revision: worktree, "this checkout": REPO}
        return alternate(lambda name: grade_seconds("on", checkouts[name]), runs,
                         tuple(checkouts))
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=REPO,
                       capture_output=True)


def alternate(timed, runs: int, modes: tuple[str, str] = MODES) -> dict[str, float]:
    """Median seconds per mode, the modes taking turns `runs` times (after one warm-up each)."""
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    for mode in modes:
        timed(mode)
    for _ in range(runs):
        for mode in modes:
            times[mode].append(timed(mode))
    return {mode: statistics.median(t) for mode, t in times.items()}


def report(label: str, medians: dict[str, float], names: str = "--sandbox ") -> None:
    (base, t0), (other, t1) = medians.items()
    print(f"{label}: {names}{base} {t0:.3f} s, {names}{other} {t1:.3f} s: "
          f"overhead {t1 - t0:+.3f} s (x{t1 / t0:.2f})")


def main() -> None:
    args = parse_args()
    print(f"# sandbox overhead, {datetime.date.today()}, {platform.node()}, "
          f"{os.cpu_count()} CPUs, {platform.platform()}, bwrap {sandbox.find_bwrap()}, "
          f"median of {args.runs}")
    probes = [probe_seconds() for _ in range(args.runs)]
    print(f"(a) sandbox check, once per grading process: {statistics.median(probes):.3f} s")
    report("(b) one worker run (load, build, measure in its own process)",
           alternate(worker_seconds, args.runs))
    report("(c) grade --only shapes,params, end to end", alternate(grade_seconds, args.runs))
    report("(d) the trust boundary: export + capture, then replay (sandbox on)",
           alternate(replay_seconds, args.runs, ("one", "two")), names="workers: ")
    if args.baseline:
        report(f"(e) grade --only shapes,params: {args.baseline} against this checkout",
               against_baseline(args.baseline, args.runs), names="")


if __name__ == "__main__":
    main()
