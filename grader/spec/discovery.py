"""Finding a spec: the one `--assignment` names, or the nearest beside the submission."""
from __future__ import annotations

from pathlib import Path


def find_spec(submission: Path, assignment: str | None, search_roots: list[Path]) -> Path:
    """Where `--assignment` points, or the nearest spec.yaml beside/above the submission."""
    from ..errors import UsageError

    if assignment:
        p = Path(assignment)
        if p.is_dir() and (p / "spec.yaml").is_file():
            return p / "spec.yaml"
        if p.name == "spec.yaml" and p.is_file():
            return p
        for root in search_roots:
            candidate = root / assignment / "spec.yaml"
            if candidate.is_file():
                return candidate
        known = sorted({d.name for r in search_roots if r.is_dir() for d in r.iterdir()
                        if (d / "spec.yaml").is_file()})
        raise UsageError(f"no assignment {assignment!r}: it is neither a folder with a spec.yaml "
                         f"nor one of: {', '.join(known) or '(none found)'}")
    start = submission.resolve()
    for folder in [start] + list(start.parents) if start.is_dir() else list(start.parents):
        if (folder / "spec.yaml").is_file():
            return folder / "spec.yaml"
        # a solution folder's spec lives in the matching assignments/ folder
        sibling = folder.parent.parent / "assignments" / folder.name / "spec.yaml"
        if folder.parent.name == "solutions" and sibling.is_file():
            return sibling
    raise UsageError(f"no spec.yaml found beside {submission} or in its parent folders; "
                     "pass --assignment NAME (e.g. --assignment cifar10_cnn) or a folder holding spec.yaml")
