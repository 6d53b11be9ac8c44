"""Grade one submission: spec -> worker process -> measurements -> checks -> result.

This is where student code is started (in a child process, never here) and
where a dead, hung or silent worker is turned into a sentence for the student.
"""
from __future__ import annotations

import platform
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__, checks, protocol, sandbox
from .data import PreparedData, default_data_dir, prepare
from .limits import Limits
from .measurements import Measurements
from .process import Gate, run_worker
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
    data = prepare_data(spec, opts) if any(c.kind == "accuracy" for c in chosen) else None
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


def prepare_data(spec: Spec, opts: Options) -> PreparedData:
    """The spec's dataset as cached arrays (converted once; later calls only look it up)."""
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
    if m.self_reported is not None:
        notes.append(f"The model could not be exported to be measured apart from its code "
                     f"({m.self_reported}), so it was measured inside the submission's own "
                     "process: its shapes, parameters and accuracy are self-reported.")
    return notes


def _sandbox_notes(source: Source, stages: list[str], opts: Options) -> list[str]:
    """The loud warning when student code ran, but not inside the sandbox."""
    ran = bool(stages) and not source.problem
    warning = sandbox.plan(opts.sandbox).warning if ran else None
    return [warning] if warning else []


def measure(source: Source, spec: Spec, stages: list[str], opts: Options,
            data: PreparedData | None) -> Measurements:
    """Run the workers for `stages` and collect what they measured, whatever happened to them.

    The submission's worker loads the code and exports the model; a second worker, which
    never sees the code, measures the exported model (grader/worker/artifact.py). It is
    started at the same time and waits at a gate, so its start-up costs no extra time. Only
    if the export fails is the model measured in the submission's own worker.
    """
    m = Measurements(source=source)
    if source.problem:
        m.failure = source.problem
        return m
    if not stages:
        return m
    job = Path(tempfile.mkdtemp(prefix="grade-job-"))
    timeout = opts.timeout_s or (spec.timeout_s if "train" in stages else PROBE_TIMEOUT_S)
    try:
        request = _request(source, spec, stages, opts, data, job)
        if "export" not in request["stages"]:
            _collect(job, request["stages"], _run(job, request, timeout, opts), m, data)
            return m
        with ThreadPoolExecutor(max_workers=1) as pool:
            replay = _Replay(job, request, stages)
            pending = pool.submit(replay.run, timeout, opts)
            try:
                _collect(job, request["stages"], _run(job, request, timeout, opts), m, data)
            finally:
                replay.decide(m)
            replay.collect(pending.result(), m, data)
        return m
    finally:
        if not opts.keep_job:
            shutil.rmtree(job, ignore_errors=True)


def _request(source: Source, spec: Spec, stages: list[str], opts: Options,
             data: PreparedData | None, job: Path) -> dict:
    """What the submission's worker is asked to do; it exports the model right after building
    it (and measures it itself only if that fails)."""
    entry = source.stage_into(job / "submission")
    request = {"job": str(job), "entry": str(entry.relative_to(job)),
               "stages": [s for s in protocol.STAGES
                          if s in stages or (s in ("export", "trace") and "model" in stages)],
               "seed": opts.seed, "device": opts.device, "input_shape": list(spec.input_shape),
               "class_name": "Model"}
    if data is not None:
        request.update(data=data.worker_files, num_classes=data.num_classes,
                       training=_recipe(spec))
    if "functions" in stages:  # inputs go to the worker; expected values stay here
        request["functions"] = checks.functions.prepare_request(spec)
    return request


class _Replay:
    """The worker that measures the exported model, in job/replay/ (it sees nothing else)."""

    def __init__(self, job: Path, request: dict, stages: list[str]):
        self.job = job / "replay"
        (self.job / protocol.ARTIFACT_DIR).mkdir(parents=True)
        self.request = {**request, "job": str(self.job), "gated": True,
                        "entry": f"{protocol.ARTIFACT_DIR}/{protocol.ARTIFACT_MANIFEST}",
                        "artifact": protocol.ARTIFACT_DIR, "stages": []}
        self.wanted = [s for s in stages if s in protocol.REPLAYED_STAGES]
        self.source_job = job
        self.gate = Gate()

    def run(self, timeout: float, opts: Options) -> str | None:
        return _run(self.job, self.request, timeout, opts, self.gate)

    def decide(self, m: Measurements) -> None:
        """Open the gate or close it; never leave the replay worker waiting."""
        try:
            self._choose(m)
        finally:
            self.gate.close()  # no-op once opened

    def _choose(self, m: Measurements) -> None:
        """Once the submission's worker is done: what to replay, and what it said to forget.

        The exported tree is enough for the model stage; the forward stages need the
        traced forwards. Where the export or trace *failed*, the submission's own
        measurements stand, flagged as self-reported; where the worker stopped before
        reporting either, its claims about the model cannot be its own and are dropped.
        """
        export, trace = m.stages.get("export"), m.stages.get("trace")
        failed = next((s for s in (export, trace) if s is not None and not s.get("ok")), None)
        if failed is not None:
            m.self_reported = failed.get("error", {}).get("message", "")
        if export is None or trace is None:
            _drop_successes(m, protocol.REPLAYED_STAGES if export is None
                            else protocol.FORWARD_STAGES)
        if not m.ok("export"):
            return
        replayed = ["model"] + [s for s in protocol.FORWARD_STAGES
                                if s in self.wanted and m.ok("trace")]
        for stage in replayed:
            m.stages.pop(stage, None)
        protocol.take_artifact(self.source_job, self.job / protocol.ARTIFACT_DIR)
        self.request["stages"] = replayed
        self.gate.open(replayed)

    def collect(self, failure: str | None, m: Measurements, data: PreparedData | None) -> None:
        if self.request["stages"]:
            _collect(self.job, self.request["stages"], failure, m, data)


def _drop_successes(m: Measurements, stages: tuple[str, ...]) -> None:
    for stage in stages:
        if m.ok(stage):
            del m.stages[stage]
    if "train" in stages:
        m.predictions = None


def _run(job: Path, request: dict, timeout: float, opts: Options, gate: Gate | None = None
         ) -> str | None:
    protocol.write_json_atomic(job / protocol.REQUEST, request)
    return run_worker(job, timeout, opts.limits, opts.sandbox, gate)


def _collect(job: Path, stages: list[str], failure: str | None, m: Measurements,
             data: PreparedData | None) -> None:
    """A finished worker's stages, predictions, output and failure go into `m`."""
    for stage in stages:
        info = protocol.read_stage(job, stage)
        if info is not None:
            m.stages[stage] = info
    if "train" in stages and m.ok("train") and data is not None:
        m.predictions = protocol.read_predictions(job, data.n_test)
    tail = (protocol.read_tail(job / protocol.STDOUT) + protocol.read_tail(job / protocol.STDERR))
    m.output_tail = (m.output_tail + "\n" + tail.strip()).strip()
    expected = [s for s in stages  # a traced model's forward is measured by the replay worker
                if not (s in protocol.FORWARD_STAGES and "trace" in stages and m.ok("trace"))]
    if failure is None and any(s not in m.stages for s in expected) and \
            all(m.ok(s) for s in m.stages):
        failure = _silent_exit_message(expected, m)
    m.failure = m.failure or failure


def _recipe(spec: Spec) -> dict:
    t = spec.training
    return {"epochs": t.epochs, "batch_size": t.batch_size, "optimizer": t.optimizer,
            "scheduler": t.scheduler, "mean": list(t.mean), "std": list(t.std), "pad": t.pad,
            "hflip": t.hflip, "crop_padding": t.crop_padding}


def _silent_exit_message(stages: list[str], m: Measurements) -> str:
    missing = next(s for s in stages if s not in m.stages)
    return (f"the submission's process exited with status 0 during the {missing} step before "
            "reporting (does the code call sys.exit() or os._exit()?)")
