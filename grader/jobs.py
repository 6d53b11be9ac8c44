"""The worker processes of one grading: what each is asked, and what comes back from it.

One submission is measured by up to three sandboxed workers (grader/stages.py
says which does what): the submission's (imports the code, exports the model,
calls the public function cases), the replay worker (measures the exported
model; never sees the code) and the hidden-case worker. The replay worker is
started with the first and waits at a gate while the first one works, so its
start-up costs no extra time; the hidden-case worker runs beside them.
Everything they write is read through grader/records.py.
"""
from __future__ import annotations

import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from . import checks, progress, protocol, records, warm
from .measurements import Measurements, explain_error
from .process import Gate, run_worker
from .stages import HIDDEN, MODEL_STAGES, REPLAY, SUBMISSION, for_worker
from .submission import Source

if TYPE_CHECKING:
    from .data import PreparedData
    from .runner import Options
    from .spec import Spec

PROBE_TIMEOUT_S = 120.0


def measure(source: Source, spec: Spec, stages: list[str], opts: Options,
            data: PreparedData | None, on_epoch: progress.Sink | None = None) -> Measurements:
    """Run the workers for `stages` and collect what they measured, whatever happened to them;
    `on_epoch` hears of each training epoch as it ends (grader/progress.py)."""
    m = Measurements(source=source)
    if source.problem:
        m.failure = source.problem
        return m
    if not stages:
        return m
    services = warm.services(opts) if opts.workers == "warm" else None
    job = services.new_job() if services else Path(tempfile.mkdtemp(prefix="grade-job-"))
    timeout = opts.timeout_s or (spec.timeout_s if "train" in stages else PROBE_TIMEOUT_S)
    hidden = _Hidden(job, source, spec, opts) if "hidden" in stages and \
        checks.functions.has_hidden_cases(spec) else None
    replay = _Replay(job, spec, opts, data, for_worker(stages, REPLAY))
    trainers = [job / "replay", job] if "train" in stages else []
    try:
        request = _submission_request(job, source, spec, stages, opts, data)
        with progress.follow(trainers, on_epoch):
            if services:
                _in_warm_workers(services, job, request, replay, hidden, timeout, m, data)
            else:
                _in_fresh_workers(job, request, replay, hidden, timeout, opts, m, data)
        return m
    finally:
        if not opts.keep_job:
            shutil.rmtree(job, ignore_errors=True)


def _in_fresh_workers(job: Path, request: dict, replay: _Replay, hidden: _Hidden | None,
                      timeout: float, opts: Options, m: Measurements,
                      data: PreparedData | None) -> None:
    """A fresh process per worker: the replay and hidden-case workers start beside the
    submission's, so their start-up overlaps its work."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        hidden_done = pool.submit(hidden.run, timeout, opts) if hidden else None
        replay_done = replay.start_gated(pool, timeout, opts)
        try:
            failure = _run(job, request, timeout, opts)
            _collect(job, request["stages"], failure, m, data, optional=MODEL_STAGES)
        finally:
            replay.decide(m)
        if replay_done is not None:
            replay.collect(replay_done.result(), m, data)
        if hidden_done is not None:
            hidden.collect(hidden_done.result(), m)


def _in_warm_workers(services: warm.Services, job: Path, request: dict, replay: _Replay,
                     hidden: _Hidden | None, timeout: float, m: Measurements,
                     data: PreparedData | None) -> None:
    """The submission's code in a child of the fork server, then its exported model in the
    warm trainer; the hidden cases last, in a child of their own (one child at a time)."""
    if replay.wanted:
        services.start_trainer(replay.request)
    protocol.write_json_atomic(job / protocol.REQUEST, request)
    failure = services.run_code(job, timeout)
    _collect(job, request["stages"], failure, m, data, optional=MODEL_STAGES)
    if replay.choose(m):
        replay.collect(services.replay(replay, timeout, str(m.source.origin)), m, data)
    if hidden is not None:
        protocol.write_json_atomic(hidden.job / protocol.REQUEST, hidden.request)
        hidden.collect(services.run_code(hidden.job, timeout), m)


def _base_request(job: Path, spec: Spec, opts: Options, role: str, entry: str) -> dict:
    return {"job": str(job), "role": role, "entry": entry, "seed": opts.seed,
            "input_shape": list(spec.input_shape), "class_name": "Model", "device": "cpu"}


def _submission_request(job: Path, source: Source, spec: Spec, stages: list[str],
                        opts: Options, data: PreparedData | None) -> dict:
    """The submission's worker loads, builds and exports; it sees no GPU and no data, unless
    the spec allows self-reported grading (then it measures what it could not export)."""
    entry = source.stage_into(job / "submission")
    wanted = for_worker(stages, SUBMISSION)
    if spec.self_reported:
        wanted += [s for s in MODEL_STAGES if s in stages]
    request = _base_request(job, spec, opts, SUBMISSION, str(entry.relative_to(job)))
    request["stages"] = wanted
    if "functions" in stages:  # inputs go to the worker; expected values stay here
        request["functions"] = checks.functions.prepare_request(spec, hidden=False)
    if spec.self_reported and "train" in stages and data is not None:
        request.update(_training_request(spec, opts, data))
    return request


def _training_request(spec: Spec, opts: Options, data: PreparedData) -> dict:
    t = spec.training
    return {"data": data.worker_files, "num_classes": data.num_classes, "device": opts.device,
            "ensembles": opts.ensembles,
            "training": {"epochs": t.epochs, "batch_size": t.batch_size,
                         "optimizer": t.optimizer, "scheduler": t.scheduler,
                         "mean": list(t.mean), "std": list(t.std), "pad": t.pad,
                         "hflip": t.hflip, "crop_padding": t.crop_padding}}


class _Replay:
    """The worker that measures the exported model: it gets the artifact and nothing else.

    Fresh, it starts beside the submission's worker and waits at a gate in
    job/replay/; warm (grader/warm.py), the request and the artifact are
    `place`d in the trainer's own folder once the submission's worker is done.
    """

    def __init__(self, job: Path, spec: Spec, opts: Options, data: PreparedData | None,
                 wanted: list[str]):
        self.job = job / "replay"
        self.source_job = job
        self.spec = spec
        self.wanted = wanted
        self.stages: list[str] = []          # what is replayed, once decided
        self.gate = Gate()
        self.candidates: dict[str, records.StageResult] = {}  # the submission's own numbers
        entry = f"{protocol.ARTIFACT_DIR}/{protocol.ARTIFACT_MANIFEST}"
        self.request = {**_base_request(self.job, spec, opts, REPLAY, entry),
                        "artifact": protocol.ARTIFACT_DIR, "stages": []}
        if "train" in wanted and data is not None:
            self.request.update(_training_request(spec, opts, data))

    def start_gated(self, pool: ThreadPoolExecutor, timeout: float, opts: Options):
        """A fresh worker, started now, held at the gate until `decide`."""
        if not self.wanted:
            return None
        (self.job / protocol.ARTIFACT_DIR).mkdir(parents=True)
        return pool.submit(_run, self.job, {**self.request, "gated": True}, timeout, opts,
                           self.gate)

    def decide(self, m: Measurements) -> None:
        """Open the gate or close it; never leave the replay worker waiting."""
        try:
            if self.choose(m):
                protocol.take_artifact(self.source_job, self.job / protocol.ARTIFACT_DIR)
                self.gate.open(self.stages)
        finally:
            self.gate.close()  # no-op once opened

    def place(self, folder: Path) -> None:
        """The request and the artifact in `folder`, for a worker that starts there."""
        self.job = folder
        (folder / protocol.ARTIFACT_DIR).mkdir(parents=True, exist_ok=True)
        protocol.take_artifact(self.source_job, folder / protocol.ARTIFACT_DIR)
        protocol.write_json_atomic(folder / protocol.REQUEST,
                                   {**self.request, "job": str(folder), "stages": self.stages})

    def choose(self, m: Measurements) -> list[str]:
        """Once the submission's worker is done: what to replay (empty: nothing).

        Whatever that worker said about its model is set aside: it counts only where
        the spec allows self-reported grading and the replay could not measure it.
        """
        for stage in MODEL_STAGES:
            if stage in m.stages:
                self.candidates[stage] = m.stages.pop(stage)
        if not self.wanted:
            return []
        export, trace = m.stages.get("export"), m.stages.get("trace")
        if export is None or not export.ok:
            m.unmeasured = self._why_unexported(m, export)
            return []
        if trace is None and m.ok("build"):
            m.unmeasured = ("the model could not be measured apart from its code: the "
                            "submission's process stopped while its forward pass was being "
                            f"captured ({m.failure or 'it exited'})")
        self.stages = [s for s in self.wanted if s == "model" or trace is not None]
        return self.stages

    def _why_unexported(self, m: Measurements, export: records.StageResult | None) -> str:
        if export is not None and export.error is not None:
            return explain_error("export", export.error, m.source)
        return m.blocker("export")

    def collect(self, failure: str | None, m: Measurements, data: PreparedData | None) -> None:
        if self.stages:
            _collect(self.job, self.stages, failure, m, data)
        if self.spec.self_reported:
            self._accept_self_reported(m)

    def _accept_self_reported(self, m: Measurements) -> None:
        for stage, result in self.candidates.items():
            if not m.ok(stage) and result.ok:
                m.self_reported[stage] = m.blocker(stage)
                m.stages[stage] = result


class _Hidden:
    """The worker that calls the student's functions on the hidden cases.

    Its output is never kept and its errors are reduced to their type, so the hidden
    inputs it holds cannot reach anything a student reads.
    """

    def __init__(self, job: Path, source: Source, spec: Spec, opts: Options):
        self.job = job / "hidden"
        entry = source.stage_into(self.job / "submission")
        self.request = {**_base_request(self.job, spec, opts, HIDDEN,
                                        str(entry.relative_to(self.job))),
                        "stages": ["load", "hidden"],
                        "functions": checks.functions.prepare_request(spec, hidden=True)}

    def run(self, timeout: float, opts: Options) -> str | None:
        return _run(self.job, self.request, timeout, opts)

    def collect(self, failure: str | None, m: Measurements) -> None:
        result = records.read_stage(self.job, "hidden")
        if result is None:
            load = records.read_stage(self.job, "load")
            error = load.error if load is not None and not load.ok else None
            reason = "it could not be imported" if error else (failure or "it stopped early")
            result = records.StageResult(False, None, records.ErrorInfo(
                error.type if error else "Stopped", f"the hidden cases did not run: {reason}"))
        m.stages["hidden"] = _typed_only(result)


def _typed_only(result: records.StageResult) -> records.StageResult:
    """A hidden stage's errors without their messages or lines: only the exception type."""
    def strip(error: records.ErrorInfo | None) -> records.ErrorInfo | None:
        return None if error is None else records.ErrorInfo(error.type, "")
    if result.record is None:
        return records.StageResult(result.ok, None, strip(result.error))
    cases = tuple(records.CaseRecord(c.ok, c.result, strip(c.error), c.calls)
                  for c in result.record.cases)
    return records.StageResult(result.ok, records.FunctionsRecord(cases), strip(result.error))


def _run(job: Path, request: dict, timeout: float, opts: Options, gate: Gate | None = None
         ) -> str | None:
    protocol.write_json_atomic(job / protocol.REQUEST, request)
    return run_worker(job, timeout, opts.limits, opts.sandbox, gate)


def _collect(job: Path, stages: list[str], failure: str | None, m: Measurements,
             data: PreparedData | None, optional: tuple[str, ...] = ()) -> None:
    """A finished worker's stages, predictions, output and failure go into `m`.

    `optional` stages may be missing without a failure: the submission's worker measures
    its model itself only where the export left something out (self-reported grading).
    """
    for stage in stages:
        result = records.read_stage(job, stage)
        if result is not None:
            m.stages[stage] = result
    if "train" in stages and m.ok("train") and data is not None:
        m.predictions = records.read_predictions(job, data.n_test, rows=2)
    tail = (protocol.read_tail(job / protocol.STDOUT) + protocol.read_tail(job / protocol.STDERR))
    m.output_tail = (m.output_tail + "\n" + tail.strip()).strip()
    expected = [s for s in stages if not (s in optional and _exported(m))]
    if failure is None and any(s not in m.stages for s in expected) and \
            all(r.ok for r in m.stages.values()):
        failure = _silent_exit_message(expected, m)
    m.failure = m.failure or failure


def _exported(m: Measurements) -> bool:
    trace = m.stages.get("trace")
    return trace is not None and trace.ok and not trace.record.untraced


def _silent_exit_message(stages: list[str], m: Measurements) -> str:
    missing = next(s for s in stages if s not in m.stages)
    return (f"the submission's process exited with status 0 during the {missing} step before "
            "reporting (does the code call sys.exit() or os._exit()?)")
