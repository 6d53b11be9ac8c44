"""The files a worker and the grading parent exchange: their names and where they lie.

The parent writes `request.json` into a job folder; the worker writes one JSON
file per finished stage into `out/` (plus `predictions.npy`). Nothing is
pickled (DESIGN.md invariant 3); grader/records.py decodes every file into
typed records. Writing stage by stage means a worker that dies in training
still leaves the shapes it measured behind. out/ is written by student code,
so the parent reads only regular files that really lie inside it: a link
planted there (say, predictions.npy -> the cached test labels) is not followed.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

REQUEST = "request.json"
OUT_DIR = "out"
STDOUT = "stdout.txt"
STDERR = "stderr.txt"
PREDICTIONS = "predictions.npy"
MAX_JSON_BYTES = 8 * 1024 * 1024
ARTIFACT_DIR = "artifact"              # the exported model, inside out/ (worker/artifact.py)
ARTIFACT_MANIFEST, ARTIFACT_TENSORS = "manifest.json", "tensors.npz"
ARTIFACT_FILES = {ARTIFACT_MANIFEST: MAX_JSON_BYTES, ARTIFACT_TENSORS: 1 << 30}  # name -> size cap


def stage_file(stage: str) -> str:
    """The name of a stage's measurements inside out/."""
    return f"{stage}.json"


def stage_path(job: Path, stage: str) -> Path:
    return job / OUT_DIR / stage_file(stage)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write then rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, allow_nan=False, default=str), encoding="utf-8")
    os.replace(tmp, path)


def worker_file(job: Path, name: str) -> Path | None:
    """out/NAME if it is a regular file inside out/ once every link is resolved, else None."""
    out = os.path.realpath(job / OUT_DIR)
    real = os.path.realpath(job / OUT_DIR / name)
    if not real.startswith(out + os.sep) or not stat.S_ISREG(_mode(real)):
        return None
    return Path(real)


def _mode(path: str) -> int:
    try:
        return os.stat(path).st_mode
    except OSError:
        return 0


def take_artifact(job: Path, dest: Path) -> None:
    """Copy the exported model out of the submission's out/ (only its files, within size)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name, cap in ARTIFACT_FILES.items():
        path = worker_file(job, f"{ARTIFACT_DIR}/{name}")
        if path is not None and path.stat().st_size <= cap:
            shutil.copyfile(path, dest / name)


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
