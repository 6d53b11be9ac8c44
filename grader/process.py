"""Start the worker process and bring back why it stopped, if it stopped badly.

This is the one place a child process running student code is launched: a
scrubbed environment, its own session (so the whole process group can be
killed), captured output, and a wall-clock limit.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from . import protocol

ENV_PASSTHROUGH = ("PATH", "LANG", "LC_ALL", "LD_LIBRARY_PATH", "TMPDIR", "CUDA_VISIBLE_DEVICES",
                   "NVIDIA_VISIBLE_DEVICES", "CUDA_HOME", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def worker_env(job: Path) -> dict[str, str]:
    """Only what the worker needs: no tokens, no user config, a HOME of its own."""
    env = {k: os.environ[k] for k in ENV_PASSTHROUGH if k in os.environ}
    package_root = str(Path(__file__).resolve().parent.parent)
    env.update(HOME=str(job), PYTHONPATH=package_root, PYTHONHASHSEED="0",
               PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    return env


def run_worker(job: Path, timeout_s: float) -> str | None:
    """Start the worker and wait; returns why it stopped abnormally, or None."""
    cmd = [sys.executable, "-m", "grader.worker", str(job)]
    with open(job / protocol.STDOUT, "wb") as out, open(job / protocol.STDERR, "wb") as err:
        proc = subprocess.Popen(cmd, cwd=job, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                env=worker_env(job), start_new_session=True)
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return f"timed out after {timeout_s:g} s (the grader stopped it; look for an " \
                   "endless loop, or training code that runs when the file is imported)"
        finally:
            _kill_group(proc)
    if code < 0:
        sig = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        hint = " (this usually means it ran out of memory)" if sig == "SIGKILL" else ""
        return f"the submission's process was killed by {sig}{hint}"
    if code != 0:
        return f"the submission's process exited with status {code} before reporting"
    return None


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the worker's whole process group: nothing a submission starts outlives it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
