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
import queue
import selectors
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Callable

from . import protocol, sandbox
from .cgroups import WorkerCgroup
from .limits import (Limits, Proc, alive, folder_bytes, format_size, memory_message, prepare_child,
                     process_tree, scratch_files, violation)

ENV_PASSTHROUGH = ("PATH", "LANG", "LC_ALL", "LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES",
                   "NVIDIA_VISIBLE_DEVICES", "CUDA_HOME", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
TICK_S = 0.05          # how often the watchdog looks, unless looking costs more (Tree.supervise)
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
    watch = Watch((job / protocol.OUT_DIR,), limits, cgroup,
                  sandbox.scratch_folders(job) if plan.bwrap else ())
    try:
        stopped, code = _run(worker, job, timeout_s, watch, gate, worker_env(job, gpu))
        if stopped is None and cgroup is not None and cgroup.oom_killed():
            stopped = memory_message(limits)
    finally:
        if cgroup is not None:
            cgroup.remove()
    return stopped or exit_reason(code, sandboxed=plan.bwrap is not None)


class Watch:
    """What the watchdog looks at for one worker (or one job of a warm one): the limits, the
    result folder, the private scratch folders, and the kernel cgroup beside it."""

    def __init__(self, outs: tuple[Path, ...], limits: Limits, cgroup: WorkerCgroup | None,
                 scratch: tuple[str, ...]):
        self.outs, self.limits, self.cgroup, self.scratch = outs, limits, cgroup, scratch

    def violation(self, tree: dict[int, Proc]) -> str | None:
        """Why the worker must stop now, if it must; each result folder (one per job of a
        warm worker's group) is held to the output limit on its own."""
        memory_cgroup = self.cgroup is not None and self.cgroup.limits_memory
        out_bytes = max((folder_bytes(out) for out in self.outs), default=0)
        return violation(tree, out_bytes, self.limits, count_memfds=not memory_cgroup,
                         scratch=scratch_files(tree, self.scratch) if self.scratch else 0)


def _run(cmd: list[str], job: Path, timeout_s: float, watch: Watch, gate: Gate | None,
         env: dict[str, str]) -> tuple[str | None, int]:
    """Run `cmd` to its end or until it must stop; (why it was stopped, exit status).

    Its output is kept in the job folder (protocol.STDOUT and STDERR), cut to the limit.
    """
    limits = watch.limits
    stdin = subprocess.PIPE if gate else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, cwd=job, stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, start_new_session=True,
                            preexec_fn=functools.partial(prepare_child, limits, watch.cgroup))
    if gate:
        gate.attach(proc)
    captures = (Capture(limits.output_bytes // 2), Capture(limits.output_bytes // 2))
    pump = Pump({proc.stdout: captures[0], proc.stderr: captures[1]})
    tree = Tree(proc.pid, watch, running=lambda: running(proc))
    try:
        started = time.monotonic()
        deadline = (lambda: gate.deadline(timeout_s)) if gate else (lambda: started + timeout_s)
        stopped = tree.supervise(pump, timeout_s, deadline)
    finally:
        tree.kill(reap=proc.wait)
        pump.drain()
        for name, capture in zip((protocol.STDOUT, protocol.STDERR), captures):
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


class Replies:
    """Messages from a warm worker's channel: one JSON object per line, until it closes.

    The channel is the grader's own code talking, but from inside the sandbox,
    so it is read with bounds: a line over MAX_REPLY bytes, or one that is not
    a JSON object, counts as the channel closing.
    """

    MAX_REPLY = 1 << 16

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.closed = False
        self.partial = b""

    def add(self, data: bytes) -> None:
        if not data:
            self.closed = True
            return
        *lines, self.partial = (self.partial + data).split(b"\n")
        for line in lines:
            try:
                message = json.loads(line)
            except ValueError:
                message = None
            if not isinstance(message, dict):
                self.closed = True
            else:
                self.messages.append(message)
        if len(self.partial) > self.MAX_REPLY:
            self.closed = True

    def take(self, key: str) -> dict | None:
        for i, message in enumerate(self.messages):
            if key in message:
                return self.messages.pop(i)
        return None

    def has(self, key: str) -> bool:
        return any(key in m for m in self.messages)


class Pump:
    """Moves what arrives on pipes into their sinks (anything with `add(bytes)`), without
    ever blocking on one of them; a pipe that closes is forgotten."""

    def __init__(self, sinks: dict, keep: tuple = ()):
        self.sinks = dict(sinks)
        self.keep = keep            # pipes that outlive this pump (a service's channel)
        self.selector = selectors.DefaultSelector()
        for pipe in self.sinks:
            os.set_blocking(_fd(pipe), False)
            self.selector.register(pipe, selectors.EVENT_READ)

    def pump(self, timeout: float) -> None:
        if not self.selector.get_map():
            time.sleep(timeout)
            return
        for key, _ in self.selector.select(timeout):
            try:
                data = os.read(key.fd, READ_CHUNK)
            except BlockingIOError:
                continue
            except OSError:   # a socket reset by a dead peer reads as closed
                data = b""
            if data:
                self.sinks[key.fileobj].add(data)
            else:
                self.selector.unregister(key.fileobj)
                self.sinks[key.fileobj].add(b"")   # end of stream

    def drain(self, limit_s: float = 2.0) -> None:
        """Read the rest once the writers are dead (bounded: an escaped writer may linger),
        then close every pipe; a kept pipe is only let go, not waited for."""
        for pipe in self.keep:
            if self.sinks.pop(pipe, None) is not None and pipe in self._registered():
                self.selector.unregister(pipe)
        deadline = time.monotonic() + limit_s
        while self.selector.get_map() and time.monotonic() < deadline:
            self.pump(0.1)
        self.close()

    def _registered(self) -> list:
        return [key.fileobj for key in self.selector.get_map().values()]

    def close(self) -> None:
        for pipe in self.sinks:
            if pipe in self._registered():
                self.selector.unregister(pipe)
            if pipe in self.keep:
                continue
            if hasattr(pipe, "close"):
                pipe.close()
            else:
                os.close(pipe)
        self.sinks = {}


def _fd(pipe) -> int:
    return pipe if isinstance(pipe, int) else pipe.fileno()


class Tree:
    """A process tree held to its limits: its root, every process ever seen in it (so each
    can be killed even after it left the tree), and how to tell that the root still runs."""

    def __init__(self, root: int, watch: Watch, running: Callable[[], bool], owned: bool = True):
        self.root, self.watch, self.running = root, watch, running
        self.owned = owned          # this process is the root's parent and has not reaped it
        self.seen: dict[int, Proc] = {}

    def supervise(self, pump: Pump, timeout_s: float, deadline: Callable[[], float],
                  until: Callable[[], bool] = lambda: False) -> str | None:
        """Pump output until the root exits or `until()` holds; why it must stop, if it must.

        The watchdog scans /proc, which costs more on a busy machine, so it looks
        every TICK_S, or rarely enough to stay under WATCHDOG_SHARE of a core, but
        at least every MAX_TICK_S.
        """
        next_look = 0.0
        while self.running() and not until():
            pump.pump(TICK_S)
            now = time.monotonic()
            if now >= deadline():
                return (f"timed out after {timeout_s:g} s (the grader stopped it; look for an "
                        "endless loop, or training code that runs when the file is imported)")
            if now >= next_look:
                tree = process_tree(self.root)
                self.seen.update(tree)
                reason = self.watch.violation(tree)
                if reason:
                    return reason
                cost = time.monotonic() - now
                next_look = now + min(max(TICK_S, cost / WATCHDOG_SHARE), MAX_TICK_S)
        return None

    def kill(self, reap: Callable[[], object]) -> None:
        """Kill the root's process group and every process of its tree; wait until all are gone.

        Inside the sandbox the kernel also kills the whole pid namespace once its
        first process dies, and that process (which the watchdog has seen) only
        disappears once all the others have. Without the sandbox, processes that
        left the group are found in the pids cgroup, or else killed if the
        watchdog saw them once. `reap` collects the root's exit status.
        """
        cgroup = self.watch.cgroup
        self.seen.update(process_tree(self.root))
        if cgroup is not None:
            self.seen.update(cgroup.members())
        if self.owned or (self.root in self.seen and alive(self.root, self.seen[self.root])):
            try:   # (a root someone else reaps may be gone, and its number taken: not then)
                os.killpg(self.root, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for pid, info in self.seen.items():
            if alive(pid, info):
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        reap()
        deadline = time.monotonic() + KILL_WAIT_S
        while any(alive(pid, info) for pid, info in self.seen.items()) and \
                time.monotonic() < deadline:
            time.sleep(0.02)


def running(proc: subprocess.Popen) -> bool:
    """True until the process exits; it is not reaped, so its pid cannot be reused meanwhile
    (macOS before Python 3.13 has no waitid: there it is reaped, and /proc is missing anyway)."""
    if not hasattr(os, "waitid"):
        return proc.poll() is None
    return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None


def exit_reason(code: int, sandboxed: bool) -> str | None:
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


_SPAWNER: list[queue.Queue] = []


def spawn(start: Callable[[], subprocess.Popen]) -> subprocess.Popen:
    """Call `start()` on one thread that lives as long as this process: bwrap's
    --die-with-parent (like PR_SET_PDEATHSIG) follows the *thread* that started it, and a
    warm worker must outlive the grading thread that happened to need it first."""
    if not _SPAWNER:
        calls: queue.Queue = queue.Queue()

        def serve() -> None:
            while True:
                call, future = calls.get()
                try:
                    future.set_result(call())
                except BaseException as exc:  # noqa: B036 - handed back to the caller
                    future.set_exception(exc)

        threading.Thread(target=serve, name="grader-spawner", daemon=True).start()
        _SPAWNER.append(calls)
    future: Future = Future()
    _SPAWNER[0].put((start, future))
    return future.result()
