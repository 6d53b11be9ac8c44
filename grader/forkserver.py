"""The grading parent's side of the fork server: cheap submission workers for a batch.

A fresh submission worker spends most of its life importing torch. The fork
server (grader/worker/forkserver.py) imports it once, inside the sandbox, and
forks one child per submission; each child gets namespaces, mounts, a cgroup
and limits of its own and drops every privilege before the submission's code
is imported (grader/worker/isolate.py). From here a child is watched, limited
and killed exactly like a fresh worker (grader/process.py): same watchdog,
same output capture, same cgroups, same messages.

The fork server is used only where that isolation is real: inside bwrap with
the capabilities it needs, or without the sandbox where the user asked for
none (`--sandbox off`, or `auto` falling back, with its warning). Where it
cannot start, grader/warm.py falls back to fresh workers.
"""
from __future__ import annotations

import functools
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import protocol, sandbox
from .cgroups import WorkerCgroup
from .limits import Limits, memory_message, prepare_child, process_tree
from .process import (KILL_WAIT_S, Capture, Pump, Replies, Tree, Watch, exit_reason, spawn,
                      worker_env)
from .worker.isolate import CAPS

START_S = 300.0       # importing torch on a loaded machine
FORK_S = 30.0         # from a job sent to its child forked


class ServerLost(Exception):
    """The fork server itself stopped or broke its protocol; its job must run elsewhere."""


class ForkServer:
    """One warm fork server and its spool folder, where every job folder it serves lives."""

    def __init__(self, limits: Limits, sandbox_mode: str):
        plan = sandbox.plan(sandbox_mode)
        self.limits, self.isolated = limits, plan.bwrap is not None
        self.spool = Path(tempfile.mkdtemp(prefix="grade-forks-"))
        self.log = tempfile.TemporaryFile()
        self.lock = threading.Lock()
        self.replies = Replies()
        self.jobs = itertools.count(1)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        cmd = [sys.executable, "-m", "grader.worker.forkserver"]
        if plan.bwrap:
            cmd = sandbox.service_command(plan.bwrap, limits, "cpu",
                                          [sandbox.Mount(str(self.spool), writable=True)], cmd,
                                          caps=CAPS)
        self.proc = spawn(functools.partial(
            subprocess.Popen, cmd, stdin=theirs, stdout=subprocess.DEVNULL, stderr=self.log,
            env=worker_env(self.spool, gpu=False), start_new_session=True,
            preexec_fn=functools.partial(prepare_child, limits, None)))
        theirs.close()
        self.sock = ours
        self.level = self.server = -1    # where it sits in the pid namespaces, once ready

    def _ready(self) -> None:
        """Wait, once, for the server to have imported torch, and find it among its sandbox's
        processes (it started beside the trainer, so their start-ups overlap)."""
        if self.server != -1:
            return
        pump = Pump({self.sock: self.replies}, keep=(self.sock,))
        ready = self._await(pump, "ready", START_S)
        pump.close()
        if ready is None:
            raise ServerLost(f"the fork server did not start: {self.log_tail()}")
        for pid in sorted(process_tree(self.proc.pid)):
            ids = namespace_pids(pid)
            if ids and ids[-1] == ready["ready"] and (len(ids) > 1 or not self.isolated):
                self.level, self.server = len(ids) - 1, pid
                return
        raise ServerLost("the fork server cannot be found among its sandbox's processes")

    def new_job(self) -> Path:
        job = self.spool / f"job-{next(self.jobs)}"   # count's next() is atomic: threads share it
        job.mkdir()
        return job

    def run(self, job: Path, timeout_s: float) -> str | None:
        """Run the job's request (already in job/request.json) in a fresh child; why it
        stopped abnormally, or None. Raises ServerLost if the server itself failed."""
        with self.lock:
            self._ready()
            for folder in (protocol.OUT_DIR, "tmp"):
                (job / folder).mkdir(exist_ok=True)
            request = json.loads((job / protocol.REQUEST).read_text(encoding="utf-8"))
            cgroup = WorkerCgroup.create(self.limits)
            try:
                stopped, code = self._run(job, request, timeout_s, cgroup)
                if stopped is None and cgroup is not None and cgroup.oom_killed():
                    stopped = memory_message(self.limits)
            finally:
                if cgroup is not None:
                    cgroup.remove()
            return stopped or exit_reason(code, sandboxed=True)

    def _run(self, job: Path, request: dict, timeout_s: float, cgroup: WorkerCgroup | None
             ) -> tuple[str | None, int]:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        mounts = [[m.path, m.writable] for m in sandbox.job_mounts(job, request)]
        message = {"job": str(job), "spool": str(self.spool), "mounts": mounts,
                   "tmpfs_bytes": self.limits.file_bytes, "isolate": self.isolated,
                   "env": worker_env(job, gpu=False)}
        fds = [out_w, err_w, *(cgroup.entry_fds() if cgroup is not None else [])]
        try:
            socket.send_fds(self.sock, [json.dumps(message).encode()], fds)
        except OSError as exc:
            os.close(out_r)
            os.close(err_r)
            raise ServerLost(f"the fork server is gone ({exc})") from exc
        finally:
            for fd in fds:
                os.close(fd)
        half = self.limits.output_bytes // 2
        captures = (Capture(half), Capture(half))
        pump = Pump({out_r: captures[0], err_r: captures[1], self.sock: self.replies},
                    keep=(self.sock,))
        try:
            stopped = self._watch(job, pump, timeout_s, cgroup)
            exited = self._await(pump, "exited", KILL_WAIT_S)
        finally:
            pump.drain()
            for name, capture in zip((protocol.STDOUT, protocol.STDERR), captures):
                (job / name).write_bytes(capture.content())
        if exited is None:
            raise ServerLost(f"the fork server stopped during a job: {self.log_tail()}")
        if not exited.get("set_up") and stopped is None:
            raise ServerLost(f"the fork server could not isolate a child: {self.log_tail()}")
        return stopped, int(exited.get("code", 1))

    def _watch(self, job: Path, pump: Pump, timeout_s: float, cgroup: WorkerCgroup | None
               ) -> str | None:
        """Hold the child to its limits until it exits; kill its tree if it must stop."""
        started = time.monotonic()
        forked = self._await(pump, "forked", FORK_S)
        if forked is None:
            return None   # no child: the missing "exited" reports the server as lost
        root = self._host_pid(int(forked["forked"]))
        if root is None:
            return None   # gone already; its status follows
        watch = Watch((job / protocol.OUT_DIR,), self.limits, cgroup,
                      sandbox.scratch_folders(job) if self.isolated else ())
        tree = Tree(root, watch, running=lambda: not self.replies.closed and
                    not self.replies.has("exited"), owned=False)
        try:
            return tree.supervise(pump, timeout_s, lambda: started + timeout_s)
        finally:
            tree.kill(reap=lambda: self._await(pump, "exited", KILL_WAIT_S, keep=True))

    def _await(self, pump: Pump, key: str, limit_s: float, keep: bool = False) -> dict | None:
        """The next message carrying `key` (left in place if `keep`), pumping meanwhile."""
        deadline = time.monotonic() + limit_s
        while not self.replies.has(key) and not self.replies.closed and \
                time.monotonic() < deadline:
            pump.pump(0.05)
        if keep:
            return next((m for m in self.replies.messages if key in m), None)
        return self.replies.take(key)

    def _host_pid(self, pid: int) -> int | None:
        """The host's number for the server's child `pid` (which lives in the sandbox's pid
        namespace, one level down), found among the server's processes."""
        for host in process_tree(self.server):
            ids = namespace_pids(host)
            if host != self.server and len(ids) > self.level and ids[self.level] == pid:
                return host
        return None

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None and not self.replies.closed

    def log_tail(self, limit: int = 2000) -> str:
        self.log.seek(0)
        text = self.log.read().decode("utf-8", "replace").strip()
        return text[-limit:] or f"exit status {self.proc.poll()}"

    def close(self, remove_spool: bool = True) -> None:
        """Stop the server (it leaves when its socket closes) and remove the spool."""
        self.sock.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        if remove_spool:
            shutil.rmtree(self.spool, ignore_errors=True)


def namespace_pids(pid: int) -> list[int]:
    """The process's number in each pid namespace it is in, outermost first (NSpid)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"NSpid:"):
                    return [int(x) for x in line.split()[1:]]
    except OSError:
        pass
    return []
