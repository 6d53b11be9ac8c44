"""How long the README's first command takes for a newcomer: a fresh HOME, no dataset.

Runs `grade solutions/lenet5_mnist` (the README's first command, after the install) as on a
fresh clone: an empty HOME (so an empty cache, and the MNIST sample shipped with the grader),
no GRADER_DATA. Prints, per seed, the wall time of the whole command, the training time the
report gives, the CPU time of the command and every process it started (which a busy machine
inflates far less than wall time), the accuracy, and the load average around it (these 2-core
machines are shared: compare wall times only from a quiet machine).

    python benchmarks/first_command.py --seeds 0,1,2
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_once(seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="first-command-home-") as home:
        env = {k: v for k, v in os.environ.items()
               if k not in ("GRADER_DATA", "GRADER_CACHE", "XDG_CACHE_HOME")}
        env.update(HOME=home, PYTHONPATH=str(REPO))
        load = os.getloadavg()[0]
        cpu_before = _children_cpu()
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "grader", "solutions/lenet5_mnist",
                               "--seed", str(seed), "--format", "json"], cwd=REPO, env=env,
                              capture_output=True, text=True)
        wall = time.perf_counter() - start
        cpu = _children_cpu() - cpu_before
    result = json.loads(proc.stdout)
    accuracy = next(c for c in result["checks"] if c["kind"] == "accuracy")
    return {"seed": seed, "exit": proc.returncode, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "train_s": accuracy["details"].get("train_seconds"),
            "accuracy": accuracy["details"].get("accuracy"),
            "variant": accuracy["details"]["dataset"]["variant"],
            "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2)}


def _children_cpu() -> float:
    """User and system time of every finished child process, and theirs, so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    args = parser.parse_args()
    print(f"{datetime.date.today()}, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}")
    for seed in (int(s) for s in args.seeds.split(",")):
        print(json.dumps(run_once(seed)), flush=True)


if __name__ == "__main__":
    main()
