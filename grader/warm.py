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
import contextlib
import json
import logging
import shutil
import tempfile
import threading
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
        self.lock = threading.RLock()      # `grade batch` may grade several submissions at once
        self.gathering: Gathering | None = None

    def new_job(self) -> Path:
        """A job folder where the fork server's children can be given it."""
        with self.lock:
            forks = self._forks()
        return forks.new_job() if forks else Path(tempfile.mkdtemp(prefix="grade-job-"))

    def run_code(self, job: Path, timeout_s: float) -> str | None:
        """The request in `job` (a submission's or the hidden cases') in a fresh child of the
        fork server; in a fresh worker where the fork server cannot take it."""
        request = json.loads((job / protocol.REQUEST).read_text(encoding="utf-8"))
        with self.lock:
            forks = None if request.get("data") else self._forks()   # its sandbox: no data
        if forks is not None and job.is_relative_to(forks.spool):
            try:
                return forks.run(job, timeout_s)
            except ServerLost as exc:
                with self.lock:
                    self._lose_forks(str(exc))
                _clear(job / protocol.OUT_DIR)
        return run_worker(job, timeout_s, self.opts.limits, self.opts.sandbox)

    def start_trainer(self, request: dict) -> None:
        """Start the trainer for this replay request now, so its start-up overlaps the
        fork server's and the submission's own work."""
        with self.lock:
            self._trainer(request)

    def replay(self, replay: Any, timeout_s: float, label: str) -> str | None:
        """`replay` (jobs._Replay) in the warm trainer, or again alone in a fresh worker;
        while a `Gathering` is open, with the others it gathers."""
        gathering = self.gathering   # one group in the trainer at a time
        if gathering is not None:
            return gathering.join(replay, timeout_s, label)
        return self.replay_group([(replay, label)], timeout_s)[0]

    def replay_group(self, replays: list[tuple[Any, str]], timeout_s: float
                     ) -> list[str | None]:
        """Several replays in the trainer at once (their models may train as one ensemble:
        grader/worker/serve.py); each one the trainer lost or asked to retry runs again
        alone in a fresh worker, so what happened to the group is nobody's grade."""
        with self.lock:
            trainer = self._trainer(replays[0][0].request)
        folders = trainer.new_jobs(len(replays))
        for (replay, _), folder in zip(replays, folders):
            replay.place(folder)
        outcomes = trainer.run(folders, timeout_s)
        if not trainer.alive:
            with self.lock:
                trainer.close()
                self.trainer = None
        failures = []
        for (replay, label), outcome in zip(replays, outcomes):
            if not outcome.retry:
                failures.append(outcome.failure)
                continue
            log.warning("grader: measuring %s again, alone in a fresh worker: the warm trainer "
                        "%s", label, f"stopped: {outcome.failure}" if outcome.failure else
                        "ran out of memory")
            replay.place(replay.source_job / "replay")
            failures.append(run_worker(replay.job, timeout_s, self.opts.limits,
                                       self.opts.sandbox))
        return failures

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


ENSEMBLE_WIDTH = 8    # submissions a batch slot grades side by side when their models may meet


def side_by_side(opts: Options) -> int:
    """How many submissions one batch slot grades at once: several only where their models
    would train as ensembles (on a GPU, or everywhere with `--ensembles always`), so that
    they meet in the trainer. Only speed depends on this, never a grade."""
    if opts.workers != "warm" or opts.ensembles == "never":
        return 1
    gpu = opts.device == "cuda" or (opts.device == "auto" and Path("/dev/nvidiactl").exists())
    return ENSEMBLE_WIDTH if opts.ensembles == "always" or gpu else 1


class Gathering:
    """The replays of submissions graded side by side, sent to the trainer as one group.

    Each submission (a thread of batch.grade_chunk) is graded inside `submission()`.
    Its replay waits in `join` until every other submission still being graded has
    asked for its replay too, or finished without one; then one of the waiting
    threads sends them all to the trainer, and each reads its own outcome. Who was
    in the group changes what runs at once, never a grade (grader/worker/members.py).
    """

    def __init__(self, services: Services):
        self.services = services
        self.cond = threading.Condition()
        self.open = 0          # submissions being graded that have not asked for a replay
        self.waiting: list[tuple[object, Any, str, float]] = []
        self.done: dict[object, str | None | BaseException] = {}
        self.busy = False
        self.local = threading.local()

    @contextlib.contextmanager
    def submission(self):
        with self.cond:
            self.open += 1
            self.local.joined = False
        try:
            yield
        finally:
            with self.cond:
                if not self.local.joined:
                    self.open -= 1
                    self.cond.notify_all()

    def join(self, replay: Any, timeout_s: float, label: str) -> str | None:
        token = object()
        with self.cond:
            self.open -= 1
            self.local.joined = True
            self.waiting.append((token, replay, label, timeout_s))
            self.cond.notify_all()
            while token not in self.done:
                if self.busy or self.open or not self.waiting:
                    self.cond.wait()
                    continue
                group, self.waiting, self.busy = self.waiting, [], True
                self.cond.release()
                try:
                    outcomes = self._send(group)
                finally:
                    self.cond.acquire()
                    self.busy = False
                self.done.update(zip([t for t, *_ in group], outcomes))
                self.cond.notify_all()
            outcome = self.done.pop(token)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _send(self, group: list) -> list[str | None | BaseException]:
        try:
            return self.services.replay_group([(r, label) for _, r, label, _ in group],
                                              max(t for *_, t in group))
        except Exception as exc:   # noqa: BLE001 - the grader's own failure: every member's
            return [exc] * len(group)


@contextlib.contextmanager
def gathering(opts: Options):
    """While open, the replays that train in this process meet in a `Gathering`."""
    services_ = services(opts)
    services_.gathering = Gathering(services_)
    try:
        yield services_.gathering
    finally:
        services_.gathering = None


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
