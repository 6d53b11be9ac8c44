"""Where per-submission jobs run: a local pool of warm grading processes, or Slurm.

Both executors run the same job, `batch.grade_chunk` (`grade_one` for each of a
few submissions), and yield its outcomes as they finish. Each submission gets a
fresh worker process for its code (runner -> process.run_worker, or a child of
the fork server); what is kept warm is the grading process around it, so the
grader's own imports are paid once per slot, not once per student.
"""
from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Callable, Iterator

from .batch import Outcome, grade_chunk, outcome_on_disk, student_name


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
        """Each job's outcome as it is done. A slot takes one job at a time, or a chunk it
        grades side by side where models may train as ensembles (warm.side_by_side: the
        jobs of a batch share their options)."""
        pending = _chunks(jobs, self.jobs)
        for attempt in range(2):
            if not pending:
                return
            with self._pool(min(self.jobs, len(pending))) as pool:
                pool.submit(warm_up, *warm_args).result()
                futures = {pool.submit(_slot_chunk, chunk): chunk for chunk in pending}
                pending = []
                for future in as_completed(futures):
                    outcomes = _outcomes(future, futures[future], retry=attempt == 0)
                    if outcomes is None:
                        pending.append(futures[future])
                    else:
                        yield from outcomes

    def _pool(self, size: int) -> ProcessPoolExecutor:
        ctx = multiprocessing.get_context("spawn")  # no fork of a process holding threads
        gpu_queue = ctx.Queue()
        for slot in range(size):
            gpu_queue.put(self.gpus[slot % len(self.gpus)] if self.gpus else None)
        threads = max(1, (os.cpu_count() or 1) // size)
        return ProcessPoolExecutor(size, mp_context=ctx, initializer=_init_slot,
                                   initargs=(gpu_queue, threads, os.getpid()))


def _chunks(jobs: list[tuple], slots: int) -> list[list[tuple]]:
    """The jobs in chunks of what one slot grades side by side (one job each, mostly)."""
    from .warm import side_by_side

    if not jobs:
        return []
    size = max(1, min(side_by_side(jobs[0][2]), -(-len(jobs) // slots)))
    return [jobs[i:i + size] for i in range(0, len(jobs), size)]


def _outcomes(future: Future, chunk: list[tuple], retry: bool) -> list[Outcome] | None:
    """The chunk's outcomes; None when its grading process died and it should run again
    (its students graded by then are skipped by their keys)."""
    try:
        return future.result()
    except BrokenProcessPool:
        return None if retry else [_lost(job, "the grading process died twice on this "
                                              "submission") for job in chunk]


def _slot_chunk(chunk: list[tuple]) -> list[Outcome]:
    """grade_chunk inside a pool process, which leaves as soon as the batch is gone.

    SystemExit here comes from the parent-death signal (see _exit_with_parent):
    unwinding has already killed the student's process; the pool would catch the
    exception and wait for work forever, so leave now.
    """
    spec_path, options, out_dir = chunk[0][1:]
    try:
        return grade_chunk([job[0] for job in chunk], spec_path, options, out_dir)
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
    """Chunks of jobs as the tasks of one Slurm job array (submitit's local executor without
    Slurm).

    Each task runs `batch.grade_chunk` over a few submissions, so its warm workers serve
    them all; the tasks read and write the same OUT folder, which must therefore be on a
    shared file system. Tasks are followed by their result files and `squeue`, not by
    submitit's `sacct` polling: a cluster without an accounting database works too, and a
    task that leaves the queue without a result (cancelled, timed out, its node lost) is
    reported instead of waited for. docs/SLURM.md has the settings a course needs.
    """

    CHUNKS_PER_SLOT = 4     # tasks per array slot: small enough to spread, big enough to warm
    POLL_S = 2.0
    GRACE_S = 10.0

    def __init__(self, folder: Path, jobs: int, timeout_min: float, use_gpu: bool,
                 partition: str | None = None, name: str = "grade"):
        try:
            import submitit
        except ImportError as exc:
            from .errors import UsageError

            raise UsageError("--executor submitit needs submitit: "
                             "pip install 'cnn-grader[slurm]'") from exc
        self.executor = submitit.AutoExecutor(folder=folder)
        self.jobs, self.timeout_min = jobs, timeout_min
        self.params = {"slurm_array_parallelism": jobs, "name": name}
        if use_gpu:   # (asking for 0 GPUs is an error on a cluster without any)
            self.params["gpus_per_node"] = 1
        if partition:
            self.params["slurm_partition"] = partition

    def run(self, warm_up: Callable, warm_args: tuple, jobs: list[tuple]) -> Iterator[Outcome]:
        size = -(-len(jobs) // (self.jobs * self.CHUNKS_PER_SLOT))
        chunks = [jobs[i:i + size] for i in range(0, len(jobs), size)]
        # A task may use every one of its submissions' time limits, plus its start-up.
        self.executor.update_parameters(timeout_min=int(self.timeout_min * size) + 5,
                                        **self.params)
        for _, failure in self._follow([self.executor.submit(warm_up, *warm_args)]):
            if failure:
                raise RuntimeError(f"preparing the dataset on the cluster failed: {failure}")
        spec_path, options, out_dir = jobs[0][1:]
        tasks = self.executor.map_array(grade_chunk, [[job[0] for job in c] for c in chunks],
                                        *([arg] * len(chunks) for arg in (spec_path, options,
                                                                         out_dir)))
        by_id = {task.job_id: chunk for task, chunk in zip(tasks, chunks)}
        for task, outcomes in self._follow(tasks):
            if isinstance(outcomes, list):
                yield from outcomes
                continue
            for job in by_id[task.job_id]:
                yield outcome_on_disk(*job, f"the cluster task failed: {outcomes}; run the "
                                            "batch again to grade the rest")

    def _follow(self, tasks: list) -> Iterator[tuple[object, object]]:
        """Each task once it is over: (task, its result), or (task, why there is none)."""
        pending = {task.job_id: task for task in tasks}
        gone_since: dict[str, float] = {}
        while pending:
            queue = _queue({job_id.split("_")[0] for job_id in pending})
            for job_id, task in list(pending.items()):
                over = task.paths.result_pickle.exists() or (
                    task.done() if queue is None else self._left(job_id, queue, gone_since))
                if over:
                    del pending[job_id]
                    yield task, _result(task)
            if pending:
                time.sleep(self.POLL_S)

    def _left(self, job_id: str, queue: set[str], gone_since: dict[str, float]) -> bool:
        """Out of the queue for GRACE_S (a result file may take that long to show on a
        shared file system)."""
        if job_id in queue:
            gone_since.pop(job_id, None)
            return False
        return time.monotonic() - gone_since.setdefault(job_id, time.monotonic()) > self.GRACE_S


def _result(task) -> object:
    """The task's return value, or a sentence saying why it has none."""
    if not task.paths.result_pickle.exists():
        return "it left the queue without a result (cancelled, out of time, or its node failed)"
    try:
        return task.result()
    except Exception as exc:  # noqa: BLE001 - a failed task is its students' error
        return str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else type(exc).__name__


class _Everything(set):
    """squeue could not answer: every task counts as still queued."""

    def __contains__(self, item: object) -> bool:
        return True


def _queue(array_ids: set[str]) -> set[str] | None:
    """Ids (`123_4`) of these arrays' tasks still pending or running; None without Slurm."""
    if not shutil.which("squeue"):
        return None
    try:
        out = subprocess.run(["squeue", "-h", "-r", "-o", "%i", "-j", ",".join(sorted(array_ids))],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return _Everything()
    if out.returncode != 0:   # all of them finished and forgotten, or the controller is down
        return set() if "Invalid job id" in out.stderr else _Everything()
    return set(out.stdout.split())


def make_executor(kind: str, jobs: int | None, gpus: str | None, out_dir: Path,
                  timeout_s: float, use_gpu: bool, partition: str | None):
    """The executor the command line asks for; --jobs defaults to one job per CPU core."""
    jobs = jobs or os.cpu_count() or 1
    if kind == "submitit":
        return SubmititExecutor(out_dir / ".submitit", jobs, timeout_s / 60, use_gpu, partition,
                                name=f"grade-{out_dir.name}")
    return LocalPool(jobs, [g.strip() for g in gpus.split(",") if g.strip()] if gpus else None)
