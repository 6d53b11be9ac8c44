"""What the grading parent can tell from a submission's source without running it.

"Write max_pool2d yourself" cannot be checked inside the student's process:
code there can hide any call from any watcher (torch._C.DisableTorchFunction
hides F.max_pool2d from a TorchFunctionMode). So the parent reads the source
(it parses, never runs it) and looks, in everything the graded function can
reach, for two things:

- a forbidden function named in the code: `F.max_pool2d`, `torch.max_pool2d`,
  `nn.MaxPool2d`, `x.softmax(...)`, `from torch.nn.functional import
  max_pool2d as mp`, or the name as a string (`getattr(F, "max_pool2d")`);
- a way to reach names the grader cannot read: eval, exec, __import__,
  getattr with a computed name, __dict__, torch._C, importlib, ...

What a function can reach: its own body, the module-level functions and
classes it names (and what they name), every other module-level statement
(an alias made at import time), and every helper file beside it. Code under
`if __name__ == "__main__":` never runs on import and is left out.
Names are compared without case, underscores and a trailing "loss", so
max_pool2d also finds MaxPool2d, and cross_entropy CrossEntropyLoss.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass

DYNAMIC_CALLS = {"eval", "exec", "compile", "__import__", "globals", "locals", "vars"}
NAME_CALLS = {"getattr", "setattr", "delattr", "hasattr"}   # fine with a literal name
DYNAMIC_ATTRIBUTES = {"__dict__", "__getattribute__", "__globals__", "__builtins__", "__code__",
                      "_C", "import_module", "attrgetter", "methodcaller", "__torch_function__",
                      "_disabled_torch_function_impl", "DisableTorchFunction",
                      "DisableTorchFunctionSubclass", "modules"}
DYNAMIC_MODULES = {"importlib", "ctypes", "builtins"}


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    code: str
    what: str                     # "uses torch's max_pool2d" / "reaches names dynamically (eval)"
    dynamic: bool = False

    def sentence(self) -> str:
        return f"{self.file}, line {self.line}: `{self.code}` {self.what}"


def normal(name: str) -> str:
    flat = name.lower().replace("_", "")
    return flat.removesuffix("loss") or flat


def forbidden_uses(files: dict[str, str], entry: str, function: str,
                   forbid: tuple[str, ...]) -> list[Finding]:
    """Every place the function `function` of file `entry` can reach that names a forbidden
    function or reaches names dynamically; empty when there is nothing to report."""
    if not forbid:
        return []
    banned = {normal(f) for f in forbid}
    findings: list[Finding] = []
    for name, text in files.items():
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue   # the import fails anyway, and says where
        lines = text.splitlines()
        scope = _reachable(tree, function) if name == entry else _module_code(tree)
        for node in scope:
            findings += _inspect(node, name, lines, banned)
    return sorted(set(findings), key=lambda f: (f.file, f.line, f.what))


def _module_code(tree: ast.Module) -> list[ast.AST]:
    return [stmt for stmt in tree.body if not _is_main_guard(stmt)]


def _reachable(tree: ast.Module, function: str) -> list[ast.AST]:
    """The function's definition, what it names among the module's definitions (transitively),
    and the module's other top-level statements."""
    defs = {stmt.name: stmt for stmt in tree.body
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    others = [stmt for stmt in _module_code(tree) if stmt not in defs.values()]
    if function not in defs:
        return others
    seen, todo = {function}, [defs[function]]
    for stmt in others:
        todo.append(stmt)
    reached: list[ast.AST] = []
    while todo:
        node = todo.pop()
        reached.append(node)
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and sub.id in defs and sub.id not in seen:
                seen.add(sub.id)
                todo.append(defs[sub.id])
    return reached


def _is_main_guard(stmt: ast.stmt) -> bool:
    test = stmt.test if isinstance(stmt, ast.If) else None
    return isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and \
        test.left.id == "__name__"


def _inspect(root: ast.AST, file: str, lines: list[str], banned: set[str]) -> list[Finding]:
    found = []

    def add(node: ast.AST, what: str, dynamic: bool = False) -> None:
        line = getattr(node, "lineno", 0)
        code = lines[line - 1].strip() if 0 < line <= len(lines) else ""
        found.append(Finding(file, line, code[:120], what, dynamic))

    for node in ast.walk(root):
        if isinstance(node, ast.Attribute):
            if normal(node.attr) in banned:
                add(node, f"uses torch's {node.attr}")
            elif node.attr in DYNAMIC_ATTRIBUTES:
                add(node, f"reaches names the grader cannot check ({node.attr})", True)
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").split(".")[0] in DYNAMIC_MODULES:
                add(node, f"imports {node.module}, which can reach any name", True)
            for alias in node.names:
                if normal(alias.name) in banned:
                    add(node, f"imports torch's {alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in DYNAMIC_MODULES:
                    add(node, f"imports {alias.name}, which can reach any name", True)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                normal(node.value) in banned and node.value.isidentifier():
            add(node, f"names torch's {node.value} in a string")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            name = node.func.id
            computed = len(node.args) < 2 or not (isinstance(node.args[1], ast.Constant)
                                                  and isinstance(node.args[1].value, str))
            if name in DYNAMIC_CALLS or (name in NAME_CALLS and computed):
                add(node, f"reaches names the grader cannot check ({name})", True)
    return found
