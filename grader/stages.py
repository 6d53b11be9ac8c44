"""Which worker runs which stage, what each stage needs, and which checks use it: one table.

Three kinds of worker process, each in a sandbox of its own (grader/sandbox.py):

- submission: imports the student's code, builds `Model()` and exports it
  (grader/worker/export.py); calls the student's functions on the public cases;
- replay: never sees the code; rebuilds the exported model (grader/worker/
  replay.py) and measures, probes and trains it. Only its numbers about the
  model earn points;
- hidden: imports the code again, alone with the hidden cases' inputs. What it
  prints is never shown, and its errors are reduced to their type, so the
  inputs cannot reach a report (grader/checks/functions.py).

A spec may allow self-reported grading (`self_reported: true`); only then does
the submission's worker measure a model that could not be exported, and every
report says so.
"""
from __future__ import annotations

from dataclasses import dataclass

SUBMISSION, REPLAY, HIDDEN = "submission", "replay", "hidden"


@dataclass(frozen=True)
class Stage:
    name: str
    worker: str
    needs: tuple[str, ...]
    doing: str                    # for messages: "the grader stopped while <doing>"


STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("load", SUBMISSION, (), "importing the code"),
    Stage("build", SUBMISSION, ("load",), "building Model()"),
    Stage("export", SUBMISSION, ("build",), "exporting the model's layers and tensors"),
    Stage("trace", SUBMISSION, ("export",), "capturing the forward pass"),
    Stage("functions", SUBMISSION, ("load",), "calling the functions"),
    Stage("hidden", HIDDEN, (), "calling the functions on the hidden cases"),
    Stage("model", REPLAY, ("export",), "measuring the model's layers"),
    Stage("probe", REPLAY, ("trace", "model"), "running the forward pass"),
    Stage("train", REPLAY, ("trace", "model"), "training"),
)}
ORDER = tuple(STAGES)
MODEL_STAGES = ("model", "probe", "train")   # measured by the replay worker
FOR_KIND = {"shapes": ("probe",), "params": ("model", "probe"),
            "functions": ("functions", "hidden"), "accuracy": ("train",)}


def needed(kinds: set[str]) -> list[str]:
    """Every stage the checks of these kinds use, with what those stages need, in order."""
    wanted: set[str] = set()
    todo = [s for kind in kinds for s in FOR_KIND[kind]]
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo.extend(STAGES[name].needs)
    return [name for name in ORDER if name in wanted]


def for_worker(stages: list[str], worker: str) -> list[str]:
    return [s for s in stages if STAGES[s].worker == worker]
