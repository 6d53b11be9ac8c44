"""Build the course pack from its one source: the reference solution files.

`solutions/<name>/<file>.py` is written in percent-cell format (`# %%` code
cells, `# %% [markdown]` text cells) with nbgrader's `### BEGIN SOLUTION` /
`### END SOLUTION` markers. From it this module derives, deterministically:

- `assignments/<name>/<file>.py`: the student skeleton (solution regions become
  nbgrader's stub, so the .py and the notebook ask for the same thing);
- `solutions/<name>/<name>.ipynb`: the nbgrader source notebook, with one locked
  autograder test cell per spec check, worth the spec's points;
- `assignments/<name>/<name>.ipynb`: what `nbgrader generate_assignment` releases
  from that source (made by running real nbgrader in a scratch course).

Generated files are committed, and a test rebuilds them and fails when one is out
of date, so the copies students get can never drift from the solutions.
"""
from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .spec import CheckSpec, Spec, load_spec

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
KERNEL = {"display_name": "Python 3", "language": "python", "name": "python3"}
CHECK_TITLES = {"shapes": "layer output shapes", "params": "parameter counts",
                "functions": "your functions", "accuracy": "test accuracy after training"}


@dataclass(frozen=True)
class Cell:
    kind: str      # "code" or "markdown"
    source: str


def make_skeleton(text: str) -> str:
    """Replace every solution region with nbgrader's stub at the region's indentation."""
    out: list[str] = []
    inside = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped == BEGIN:
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + stub_line for stub_line in STUB.splitlines())
            inside = True
        elif stripped == END:
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out) + "\n"


def parse_cells(text: str) -> list[Cell]:
    """Split percent-format source into cells; markdown cells lose their leading '# '."""
    cells: list[Cell] = []
    kind, lines = "code", []
    for line in text.splitlines():
        if line.startswith("# %%"):
            _close(cells, kind, lines)
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        else:
            lines.append(re.sub(r"^# ?", "", line) if kind == "markdown" else line)
    _close(cells, kind, lines)
    return cells


def _close(cells: list[Cell], kind: str, lines: list[str]) -> None:
    source = "\n".join(lines).strip("\n")
    if source.strip():
        cells.append(Cell(kind, source))


def solution_file(solutions: Path, name: str) -> Path:
    """model.py for model assignments, <name>.py for function assignments."""
    for candidate in (solutions / name / "model.py", solutions / name / f"{name}.py"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no model.py or {name}.py in {solutions / name}")


def test_cell_source(spec: Spec, check: CheckSpec) -> str:
    model = ", Model" if check.kind in ("shapes", "params", "accuracy") else ""
    title = CHECK_TITLES[check.kind] if check.id == check.kind else f"{check.id}"
    return (f"# Autograder test: {title} ({check.points:g} points). Run it to check your work.\n"
            "from grader import nb\n"
            f'nb.check("{check.id}"{model}, assignment="{spec.name}")')


def source_notebook(spec: Spec, solution_text: str) -> nbformat.NotebookNode:
    """The nbgrader source notebook: solution cells, then one locked test cell per check."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": KERNEL, "language_info": {"name": "python"}}
    for i, cell in enumerate(parse_cells(solution_text), start=1):
        if cell.kind == "markdown":
            nb.cells.append(nbformat.v4.new_markdown_cell(cell.source))
            continue
        code = nbformat.v4.new_code_cell(cell.source)
        if BEGIN in cell.source:
            code.metadata["nbgrader"] = _nbgrader_meta(f"{spec.name}-solution-{i}", solution=True)
        nb.cells.append(code)
    for check in spec.checks:
        test = nbformat.v4.new_code_cell(test_cell_source(spec, check))
        test.metadata["nbgrader"] = _nbgrader_meta(f"test-{check.id}", grade=True,
                                                   points=check.points)
        nb.cells.append(test)
    for n, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{n}"  # stable ids keep regenerated notebooks byte-identical
    return nb


def _nbgrader_meta(grade_id: str, solution: bool = False, grade: bool = False,
                   points: float | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": not solution,
            "schema_version": 3, "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return meta


def release_notebooks(root: Path, names: list[str]) -> list[Path]:
    """Run real nbgrader's generate_assignment on the source notebooks of `names`, through
    its Python API in one scratch course, and copy each release into assignments/.

    One course for all: nbgrader creates a gradebook per course and checks its schema in
    a subprocess (about 2 s), which is most of what one release costs."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    written = []
    with tempfile.TemporaryDirectory(prefix="nbgrader-build-") as tmp:
        config = Config()
        config.CourseDirectory.root = tmp
        api = NbGraderAPI(CourseDirectory(config=config), config=config)
        for name in names:
            source_nb = root / "solutions" / name / f"{name}.ipynb"
            (Path(tmp) / "source" / name).mkdir(parents=True)
            shutil.copy(source_nb, Path(tmp) / "source" / name / source_nb.name)
            outcome = api.generate_assignment(name, force=True)
            released = Path(tmp) / "release" / name / source_nb.name
            if not outcome["success"] or not released.is_file():
                raise RuntimeError(f"nbgrader generate_assignment {name} failed:\n"
                                   f"{(outcome.get('log') or outcome.get('error') or '')[-3000:]}")
            written.append(root / "assignments" / name / source_nb.name)
            shutil.copy(released, written[-1])
    return written


def build(root: Path, names: list[str]) -> list[Path]:
    """Regenerate the skeletons and notebooks of `names`; returns the files written."""
    written = []
    for name in names:
        spec = load_spec(root / "assignments" / name / "spec.yaml")
        sol = solution_file(root / "solutions", name)
        text = sol.read_text(encoding="utf-8")
        skeleton = root / "assignments" / name / sol.name
        skeleton.write_text(make_skeleton(text), encoding="utf-8")
        source_nb = root / "solutions" / name / f"{name}.ipynb"
        nbformat.write(source_notebook(spec, text), source_nb)
        written += [skeleton, source_nb]
    return written + release_notebooks(root, names)


def assignment_names(root: Path) -> list[str]:
    return sorted(p.parent.name for p in (root / "assignments").glob("*/spec.yaml")
                  if (root / "solutions" / p.parent.name).is_dir())
