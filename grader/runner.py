"""Grade one submission: spec -> worker process -> measurements -> checks -> result.

This is where student code is started (in a child process, never here) and
where a dead, hung or silent worker is turned into a sentence for the student.
"""
from __future__ import annotations

import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__, checks, protocol, sandbox
from .data import PreparedData, default_data_dir, prepare
from .limits import Limits
from .measurements import Measurements
from .process import run_worker
from .results import CheckResult, GradeResult
from .spec import CheckSpec, Spec
from .submission import Source, locate

PROBE_TIMEOUT_S = 120.0


@dataclass
class Options:
    device: str = "auto"
    seed: int = 0
    data_dir: Path | None = None
    only: frozenset[str] | None = None
    timeout_s: float | None = None
    keep_job: bool = False
    limits: Limits = field(default_factory=Limits)
    sandbox: str = "auto"           # auto | on | off (grader/sandbox.py)


def selected_checks(spec: Spec, only: frozenset[str] | None) -> list[CheckSpec]:
    """Checks whose kind, or whose id, is in `only` (all of them without `only`)."""
    return [c for c in spec.checks if only is None or c.kind in only or c.id in only]


def grade(path: Path, spec: Spec, opts: Options, source: Source | None = None) -> GradeResult:
    """Grade the code at `path` (or an already extracted `source`, as notebooks hand in)."""
    start = time.perf_counter()
    chosen = selected_checks(spec, opts.only)
    source = source or locate(path, spec.name)
    data = _prepare_data(spec, opts) if any(c.kind == "accuracy" for c in chosen) else None
    stages = [s for s in protocol.STAGES
              if any(s in checks.STAGES_FOR_KIND[c.kind] for c in chosen)]
    m = measure(source, spec, stages, opts, data)
    results = [score_check(c, spec, m, data) for c in chosen]
    train = m.data("train")
    return GradeResult(
        assignment=spec.name, submission=str(path), checks=results,
        duration_s=time.perf_counter() - start, device=train.get("device", "cpu"),
        versions={"grader": __version__, "python": platform.python_version(),
                  "torch": m.data("load").get("torch", "")},
        notes=_notes(source, m) + _sandbox_notes(source, stages, opts),
        worker_output=m.output_tail,
        skipped_cells=[{"cell": s.cell, "line": s.line, "reason": s.reason}
                       for s in source.skipped])


def _prepare_data(spec: Spec, opts: Options) -> PreparedData:
    t = spec.training
    return prepare(t.dataset, opts.data_dir or default_data_dir(), spec.folder, t.max_train)


def score_check(check: CheckSpec, spec: Spec, m: Measurements,
                data: PreparedData | None) -> CheckResult:
    if check.kind == "accuracy":
        return checks.accuracy.run(check, spec, m, data)
    return getattr(checks, check.kind).run(check, spec, m)


def _notes(source: Source, m: Measurements) -> list[str]:
    notes = []
    if source.skipped:
        notes.append(f"{len(source.skipped)} notebook statement(s) were not run: the grader keeps "
                     "imports, definitions and constants only.")
    if m.failure:
        notes.append(m.failure)
    return notes


def _sandbox_notes(source: Source, stages: list[str], opts: Options) -> list[str]:
    """The loud warning when student code ran, but not inside the sandbox."""
    ran = bool(stages) and not source.problem
    warning = sandbox.plan(opts.sandbox).warning if ran else None
    return [warning] if warning else []


def measure(source: Source, spec: Spec, stages: list[str], opts: Options,
            data: PreparedData | None) -> Measurements:
    """Run the worker for `stages` and collect what it measured, whatever happened to it."""
    m = Measurements(source=source)
    if source.problem:
        m.failure = source.problem
        return m
    if not stages:
        return m
    job = Path(tempfile.mkdtemp(prefix="grade-job-"))
    try:
        entry = source.stage_into(job / "submission")
        request = {"job": str(job), "entry": str(entry.relative_to(job)), "stages": stages,
                   "seed": opts.seed, "device": opts.device, "input_shape": list(spec.input_shape),
                   "class_name": "Model"}
        if data is not None:
            request.update(data=data.worker_files, num_classes=data.num_classes,
                           training=_recipe(spec))
        if "functions" in stages:  # inputs go to the worker; expected values stay here
            request["functions"] = checks.functions.prepare_request(spec)
        protocol.write_json_atomic(job / protocol.REQUEST, request)
        timeout = opts.timeout_s or (spec.timeout_s if "train" in stages else PROBE_TIMEOUT_S)
        m.failure = run_worker(job, timeout, opts.limits, opts.sandbox)
        for stage in stages:
            info = protocol.read_stage(job, stage)
            if info is not None:
                m.stages[stage] = info
        if m.ok("train") and data is not None:
            m.predictions = protocol.read_predictions(job, data.n_test)
        m.output_tail = (protocol.read_tail(job / protocol.STDOUT)
                         + protocol.read_tail(job / protocol.STDERR)).strip()
        if m.failure is None and any(s not in m.stages for s in stages) and \
                all(m.ok(s) for s in m.stages):
            m.failure = _silent_exit_message(stages, m)
        return m
    finally:
        if not opts.keep_job:
            shutil.rmtree(job, ignore_errors=True)


def _recipe(spec: Spec) -> dict:
    t = spec.training
    return {"epochs": t.epochs, "batch_size": t.batch_size, "optimizer": t.optimizer,
            "scheduler": t.scheduler, "mean": list(t.mean), "std": list(t.std), "pad": t.pad,
            "hflip": t.hflip, "crop_padding": t.crop_padding}


def _silent_exit_message(stages: list[str], m: Measurements) -> str:
    missing = next(s for s in stages if s not in m.stages)
    return (f"the submission's process exited with status 0 during the {missing} step before "
            "reporting (does the code call sys.exit() or os._exit()?)")
