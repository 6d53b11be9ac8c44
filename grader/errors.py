"""Exceptions that map onto the CLI's exit codes (see docs/DESIGN.md).

Student mistakes are never exceptions here: they become failed checks.
These are for the people running the grader: a bad command line or spec (2)
and a fault in the grader itself (3).
"""
from __future__ import annotations

from pathlib import Path


class UsageError(Exception):
    """The command line asks for something impossible. Exit code 2."""

    exit_code = 2


class SpecError(UsageError):
    """A spec.yaml is broken: names the file, the key, what is wrong and the fix."""

    def __init__(self, file: Path | str, key: str, problem: str, fix: str = ""):
        self.file, self.key, self.problem, self.fix = str(file), key, problem, fix
        message = f"{file}: {key}: {problem}"
        if fix:
            message += f"\n  fix: {fix}"
        super().__init__(message)


class DataUnavailable(UsageError):
    """The dataset a spec trains on is not on this machine; says where to put it."""


class GraderBug(Exception):
    """Something inside the grader broke (not the submission). Exit code 3."""

    exit_code = 3
