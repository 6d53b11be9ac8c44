"""Grade a folder of submissions: one idempotent job per student, results on disk.

The unit of work is `grade_one(submission, spec_path, options, out_dir)`, a
top-level function with picklable arguments, so the very same job runs in the
local pool or as a Slurm array task (executors.py). It writes
OUT/<student>/result.json and report.md atomically and, last of all, key.json:
the hash of the student's code and of the settings (spec, options, the grader's
own code). A job whose key is already there does nothing, so a batch killed
with kill -9 resumes where it stopped and a second run skips everyone whose
code did not change.

This process only orchestrates and reads JSON: student code runs in the
per-submission worker that `runner.grade` starts, and torch is never imported
here (it would cost every pool process seconds of start-up).
"""
from __future__ import annotations

import hashlib
import json
import os
import traceback
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

RESULT, REPORT, KEY, ERROR = "result.json", "report.md", "key.json", "error.txt"
SUBMISSION_SUFFIXES = (".py", ".ipynb")
GRADEBOOK, SUMMARY = "gradebook.csv", "summary.html"


@dataclass(frozen=True)
class Outcome:
    """What one job did, small enough to send back from a pool process or a Slurm node."""

    student: str
    state: str                 # "graded", "skipped" (unchanged since the last run) or "error"
    score: float | None = None
    max_score: float | None = None
    message: str = ""          # for "error": why the grader could not grade this submission


# ---------------------------------------------------------------- what to grade

def student_name(path: Path) -> str:
    """A folder is named after the student; a file by its stem (alice.ipynb -> alice)."""
    return path.name if path.is_dir() else path.stem


def discover(folder: Path) -> list[Path]:
    """Every submission in `folder`: sub-folders and .py/.ipynb files, hidden ones left out."""
    from .errors import UsageError

    entries = sorted(p for p in folder.iterdir()
                     if not p.name.startswith((".", "__"))
                     and (p.is_dir() or p.suffix in SUBMISSION_SUFFIXES))
    seen: dict[str, Path] = {}
    for entry in entries:
        other = seen.setdefault(student_name(entry), entry)
        if other is not entry:
            raise UsageError(f"{other.name} and {entry.name} would both be graded as student "
                             f"{student_name(entry)!r}; rename one of them")
    return entries


# ---------------------------------------------------------------- keys: skip what is done

def code_hash(path: Path) -> str:
    """Hash of the submission's files (names and bytes); caches and hidden files do not count."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.is_file() and not _ignored(p.relative_to(path)))
    for f in files:
        h.update(f"{f.relative_to(path) if f != path else f.name}\0".encode())
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def _ignored(rel: Path) -> bool:
    return any(part.startswith(".") or part == "__pycache__" for part in rel.parts) \
        or rel.suffix == ".pyc"


@lru_cache(maxsize=1)
def grader_hash() -> str:
    """Hash of the grader's own source: a fixed grader bug must reach every student."""
    return code_hash(Path(__file__).resolve().parent)


def settings_hash(spec_path: Path, options) -> str:
    """Hash of what else decides a grade: the spec, every grading option, the grader's code.

    The data folder is left out: the same dataset mounted elsewhere (a cluster
    node) must not regrade everyone; so are the workers, which give the same grade.
    """
    chosen = {k: v for k, v in asdict(options).items()
              if k not in ("data_dir", "keep_job", "workers")}
    settings = [spec_path.read_text(encoding="utf-8"), chosen, grader_hash()]
    text = json.dumps(settings, sort_keys=True,
                      default=lambda v: sorted(v) if isinstance(v, (set, frozenset)) else str(v))
    return hashlib.sha256(text.encode()).hexdigest()


def job_key(submission: Path, spec_path: Path, options) -> dict[str, str]:
    return {"code": code_hash(submission), "settings": settings_hash(spec_path, options)}


def is_done(folder: Path, key: dict[str, str]) -> bool:
    """True when this exact code was graded with these exact settings and the result is there."""
    try:
        stored = json.loads((folder / KEY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return stored == key and (folder / RESULT).is_file()


# ---------------------------------------------------------------- the per-submission job

def grade_one(submission: Path, spec_path: Path, options, out_dir: Path) -> Outcome:
    """Grade one submission into out_dir/<student>/, unless it is already graded.

    Idempotent and safe to run twice at once: every file is written whole by a
    rename, and key.json goes last, so a result without its key is regraded.
    Anything the grader itself gets wrong lands in error.txt for this student
    only; the batch goes on.
    """
    student = student_name(submission)
    folder = out_dir / student
    key = job_key(submission, spec_path, options)
    if is_done(folder, key):
        return _outcome_from_disk(student, folder, "skipped")
    try:
        result = _grade(submission, spec_path, options)
    except Exception:  # noqa: BLE001 - one submission's grader failure must not stop the batch
        trace = traceback.format_exc()
        _write_error(folder, trace)
        return Outcome(student, "error", message=trace.strip().splitlines()[-1])
    _write_result(folder, result, key)
    return Outcome(student, "graded", result.score, result.max_score)


def grade_chunk(submissions: list[Path], spec_path: Path, options, out_dir: Path
                ) -> list[Outcome]:
    """grade_one for each of several submissions in one process (one cluster task), so that
    its warm workers serve them all."""
    return [grade_one(submission, spec_path, options, out_dir) for submission in submissions]


def outcome_on_disk(submission: Path, spec_path: Path, options, out_dir: Path, why: str
                    ) -> Outcome:
    """What a job whose process was lost left: its result if it got that far, else `why`."""
    folder = out_dir / student_name(submission)
    if is_done(folder, job_key(submission, spec_path, options)):
        return _outcome_from_disk(student_name(submission), folder, "graded")
    return Outcome(student_name(submission), "error", message=why)


def _grade(submission: Path, spec_path: Path, options):
    from .runner import grade
    from .spec import load_spec

    return grade(submission, load_spec(spec_path), options)


def _write_result(folder: Path, result, key: dict[str, str]) -> None:
    from .reporters import render

    (folder / ERROR).unlink(missing_ok=True)
    _write_atomic(folder / RESULT, render(result, "json"))
    _write_atomic(folder / REPORT, render(result, "markdown"))
    _write_atomic(folder / KEY, json.dumps(key))


def _write_error(folder: Path, trace: str) -> None:
    """error.txt in place of the result: an older result (of older code) must not look current."""
    for name in (KEY, RESULT, REPORT):
        (folder / name).unlink(missing_ok=True)
    _write_atomic(folder / ERROR, trace)


def _write_atomic(path: Path, text: str) -> None:
    """Write then rename: a reader (or a rerun after kill -9) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _outcome_from_disk(student: str, folder: Path, state: str) -> Outcome:
    result = load_result(folder)
    return Outcome(student, state, result["score"], result["max_score"])


def warm_up(spec_path: Path, options) -> None:
    """Prepare the dataset once before the jobs start, so they do not all convert it at once."""
    from .runner import prepare_data, selected_checks
    from .spec import load_spec

    spec = load_spec(spec_path)
    if any(c.kind == "accuracy" for c in selected_checks(spec, options.only)):
        prepare_data(spec, options)


# ---------------------------------------------------------------- the whole batch

@dataclass
class BatchSummary:
    outcomes: list[Outcome]
    gradebook: Path
    summary: Path

    def count(self, state: str) -> int:
        return sum(o.state == state for o in self.outcomes)


def pending_jobs(submissions: list[Path], spec_path: Path, options, out_dir: Path
                 ) -> tuple[list[tuple], list[Outcome]]:
    """Split into jobs still to run and outcomes of students already graded with this code.

    Checking here, before anything is dispatched, means a rerun of a finished
    batch starts no process at all (and sends nothing to Slurm).
    """
    jobs, done = [], []
    for sub in submissions:
        folder = out_dir / student_name(sub)
        if is_done(folder, job_key(sub, spec_path, options)):
            done.append(_outcome_from_disk(student_name(sub), folder, "skipped"))
        else:
            jobs.append((sub, spec_path, options, out_dir))
    return jobs, done


def run_batch(submissions: list[Path], spec_path: Path, options, out_dir: Path, executor,
              on_outcome=lambda outcome: None) -> BatchSummary:
    """Grade the submissions (see `discover`), then write the gradebook and the summary page."""
    jobs, outcomes = pending_jobs(submissions, spec_path, options, out_dir)
    for outcome in outcomes:
        on_outcome(outcome)
    if jobs:
        for outcome in executor.run(warm_up, (spec_path, options), jobs):
            outcomes.append(outcome)
            on_outcome(outcome)
    return BatchSummary(outcomes, *write_reports(submissions, out_dir))


def write_reports(submissions: list[Path], out_dir: Path) -> tuple[Path, Path]:
    """gradebook.csv and summary.html over every student of the folder, from the result files."""
    from .reporters import gradebook, summary

    rows = [(student_name(s), load_result(out_dir / student_name(s))) for s in submissions]
    _write_atomic(out_dir / GRADEBOOK, gradebook.render(rows))
    _write_atomic(out_dir / SUMMARY, summary.render(rows, errors=_errors(rows, out_dir)))
    return out_dir / GRADEBOOK, out_dir / SUMMARY


def load_result(folder: Path) -> dict | None:
    try:
        return json.loads((folder / RESULT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _errors(rows: Iterable[tuple[str, dict | None]], out_dir: Path) -> dict[str, str]:
    """Last line of error.txt for each student without a result."""
    out = {}
    for student, result in rows:
        if result is None:
            path = out_dir / student / ERROR
            text = path.read_text(encoding="utf-8").strip() if path.is_file() else ""
            out[student] = text.splitlines()[-1] if text else "not graded yet"
    return out


class ProgressBar:
    """A progress bar with ETA on stderr; one line per submission that could not be graded."""

    def __init__(self, total: int):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.console = Console(stderr=True)
        self.progress = Progress(TextColumn("grading"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                 TextColumn("{task.fields[last]}"), console=self.console)
        self.task = self.progress.add_task("grading", total=total, last="")

    def __enter__(self) -> "ProgressBar":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def __call__(self, outcome: Outcome) -> None:
        if outcome.state == "error":
            self.progress.console.print(f"[red]could not grade {outcome.student}:[/] "
                                        f"{outcome.message}", markup=True, highlight=False)
        score = "" if outcome.score is None else f" {outcome.score:g}/{outcome.max_score:g}"
        self.progress.update(self.task, advance=1, last=f"{outcome.student}{score}")

