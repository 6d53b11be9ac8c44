"""The grading parent's side of the warm trainer: one replay worker for many submissions.

The trainer (grader/worker/serve.py) runs no student code, only exported
tensor programs through grader/worker/ops.py, so one process can measure and
train submission after submission. It is sandboxed and limited like a fresh
replay worker (the same bwrap view: the system, the grader, its spool folder
and the prepared data files; the same cgroup limits and watchdog), and each
job keeps its own time limit and result folder.

What reuse must never do is change a result. So a job that ends the trainer
(it hangs, runs out of memory, crashes) or that fails in a way a fresh
process might not is reported back as `retry`: grader/jobs.py then runs that
job again alone in a fresh replay worker, and only that run counts; the next
job gets a new trainer. Nothing one job did reaches another's result.
"""
from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import protocol, sandbox
from .cgroups import WorkerCgroup
from .limits import Limits, memory_message, prepare_child
from .process import (Capture, Pump, Replies, Tree, Watch, exit_reason, running, spawn,
                      worker_env)

START_S = 300.0       # importing torch (and CUDA) on a loaded machine


@dataclass(frozen=True)
class Outcome:
    failure: str | None      # why the job stopped abnormally, in run_worker's words
    retry: bool = False      # run it again alone in a fresh worker; this attempt does not count


class Trainer:
    """One warm trainer for one device and one dataset, and the spool its jobs live in."""

    def __init__(self, limits: Limits, sandbox_mode: str, device: str,
                 data_files: tuple[str, ...]):
        plan = sandbox.plan(sandbox_mode)
        self.limits = limits
        self.spool = Path(tempfile.mkdtemp(prefix="grade-trainer-"))
        self.jobs = 0
        self.current: list[Path] = []
        cmd = [sys.executable, "-m", "grader.worker.serve"]
        if plan.bwrap:
            mounts = [sandbox.Mount(str(self.spool), writable=True),
                      *(sandbox.Mount(path) for path in data_files)]
            cmd = sandbox.service_command(plan.bwrap, limits, device, mounts, cmd)
        self.cgroup = WorkerCgroup.create(limits)
        self.proc = spawn(functools.partial(
            subprocess.Popen, cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=worker_env(self.spool, gpu=device != "cpu"),
            start_new_session=True, preexec_fn=functools.partial(prepare_child, limits,
                                                                 self.cgroup)))
        self.replies = Replies()
        self.output = Capture(limits.output_bytes // 2)
        self.pump = Pump({self.proc.stdout: self.replies, self.proc.stderr: self.output})
        self.watch = Watch((), limits, self.cgroup,
                           ("/tmp", "/dev/shm") if plan.bwrap else ())
        self.tree = Tree(self.proc.pid, self.watch, running=lambda: running(self.proc))
        self.ready = False
        self.lost = False

    def new_jobs(self, count: int) -> list[Path]:
        """Folders for the next group of jobs; the last group's go (their results were read
        by now)."""
        for job in self.current:
            shutil.rmtree(job, ignore_errors=True)
        self.current = []
        for _ in range(count):
            self.jobs += 1
            self.current.append(self.spool / f"job-{self.jobs}")
            self.current[-1].mkdir()
        return self.current

    def run(self, jobs: list[Path], timeout_s: float) -> list[Outcome]:
        """Measure the jobs' requests (already in each job/request.json) in this trainer, the
        models of those that train together where they can (grader/worker/serve.py);
        `timeout_s` is each job's, so the group has their sum."""
        for job in jobs:
            for folder in (protocol.OUT_DIR, "tmp"):
                (job / folder).mkdir(exist_ok=True)
        self.output = self.pump.sinks[self.proc.stderr] = Capture(self.limits.output_bytes // 2)
        try:
            if not self._start():
                return self._lose(jobs, "the grader's trainer did not start")
            self.watch.outs = tuple(job / protocol.OUT_DIR for job in jobs)
            self.proc.stdin.write(json.dumps({"jobs": [str(job) for job in jobs]}).encode() +
                                  b"\n")
            self.proc.stdin.flush()
            limit = timeout_s * len(jobs)
            started = time.monotonic()
            stopped = self.tree.supervise(
                self.pump, limit, lambda: started + limit,
                until=lambda: self._answered() >= len(jobs) or self.replies.closed)
            replies = {}
            while (reply := self.replies.take("job")) is not None:
                replies[reply.get("job")] = reply
            if stopped or set(replies) != {str(job) for job in jobs}:
                return self._lose(jobs, stopped)
            return [Outcome(None, retry=bool(replies[str(job)].get("retry"))) for job in jobs]
        except OSError as exc:    # its stdin closed: it is gone
            return self._lose(jobs, f"the grader's trainer stopped ({exc})")
        finally:
            for job in jobs:      # one trainer's diagnostics: every job of the group reads them
                (job / protocol.STDERR).write_bytes(self.output.content())
                (job / protocol.STDOUT).write_bytes(b"")

    def _answered(self) -> int:
        return sum("job" in message for message in self.replies.messages)

    def _start(self) -> bool:
        """Wait, once, until the trainer has imported what it needs."""
        if not self.ready:
            deadline = time.monotonic() + START_S
            self.tree.supervise(self.pump, START_S, lambda: deadline,
                                until=lambda: self.replies.has("ready") or self.replies.closed)
            self.ready = self.replies.take("ready") is not None
        return self.ready

    def _lose(self, jobs: list[Path], stopped: str | None) -> list[Outcome]:
        """The trainer cannot go on: stop it; each job is retried alone in a fresh worker."""
        self._stop()
        if stopped is None and self.cgroup is not None and self.cgroup.oom_killed():
            stopped = memory_message(self.limits)
        why = stopped or exit_reason(self.proc.returncode, sandboxed=True) or \
            "the grader's trainer stopped"
        return [Outcome(why, retry=True) for _ in jobs]

    @property
    def alive(self) -> bool:
        return not self.lost

    def _stop(self) -> None:
        """Stop the trainer and everything it started (it leaves when its stdin closes)."""
        if self.lost:
            return
        self.lost = True
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.tree.kill(reap=self.proc.wait)
        self.pump.close()

    def close(self) -> None:
        """Stop the trainer; remove its cgroup and its spool."""
        self._stop()
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None
        shutil.rmtree(self.spool, ignore_errors=True)
