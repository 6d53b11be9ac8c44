"""Grade a folder of submissions: one idempotent job per student, results on disk.

The unit of work is `grade_one(submission, spec_path, options, out_dir)`, a
top-level function with picklable arguments, so the very same job runs in the
local pool or as a Slurm array task (executors.py). While it grades, it keeps
OUT/.running/<student>.json up to date (since when, which epoch), which is how
the batch's display knows who is running wherever the job runs. It writes
OUT/<student>/result.json, report.md and report.html atomically and, last of all, key.json:
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
import shutil
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

RESULT, REPORT, REPORT_HTML, KEY, ERROR = ("result.json", "report.md", "report.html", "key.json",
                                           "error.txt")
SUBMISSION_SUFFIXES = (".py", ".ipynb")
GRADEBOOK, SUMMARY = "gradebook.csv", "summary.html"
RUNNING = ".running"           # OUT/.running/<student>.json: the jobs grading right now


@dataclass(frozen=True)
class Outcome:
    """What one job did, small enough to send back from a pool process or a Slurm node."""

    student: str
    state: str                 # "graded", "skipped" (unchanged since the last run) or "error"
    score: float | None = None
    max_score: float | None = None
    message: str = ""          # for "error": why the grader could not grade this submission
    seconds: float = 0.0       # how long grading took (0 when skipped)
    status: str = ""           # the result's status (results.Outcome), when graded


@dataclass(frozen=True)
class StudentRow:
    """One student of the class as the gradebook and the summary page show them."""

    student: str
    result: dict | None        # result.json (schema 1), None when there is none
    status: str                # results.Outcome, or "grader-error" / "not-run" without a result
    reason: str                # why, when status is not "graded"


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
    start = time.monotonic()
    try:
        with Running(out_dir, student) as running:
            result = _grade(submission, spec_path, options, running.epoch)
    except Exception:  # noqa: BLE001 - one submission's grader failure must not stop the batch
        trace = traceback.format_exc()
        _write_error(folder, trace)
        return Outcome(student, "error", message=trace.strip().splitlines()[-1],
                       seconds=time.monotonic() - start)
    _write_result(folder, result, key)
    return Outcome(student, "graded", result.score, result.max_score,
                   seconds=time.monotonic() - start, status=result.status)


def grade_chunk(submissions: list[Path], spec_path: Path, options, out_dir: Path
                ) -> list[Outcome]:
    """grade_one for each of several submissions in one process (a local slot or a cluster
    task), so that its warm workers serve them all. Where their models may train as
    ensembles, several are graded side by side, so that their models meet in the
    trainer (grader/warm.py, Gathering)."""
    from . import warm

    width = min(warm.side_by_side(options), len(submissions))
    if width < 2:
        return [grade_one(submission, spec_path, options, out_dir) for submission in submissions]
    pool = ThreadPoolExecutor(width)
    try:
        with warm.gathering(options) as meeting:
            def one(submission: Path) -> Outcome:
                with meeting.submission():
                    return grade_one(submission, spec_path, options, out_dir)
            return list(pool.map(one, submissions))
    finally:   # a slot told to stop (its batch is gone) must not wait for the others first
        pool.shutdown(wait=False, cancel_futures=True)


def outcome_on_disk(submission: Path, spec_path: Path, options, out_dir: Path, why: str
                    ) -> Outcome:
    """What a job whose process was lost left: its result if it got that far, else `why`."""
    folder = out_dir / student_name(submission)
    if is_done(folder, job_key(submission, spec_path, options)):
        return _outcome_from_disk(student_name(submission), folder, "graded")
    return Outcome(student_name(submission), "error", message=why)


def _grade(submission: Path, spec_path: Path, options, on_epoch=None):
    from .runner import grade
    from .spec import load_spec

    return grade(submission, load_spec(spec_path), options, on_epoch=on_epoch)


class Running:
    """OUT/.running/<student>.json while the student is graded: since when, and how far
    training got. Written whole by a rename; removed when grading ends, however it ends."""

    def __init__(self, out_dir: Path, student: str):
        self.path = out_dir / RUNNING / f"{student}.json"
        self.record = {"student": student, "started": time.time(), "epoch": None,
                       "epochs": None}

    def __enter__(self) -> "Running":
        _write_atomic(self.path, json.dumps(self.record))
        return self

    def __exit__(self, *exc) -> None:
        self.path.unlink(missing_ok=True)

    def epoch(self, epoch) -> None:
        """A progress sink (grader/progress.py): the epoch training has reached."""
        self.record.update(epoch=epoch.epoch, epochs=epoch.epochs)
        _write_atomic(self.path, json.dumps(self.record))


def running_now(out_dir: Path) -> list[dict]:
    """The students being graded right now, oldest first (files a job may be replacing
    or removing while this reads them are simply passed over)."""
    found = []
    for path in (out_dir / RUNNING).glob("*.json"):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and isinstance(record.get("started"), (int, float)):
            found.append(record)
    return sorted(found, key=lambda r: r["started"])


def _write_result(folder: Path, result, key: dict[str, str]) -> None:
    from .reporters import render

    (folder / ERROR).unlink(missing_ok=True)
    _write_atomic(folder / RESULT, render(result, "json"))
    _write_atomic(folder / REPORT, render(result, "markdown"))
    _write_atomic(folder / REPORT_HTML, render(result, "html"))
    _write_atomic(folder / KEY, json.dumps(key))


def _write_error(folder: Path, trace: str) -> None:
    """error.txt in place of the result: an older result (of older code) must not look current."""
    for name in (KEY, RESULT, REPORT, REPORT_HTML):
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
    return Outcome(student, state, result["score"], result["max_score"],
                   status=result.get("status", "graded"))


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
    shutil.rmtree(out_dir / RUNNING, ignore_errors=True)   # left by a batch that was killed
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

    rows = [student_row(student_name(s), out_dir / student_name(s)) for s in submissions]
    _write_atomic(out_dir / GRADEBOOK, gradebook.render(rows))
    _write_atomic(out_dir / SUMMARY, summary.render(rows))
    return out_dir / GRADEBOOK, out_dir / SUMMARY


def load_result(folder: Path) -> dict | None:
    try:
        return json.loads((folder / RESULT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def student_row(student: str, folder: Path) -> StudentRow:
    """A student's row from their folder: the result's status, or why there is no result
    (the grader failed: the last line of error.txt; or the student was not graded yet)."""
    result = load_result(folder)
    if result is not None:
        return StudentRow(student, result, result.get("status", "graded"), result.get("reason", ""))
    error = folder / ERROR
    text = error.read_text(encoding="utf-8").strip() if error.is_file() else ""
    if text:
        return StudentRow(student, None, "grader-error", text.splitlines()[-1])
    return StudentRow(student, None, "not-run", "not graded yet (the batch did not reach it)")
