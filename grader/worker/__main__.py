"""Worker entry point: `python -m grader.worker JOB_DIR`.

Runs the stages the request names, in order, writing each stage's raw
measurements as soon as it is done. A stage that fails records why (the
student's own frames only) and the stages that need it are not attempted.
Which worker runs which stage is grader/stages.py's table; the request's
`role` says which worker this is:

- submission: load the code, build its Model, export it (and, only where the
  spec allows self-reported grading, measure what could not be exported);
- replay (`request["artifact"]`): no student code at all; the model, probe and
  train stages measure the replayed model;
- hidden: load the code and call its functions on the hidden cases.
"""
from __future__ import annotations

import functools
import json
import os
import random
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import protocol

NEEDS = {"build": "load", "export": "build", "trace": "export", "functions": "load",
         "hidden": "load", "model": None, "probe": "model", "train": "model"}
MEASURING = ("model", "probe", "train")


def main(job: Path) -> int:
    request = json.loads((job / protocol.REQUEST).read_text(encoding="utf-8"))
    warnings.simplefilter("ignore")  # warnings are not feedback; keep captured output useful
    if request.get("gated"):
        stages = _wait_for_go()
        if stages is None:
            return 0
        request["stages"] = stages
    run_request(job, request)
    return 0


def run_request(job: Path, request: dict, hold_training: bool = False
                ) -> tuple[set[str], dict[str, Any]]:
    """Run the request's stages, writing each one's file; the types of the errors raised,
    and what the stages left (`state`).

    A replay worker starts from the request's seed, so that whatever a replayed
    forward draws at random is the same in a fresh worker and in a warm one
    (grader/worker/serve.py). The warm trainer holds training back
    (`hold_training`): the model waits, ready, in state["trainee"] to be trained
    with others, and `finish_request` writes its stage.
    """
    import torch

    if request.get("role") == "replay":
        _seed(request["seed"])
    state: dict[str, Any] = {"failed": set(), "errors": set()}
    threads = torch.get_num_threads()
    for stage in request["stages"]:
        if NEEDS.get(stage) in state["failed"] or (stage in MEASURING and _exported(state)):
            continue  # needs what failed; or measured by the replay worker, away from the code
        # Only training has work worth splitting; the other stages run a batch of 2, where
        # waking a second thread costs more than it saves (10 times more on a busy machine).
        torch.set_num_threads(threads if stage == "train" else 1)
        if stage == "train" and hold_training:
            result = _run_stage(stage, request, state, _hold)
            if result["ok"]:
                continue
        else:
            result = _run_stage(stage, request, state)
        _write_stage(job, stage, result, state)
    return state["errors"], state


def finish_request(job: Path, request: dict, state: dict, outcome: dict | BaseException
                   ) -> set[str]:
    """Write the train stage of a request whose training was held, from its outcome."""
    trainee = state["trainee"]
    result = _run_stage("train", request, state, lambda *_: finish_training(trainee, outcome))
    _write_stage(job, "train", result, state)
    return state["errors"]


def _hold(request: dict, state: dict) -> dict:
    state["trainee"] = prepare_training(request, state)
    return {}


def _write_stage(job: Path, stage: str, result: dict, state: dict) -> None:
    protocol.write_json_atomic(protocol.stage_path(job, stage), result)
    if not result.get("ok"):
        state["failed"].add(stage)
        state["errors"].add(str((result.get("error") or {}).get("type", "")))


def _exported(state: dict) -> bool:
    """In the submission's worker: whether the whole model was exported, so that nothing
    here needs measuring (self-reported grading measures only what was not)."""
    trace = state.get("trace")
    return trace is not None and not trace["untraced"]


def _wait_for_go() -> list[str] | None:
    """Import what the stages need, then wait for the parent (process.Gate) to say which
    stages to run, or nothing: started early, this worker is ready by the time the
    submission's worker has exported its model."""
    from . import replay, trace, train  # noqa: F401 - imported for their start-up cost

    line = sys.stdin.readline()
    return json.loads(line)["stages"] if line.strip() else None


def _run_stage(stage: str, request: dict, state: dict, run=None) -> dict[str, Any]:
    """The stage's record (`run`, by default the stage's own function), or why it failed."""
    from .load import describe_exception

    student_root = (Path(request["job"]) / request["entry"]).parent
    try:
        return {"ok": True, **(run or STAGES[stage])(request, state)}
    except BaseException as exc:  # noqa: B036 - sys.exit and friends are student errors too
        if isinstance(exc, KeyboardInterrupt):
            raise
        info: dict[str, Any] = {"ok": False, "error": describe_exception(exc, student_root)}
        if "tracer" in state and stage == "probe":
            info["crash_site"] = state["tracer"].crash_site()
            info["events"] = state["tracer"].events
        return info


def _seed(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def stage_load(request: dict, state: dict) -> dict:
    from .load import import_submission

    import torch  # imported before student code, so a slow import is not blamed on it

    state["module"] = module = import_submission(Path(request["job"]) / request["entry"])
    names = sorted(n for n in vars(module) if not n.startswith("_"))
    return {"names": names[:500], "torch": torch.__version__}


def stage_build(request: dict, state: dict) -> dict:
    """The student's Model(), seeded; nothing about it is measured here."""
    name = request.get("class_name", "Model")
    cls = getattr(state["module"], name, None)
    if cls is None:
        raise NameError(f"no class named {name!r} is defined")

    def make_model():
        _seed(request["seed"])
        model = cls()
        _initialise_lazy(model, request)
        return model
    state["make_model"] = make_model
    state["model"] = model = make_model()
    return {"class": type(model).__name__[:100]}


def _initialise_lazy(model, request: dict) -> None:
    """nn.LazyLinear and its kind create their parameters in the first forward pass, as
    PyTorch's documentation asks students to do with a dummy batch: one eval-mode pass on
    the probe input does it here. Without it nothing could be counted, so where that pass
    fails, its own error (the line, the shapes) is what the student reads."""
    import torch
    from torch.nn.parameter import is_lazy

    if not any(is_lazy(p) for m in model.modules() for p in vars(m)["_parameters"].values()
               if p is not None):
        return
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(_probe_input(request))
    finally:
        model.train(was_training)


def stage_model(request: dict, state: dict) -> dict:
    from .trace import describe_model

    if "make_model" not in state:   # the replay worker: the exported model, rebuilt
        from .replay import load_model

        state["make_model"] = functools.partial(load_model, Path(request["job"]) /
                                                request["artifact"])
        state["model"] = state["make_model"]()
    return describe_model(state["model"])


def stage_export(request: dict, state: dict) -> dict:
    """The module tree and its tensors: enough to count parameters, and no student code runs."""
    from .export import export_model

    return export_model(state["model"], _artifact_folder(request), None)


def stage_trace(request: dict, state: dict) -> dict:
    """Every forward too, captured on the probe input; the replay worker measures from here."""
    from .export import export_model

    state["trace"] = summary = export_model(state["model"], _artifact_folder(request),
                                            (Path(request["job"]) / request["entry"]).parent,
                                            _probe_input(request))
    return summary


def _artifact_folder(request: dict) -> Path:
    return Path(request["job"]) / protocol.OUT_DIR / protocol.ARTIFACT_DIR


def _probe_input(request: dict):
    import torch

    gen = torch.Generator().manual_seed(request["seed"])
    return torch.randn(2, *request["input_shape"], generator=gen)


def stage_probe(request: dict, state: dict) -> dict:
    import torch

    from .trace import ForwardTracer

    model = state["model"]
    x = _probe_input(request)
    model.eval()
    state["tracer"] = tracer = ForwardTracer(model)
    with torch.no_grad():
        result = tracer.run(x)
    return {**result, "events": tracer.events}


@dataclass
class Trainee:
    """A model ready to train, and where its results go: what `stage_train` steps alone and
    the warm trainer steps with others (grader/worker/serve.py)."""

    request: dict
    model: Any
    data: dict
    progress: Any

    @property
    def recipe_key(self) -> str:
        """Models trained together must share all of this (and their program)."""
        r = self.request
        return json.dumps([r["training"], r["seed"], r["num_classes"], r["data"], r["device"],
                           r.get("ensembles", "auto")], sort_keys=True)

    @property
    def ensembles(self) -> bool:
        """Stacked training on a GPU (small nets leave it idle), or as the request says."""
        setting = self.request.get("ensembles", "auto")
        if setting == "auto":
            return next(iter(self.data.values())).device.type == "cuda"
        return setting == "always"


def prepare_training(request: dict, state: dict) -> Trainee:
    """The replayed model, the dataset on the device and the epoch writer, before training."""
    from ..progress import EpochWriter
    from .train import load_arrays

    device = _device(request["device"])
    if request["device"] == "cuda" and device.type != "cuda":
        raise DeviceUnavailable("--device cuda was asked for, but CUDA is not available")
    model = state["make_model"]()   # seeded where it trains (train._train)
    data = load_arrays(request["data"], device)
    progress = EpochWriter(Path(request["job"]) / protocol.OUT_DIR, request["training"]["epochs"])
    progress.start()
    return Trainee(request, model, data, progress)


def finish_training(trainee: Trainee, outcome: dict | BaseException) -> dict:
    """The train stage's result from one model's outcome; its predictions go beside it."""
    import numpy as np
    import torch

    from .train import TrainingStopped

    if isinstance(outcome, TrainingStopped):
        return {"ok": False, "error": {"type": "TrainingStopped", "message": str(outcome),
                                       "frames": []}}
    if isinstance(outcome, BaseException):
        raise outcome
    np.save(Path(trainee.request["job"]) / protocol.OUT_DIR / protocol.PREDICTIONS,
            outcome.pop("predictions"))
    return {**outcome, "torch": torch.__version__}


def stage_train(request: dict, state: dict) -> dict:
    from .train import train_together

    trainee = prepare_training(request, state)
    outcome = train_together([trainee.model], request["training"], trainee.data,
                             request["seed"], request["num_classes"], [trainee.progress],
                             trainee.ensembles)[0]
    return finish_training(trainee, outcome)


class DeviceUnavailable(Exception):
    """The request names a device this machine does not have."""


def _device(name: str):
    import torch

    if name in ("auto", "cuda") and torch.cuda.is_available():
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        return torch.device("cuda")
    return torch.device("cpu")


def stage_functions(request: dict, state: dict) -> dict:
    from .functions import stage_functions as call_functions

    return call_functions(request, state)


STAGES = {"load": stage_load, "build": stage_build, "export": stage_export,
          "trace": stage_trace, "model": stage_model, "probe": stage_probe,
          "functions": stage_functions, "hidden": stage_functions, "train": stage_train}


def _leave(code: int) -> None:
    """Exit without tearing the interpreter down: everything is written already, and
    unloading torch takes longer than the measuring did (the parent waits for the exit)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    _leave(main(Path(sys.argv[1])))
