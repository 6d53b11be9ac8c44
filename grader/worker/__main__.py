"""Worker entry point: `python -m grader.worker JOB_DIR`.

Runs the stages the request names, in order, writing each stage's raw
measurements as soon as it is done. A stage that fails records why (the
student's own frames only) and the stages that need it are not attempted.
"""
from __future__ import annotations

import json
import os
import random
import sys
import warnings
from pathlib import Path
from typing import Any

from .. import protocol


def main(job: Path) -> int:
    request = json.loads((job / protocol.REQUEST).read_text(encoding="utf-8"))
    warnings.simplefilter("ignore")  # warnings are not feedback; keep captured output useful
    entry = job / request["entry"]
    student_root = entry.parent
    state: dict[str, Any] = {}
    failed: set[str] = set()
    for stage in request["stages"]:
        if "load" in failed or ("model" in failed and stage != "functions"):
            continue  # nothing later can run without the code; only functions run without a model
        result = _run_stage(stage, request, state, student_root)
        protocol.write_json_atomic(protocol.stage_path(job, stage), result)
        if not result.get("ok"):
            failed.add(stage)
    return 0


def _run_stage(stage: str, request: dict, state: dict, student_root: Path) -> dict[str, Any]:
    from .load import describe_exception

    try:
        return {"ok": True, **STAGES[stage](request, state)}
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


def stage_model(request: dict, state: dict) -> dict:
    from .trace import describe_model

    cls = getattr(state["module"], request.get("class_name", "Model"), None)
    if cls is None:
        raise NameError(f"no class named {request.get('class_name', 'Model')!r} is defined")
    _seed(request["seed"])
    state["model"] = model = cls()
    return describe_model(model)


def stage_probe(request: dict, state: dict) -> dict:
    import torch

    from .trace import ForwardTracer

    model = state["model"]
    gen = torch.Generator().manual_seed(request["seed"])
    x = torch.randn(2, *request["input_shape"], generator=gen)
    model.eval()
    state["tracer"] = tracer = ForwardTracer(model)
    with torch.no_grad():
        result = tracer.run(x)
    return {**result, "events": tracer.events}


def stage_train(request: dict, state: dict) -> dict:
    import numpy as np
    import torch

    from .train import TrainingStopped, load_arrays, train_and_predict

    device = _device(request["device"])
    if request["device"] == "cuda" and device.type != "cuda":
        return {"ok": False, "error": {"type": "DeviceUnavailable",
                                       "message": "--device cuda was asked for, but CUDA is not available"}}
    _seed(request["seed"])
    model = state["module"].__dict__[request.get("class_name", "Model")]()
    data = load_arrays(request["data"], device)
    progress = _progress_writer(Path(request["job"]))
    try:
        out = train_and_predict(model, request["training"], data, request["seed"],
                                request["num_classes"], progress)
    except TrainingStopped as exc:
        return {"ok": False, "error": {"type": "TrainingStopped", "message": str(exc), "frames": []}}
    np.save(Path(request["job"]) / protocol.OUT_DIR / protocol.PREDICTIONS, out.pop("predictions"))
    return {**out, "torch": torch.__version__}


def _device(name: str):
    import torch

    if name in ("auto", "cuda") and torch.cuda.is_available():
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        return torch.device("cuda")
    return torch.device("cpu")


def _progress_writer(job: Path):
    path = job / protocol.OUT_DIR / "progress.json"
    return lambda point: protocol.write_json_atomic(path, point)


def stage_functions(request: dict, state: dict) -> dict:
    from .functions import stage_functions as call_functions

    return call_functions(request, state)


STAGES = {"load": stage_load, "model": stage_model, "probe": stage_probe,
          "functions": stage_functions, "train": stage_train}


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main(Path(sys.argv[1])))
