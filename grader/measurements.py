"""The parent's view of what the workers measured, and why a stage is missing.

Checks read measurements from here (typed records from grader/records.py) and
never from the worker's files, so every check explains a missing stage the
same way.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .records import ErrorInfo, StageResult
from .stages import STAGES
from .submission import Source


@dataclass
class Measurements:
    source: Source
    stages: dict[str, StageResult] = field(default_factory=dict)
    failure: str | None = None        # why a worker stopped early (timeout, killed, ...)
    predictions: np.ndarray | str | None = None   # (rows, n_test) int64, or what was wrong
    output_tail: str = ""
    self_reported: dict[str, str] = field(default_factory=dict)  # stage -> why (spec opt-in)
    unmeasured: str | None = None     # why the model could not be measured apart from its code

    def ok(self, stage: str) -> bool:
        result = self.stages.get(stage)
        return result is not None and result.ok

    def record(self, stage: str) -> Any:
        """The stage's record: when it succeeded, or (probe) what it saw before it failed."""
        result = self.stages.get(stage)
        return None if result is None else result.record

    def blocker(self, stage: str) -> str:
        """A student-facing sentence saying why `stage` has no measurements."""
        for needed in (*_chain(stage), stage):
            info = self.stages.get(needed)
            if info is None:
                if needed in ("model", "probe", "train") and self.unmeasured:
                    return self.unmeasured
                return self.failure or (f"the grader did not get to {STAGES[needed].doing} "
                                        "(an earlier step stopped)")
            if not info.ok:
                return explain_error(needed, info.error or ErrorInfo("Error", ""), self.source)
        return ""


def _chain(stage: str) -> list[str]:
    """The stages `stage` needs, earliest first."""
    out: list[str] = []
    for need in STAGES[stage].needs:
        for s in (*_chain(need), need):
            if s not in out:
                out.append(s)
    return out


ACTIONS = {"load": "importing {file} failed", "build": "Model() could not be created",
           "model": "the model could not be measured", "probe": "the forward pass failed",
           "train": "training stopped", "functions": "calling your functions failed",
           "export": "the model could not be exported", "trace": "the forward could not be captured"}


def explain_error(stage: str, err: ErrorInfo, source: Source) -> str:
    """One or two sentences a student can act on, with the line of their code that failed."""
    etype, message = err.type, err.message
    if etype in ("SyntaxError", "IndentationError"):
        where = source.where(err.line)
        code = f": `{err.code}`" if err.code else ""
        return f"{where}{code}: {etype}: {message.split(' (')[0]}. Fix this line so the file can be imported."
    where = ""
    if err.frames:
        last = err.frames[-1]
        where = f" at {source.where(last.line)} in {last.function}()"
        if last.code:
            where += f": `{last.code}`"
    action = ACTIONS.get(stage, stage).format(file=source.origin.name)
    if etype == "NameError" and stage == "build" and "no class named" in message:
        return (f"{message} in {source.origin.name}; the assignment asks for "
                "`class Model(nn.Module)` with a constructor that takes no arguments")
    if etype == "NotImplementedError":
        return f"{action}: a TODO is still unfinished (NotImplementedError){where}"
    if etype == "SystemExit":
        return f"{action}: the code called sys.exit({message}){where}; remove it"
    if etype == "ArtifactError":
        return f"the model could not be measured apart from its code: {message}{where}"
    if etype in ("TrainingStopped", "DeviceUnavailable", "CorruptOutput"):
        return f"{action}: {message}"
    return f"{action}: {etype}: {message}{where}"
