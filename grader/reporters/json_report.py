"""JSON, schema 1 (docs/DESIGN.md): the contract scripts and other tools read."""
from __future__ import annotations

import json

from ..results import GradeResult


def render(result: GradeResult) -> str:
    return json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n"
