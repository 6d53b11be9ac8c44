"""The warm trainer: `python -m grader.worker.serve`, one replay worker for many submissions.

A replay worker never runs student code: it rebuilds an exported model and
measures, probes and trains it through the closed table of tensor operations
in grader/worker/ops.py. That is what makes it safe to reuse, so a batch
keeps one of these per slot (the parent side is grader/trainer.py), holding
torch, the grader and the dataset's pages, instead of starting a fresh replay
worker per submission.

Each line on stdin names job folders (request.json, artifact/, out/, exactly
as a fresh replay worker gets each): {"jobs": [...]}. The trainer runs each
request as a fresh worker would (grader/worker/__main__.py), except that the
models of one line that share a program and a recipe train as one ensemble
where the device calls for it (grader/worker/members.py says why a grade
cannot tell). It answers with one line per job on its reply channel:
{"job": ..., "retry": bool} (and {"ready": true} once, when it has imported
what every job needs). `retry` asks the parent to run the
job again alone in a fresh worker: it failed in a way a fresh process might
not (running out of memory). Before each job, the process state a job can
touch is put back as it was when the trainer started (`reset`); docs/SECURITY.md
lists what else could carry over and why it cannot.
"""
from __future__ import annotations

import ctypes
import gc
import json
import os
import sys
import warnings
from pathlib import Path

RETRY = frozenset({"OutOfMemoryError", "MemoryError"})


class Baseline:
    """The global state of torch the grader's code may change, as it was at start-up."""

    def __init__(self) -> None:
        import torch

        self.deterministic = torch.are_deterministic_algorithms_enabled()
        self.warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
        self.cudnn = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
        self.threads = torch.get_num_threads()
        self.dtype = torch.get_default_dtype()

    def reset(self) -> None:
        """What a fresh replay worker would start from (its stages seed the random state)."""
        import torch

        torch.use_deterministic_algorithms(self.deterministic, warn_only=self.warn_only)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = self.cudnn
        torch.set_num_threads(self.threads)
        torch.set_default_dtype(self.dtype)
        torch.set_grad_enabled(True)


def main() -> int:
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)   # anything printed by accident goes with the diagnostics, not the replies
    warnings.simplefilter("ignore")
    from . import replay, trace, train  # noqa: F401 - imported once, for every job

    baseline = Baseline()
    _reply(replies, {"ready": True})
    for line in sys.stdin:
        jobs = [Path(job) for job in json.loads(line)["jobs"]]
        for job, errors in run_jobs(jobs, baseline).items():
            _reply(replies, {"job": str(job), "retry": bool(errors & RETRY)})
        _release_memory()   # while the parent reads the results
    return 0


def run_jobs(jobs: list[Path], baseline: Baseline) -> dict[Path, set[str]]:
    """Each job's stages as a fresh worker would run them, except that the models they
    train are trained together where they can be (`ensembles`); each job's error types."""
    from .__main__ import finish_request, run_request

    states, errors = {}, {}
    for job in jobs:
        baseline.reset()
        request = json.loads((job / "request.json").read_text(encoding="utf-8"))
        errors[job], states[job] = run_request(job, request, hold_training=True)
    waiting = [job for job in jobs if "trainee" in states[job]]
    for group in ensembles(waiting, states):
        baseline.reset()
        trainees = [states[job]["trainee"] for job in group]
        outcomes = _train_group(trainees)
        for job, trainee, outcome in zip(group, trainees, outcomes):
            errors[job] = finish_request(job, trainee.request, states[job], outcome)
    return errors


def ensembles(jobs: list[Path], states: dict[Path, dict]) -> list[list[Path]]:
    """The jobs whose models may train as one: the same recipe, seed, data and device, and
    the same exported program (grader/worker/members.py); in the order they came."""
    from .members import signature

    groups: dict[tuple[str, str], list[Path]] = {}
    for job in jobs:
        trainee = states[job]["trainee"]
        request = trainee.request
        program = signature(job / request["artifact"], trainee.model) if trainee.ensembles \
            else str(job)
        groups.setdefault((trainee.recipe_key, program), []).append(job)
    return list(groups.values())


def _train_group(trainees: list) -> list:
    """Each trainee's outcome; an error that stops the whole group (out of memory, a recipe
    the data does not fit) is every member's."""
    from .train import train_together

    first = trainees[0]
    try:
        return train_together([t.model for t in trainees], first.request["training"], first.data,
                              first.request["seed"], first.request["num_classes"],
                              [t.progress for t in trainees], first.ensembles)
    except Exception as exc:  # noqa: BLE001 - reported per job, as a fresh worker would
        return [exc] * len(trainees)


def _reply(replies, message: dict) -> None:
    replies.write(json.dumps(message) + "\n")
    replies.flush()


def _release_memory() -> None:
    """Give back what the job's tensors held, so the next job starts from the same memory a
    fresh worker would (freed memory kept by the allocators would count against its limit)."""
    import torch

    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main())
