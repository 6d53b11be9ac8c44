"""Start the worker process, hold it to its limits, and bring back why it stopped, if badly.

This is the one place a child process running student code is launched:
inside the bubblewrap sandbox when it can run (grader/sandbox.py), with a
scrubbed environment, its own session, a per-file size limit, and output
captured through pipes (at most `Limits.output_bytes` of it is kept, so a
flood never fills a disk or reaches the grader's own stdout). While it runs,
this process samples the worker's whole process tree for the wall-clock,
memory and process limits (grader/limits.py), and afterwards kills whatever
is left of that tree, whatever happened.
"""
from __future__ import annotations

import functools
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from . import protocol, sandbox
from .cgroups import WorkerCgroup
from .limits import (Limits, Proc, alive, folder_bytes, format_size, memory_message, prepare_child,
                     process_tree, scratch_files, violation)

ENV_PASSTHROUGH = ("PATH", "LANG", "LC_ALL", "LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES",
                   "NVIDIA_VISIBLE_DEVICES", "CUDA_HOME", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
TICK_S = 0.05          # how often the watchdog looks, unless looking costs more (see _supervise)
WATCHDOG_SHARE = 0.1   # ... the watchdog uses at most this share of one core
MAX_TICK_S = 1.0       # ... but it never looks away for longer than this
KILL_WAIT_S = 60.0     # how long killed processes may take to disappear (a fork bomb's many)
READ_CHUNK = 1 << 16


def worker_env(job: Path, gpu: bool) -> dict[str, str]:
    """Only what the worker needs: no tokens, no user config, a HOME and TMPDIR of its own
    (inside the job folder, so what torch and the submission leave there goes with it).
    A worker that may not use the GPU (the submission's own) sees none."""
    env = {k: os.environ[k] for k in ENV_PASSTHROUGH if k in os.environ}
    env.update(HOME=str(job), TMPDIR=str(job / "tmp"), PYTHONPATH=str(sandbox.package_root()),
               PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg",
               PYTHONUNBUFFERED="1")
    if not gpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


class Gate:
    """Holds a started worker at its first line of input until the parent decides.

    So a worker can import torch while another one is still running, and then
    either go on (`open`) or leave quietly (`close`). Whichever comes first, the
    decision or the process, the other is met when it arrives. A held worker's
    time limit starts when the gate opens.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._decision: bytes | None = None
        self.opened_at: float | None = None

    def attach(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._proc = proc
            self._send()

    def open(self, stages: list[str]) -> None:
        self._decide(json.dumps({"stages": stages}).encode() + b"\n")

    def deadline(self, timeout_s: float) -> float:
        """When a held worker must be done: never while it waits, else timeout_s after."""
        return float("inf") if self.opened_at is None else self.opened_at + timeout_s

    def close(self) -> None:
        self._decide(b"")

    def _decide(self, decision: bytes) -> None:
        with self._lock:
            if self._decision is None:
                self._decision = decision
                self.opened_at = time.monotonic() if decision else None
                self._send()

    def _send(self) -> None:
        if self._proc is None or self._decision is None or self._proc.stdin is None:
            return
        try:
            self._proc.stdin.write(self._decision)
            self._proc.stdin.close()
        except OSError:  # the worker is gone already; its exit status says why
            pass


def run_worker(job: Path, timeout_s: float, limits: Limits = Limits(),
               sandbox_mode: str = "auto", gate: Gate | None = None) -> str | None:
    """Start the worker and wait; returns why it stopped abnormally, or None."""
    plan = sandbox.plan(sandbox_mode)
    for folder in (protocol.OUT_DIR, "tmp"):
        (job / folder).mkdir(exist_ok=True)
    request = json.loads((job / protocol.REQUEST).read_text(encoding="utf-8"))
    gpu = request.get("device", "cpu") != "cpu"
    worker = [sys.executable, "-m", "grader.worker", str(job)]
    if plan.bwrap:
        worker = sandbox.command(plan.bwrap, job, request, limits, worker)
    cgroup = WorkerCgroup.create(limits)
    watch = _Watch(job, limits, cgroup, sandbox.scratch_folders(job) if plan.bwrap else ())
    try:
        stopped, code = _run(worker, job, timeout_s, watch, gate, worker_env(job, gpu))
        if stopped is None and cgroup is not None and cgroup.oom_killed():
            stopped = memory_message(limits)
    finally:
        if cgroup is not None:
            cgroup.remove()
    return stopped or _exit_reason(code, sandboxed=plan.bwrap is not None)


class _Watch:
    """What the watchdog looks at for one worker, and the kernel cgroup beside it."""

    def __init__(self, job: Path, limits: Limits, cgroup: WorkerCgroup | None,
                 scratch: tuple[str, ...]):
        self.job, self.limits, self.cgroup, self.scratch = job, limits, cgroup, scratch

    def violation(self, tree: dict[int, Proc]) -> str | None:
        memory_cgroup = self.cgroup is not None and self.cgroup.limits_memory
        return violation(tree, folder_bytes(self.job / protocol.OUT_DIR), self.limits,
                         count_memfds=not memory_cgroup,
                         scratch=scratch_files(tree, self.scratch) if self.scratch else 0)


def _run(cmd: list[str], job: Path, timeout_s: float, watch: _Watch, gate: Gate | None,
         env: dict[str, str]) -> tuple[str | None, int]:
    """Run `cmd` to its end or until it must stop; (why it was stopped, exit status).

    Its output is kept in the job folder (protocol.STDOUT and STDERR), cut to the limit.
    """
    limits, cgroup = watch.limits, watch.cgroup
    stdin = subprocess.PIPE if gate else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, cwd=job, stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, start_new_session=True,
                            preexec_fn=functools.partial(prepare_child, limits, cgroup))
    if gate:
        gate.attach(proc)
    streams = {proc.stdout: Capture(limits.output_bytes // 2),
               proc.stderr: Capture(limits.output_bytes // 2)}
    seen: dict[int, Proc] = {}
    try:
        started = time.monotonic()
        deadline = gate.deadline if gate else (lambda t: started + t)
        stopped = _supervise(proc, streams, seen, watch, timeout_s, deadline)
    finally:
        _kill_tree(proc, seen, cgroup)
        _drain(streams)
        for name, capture in zip((protocol.STDOUT, protocol.STDERR), streams.values()):
            (job / name).write_bytes(capture.content())
    return stopped, proc.returncode


class Capture:
    """The first and last `keep` bytes of a stream, and how much was cut between them."""

    def __init__(self, keep: int):
        self.half = max(keep // 2, 1)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.half - len(self.head)
        self.head += data[:max(room, 0)]
        self.tail += data[max(room, 0):]
        if len(self.tail) > 2 * self.half:
            del self.tail[:-self.half]

    def content(self) -> bytes:
        tail = self.tail[-self.half:]
        cut = self.total - len(self.head) - len(tail)
        if cut <= 0:
            return bytes(self.head + tail)
        marker = (f"\n[... {cut:,} bytes cut: the submission printed {self.total:,} bytes, more "
                  f"than the {format_size(2 * self.half)} the grader keeps ...]\n").encode()
        return bytes(self.head) + marker + bytes(tail)


def _supervise(proc: subprocess.Popen, streams: dict, seen: dict[int, Proc], watch: _Watch,
               timeout_s: float, deadline: Callable[[float], float]) -> str | None:
    """Pump output until the worker exits; why it must stop, if it must.

    The watchdog scans /proc, which costs more on a busy machine, so it looks
    every TICK_S, or rarely enough to stay under WATCHDOG_SHARE of a core, but
    at least every MAX_TICK_S.
    """
    selector = selectors.DefaultSelector()
    for pipe in streams:
        os.set_blocking(pipe.fileno(), False)
        selector.register(pipe, selectors.EVENT_READ)
    next_look = 0.0
    while _running(proc):
        _pump(selector, streams, TICK_S)
        now = time.monotonic()
        if now >= deadline(timeout_s):
            return (f"timed out after {timeout_s:g} s (the grader stopped it; look for an "
                    "endless loop, or training code that runs when the file is imported)")
        if now >= next_look:
            tree = process_tree(proc.pid)
            seen.update(tree)
            reason = watch.violation(tree)
            if reason:
                return reason
            cost = time.monotonic() - now
            next_look = now + min(max(TICK_S, cost / WATCHDOG_SHARE), MAX_TICK_S)
    return None


def _running(proc: subprocess.Popen) -> bool:
    """True until the worker exits; it is not reaped, so its pid cannot be reused meanwhile
    (macOS before Python 3.13 has no waitid: there it is reaped, and /proc is missing anyway)."""
    if not hasattr(os, "waitid"):
        return proc.poll() is None
    return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None


def _pump(selector: selectors.BaseSelector, streams: dict, timeout: float) -> None:
    """Move whatever output is ready into the captures; forget streams that closed."""
    for key, _ in selector.select(timeout):
        try:
            data = os.read(key.fd, READ_CHUNK)
        except BlockingIOError:
            continue
        if data:
            streams[key.fileobj].add(data)
        else:
            selector.unregister(key.fileobj)


def _drain(streams: dict, limit_s: float = 2.0) -> None:
    """Read the rest of the output once the tree is dead (bounded: an escaped writer may linger)."""
    selector = selectors.DefaultSelector()
    for pipe in streams:
        selector.register(pipe, selectors.EVENT_READ)
    deadline = time.monotonic() + limit_s
    while selector.get_map() and time.monotonic() < deadline:
        _pump(selector, streams, 0.1)
    for pipe in streams:
        pipe.close()


def _kill_tree(proc: subprocess.Popen, seen: dict[int, Proc], cgroup: WorkerCgroup | None) -> None:
    """Kill the worker's process group and every process of its tree; wait until all are gone.

    Inside the sandbox the kernel also kills the whole pid namespace once
    bwrap dies, and the namespace's first process (which the watchdog has
    seen) only disappears once all the others have. Without the sandbox,
    processes that left the group are found in the pids cgroup, or else
    killed if the watchdog saw them once.
    """
    seen.update(process_tree(proc.pid))
    if cgroup is not None:
        seen.update(cgroup.members())
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for pid, info in seen.items():
        if alive(pid, info):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    proc.wait()
    deadline = time.monotonic() + KILL_WAIT_S
    while any(alive(pid, info) for pid, info in seen.items()) and time.monotonic() < deadline:
        time.sleep(0.02)


def _exit_reason(code: int, sandboxed: bool) -> str | None:
    """A sentence for an abnormal exit status; bwrap reports a child's signal N as 128 + N."""
    if sandboxed and code > 128 and code - 128 in signal.valid_signals():
        code = -(code - 128)
    if code < 0:
        sig = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        hint = " (this usually means it ran out of memory)" if sig == "SIGKILL" else ""
        return f"the submission's process was killed by {sig}{hint}"
    if code != 0:
        return f"the submission's process exited with status {code} before reporting"
    return None
