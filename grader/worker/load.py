"""Import the student's code as a module and describe failures so a student can act."""
from __future__ import annotations

import importlib.util
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any


def import_submission(entry: Path) -> ModuleType:
    """Import `entry` as the module `submission` with its folder on sys.path.

    The name is not `__main__`, so a `if __name__ == "__main__":` training block
    in a student's file does not run.
    """
    sys.path.insert(0, str(entry.parent))
    spec = importlib.util.spec_from_file_location("submission", entry)
    module = importlib.util.module_from_spec(spec)
    sys.modules["submission"] = module
    spec.loader.exec_module(module)
    return module


def describe_exception(exc: BaseException, student_root: Path) -> dict[str, Any]:
    """Type, message and the student's own frames (file, line, code) of an exception."""
    frames = list(getattr(exc, "student_frames", []))  # set by a replayed model's nodes
    for fs in traceback.extract_tb(exc.__traceback__):
        if _is_student_file(fs.filename, student_root):
            frames.append({"file": Path(fs.filename).name, "line": fs.lineno,
                           "function": fs.name, "code": (fs.line or "").strip()})
    info: dict[str, Any] = {"type": type(exc).__name__, "message": _message(exc),
                            "frames": frames[-5:]}
    if isinstance(exc, SyntaxError):
        info.update(file=Path(exc.filename or "").name, line=exc.lineno,
                    code=(exc.text or "").strip())
    return info


def _message(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 2000 else text[:2000] + " [...]"


def _is_student_file(filename: str, student_root: Path) -> bool:
    try:
        Path(filename).resolve().relative_to(student_root.resolve())
        return True
    except ValueError:
        return False
