"""Formulas survive Markdown: every README, notebook and Markdown report renders with its `*`.

In CommonMark `(5*5*3 + 1)*6` becomes `(5<em>5</em>3 + 1)*6`, shown as "(553 + 1)*6". Each
document the course pack ships is rendered with a real CommonMark renderer (markdown-it-py),
and any emphasis that opens or closes against a letter, digit or bracket, which is what an
eaten multiplication looks like and prose emphasis never does, fails the test.
"""
from __future__ import annotations

import json

import pytest
from markdown_it import MarkdownIt

from conftest import REPO, SOLUTIONS, grade, variant
from grader.nbgrader_course import init_course

RENDERER = MarkdownIt("commonmark")
EMPHASIS = {"em_open": "after", "strong_open": "after", "em_close": "before",
            "strong_close": "before"}


def eaten(markdown: str) -> list[str]:
    """The emphasised stretches of `markdown` that sit inside a word or formula."""
    found = []
    for block in RENDERER.parse(markdown):
        kids = block.children or []
        for i, token in enumerate(kids):
            if token.type.endswith("_open"):
                outside = kids[i - 1].content[-1:] if i and kids[i - 1].type == "text" else ""
            elif token.type.endswith("_close"):
                outside = kids[i + 1].content[:1] if i + 1 < len(kids) and \
                    kids[i + 1].type == "text" else ""
            else:
                continue
            if token.type in EMPHASIS and outside and (outside.isalnum() or outside in "()[]"):
                inside = next((k.content for k in kids[i:] if k.type == "text"), "")
                found.append(f"{token.markup}{inside}{token.markup} in: {block.content[:90]}")
    return found


def notebook_markdown(path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def shipped_documents() -> list:
    docs = [REPO / "README.md", *sorted(REPO.glob("assignments/*/README.md")),
            *sorted(REPO.glob("docs/*.md")), REPO / "grader" / "bundled" / "PROVENANCE.md"]
    return docs + sorted(REPO.glob("assignments/*/*.ipynb")) + \
        sorted(REPO.glob("solutions/*/*.ipynb"))


def test_the_detector_sees_an_eaten_formula_and_spares_prose():
    assert eaten("C1 has (5*5*3 + 1)*6 = 456 parameters")
    assert eaten("flatten 16*5*5")
    assert not eaten("C1 has `(5*5*3 + 1)*6 = 456` parameters, and 16 \\* 5 \\* 5 too")
    assert not eaten("a *really* small net, **C3** and `x * y`, 3 * 4")


@pytest.mark.parametrize("path", shipped_documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_markdown_keeps_its_formulas(path):
    text = notebook_markdown(path) if path.suffix == ".ipynb" else path.read_text()
    assert eaten(text) == []


def test_nbgrader_course_readme_keeps_its_formulas(tmp_path):
    init_course(tmp_path / "course", REPO, ["lenet5_mnist"])
    assert eaten((tmp_path / "course" / "README.md").read_text()) == []


def test_markdown_report_of_a_buggy_model_keeps_its_formulas(tmp_path):
    buggy = variant(tmp_path, SOLUTIONS / "cifar10_cnn" / "model.py",
                    [("nn.Conv2d(6, 16, kernel_size=5)", "nn.Conv2d(6, 16, kernel_size=3)")])
    run = grade(buggy, "--assignment", "cifar10_cnn", "--only", "shapes,params",
                "--format", "markdown")
    assert run.code == 1, run.err
    assert "(3*3*6 + 1)*16 = 880" in run.out
    assert eaten(run.out) == []
