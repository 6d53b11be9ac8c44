"""How malformed input is refused: typed keys read from one mapping, and a SpecError naming
the file, the full key path and the fix for anything else.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import SpecError


class Reader:
    """Reads typed keys from one mapping and reports mistakes with their full key path."""

    def __init__(self, file: Path, data: Any, where: str):
        if not isinstance(data, dict):
            raise SpecError(file, where or "(top level)",
                            f"expected a mapping, got {kind_of(data)}",
                            "write it as `key: value` lines")
        self.file, self.data, self.where = file, data, where

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def get(self, name: str, types: type | tuple[type, ...], default: Any = ..., *,
            fix: str = "") -> Any:
        if name not in self.data:
            if default is ...:
                raise SpecError(self.file, self.key(name), "missing", fix or f"add `{name}:`")
            return default
        value = self.data[name]
        if isinstance(value, bool) and bool not in _tuple(types):
            raise SpecError(self.file, self.key(name), f"expected {_names(types)}, got a boolean",
                            fix)
        if not isinstance(value, types):
            raise SpecError(self.file, self.key(name),
                            f"expected {_names(types)}, got {kind_of(value)} {value!r}", fix)
        return value

    def positive(self, name: str, default: Any = ..., *, kind: type = int) -> Any:
        types = (int,) if kind is int else (int, float)
        value = self.get(name, types, default)
        if value is not None and value is not default and value <= 0:
            raise SpecError(self.file, self.key(name), f"must be > 0, got {value}")
        return value

    def unknown(self, allowed: set[str]) -> None:
        extra = sorted(set(self.data) - allowed)
        if extra:
            raise SpecError(self.file, self.key(extra[0]), "unknown key",
                            f"remove it, or use one of: {', '.join(sorted(allowed))}")


def _tuple(t: Any) -> tuple:
    return t if isinstance(t, tuple) else (t,)


def _names(types: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", list: "a list",
             dict: "a mapping", bool: "true/false", type(None): "nothing"}
    return " or ".join(names.get(t, t.__name__) for t in _tuple(types))


def kind_of(value: Any) -> str:
    return _names(type(value)) if not isinstance(value, bool) else "a boolean"


def read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(path, "(file)", f"cannot be read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(file)"
        raise SpecError(path, where, f"is not valid YAML: {getattr(exc, 'problem', exc)}",
                        "check the indentation and the colons on that line") from exc


def check_unique(path: Path, key: str, names: list[str]) -> None:
    seen: set[str] = set()
    for i, n in enumerate(names):
        if n in seen:
            raise SpecError(path, f"{key}[{i}]", f"duplicate name {n!r}", "give each entry its own name")
        seen.add(n)
