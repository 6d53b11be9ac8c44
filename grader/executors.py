"""Where per-submission jobs run: a local pool of warm grading processes, or Slurm.

Both executors run the same job, `batch.grade_one`, and yield its outcomes as
they finish. Each job starts a fresh worker process for the student's code
(runner -> process.run_worker); what is kept warm is the grading process
around it, so the grader's own imports are paid once per slot, not once per
student.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Callable, Iterator

from .batch import Outcome, grade_one, student_name


def _lost(job: tuple, why: str) -> Outcome:
    return Outcome(student_name(job[0]), "error", message=why)


class LocalPool:
    """`jobs` grading processes on this machine, spread over `gpus` (one GPU per slot).

    Several slots share a GPU (packing). Each slot sets CUDA_VISIBLE_DEVICES and a
    fair share of CPU threads, which the worker it starts inherits. If a slot
    process itself dies, the pool is rebuilt and the unfinished jobs run once more.
    """

    def __init__(self, jobs: int, gpus: list[str] | None = None):
        self.jobs = max(1, jobs)
        self.gpus = gpus or []

    def run(self, warm_up: Callable, warm_args: tuple, jobs: list[tuple]) -> Iterator[Outcome]:
        pending = list(jobs)
        for attempt in range(2):
            if not pending:
                return
            with self._pool(min(self.jobs, len(pending))) as pool:
                pool.submit(warm_up, *warm_args).result()
                futures = {pool.submit(_slot_job, *job): job for job in pending}
                pending = []
                for future in as_completed(futures):
                    outcome = _outcome(future, futures[future], retry=attempt == 0)
                    if outcome is None:
                        pending.append(futures[future])
                    else:
                        yield outcome

    def _pool(self, size: int) -> ProcessPoolExecutor:
        ctx = multiprocessing.get_context("spawn")  # no fork of a process holding threads
        gpu_queue = ctx.Queue()
        for slot in range(size):
            gpu_queue.put(self.gpus[slot % len(self.gpus)] if self.gpus else None)
        threads = max(1, (os.cpu_count() or 1) // size)
        return ProcessPoolExecutor(size, mp_context=ctx, initializer=_init_slot,
                                   initargs=(gpu_queue, threads, os.getpid()))


def _outcome(future: Future, job: tuple, retry: bool) -> Outcome | None:
    """The job's outcome; None when its grading process died and it should run again."""
    try:
        return future.result()
    except BrokenProcessPool:
        return None if retry else _lost(job, "the grading process died twice on this submission")


def _slot_job(*job) -> Outcome:
    """grade_one inside a pool process, which leaves as soon as the batch is gone.

    SystemExit here comes from the parent-death signal (see _exit_with_parent):
    unwinding has already killed the student's process; the pool would catch the
    exception and wait for work forever, so leave now.
    """
    try:
        return grade_one(*job)
    except SystemExit:
        os._exit(1)


def _init_slot(gpu_queue, threads: int, parent: int) -> None:
    """Runs once in each pool process: its GPU, its share of CPU threads, and its lifeline."""
    gpu = gpu_queue.get()
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))
    _exit_with_parent(parent)


def _exit_with_parent(parent: int) -> None:
    """When the batch is killed (even kill -9), stop too, and take the running worker along.

    Linux delivers SIGTERM to this process when its parent dies; turning it into
    SystemExit unwinds run_worker, whose cleanup kills the student's processes.
    Without this, pool processes would wait for work forever after kill -9.
    """
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux: orphans stay until their queue read fails
    if os.getppid() != parent:
        sys.exit(1)


class SubmititExecutor:
    """Each job as one task of a Slurm job array (submitit's local executor without Slurm).

    The job is the same picklable `grade_one`; the tasks read and write the same
    OUT folder, which must therefore be on a shared file system.
    """

    def __init__(self, folder: Path, jobs: int, timeout_min: float, use_gpu: bool,
                 partition: str | None = None):
        try:
            import submitit
        except ImportError as exc:
            from .errors import UsageError

            raise UsageError("--executor submitit needs submitit: "
                             "pip install 'cnn-grader[slurm]'") from exc
        self.executor = submitit.AutoExecutor(folder=folder)
        params = {"timeout_min": int(timeout_min) + 1, "slurm_array_parallelism": jobs,
                  "gpus_per_node": 1 if use_gpu else 0}
        if partition:
            params["slurm_partition"] = partition
        self.executor.update_parameters(**params)

    def run(self, warm_up: Callable, warm_args: tuple, jobs: list[tuple]) -> Iterator[Outcome]:
        import submitit

        self.executor.submit(warm_up, *warm_args).result()
        tasks = self.executor.map_array(grade_one, *zip(*jobs))
        by_id = {task.job_id: job for task, job in zip(tasks, jobs)}
        for task in submitit.helpers.as_completed(tasks, poll_frequency=2):
            try:
                yield task.result()
            except Exception as exc:  # noqa: BLE001 - a lost task is one student's error
                yield _lost(by_id[task.job_id], f"the cluster task failed: {exc}")


def make_executor(kind: str, jobs: int | None, gpus: str | None, out_dir: Path,
                  timeout_s: float, use_gpu: bool, partition: str | None):
    """The executor the command line asks for; --jobs defaults to one job per CPU core."""
    jobs = jobs or os.cpu_count() or 1
    if kind == "submitit":
        return SubmititExecutor(out_dir / ".submitit", jobs, timeout_s / 60, use_gpu, partition)
    return LocalPool(jobs, [g.strip() for g in gpus.split(",") if g.strip()] if gpus else None)
