"""Reporters: HTML (rendered in headless Chromium), Gradescope results.json, JUnit XML, terminal.

Unit tests read hand-built GradeResults, so every status, a hidden check and hostile student
strings are covered in milliseconds. End-to-end tests run the real `grade` command on the
reference CIFAR-10 solution and on a copy with a planted bug (--only shapes,params: no
training); one slow test trains once for the accuracy charts.
"""
from __future__ import annotations

import base64
import io
import json
import os
import pty
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import jsonschema
import numpy as np
import pytest
from PIL import Image

from conftest import REPO, SCHEMAS, SOLUTIONS, grade, variant
from grader.reporters import gradescope, render, text
from grader.results import CheckResult, GradeResult

HIDDEN_FEEDBACK = ("0 of 2 cases passed (2 of them hidden).\n"
                   "  Also failed: #1 (hidden), #2 (hidden): wrong values")
HOSTILE = "<script>alert('pwned')</script>"

# Gradescope's results.json, as its specification describes it (the schema file says where from).
GRADESCOPE_SCHEMA = json.loads((SCHEMAS / "gradescope_results.json").read_text())
JUNIT_XSD = SCHEMAS / "junit.xsd"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync")
ANSI = "\x1b["


def shapes_check() -> CheckResult:
    """conv1 right; conv2 with the wrong kernel and no activation after it."""
    rows = [{"name": "conv1", "type": "conv2d", "in": [3, 32, 32], "got": [6, 28, 28],
             "expected": [6, 28, 28], "formula": "O = (32 - 5 + 2*0)/1 + 1 = 28",
             "shape_ok": True, "ok": True, "message": "conv1: 6x28x28 as expected",
             "activation": {"expected": "relu", "got": "relu", "ok": True, "message": ""}},
            {"name": "conv2", "type": "conv2d", "in": [6, 14, 14], "got": [16, 12, 12],
             "expected": [16, 10, 10], "formula": "O = (14 - 3 + 2*0)/1 + 1 = 12",
             "shape_ok": False, "ok": False, "message": "conv2: got 16x12x12",
             "activation": {"expected": "relu", "got": None, "ok": False, "message": ""}}]
    feedback = ("1 of 2 layers have the expected shape.\nconv2: got 16x12x12, expected 16x10x10\n"
                f"line 7: x = self.conv2(x)  # {HOSTILE}")
    return CheckResult("shapes", "shapes", 2.0, 4.0, "failed", feedback, {"layers": rows})


def params_check() -> CheckResult:
    rows = [{"name": "conv1", "expected": 456, "got": 456, "credit": 1.0,
             "formula": "(5*5*3 + 1)*6 = 456"},
            {"name": "conv2", "expected": 2416, "got": 880, "credit": 0.0,
             "formula": "(5*5*6 + 1)*16 = 2,416"}]
    return CheckResult("params", "params", 1.5, 3.0, "failed", "1 of 2 layers ...",
                       {"layers": rows, "total": 1336, "expected_total": 2872})


def accuracy_check(status: str = "passed") -> CheckResult:
    if status == "error":
        return CheckResult("accuracy", "accuracy", 0.0, 3.0, "error",
                           "No accuracy could be measured: the model raised", {"curve": []})
    classes = ["cat", "dog", "ship"]
    details = {"accuracy": 0.6, "per_class": {"cat": 0.5, "dog": 0.4, "ship": 0.9},
               "confusion": [[5, 4, 1], [5, 4, 1], [0, 1, 9]], "classes": classes,
               "curve": [{"epoch": e, "loss": 2.0 / e, "train_accuracy": 0.2 * e}
                         for e in (1, 2, 3)],
               "dataset": {"name": "cifar10", "variant": "subset", "n_train": 500, "n_test": 30},
               "device": "cpu", "train_seconds": 4.2}
    return CheckResult("accuracy", "accuracy", 3.0, 3.0, "passed", "Test accuracy 60.00%.",
                       details)


def mixed_result(accuracy_status: str = "passed") -> GradeResult:
    """Every status, a hidden check and student strings that would break naive markup."""
    hidden = CheckResult("sum_hidden", "functions", 0.0, 2.0, "failed", HIDDEN_FEEDBACK)
    crashed = CheckResult("softmax", "functions", 0.0, 1.0, "error",
                          "softmax raised ValueError\n\x1b[31mred\x1b[0m \x00 & <done>")
    return GradeResult(
        "cifar10_cnn", "students/<b>eve</b>",
        [shapes_check(), params_check(), accuracy_check(accuracy_status), hidden, crashed],
        duration_s=12.3, versions={"grader": "0.1.0"},
        notes=["2 notebook statement(s) were not run"],
        skipped_cells=[{"cell": 4, "line": "print('<img src=x onerror=alert(1)>')",
                        "reason": "runs code"}])


class Page(HTMLParser):
    """What a browser would build from a page: tags with attributes, table rows, visible text."""

    def __init__(self, page: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.rows: list[tuple[str, list[str]]] = []
        self.text: list[str] = []
        self._cell: list[str] | None = None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "tr":
            self.rows.append((attrs.get("class") or "", []))
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1][1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def row(self, first_cell: str) -> tuple[str, list[str]]:
        return next(r for r in self.rows if r[1] and r[1][0] == first_cell)

    def images(self) -> list[dict]:
        return [attrs for tag, attrs in self.tags if tag == "img"]


def decode_png(uri: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    return Image.open(io.BytesIO(base64.b64decode(uri[len(prefix):])))


# --- HTML ------------------------------------------------------------------------------------

def test_html_shows_student_strings_as_text_never_as_markup():
    page = Page(render(mixed_result(), "html"))
    assert not [t for t, _ in page.tags if t == "script"]
    assert [a["src"][:5] for a in page.images()] == ["data:"] * 3   # the charts, not <img src=x>
    shown = "".join(page.text)
    assert HOSTILE in shown and "print('<img src=x onerror=alert(1)>')" in shown
    assert "students/<b>eve</b>" in shown


def test_html_is_self_contained():
    page = Page(render(mixed_result(), "html"))
    links = [v for _, attrs in page.tags for k, v in attrs.items() if k in ("src", "href")]
    assert links and all(v.startswith(("data:", "#")) for v in links), links
    assert not [t for t, _ in page.tags if t == "link"]


def test_html_summary_comes_first_with_score_and_one_row_per_check():
    page = Page(render(mixed_result(), "html"))
    header = page.rows[:6]
    assert [r[1][0] for r in header] == ["Check", "shapes", "params", "accuracy", "sum_hidden",
                                         "softmax"]
    assert page.row("shapes")[1][2:] == ["2 / 4", "✘ failed"]
    assert page.row("softmax")[1][3] == "! error"
    assert "6.5 / 13" in "".join(page.text)


def test_html_layer_table_joins_shapes_and_params():
    page = Page(render(mixed_result(), "html"))
    assert page.row("Layer")[1] == ["Layer", "Type", "Input", "Output", "Expected", "Formula",
                                    "Parameters"]
    cls, conv1 = page.row("conv1")
    assert cls == "ok"
    assert conv1 == ["conv1", "conv2d + relu", "3x32x32", "6x28x28", "6x28x28",
                     "O = (32 - 5 + 2*0)/1 + 1 = 28", "(5*5*3 + 1)*6 = 456"]
    cls, conv2 = page.row("conv2")
    assert cls == "bad"
    assert conv2[1] == "conv2d + no activation (the spec asks for relu)"
    assert conv2[3:] == ["16x12x12", "16x10x10", "O = (14 - 3 + 2*0)/1 + 1 = 12",
                         "880; expected (5*5*6 + 1)*16 = 2,416"]
    assert page.row("Total parameters")[1] == ["Total parameters", "1,336; expected 2,872"]


def test_text_and_markdown_keep_shape_and_activation_verdicts_apart():
    """A right shape is never marked wrong for its activation: the mark is the shape's, the
    activation has its own column."""
    result = mixed_result()
    text = render(result, "text")
    assert "✔ conv1" in text and "relu ✔" in text
    assert "✘ conv2" in text and "none ✘ (relu)" in text
    md = render(result, "markdown")
    assert "| Layer | Input | Output | Expected | Formula | Activation |" in md
    assert "none ✘ (relu) |" in md


def test_html_draws_training_curve_confusion_matrix_and_per_class_accuracy():
    page = Page(render(mixed_result(), "html"))
    alts = [img["alt"] for img in page.images()]
    assert alts == ["Training loss and accuracy per epoch",
                    "Confusion matrix on the test set (rows: true class)",
                    "Test accuracy per class"]
    for img in page.images():
        chart = decode_png(img["src"]).convert("RGB")
        assert chart.width >= 400 and len(chart.getcolors(1 << 16) or range(1 << 16)) > 50
    assert "Trained on cifar10 (subset: 500 training and 30 test images) on cpu in 4 s." in \
        "".join(page.text)


def test_html_without_training_has_feedback_and_no_charts():
    page = Page(render(mixed_result("error"), "html"))
    assert page.images() == []
    assert "No accuracy could be measured: the model raised" in "".join(page.text)


def test_only_the_html_reporter_imports_matplotlib():
    code = (
        "import sys\n"
        "from grader.reporters import render\n"
        "from grader.results import CheckResult, GradeResult\n"
        "curve = [{'epoch': 1, 'loss': 1.0, 'train_accuracy': 0.5}]\n"
        "r = GradeResult('a', 's', [CheckResult('acc', 'accuracy', 1, 1, 'passed', 'ok',"
        " {'curve': curve})])\n"
        "for fmt in ('text', 'json', 'markdown', 'gradescope', 'junit'):\n"
        "    render(r, fmt)\n"
        "print('matplotlib' in sys.modules)\n"
        "render(r, 'html')\n"
        "print('matplotlib' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert proc.stdout.split() == ["False", "True"], proc.stderr


# --- Gradescope ------------------------------------------------------------------------------

def test_gradescope_results_follow_the_specification():
    result = mixed_result()
    out = gradescope.results_json(result)
    jsonschema.validate(out, GRADESCOPE_SCHEMA)
    tests = {t["name"]: t for t in out["tests"]}
    assert list(tests) == ["shapes", "params", "accuracy", "sum_hidden", "softmax"]
    assert all({"name", "score", "max_score", "status", "output", "visibility"} <= set(t)
               for t in out["tests"])
    assert [t["status"] for t in out["tests"]] == ["failed", "failed", "passed", "failed", "failed"]
    assert out["score"] == sum(t["score"] for t in out["tests"]) == 6.5
    assert tests["shapes"]["output"] == result.checks[0].feedback
    assert tests["shapes"]["max_score"] == 4.0
    assert "print('<img src=x onerror=alert(1)>')" in out["output"]
    assert tests["softmax"]["output"] == "softmax raised ValueError\nred  & <done>"


def test_gradescope_schema_rejects_what_gradescope_would():
    good = gradescope.results_json(mixed_result())
    for broken in ({**good, "tests": [{**good["tests"][0], "status": "error"}]},
                   {**good, "tests": [{**good["tests"][0], "visibility": "secret"}]},
                   {"tests": [{"name": "no score anywhere"}]}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, GRADESCOPE_SCHEMA)


def test_gradescope_shows_every_test_with_its_feedback():
    tests = gradescope.results_json(mixed_result())["tests"]
    assert {t["visibility"] for t in tests} == {"visible"}
    assert next(t for t in tests if t["name"] == "sum_hidden")["output"] == HIDDEN_FEEDBACK


# --- JUnit -----------------------------------------------------------------------------------

def junit_cases(xml_text: str) -> tuple[ET.Element, dict[str, ET.Element]]:
    root = ET.fromstring(xml_text)
    return root, {c.get("name"): c for c in root.iter("testcase")}


def test_junit_has_one_testcase_per_check_with_failures_carrying_feedback():
    root, cases = junit_cases(render(mixed_result(), "junit"))
    suite = root.find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("5", "3", "1")
    assert list(cases) == ["shapes", "params", "accuracy", "sum_hidden", "softmax"]
    failure = cases["shapes"].find("failure")
    assert failure.get("message") == "2 / 4 points: 1 of 2 layers have the expected shape."
    assert HOSTILE in failure.text and "conv2: got 16x12x12" in failure.text
    assert cases["accuracy"].find("failure") is None
    assert cases["softmax"].find("error") is not None
    assert cases["sum_hidden"].find("failure").text == HIDDEN_FEEDBACK


def junit_errors(xml: str) -> list[str]:
    """Why `xml` is not valid against the common JUnit schema (empty when it is)."""
    import xmlschema

    schema = xmlschema.XMLSchema(str(JUNIT_XSD))
    return [str(e.reason) for e in schema.iter_errors(xml)]


def test_junit_validates_and_every_testcase_has_a_time():
    xml = render(mixed_result(), "junit")
    assert junit_errors(xml) == []
    _, cases = junit_cases(xml)
    times = {name: case.get("time") for name, case in cases.items()}
    assert times == {"shapes": "0.000", "params": "0.000", "accuracy": "4.200",
                     "sum_hidden": "0.000", "softmax": "0.000"}


def test_the_junit_schema_rejects_what_junit_readers_would():
    xml = render(mixed_result(), "junit")
    assert junit_errors(xml.replace('name="shapes" time', 'time', 1))        # a nameless case
    assert junit_errors(xml.replace("<properties>", "<properties><oops/>", 1))
    assert junit_errors(xml.replace('errors="1" time="12.300" skipped',
                                    'errors="1" time="twelve" skipped', 1))


def test_junit_stays_parseable_when_feedback_has_control_characters():
    _, cases = junit_cases(render(mixed_result(), "junit"))
    error = cases["softmax"].find("error").text
    assert "red" in error and "& <done>" in error and "\x1b" not in error


# --- checks left out by --only ----------------------------------------------------------------

def with_skipped() -> GradeResult:
    left_out = CheckResult("accuracy", "accuracy", 0.0, 0.0, "skipped",
                           "Not run: left out by --only params,shapes.", {"points": 3.0})
    return GradeResult("cifar10_cnn", "s", [shapes_check(), params_check(), left_out])


def test_a_skipped_check_is_listed_everywhere_and_counted_nowhere():
    result = with_skipped()
    data = json.loads(render(result, "json"))
    assert (data["score"], data["max_score"]) == (3.5, 7.0)
    assert data["checks"][2]["status"] == "skipped" and data["checks"][2]["max_score"] == 0
    row = next(line for line in render(result, "text").splitlines() if "accuracy" in line)
    assert "- skipped" in row and "/ 3" not in row
    _, cases = junit_cases(render(result, "junit"))
    assert cases["accuracy"].find("skipped") is not None
    test = gradescope.results_json(result)["tests"][2]
    assert (test["score"], test["max_score"], test["extra_data"]) == (0.0, 0.0,
                                                                      {"status": "skipped"})
    assert "status" not in test


def test_only_lists_what_it_left_out_and_scores_what_ran():
    run = grade(SOLUTIONS / "cifar10_cnn", "--only", "shapes", "--format", "json")
    assert run.code == 0, run.err
    data = run.json()
    assert [(c["id"], c["status"]) for c in data["checks"]] == [
        ("shapes", "passed"), ("params", "skipped"), ("accuracy", "skipped")]
    assert (data["score"], data["max_score"]) == (4, 4)
    assert run.check("accuracy")["details"] == {"points": 3.0}


# --- terminal --------------------------------------------------------------------------------

def test_text_report_in_a_file_keeps_each_sentence_on_one_line(tmp_path):
    long = ("No accuracy could be measured: training stopped: forward returned shape (64, 9); "
            "the loss needs (64, 10): one score per class for each image")
    result = GradeResult("cifar10_cnn", "s", [CheckResult("accuracy", "accuracy", 0.0, 3.0,
                                                          "error", long)],
                         notes=["a note that is long enough to be wrapped by a narrow console "
                                "if the reporter let it, which it must not do"])
    report = render(result, "text").splitlines()
    assert long in report
    assert any(line.endswith("which it must not do") and line.startswith("note:")
               for line in report)


def test_text_report_uses_colour_only_when_asked():
    result = mixed_result()
    plain = render(result, "text", color=False)
    assert ANSI not in plain and "\x00" not in plain      # not even escapes the student raised
    assert "softmax raised ValueError\nred  & <done>" in plain
    assert ANSI in render(result, "text", color=True)


def run_in_terminal(*args: str, no_color: bool) -> str:
    """`grade ARGS` with a pseudo-terminal as stdout, as a student at a shell sees it."""
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env.update({"TERM": "xterm-256color", **({"NO_COLOR": "1"} if no_color else {})})
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "grader", *args], stdout=terminal,
                            stderr=terminal, env=env)
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:        # the terminal closed: the command is done
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=300)
    os.close(controller)
    return b"".join(chunks).decode("utf-8", "replace")


def test_terminal_colour_follows_tty_and_no_color():
    args = (str(SOLUTIONS / "cifar10_cnn"), "--only", "params")
    coloured = run_in_terminal(*args, no_color=False)
    assert "params" in coloured and ANSI in coloured
    plain = run_in_terminal(*args, no_color=True)
    assert "params" in plain and ANSI not in plain
    piped = grade(*args)
    assert "params" in piped.out and ANSI not in piped.out


# --- end to end: the real command, the real browser ----------------------------------------------

def chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium with a fresh profile; CI must have it (scripts/install-system-deps.sh)."""
    exe = shutil.which("chromium")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: run scripts/install-system-deps.sh")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    return subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=180)


def screenshot(tmp_path, page) -> Image.Image:
    png = tmp_path / f"{page.stem}.png"
    proc = chromium(tmp_path, f"--screenshot={png}", "--window-size=1200,1600", page.as_uri())
    assert png.is_file(), proc.stderr
    return Image.open(png).convert("RGB")


def dom(tmp_path, page) -> str:
    proc = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def red_pixels(image: Image.Image) -> int:
    """Pixels in the report's failure red (#cf222e and the tones around it)."""
    r, g, b = np.asarray(image, dtype=int).transpose(2, 0, 1)
    return int(((r > 180) & (g < 80) & (b < 90)).sum())


@pytest.fixture(scope="module")
def buggy_model(tmp_path_factory):
    """The reference model with conv2's kernel 3 instead of 5: wrong shapes, wrong counts."""
    return variant(tmp_path_factory.mktemp("buggy"), SOLUTIONS / "cifar10_cnn" / "model.py",
                   [("nn.Conv2d(6, 16, kernel_size=5)", "nn.Conv2d(6, 16, kernel_size=3)")])


def test_html_report_renders_in_headless_chromium(tmp_path):
    report = tmp_path / "report.html"
    run = grade(SOLUTIONS / "cifar10_cnn", "--only", "shapes,params", "--out", report)
    assert run.code == 0, run.err
    assert "cifar10_cnn: 7 / 7 -> " in run.out
    shot = screenshot(tmp_path, report)
    assert shot.size == (1200, 1600)
    assert len(shot.getcolors(1 << 20)) > 100                          # text, tables, badges
    dark = int((np.asarray(shot, dtype=int).sum(axis=2) < 200).sum())
    assert dark > 5000                                                 # plenty of visible text
    assert red_pixels(shot) == 0                                       # nothing failed
    assert 'id="score">7 / 7<' in dom(tmp_path, report)


def test_html_report_of_a_buggy_model_shows_red_rows(tmp_path, buggy_model):
    report = tmp_path / "buggy.html"
    run = grade(buggy_model, "--assignment", "cifar10_cnn", "--only", "shapes,params",
                "--format", "html", "--out", report)
    assert run.code == 1, run.err
    assert red_pixels(screenshot(tmp_path, report)) > 500
    page = Page(dom(tmp_path, report))
    assert page.row("conv2")[0] == "bad"
    assert "16x12x12" in page.row("conv2")[1]
    assert "O = (14 - 3 + 2*0)/1 + 1 = 12 means K=3; the spec asks for K=5" in "".join(page.text)


def test_gradescope_results_for_a_buggy_model(tmp_path, buggy_model):
    out = tmp_path / "results.json"
    run = grade(buggy_model, "--assignment", "cifar10_cnn", "--only", "shapes,params",
                "--format", "gradescope", "--out", out)
    assert run.code == 1, run.err
    results = json.loads(out.read_text())
    jsonschema.validate(results, GRADESCOPE_SCHEMA)
    tests = {t["name"]: t for t in results["tests"]}
    assert tests["shapes"]["status"] == "failed" and tests["shapes"]["max_score"] == 4
    assert tests["shapes"]["score"] < 4
    assert "conv2: got 16x12x12, expected 16x10x10" in tests["shapes"]["output"]
    assert results["score"] == sum(t["score"] for t in results["tests"])


def test_junit_report_for_a_buggy_model(tmp_path, buggy_model):
    out = tmp_path / "report.xml"                      # the suffix picks the format
    run = grade(buggy_model, "--assignment", "cifar10_cnn", "--only", "shapes,params",
                "--out", out)
    assert run.code == 1, run.err
    assert junit_errors(out.read_text()) == []
    root, cases = junit_cases(out.read_text())
    assert root.find("testsuite").get("failures") == "2"
    assert root.find("testsuite").get("skipped") == "1"
    assert cases["accuracy"].find("skipped").get("message").startswith("Not run: left out")
    assert all(case.get("time") for case in cases.values())
    assert "K=3; the spec asks for K=5" in cases["shapes"].find("failure").text
    assert "yours: (3*3*6 + 1)*16 = 880" in cases["params"].find("failure").text


@pytest.mark.slow
@pytest.mark.data
def test_html_report_after_training_has_the_accuracy_charts(tmp_path, data_dir):
    report = tmp_path / "trained.html"
    run = grade(SOLUTIONS / "cifar10_cnn", "--only", "accuracy", "--device", "cpu",
                "--data-dir", data_dir, "--out", report)
    assert run.code == 0, run.err
    page = Page(report.read_text())
    charts = {img["alt"]: decode_png(img["src"]) for img in page.images()}
    assert list(charts) == ["Training loss and accuracy per epoch",
                            "Confusion matrix on the test set (rows: true class)",
                            "Test accuracy per class"]
    assert all(c.width >= 400 and c.height >= 300 for c in charts.values())
    assert "Trained on cifar10" in "".join(page.text)
    shot = screenshot(tmp_path, report)
    assert len(shot.getcolors(1 << 20)) > 1000                         # the charts drew
