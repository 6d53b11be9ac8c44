"""An assignment packaged as a Gradescope autograder, and what runs inside it.

Gradescope's autograder specification
(https://gradescope-autograders.readthedocs.io/en/latest/specs/): a zip with `setup.sh`
and `run_autograder` at its root. Gradescope unpacks it into /autograder/source, runs
setup.sh once as root while building the image, copies run_autograder to
/autograder/run_autograder and, for every submission, puts the student's files in
/autograder/submission, runs run_autograder in /autograder and shows
/autograder/results/results.json (grader/reporters/gradescope.py writes it).

The zip holds what grading needs and nothing more: the grader's source (installed by
setup.sh with pip), the assignment's spec folder and, when it has hidden cases, its
hidden_cases.yaml (never the reference solution), plus the dataset when the course gives
one with --data-dir. Otherwise setup.sh downloads it (Gradescope builds images with
internet access); for MNIST the sample shipped inside the grader is the fallback.
"""
from __future__ import annotations

import json
import os
import stat
import sys
import traceback
import zipfile
from pathlib import Path

from .data import EMBEDDED, RAW_FOLDER, TORCHVISION, locate
from .errors import UsageError
from .spec import HIDDEN_CASES_FILE, Spec, hidden_cases_file

ROOT = Path("/autograder")
MANIFEST = "autograder.json"          # which assignment this autograder grades
GRADER_DIR, COURSE_DIR, DATA_DIR = "cnn-grader", "course", "data"
GRADER_FILES = ("pyproject.toml", "README.md")
# Only the CPU build of torch: Gradescope's machines have no GPU, and the CUDA wheels are gigabytes.
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the autograder's image.
set -euo pipefail
cd /autograder/source
apt-get update
apt-get install -y --no-install-recommends python3 python3-pip
# Newer Ubuntu images mark the system Python as externally managed; this image is ours alone.
export PIP_BREAK_SYSTEM_PACKAGES=1
python3 -m pip install --extra-index-url {torch_index} ./{grader}
{download}
# Convert the dataset once now, so that each submission only reads it.
GRADER_DATA=/autograder/source/{data} GRADER_CACHE=/autograder/source/cache \\
    python3 -m grader gradescope prepare --root /autograder
"""

DOWNLOAD = """python3 -m grader download {dataset} --data-dir /autograder/source/{data}{fallback}"""
FALLBACK = (""" || echo "WARNING: could not download {dataset}; grading will use the sample """
            """shipped with the grader, against its own bar\"""")

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission, in /autograder (AUTOGRADER_ROOT elsewhere, for tests).
ROOT="${AUTOGRADER_ROOT:-/autograder}"
export GRADER_DATA="$ROOT/source/data" GRADER_CACHE="$ROOT/source/cache"
exec "${PYTHON:-python3}" -m grader gradescope run --root "$ROOT"
"""


def build(spec: Spec, out: Path, pack_root: Path, data_dir: Path | None = None) -> list[str]:
    """Write the autograder zip for `spec` to `out`; returns the names it holds."""
    sources = [pack_root / name for name in GRADER_FILES]
    if not all(p.is_file() for p in sources):
        raise UsageError(f"the grader's source is not beside it ({pack_root} has no "
                         "pyproject.toml): build the autograder from a clone of cnn-grader")
    files: dict[str, Path] = {f"{GRADER_DIR}/{p.name}": p for p in sources}
    files.update(_tree(pack_root / "grader", f"{GRADER_DIR}/grader"))
    files.update(_spec_files(spec))
    dataset = spec.training.dataset if spec.training else None
    if data_dir is not None and dataset is not None and not dataset.endswith(".npz"):
        found = locate(dataset, data_dir, spec.folder)
        if found.form == "embedded":
            raise UsageError(f"--data-dir {data_dir} holds no {dataset}")
        files.update(_dataset_files(found.path, data_dir))
    scripts = {"setup.sh": _setup_sh(dataset, bundled=data_dir is not None),
               "run_autograder": RUN_AUTOGRADER,
               MANIFEST: json.dumps({"assignment": spec.name}, indent=2) + "\n"}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in scripts.items():
            _add_text(zf, name, text, executable=name != MANIFEST)
        for name, path in sorted(files.items()):
            zf.write(path, name)
    os.replace(tmp, out)
    return [*scripts, *sorted(files)]


def _setup_sh(dataset: str | None, bundled: bool) -> str:
    download = ""
    if dataset in TORCHVISION and not bundled:
        fallback = FALLBACK.format(dataset=dataset) if dataset in EMBEDDED else ""
        download = DOWNLOAD.format(dataset=dataset, data=DATA_DIR, fallback=fallback)
    return SETUP_SH.format(torch_index=TORCH_INDEX, grader=GRADER_DIR, data=DATA_DIR,
                           download=download)


def _tree(folder: Path, prefix: str) -> dict[str, Path]:
    return {f"{prefix}/{p.relative_to(folder).as_posix()}": p for p in sorted(folder.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def _spec_files(spec: Spec) -> dict[str, Path]:
    """The spec's folder (its own .npz included, not the skeleton or notebook) and the
    hidden cases, laid out as a course so that the spec finds them where it looks."""
    base = f"{COURSE_DIR}/assignments/{spec.name}"
    files = {f"{base}/{p.name}": p for p in sorted(spec.folder.iterdir())
             if p.is_file() and p.suffix not in (".py", ".ipynb")}
    hidden = hidden_cases_file(spec.path)
    if hidden.is_file():
        files[f"{COURSE_DIR}/solutions/{spec.name}/{HIDDEN_CASES_FILE}"] = hidden
    return files


def _dataset_files(found: Path, data_dir: Path) -> dict[str, Path]:
    """The dataset as found under data_dir (a torchvision root or an .npz), under data/."""
    if found.is_file():
        return {f"{DATA_DIR}/{found.name}": found}
    folders = [found / name for name in RAW_FOLDER.values() if (found / name).is_dir()]
    return {name: path for folder in folders
            for name, path in _tree(folder, f"{DATA_DIR}/{folder.name}").items()}


def _add_text(zf: zipfile.ZipFile, name: str, text: str, executable: bool) -> None:
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, text)


# ---------------------------------------------------------------- inside Gradescope

def spec_path(root: Path) -> Path:
    name = json.loads((root / "source" / MANIFEST).read_text(encoding="utf-8"))["assignment"]
    return root / "source" / COURSE_DIR / "assignments" / name / "spec.yaml"


def prepare(root: Path) -> None:
    """At image build: convert the dataset once (setup.sh)."""
    from .runner import Options, prepare_data
    from .spec import load_spec

    spec = load_spec(spec_path(root))
    if spec.training is not None:
        prepare_data(spec, Options(data_dir=root / "source" / DATA_DIR))


def run(root: Path) -> Path:
    """Grade /autograder/submission into /autograder/results/results.json, whatever happens:
    a problem of the autograder itself (not of the student's code) still gets a results
    file, which says so, instead of an empty page."""
    from .reporters import gradescope
    from .runner import Options, grade
    from .spec import load_spec

    out = root / "results" / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        spec = load_spec(spec_path(root))
        result = grade(root / "submission", spec, Options(data_dir=root / "source" / DATA_DIR))
        text = gradescope.render(result)
    except Exception as exc:  # noqa: BLE001 - the student must see something, and why
        traceback.print_exc(file=sys.stderr)     # for the instructor: Gradescope keeps it
        text = json.dumps({"score": 0.0, "output": (
            "The autograder could not grade this submission. This is a problem with the "
            f"autograder, not with your code; please tell your instructor. ({exc})"),
            "extra_data": {"status": "grader-error"}}, indent=2) + "\n"
    out.write_text(text, encoding="utf-8")
    return out
