"""The parent's view of what a worker measured, and why a stage is missing.

Checks read measurements from here and never from the worker's files
directly, so every check explains a missing stage the same way.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .submission import Source

STAGE_NEEDS = {"load": (), "model": ("load",), "export": ("load", "model"),
               "trace": ("load", "model"),
               "probe": ("load", "model"),
               "functions": ("load",), "train": ("load", "model")}


@dataclass
class Measurements:
    source: Source
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    failure: str | None = None        # why the worker stopped early (timeout, killed, ...)
    predictions: Any = None           # numpy int64 vector, or a string saying what was wrong
    output_tail: str = ""
    self_reported: str | None = None  # why the model was measured in the submission's process

    def ok(self, stage: str) -> bool:
        return bool(self.stages.get(stage, {}).get("ok"))

    def data(self, stage: str) -> dict[str, Any]:
        return self.stages.get(stage) or {}

    def blocker(self, stage: str) -> str:
        """A student-facing sentence saying why `stage` has no measurements."""
        for needed in (*STAGE_NEEDS[stage], stage):
            info = self.stages.get(needed)
            if info is None:
                return self.failure or f"the grader did not get to the {needed} step"
            if not info.get("ok"):
                return explain_error(needed, info.get("error", {}), self.source)
        return ""


def explain_error(stage: str, err: dict[str, Any], source: Source) -> str:
    """One or two sentences a student can act on, with the line of their code that failed."""
    etype, message = err.get("type", "Error"), err.get("message", "")
    frames = err.get("frames") or []
    if etype == "SyntaxError" or etype == "IndentationError":
        where = source.where(err.get("line"))
        code = f": `{err['code']}`" if err.get("code") else ""
        return f"{where}{code}: {etype}: {message.split(' (')[0]}. Fix this line so the file can be imported."
    where = ""
    if frames:
        last = frames[-1]
        where = f" at {source.where(last['line'])} in {last['function']}()"
        if last.get("code"):
            where += f": `{last['code']}`"
    action = {"load": f"importing {source.origin.name} failed",
              "model": "Model() could not be created",
              "probe": "the forward pass failed",
              "train": "training stopped",
              "functions": "calling your functions failed"}.get(stage, stage)
    if etype == "NameError" and stage == "model" and "no class named" in message:
        return (f"{message} in {source.origin.name}; the assignment asks for "
                "`class Model(nn.Module)` with a constructor that takes no arguments")
    if etype == "NotImplementedError":
        return f"{action}: a TODO is still unfinished (NotImplementedError){where}"
    if etype == "SystemExit":
        return f"{action}: the code called sys.exit({message}){where}; remove it"
    if etype in ("TrainingStopped", "DeviceUnavailable"):
        return f"{action}: {message}"
    return f"{action}: {etype}: {message}{where}"
