"""The trust boundary: nothing a submission does in its own process buys points.

Each attack here is graded next to its honest twin, the same model or functions without the
trick, and must score at most what the twin scores, with a reason, exit 0 or 1 (never 3),
nothing left behind (conftest.grade_contained checks that). The attacks: forging the
exported program so the replay worker runs code, forging measurements where the export was
made to fail, carrying the public test labels, writing stage files that break careless
readers, raising right after the last layer, forging the report's own markup, hiding a
forbidden call, and carrying hidden inputs out. The readers of worker files are fuzzed too.
"""
from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ASSIGNMENTS, SOLUTIONS, ZERO, Graded, grade, grade_contained, submission, \
    tiny_assignment
from grader import records

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="bubblewrap is Linux-only")

FAST = ("--only", "shapes,params")


def twins(tmp_path: Path, attack: str, values: dict | None = None, *args: str,
          assignment: str | Path = "cifar10_cnn", broken: bool = False) -> tuple[Graded, Graded]:
    """The attack and its honest twin (the payload run with TEST_VALUES["twin"] = True)."""
    out = []
    for twin in (False, True):
        folder = tmp_path / ("twin" if twin else "attack")
        path = submission(folder, attack, {**(values or {}), "twin": twin}, broken=broken)
        out.append(grade_contained(folder, path, *args, assignment=assignment))
    return out[0], out[1]


def test_a_forged_program_runs_no_code_in_the_replay_worker(tmp_path):
    attack, twin = twins(tmp_path, "replay_code_exec", None, *FAST)
    # one flatten and one Linear layer: right in themselves (2 of 12 units), nothing more
    assert twin.scores["shapes"] == pytest.approx(4 * 2 / 12, abs=1e-3)
    assert twin.scores["params"] < 3.0
    # the forged program is refused, so nothing about the attack is measured: it earns less
    # than its honest twin, never more
    assert attack.scores["shapes"] == 0.0 and attack.scores["params"] <= twin.scores["params"]
    assert "cannot replay call_function 'operator.attrgetter'" in attack.messages
    assert attack.run.code == 1


def test_measurements_forged_where_the_capture_was_made_to_fail_earn_nothing(tmp_path):
    attack, twin = twins(tmp_path, "self_reported_forgery", None, *FAST, broken=True)
    assert twin.scores == {"shapes": 0.0, "params": twin.scores["params"]}
    assert attack.scores == twin.scores
    assert "could not be measured apart from its code" in attack.messages
    assert attack.report["flags"] == [] and attack.report["notes"] == []


def test_a_model_that_carries_the_public_test_labels_is_withheld_and_flagged(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("GRADER_CACHE", str(tmp_path / "cache"))
    assignment = tiny_assignment(tmp_path, "tiny_cnn", (0.9, 0.3), epochs=1, batch_size=32)
    values = _fingerprints(assignment)
    args = ("--only", "accuracy", "--device", "cpu")
    attack, twin = twins(tmp_path, "public_label_lookup", values, *args, assignment=assignment)
    [twin_check], [check] = twin.ran, attack.ran
    assert twin_check["details"]["accuracy"] < 0.3 and twin_check["score"] == 0.0
    assert check["details"]["accuracy"] == 1.0            # the lookup works on the originals...
    assert check["details"]["shifted_accuracy"] < 0.3     # ... and on nothing else
    assert check["score"] == 0.0 and check["flags"] == ["test-labels"]
    assert attack.report["flags"] == ["test-labels"]
    assert check["feedback"].startswith("Withheld for review: on the same test images moved by "
                                        "one pixel, accuracy falls from 100.0%")


def test_an_honest_net_trained_for_one_epoch_is_not_taken_for_a_lookup(tmp_path, monkeypatch):
    """Its one epoch's running training accuracy is far below its test accuracy (it learned
    during that epoch); on training images after training, the two agree, so it keeps its
    points."""
    monkeypatch.setenv("GRADER_CACHE", str(tmp_path / "cache"))
    assignment = tiny_assignment(tmp_path, "cifar10_cnn", (0.5, 0.1), epochs=1, batch_size=32,
                                 optimizer={"name": "adam", "lr": 0.003})
    run = grade(SOLUTIONS / "cifar10_cnn" / "model.py", "--assignment", assignment,
                "--only", "accuracy", "--device", "cpu", "--format", "json")
    check = run.check("accuracy")
    details = check["details"]
    assert details["accuracy"] - details["curve"][-1]["train_accuracy"] > 0.25, details
    assert abs(details["accuracy"] - details["train_accuracy"]) < 0.25, details
    assert "flags" not in check and run.json()["flags"] == []
    assert check["score"] == check["max_score"], check["feedback"]


def _fingerprints(assignment: Path) -> dict:
    """What an attacker computes offline from the public test set: a key per test image."""
    spec = yaml.safe_load((assignment / "spec.yaml").read_text())
    norm = spec["training"]["normalize"]
    with np.load(assignment / "tiny.npz") as data:
        x, y = data["x_test"].astype(np.float32) / 255, data["y_test"]
    x = (x - np.array(norm["mean"])[:, None, None]) / np.array(norm["std"])[:, None, None]
    pattern = np.random.default_rng(7).standard_normal(x.shape[1:]).astype(np.float32)
    keys = (x.astype(np.float32) * pattern).sum((1, 2, 3))
    return {"pattern": pattern.tolist(), "keys": keys.tolist(), "labels": y.tolist()}


@pytest.mark.parametrize("kind", ["deep", "wrong_types", "nan", "huge_numbers", "not_json"])
def test_stage_files_that_break_careless_readers_give_a_complete_result(tmp_path, kind):
    path = submission(tmp_path, "malformed_files", {"kind": kind})
    graded = grade_contained(tmp_path, path, *FAST)
    assert graded.run.code == 1 and graded.scores == ZERO
    assert [c["status"] for c in graded.ran] == ["error", "error"]
    assert "measurements cannot be read" in graded.messages
    json.loads(graded.run.out, parse_constant=_refuse)   # strict JSON: no NaN, no Infinity


def _refuse(name: str):
    raise ValueError(f"{name} in the report")


def test_a_forward_that_raises_after_the_last_layer_loses_the_output(tmp_path):
    graded = grade_contained(tmp_path, submission(tmp_path, "forward_raises_at_the_end"), *FAST)
    shapes = next(c for c in graded.report["checks"] if c["id"] == "shapes")
    # 8 right layers and 4 right activations, but no scores: 11 of 12 units
    assert shapes["score"] == pytest.approx(4 * 11 / 12, abs=1e-3)
    assert "The forward pass stopped after fc3" in shapes["feedback"]
    assert "RuntimeError: done with (2, 10)" in shapes["feedback"]
    assert graded.scores["params"] == 3.0


def test_feedback_cannot_forge_the_report(tmp_path):
    from markdown_it import MarkdownIt

    path = submission(tmp_path, "forged_report")
    for fmt in ("markdown", "text", "html", "junit"):
        run = grade(path, "-a", "cifar10_cnn", *FAST, "--format", fmt)
        assert run.code == 1, run.err
        assert "\x1b" not in run.out and "\x07" not in run.out
        if fmt == "markdown":
            tokens = MarkdownIt("commonmark").enable("table").parse(run.out)
            headings = ["".join(c.content for c in tokens[i + 1].children if c.type == "text")
                        for i, t in enumerate(tokens) if t.type == "heading_open" and t.tag == "h1"]
            assert headings == ["cifar10_cnn: 0 / 7"]          # the real one, once
            assert "\n# cifar10_cnn: 7 / 7" in run.out            # the forged one: in a fence
            cells = [t.content for t in tokens if t.type == "inline"]
            assert "4 / 4" not in cells and not any(t.type == "html_inline" for t in tokens)
        if fmt == "html":
            assert "<img src=x" not in run.out and "&lt;img src=x" in run.out


POOLING = '''
import torch
import torch.nn.functional as F


def pool_output_shape(shape, kernel_size=2, stride=None):
    n, c, h, w = shape
    stride = stride or kernel_size
    return (n, c, (h - kernel_size) // stride + 1, (w - kernel_size) // stride + 1)


def max_pool2d(x, kernel_size=2, stride=None):
    HIDE
        return MAX(x, kernel_size, stride or kernel_size)


def avg_pool2d(x, kernel_size=2, stride=None):
    HIDE
        return AVG(x, kernel_size, stride or kernel_size)
'''
NAMED = "calls torch's max_pool2d; the assignment asks you to write max_pool2d yourself"
WHERE = "(pooling.py, line 14: `return "
DYNAMIC = "so the grader cannot check that max_pool2d is written without torch's own version"
HIDINGS = {   # hiding: (the code around the call, max call, avg call, what the student reads)
    "honest twin": ("if True:", "F.max_pool2d", "F.avg_pool2d", (NAMED, WHERE)),
    "DisableTorchFunction": ("with torch._C.DisableTorchFunction():", "F.max_pool2d",
                             "F.avg_pool2d", (NAMED, WHERE)),
    "computed name": ("if True:", 'getattr(F, "max_" + "pool2d")',
                      'getattr(F, "avg_" + "pool2d")', (NAMED,)),
    "computed name, unwatched": ("with torch._C.DisableTorchFunction():",
                                 'getattr(F, "max_" + "pool2d")', 'getattr(F, "avg_" + "pool2d")',
                                 (DYNAMIC,)),
    "__import__": ("if True:", '__import__("torch.nn.functional").nn.functional.max_pool2d',
                   '__import__("torch.nn.functional").nn.functional.avg_pool2d', (NAMED, WHERE)),
}


@pytest.mark.parametrize("hiding", sorted(HIDINGS))
def test_a_forbidden_call_is_found_however_it_is_hidden(tmp_path, hiding):
    hide, max_call, avg_call, told = HIDINGS[hiding]
    folder = tmp_path / hiding.replace(" ", "_").replace(",", "")
    folder.mkdir()
    code = POOLING.replace("HIDE", hide).replace("MAX", max_call).replace("AVG", avg_call)
    (folder / "pooling.py").write_text(code)
    graded = grade_contained(folder, folder / "pooling.py", assignment="pooling")
    assert graded.scores == {"pool_shapes": 2.0, "max_pool": 0.0, "avg_pool": 0.0}
    feedback = next(c["feedback"] for c in graded.report["checks"] if c["id"] == "max_pool")
    for words in told:
        assert words in feedback


SECRET = 73519.25


def test_hidden_inputs_never_reach_anything_a_student_reads(tmp_path):
    """The hidden case's input is printed, raised and read from request.json by the
    submission; no report of any format shows it, and its case fails with the type only."""
    course = tmp_path / "course"
    (course / "assignments" / "twice").mkdir(parents=True)
    (course / "solutions" / "twice").mkdir(parents=True)
    (course / "assignments" / "twice" / "spec.yaml").write_text(yaml.safe_dump({
        "name": "twice", "functions": [{"name": "twice", "returns": "tensor"}],
        "checks": [{"id": "twice", "kind": "functions", "points": 2, "function": "twice",
                    "cases": [{"args": [{"tensor": [1.0, 2.0]}], "expect": {"tensor": [2.0, 4.0]}},
                              {"hidden": "more"}]}]}))
    (course / "solutions" / "twice" / "hidden_cases.yaml").write_text(yaml.safe_dump(
        {"more": [{"args": [{"tensor": [SECRET, 8.0]}], "expect": {"tensor": [2 * SECRET, 16.0]}}]}))
    (tmp_path / "twice.py").write_text(
        "import sys\n"
        "def twice(x):\n"
        "    request = open(sys.argv[1] + '/request.json').read()\n"
        "    print('inputs:', x.tolist(), request)\n"
        "    if x[0] > 1000:\n"
        "        raise ValueError(f'leaking {x.tolist()} {request}')\n"
        "    return 2 * x\n")
    spec = course / "assignments" / "twice"
    outputs = [grade(tmp_path / "twice.py", "-a", spec, "--format", fmt).out
               for fmt in ("json", "text", "markdown", "html", "junit", "gradescope")]
    for out in outputs:
        assert str(SECRET) not in out and "73519" not in out and "73,519" not in out
    report = json.loads(outputs[0])
    [check] = report["checks"]
    assert check["score"] == 1.0                       # the visible case passes, the hidden fails
    assert check["details"]["cases"][1] == {"n": 2, "function": "twice", "label": "",
                                            "hidden": True, "passed": False,
                                            "problem": "raised ValueError", "mistake": ""}


# ---------------------------------------------------------------- the readers, fuzzed

STAGE_NAMES = sorted(records.DECODERS)


def _random_json(rng: random.Random, depth: int = 0):
    choice = rng.randrange(9 if depth < 6 else 5)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([0, -1, 7, 2 ** 40, 10 ** 30, 1.5, -0.0, 1e308])
    if choice == 3:
        return rng.choice(["", "x", "\x1b[2J", "conv2d", "a" * 5000, "ok", "\ud800"])
    if choice == 4:
        return rng.choice(["events", "modules", "cases", "curve", "error"])
    if choice in (5, 6):
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["ok", "error", "events", "modules", "cases", "curve", "torch", "output",
            "crash_site", "type", "message", "frames", "path", "shape", "params", "untraced"]
    return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randrange(5))}


def _valid_like(stage: str, rng: random.Random) -> dict:
    """A plausible stage file with one field broken, for the deeper paths of each decoder."""
    base = {"ok": True, "torch": "2.4.0",
            "modules": [{"path": "", "class": "Model", "category": "root", "hyper": {},
                         "params": [{"name": "w", "shape": [3, 4], "trainable": True}]}],
            "events": [{"kind": "module", "path": "c", "parent": "", "category": "conv2d",
                        "class": "Conv2d", "hyper": {"kernel_size": [5, 5]}, "in": [2, 3, 8, 8],
                        "out": [2, 6, 4, 4]}],
            "cases": [{"ok": True, "result": {"kind": "int", "value": 3}, "calls": []}],
            "curve": [{"epoch": 1, "loss": 2.3, "train_accuracy": 0.1}], "stopped": None,
            "train_seconds": 1.0, "device": "cpu", "output": {"shape": [2, 10], "finite": True}}
    key = rng.choice(sorted(base))
    base[key] = _random_json(rng)
    return base


def test_fuzzed_stage_files_always_decode_to_a_result_in_bounded_time(tmp_path):
    rng = random.Random(0)
    job = tmp_path / "job"
    (job / "out").mkdir(parents=True)
    start = time.monotonic()
    for i in range(600):
        stage = rng.choice(STAGE_NAMES)
        data = _valid_like(stage, rng) if i % 2 else _random_json(rng)
        text = json.dumps(data)
        if i % 7 == 0:
            text = text[:rng.randrange(len(text) + 1)]        # truncated
        (job / "out" / f"{stage}.json").write_text(text, errors="surrogatepass")
        result = records.read_stage(job, stage)
        assert isinstance(result, records.StageResult)
        assert result.ok or result.error is not None
    assert time.monotonic() - start < 30


@pytest.mark.parametrize("name, array", [
    ("floats", np.zeros((2, 5), np.float32)),
    ("objects", np.array([[None] * 5] * 2, dtype=object)),
    ("wrong length", np.zeros((2, 4), np.int64)),
    ("one row", np.zeros(5, np.int64)),
    ("strings", np.array([["a"] * 5] * 2)),
    ("structured", np.zeros((2, 5), dtype=[("a", "i4"), ("b", "f4")])),
    ("int8", np.full((2, 5), 3, np.int8)),
])
def test_predictions_of_every_dtype_and_shape_are_checked(tmp_path, name, array):
    (tmp_path / "out").mkdir()
    np.save(tmp_path / "out" / "predictions.npy", array, allow_pickle=True)
    got = records.read_predictions(tmp_path, 5, rows=2)
    if name == "int8":
        assert got.dtype == np.int64 and got.shape == (2, 5) and (got == 3).all()
    else:
        assert isinstance(got, str)


@pytest.mark.parametrize("content", [
    b"PK\x03\x04 an npz archive", b"\x93NUMPY\x01\x00" + b"\xff\xff" + b"{" * 70000,
    b"\x93NUMPY\x09\x00", b"", b"\x93NUMPY\x01\x00\x10\x00{'descr': '<i8', 'fortran_order'",
])
def test_predictions_files_that_are_not_arrays_are_refused(tmp_path, content):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "predictions.npy").write_bytes(content)
    assert isinstance(records.read_predictions(tmp_path, 5, rows=2), str)


def test_a_huge_stage_file_is_refused_without_being_parsed(tmp_path):
    (tmp_path / "out").mkdir()
    path = tmp_path / "out" / "probe.json"
    with path.open("w") as f:
        f.write('{"ok": true, "events": [' + ",".join(["{}"] * 3_000_000) + "]}")
    start = time.monotonic()
    result = records.read_stage(tmp_path, "probe")
    assert not result.ok and "larger than 8 MiB" in result.error.message
    assert time.monotonic() - start < 1
