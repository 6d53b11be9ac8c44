"""Find a submission's code and, for notebooks, keep only the definitions.

A notebook is a script with side effects: training loops, downloads, `!pip`,
`%matplotlib`. The grader takes only imports, function and class definitions,
and constant assignments, and tells the student which cells it left out.
Calls of the grader itself (the test cells, `check()`) are left out silently:
they are not the student's code, and listing them would bury what is.
Parsing happens here in the parent (it runs nothing); the worker imports the
resulting file.
"""
from __future__ import annotations

import ast
import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

PREFERRED_FILES = ("model.py", "submission.py", "solution.py")
CONSTANT_NODES = (ast.Constant, ast.Tuple, ast.List, ast.Set, ast.Dict, ast.BinOp, ast.UnaryOp,
                  ast.operator, ast.unaryop, ast.Load, ast.Name)


@dataclass(frozen=True)
class SkippedCell:
    cell: int          # 1-based, as Jupyter shows execution order in a fresh run
    line: str          # first line of what was left out
    reason: str


@dataclass
class Source:
    """The code the worker will import, with what was left out and where it came from."""

    origin: Path                       # the file the student wrote
    code_dir: Path                     # folder copied next to it (helpers, weights)
    entry_name: str                    # file name of the module the worker imports
    text: str | None = None            # extracted code (notebooks only)
    skipped: list[SkippedCell] = field(default_factory=list)
    line_map: list[tuple[int, int]] = field(default_factory=list)  # line -> (cell, cell line)
    problem: str | None = None         # why nothing could be loaded
    with_siblings: bool = True         # copy the folder's other .py files (helpers) too

    def stage_into(self, dest: Path) -> Path:
        """Copy the code into a job folder; returns the entry file inside it."""
        dest.mkdir(parents=True, exist_ok=True)
        entry = dest / self.entry_name
        if self.problem is None and self.with_siblings:
            for item in self.code_dir.glob("*.py"):
                if item.is_file():
                    shutil.copy2(item, dest / item.name)
        if self.text is not None:
            entry.write_text(self.text, encoding="utf-8")
        elif self.problem is None:
            shutil.copy2(self.origin, entry)
        else:
            entry.write_text("", encoding="utf-8")
        return entry

    def files(self) -> dict[str, str]:
        """The source files the worker will import, by name (what stage_into writes)."""
        if self.problem is not None:
            return {}
        files = {}
        if self.with_siblings:
            for item in sorted(self.code_dir.glob("*.py")):
                if item.is_file():
                    files[item.name] = item.read_text(encoding="utf-8", errors="replace")
        files[self.entry_name] = self.text if self.text is not None else \
            self.origin.read_text(encoding="utf-8", errors="replace")
        return files

    def where(self, line: int | None) -> str:
        """A line of the imported file as the student knows it: 'cell 4, line 2' for notebooks."""
        if line is None:
            return self.origin.name
        if self.line_map and 0 < line <= len(self.line_map):
            cell, cell_line = self.line_map[line - 1]
            return f"{self.origin.name}, cell {cell}, line {cell_line}"
        return f"{self.origin.name}, line {line}"


def locate(path: Path, assignment: str) -> Source:
    """Resolve PATH (a .py, an .ipynb or a folder) to the code to grade."""
    if path.is_dir():
        return _from_folder(path, assignment)
    # A file given on its own is graded on its own: its folder may hold other students' files.
    # Helpers next to the code come along when the submission is a folder.
    if path.suffix == ".ipynb":
        return dataclasses.replace(from_notebook(path), with_siblings=False)
    return Source(origin=path, code_dir=path.parent, entry_name=path.name, with_siblings=False)


def _from_folder(folder: Path, assignment: str) -> Source:
    for name in (*PREFERRED_FILES, f"{assignment}.py"):
        if (folder / name).is_file():
            return Source(origin=folder / name, code_dir=folder, entry_name=name)
    notebooks = sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("."))
    preferred = [p for p in notebooks if p.stem == assignment]
    if preferred or len(notebooks) == 1:
        return from_notebook((preferred or notebooks)[0])
    scripts = sorted(folder.glob("*.py"))
    if len(scripts) == 1:
        return Source(origin=scripts[0], code_dir=folder, entry_name=scripts[0].name)
    found = ", ".join(p.name for p in notebooks + scripts) or "nothing"
    return Source(origin=folder, code_dir=folder, entry_name="submission.py",
                  problem=f"could not tell which file to grade in {folder.name}/ (found: {found}); "
                          f"name your code model.py or {assignment}.ipynb")


def from_notebook(path: Path) -> Source:
    try:
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    except (ValueError, UnicodeDecodeError, AttributeError) as exc:
        return Source(origin=path, code_dir=path.parent, entry_name=f"{path.stem}_cells.py",
                      problem=f"{path.name} is not a readable notebook ({exc})")
    code = [c.get("source", "") for c in cells if c.get("cell_type") == "code"]
    return from_cells(path, ["".join(t) if isinstance(t, list) else str(t) for t in code])


def from_cells(origin: Path, cells: list[str]) -> Source:
    """Definitions kept from code cells in order (a notebook file, or a live kernel's history)."""
    source = Source(origin=origin, code_dir=origin.parent, entry_name=f"{origin.stem}_cells.py")
    lines: list[str] = []
    constants: set[str] = set()  # names bound to constants so far, across cells
    helpers: set[str] = set()    # names imported from the grader so far
    for number, text in enumerate(cells, start=1):
        for kept_line, cell_line in _keep_from_cell(number, text, source.skipped, constants,
                                                    helpers):
            lines.append(kept_line)
            source.line_map.append((number, cell_line))
    source.text = "\n".join(lines) + "\n"
    return source


def _keep_from_cell(number: int, text: str, skipped: list[SkippedCell], constants: set[str],
                    helpers: set[str]):
    """Yield (line, line number in cell) for the statements of one cell that define things."""
    if text.lstrip().startswith("%%"):
        skipped.append(SkippedCell(number, text.strip().splitlines()[0], "a cell magic is not run"))
        return
    raw = text.splitlines()
    clean = []
    for line in raw:
        stripped = line.lstrip()
        if stripped.startswith(("!", "%")):
            reason = "a shell command is not run" if stripped[0] == "!" else "an IPython magic is not run"
            skipped.append(SkippedCell(number, stripped, reason))
            clean.append("")  # keep line numbers aligned with the cell
        else:
            clean.append(line)
    try:
        tree = ast.parse("\n".join(clean))
    except SyntaxError:
        # Kept as-is: the worker reports the syntax error with this cell's line numbers.
        yield from ((line, i) for i, line in enumerate(clean, start=1))
        return
    for node in tree.body:
        if _grader_statement(node, helpers):
            continue
        reason = _skip_reason(node, constants)
        if reason:
            skipped.append(SkippedCell(number, raw[node.lineno - 1].strip(), reason))
            continue
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        for i in range(first, node.end_lineno + 1):
            yield clean[i - 1], i


def _grader_statement(node: ast.stmt, helpers: set[str]) -> bool:
    """An import of the grader (its names go into `helpers`) or a call of one of them."""
    if _imports_grader(node):
        helpers.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        return True
    if isinstance(node, (ast.Expr, ast.Assign)) and isinstance(node.value, ast.Call):
        root = node.value.func
        while isinstance(root, ast.Attribute):
            root = root.value
        return isinstance(root, ast.Name) and root.id in helpers
    return False


def _skip_reason(node: ast.stmt, constants: set[str]) -> str | None:
    """Why a top-level statement is left out, or None to keep it."""
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef,
                         ast.ClassDef)):
        return None
    if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if all(isinstance(t, ast.Name) for t in targets) and _is_constant(node.value, constants):
            constants.update(t.id for t in targets)
            return None
        return "only constant assignments are kept (this one runs code)"
    if isinstance(node, (ast.For, ast.While, ast.AsyncFor)):
        return "loops are not run (training happens in the grader)"
    if isinstance(node, ast.Expr):
        return "top-level calls and expressions are not run"
    return f"a top-level `{type(node).__name__.lower()}` statement is not run"


def _imports_grader(node: ast.stmt) -> bool:
    if isinstance(node, ast.ImportFrom):
        return (node.module or "").split(".")[0] == "grader"
    if isinstance(node, ast.Import):
        return any(alias.name.split(".")[0] == "grader" for alias in node.names)
    return False


def _is_constant(value: ast.expr, constants: set[str]) -> bool:
    for sub in ast.walk(value):
        if not isinstance(sub, CONSTANT_NODES):
            return False
        if isinstance(sub, ast.Name) and sub.id not in constants:
            return False
    return True
