"""The files a worker and the grading parent exchange, and how each side reads them.

The parent writes `request.json` into a job folder; the worker writes one JSON
file per finished stage into `out/` (plus `predictions.npy`). Nothing is
pickled (DESIGN.md invariant 3): JSON is size-capped and arrays are loaded with
`allow_pickle=False` and their shape checked before the parent uses them.
Writing stage by stage means a worker that dies in training still leaves the
shapes it measured behind.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

REQUEST = "request.json"
OUT_DIR = "out"
STDOUT = "stdout.txt"
STDERR = "stderr.txt"
PREDICTIONS = "predictions.npy"
STAGES = ("load", "model", "probe", "functions", "train")
MAX_JSON_BYTES = 8 * 1024 * 1024


def stage_path(job: Path, stage: str) -> Path:
    return job / OUT_DIR / f"{stage}.json"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write then rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, allow_nan=False, default=str), encoding="utf-8")
    os.replace(tmp, path)


def read_stage(job: Path, stage: str) -> dict[str, Any] | None:
    """One stage's measurements, or None when the worker never finished that stage."""
    path = stage_path(job, stage)
    if not path.is_file():
        return None
    if path.stat().st_size > MAX_JSON_BYTES:
        return {"ok": False, "error": {"type": "OutputTooLarge",
                                       "message": f"the {stage} measurements exceed "
                                                  f"{MAX_JSON_BYTES // 1024 // 1024} MiB"}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return {"ok": False, "error": {"type": "CorruptOutput",
                                       "message": f"the {stage} measurements are not valid JSON"}}
    return data if isinstance(data, dict) else None


def read_predictions(job: Path, expected_len: int):
    """Test-set predictions as an int64 vector of the expected length, or an error string."""
    import numpy as np

    path = job / OUT_DIR / PREDICTIONS
    if not path.is_file():
        return "the worker wrote no predictions"
    if path.stat().st_size > 16 * expected_len + 4096:
        return "the predictions file is larger than the test set allows"
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        return f"the predictions file cannot be read: {exc}"
    if arr.shape != (expected_len,) or arr.dtype.kind not in "iu":
        return f"predictions have shape {arr.shape} and dtype {arr.dtype}, expected ({expected_len},) integers"
    return arr.astype(np.int64)


def read_tail(path: Path, limit: int = 4000) -> str:
    """The last `limit` characters of a captured stream: enough to explain, never a flood."""
    if not path.is_file():
        return ""
    size = path.stat().st_size
    with path.open("rb") as f:
        if size > limit:
            f.seek(size - limit)
        text = f.read().decode("utf-8", errors="replace")
    return ("[... earlier output cut ...]\n" if size > limit else "") + text
