"""Warm workers: what a grading process keeps running between submissions (`--workers warm`).

Grading one submission fresh starts two sandboxed Pythons that each import
torch, which costs more than grading does. A process that grades many
submissions (each slot of `grade batch`) keeps instead:

- a fork server (grader/forkserver.py) that forks one fresh child per
  submission for the student's code, each with namespaces, a cgroup and
  limits of its own (the code never runs where anything else ran);
- a warm trainer (grader/trainer.py) that measures and trains the exported
  models, which it can do for submission after submission because it runs
  no student code.

Both give the same records as fresh workers, and whatever they cannot do is
done by fresh workers instead (grader/process.run_worker): a job the warm
trainer lost or asked to retry runs again alone in a fresh replay worker; a
fork server that cannot start or breaks leaves its job, and every later one,
to fresh workers. So a grade never depends on which workers measured it
(DESIGN.md invariant 5).
"""
from __future__ import annotations

import atexit
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import protocol, sandbox
from .forkserver import ForkServer, ServerLost
from .process import run_worker
from .trainer import Trainer

if TYPE_CHECKING:
    from .runner import Options

log = logging.getLogger("grader")


class Services:
    """The warm workers of this process for one sandbox mode and one set of limits."""

    def __init__(self, opts: Options):
        self.opts = opts
        self.forks: ForkServer | None = None
        self.forks_problem: str | None = None
        self.spools: list[Path] = []       # of fork servers lost while their jobs went on
        self.trainer: Trainer | None = None
        self.trainer_key: tuple | None = None

    def new_job(self) -> Path:
        """A job folder where the fork server's children can be given it."""
        forks = self._forks()
        return forks.new_job() if forks else Path(tempfile.mkdtemp(prefix="grade-job-"))

    def run_code(self, job: Path, timeout_s: float) -> str | None:
        """The request in `job` (a submission's or the hidden cases') in a fresh child of the
        fork server; in a fresh worker where the fork server cannot take it."""
        request = json.loads((job / protocol.REQUEST).read_text(encoding="utf-8"))
        forks = None if request.get("data") else self._forks()   # its sandbox holds no data
        if forks is not None and job.is_relative_to(forks.spool):
            try:
                return forks.run(job, timeout_s)
            except ServerLost as exc:
                self._lose_forks(str(exc))
                _clear(job / protocol.OUT_DIR)
        return run_worker(job, timeout_s, self.opts.limits, self.opts.sandbox)

    def start_trainer(self, request: dict) -> None:
        """Start the trainer for this replay request now, so its start-up overlaps the
        fork server's and the submission's own work."""
        self._trainer(request)

    def replay(self, replay: Any, timeout_s: float, label: str) -> str | None:
        """`replay` (jobs._Replay) in the warm trainer, or again alone in a fresh worker."""
        trainer = self._trainer(replay.request)
        folder = trainer.new_job()
        replay.place(folder)
        outcome = trainer.run(folder, timeout_s)
        if not outcome.retry:
            return outcome.failure
        if not trainer.alive:
            trainer.close()
            self.trainer = None
        log.warning("grader: measuring %s again, alone in a fresh worker: the warm trainer %s",
                    label, f"stopped: {outcome.failure}" if outcome.failure else
                    "ran out of memory")
        replay.place(replay.source_job / "replay")
        return run_worker(replay.job, timeout_s, self.opts.limits, self.opts.sandbox)

    def _forks(self) -> ForkServer | None:
        if self.forks is not None and not self.forks.alive:
            self._lose_forks(f"the fork server stopped: {self.forks.log_tail()}")
        if self.forks is None and self.forks_problem is None:
            try:
                self.forks = ForkServer(self.opts.limits, self.opts.sandbox)
            except OSError as exc:
                self._lose_forks(str(exc))
        return self.forks

    def _lose_forks(self, why: str) -> None:
        """No more fork server in this process: fresh workers from now on, said once. Its
        spool stays until the end: the job that found it broken still lives there."""
        if self.forks is not None:
            self.forks.close(remove_spool=False)
            self.spools.append(self.forks.spool)
            self.forks = None
        if self.forks_problem is None:
            self.forks_problem = why
            log.warning("grader: submissions now run in fresh workers: %s", why)

    def _trainer(self, request: dict) -> Trainer:
        """The trainer for this request's device and data (a new one when they change)."""
        key = (request["device"], tuple(sorted((request.get("data") or {}).values())))
        if self.trainer is not None and (self.trainer_key != key or not self.trainer.alive):
            self.trainer.close()
            self.trainer = None
        if self.trainer is None:
            self.trainer = Trainer(self.opts.limits, self.opts.sandbox, key[0], key[1])
            self.trainer_key = key
        return self.trainer

    def close(self) -> None:
        if self.forks is not None:
            self.forks.close()
            self.forks = None
        if self.trainer is not None:
            self.trainer.close()
            self.trainer = None
        for spool in self.spools:
            shutil.rmtree(spool, ignore_errors=True)


def _clear(folder: Path) -> None:
    """Empty a result folder, so a rerun's files are the only ones read."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()


_SERVICES: dict[tuple, Services] = {}


def services(opts: Options) -> Services:
    """This process's warm workers for these options (started on first use)."""
    key = (opts.sandbox, opts.limits, sandbox.plan(opts.sandbox))
    if key not in _SERVICES:
        for other in _SERVICES.values():   # another configuration: one set at a time
            other.close()
        _SERVICES.clear()
        _SERVICES[key] = Services(opts)
    return _SERVICES[key]


@atexit.register
def close_all() -> None:
    for one in _SERVICES.values():
        one.close()
    _SERVICES.clear()
