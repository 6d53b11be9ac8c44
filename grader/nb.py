"""Grading from inside a notebook: nbgrader test cells and students' self-checks.

`nb.check("shapes", Model, assignment="cifar10_cnn")` grades the code the
kernel has run so far through the same path as `grade notebook.ipynb`: the
executed cells are filtered to their definitions, a worker process measures
them and the parent scores them. So a notebook, nbgrader and the CLI give one
score for one piece of code.

For nbgrader, the check prints its feedback, and training's progress, to
stdout (nbgrader scores any stderr output as zero) and returns the points
earned, which nbgrader reads as partial credit. What stops a check from running
at all (no dataset, no spec) is raised as `CannotGrade`, which a notebook shows
as its message alone, not as a traceback through the grader.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
import warnings
from pathlib import Path
from typing import Iterator

from .errors import UsageError
from .progress import Lines
from .runner import Options, grade
from .spec import Spec, find_spec, load_spec
from .submission import Source, from_cells, from_notebook


class CannotGrade(Exception):
    """The check cannot run here; IPython shows `_render_traceback_`'s lines in place of
    the traceback, so the cell says what to do in a few lines."""

    def _render_traceback_(self) -> list[str]:
        return [f"CannotGrade: {self}"]


@contextlib.contextmanager
def _grading() -> Iterator[None]:
    """Grader warnings and stderr kept out of the cell (nbgrader scores stderr as zero);
    a usage problem (no data, no spec) raised short."""
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    except UsageError as exc:
        raise CannotGrade(str(exc)) from None


def _kernel_cells() -> list[str] | None:
    """The code cells this kernel has executed, oldest first, or None outside IPython."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    if shell is None:
        return None
    history = shell.user_ns.get("In") or []
    return [cell for cell in history[1:] if cell]


def _source(spec: Spec) -> Source:
    cells = _kernel_cells()
    if cells is not None:
        return from_cells(Path.cwd() / f"{spec.name}.ipynb", cells)
    notebook = Path.cwd() / f"{spec.name}.ipynb"
    return from_notebook(notebook)


def _spec(assignment: str | None) -> Spec:
    from .cli import course_roots

    with _grading():
        return load_spec(find_spec(Path.cwd(), assignment, course_roots()))


def check(name: str, model: type | None = None, assignment: str | None = None,
          seed: int = 0) -> float:
    """Run one check (by id, or every check of a kind) on the kernel's code; prints
    feedback and returns the points earned.

    `model` is accepted so test cells read naturally (`check("shapes", Model)`);
    the grader measures the class the kernel defined, in a fresh worker process.
    """
    del model  # measured from the executed cells, never from the live object
    spec = _spec(assignment)
    opts = Options(only=frozenset({name}), seed=seed, device=os.environ.get("GRADER_DEVICE", "auto"))
    with _grading():
        result = grade(Path.cwd(), spec, opts, source=_source(spec),
                       on_epoch=Lines(spec.name, sys.stdout))
    for c in (c for c in result.checks if c.status != "skipped"):
        print(f"{c.id}: {c.score:g} / {c.max_score:g}  ({c.status})")
        print(c.feedback)
    return float(result.score)


def self_check(kinds: str | None = None, assignment: str | None = None):
    """`from grader import check; check()`: the public checks as a table in the notebook.

    Same checks as `grade check` (a smoke run instead of full training); `kinds`
    narrows them, e.g. `check("shapes")` or `check("shapes,params")`.
    """
    from IPython.display import HTML

    from .reporters.student import render_html
    from .selfcheck import self_check as run_self_check

    spec = _spec(assignment)
    only = frozenset(k.strip() for k in kinds.split(",")) if kinds else None
    with _grading():
        result = run_self_check(Path.cwd(), spec, Options(only=only), full=False,
                                source=_source(spec), on_epoch=Lines(spec.name, sys.stdout))
    return HTML(render_html(result))
