"""JUnit XML: one testcase per check, for GitHub Classroom, GitLab and other CI test views.

A check that lost points is a <failure>, one the grader could not measure an <error>, one
left out (--only) is <skipped/>, each carrying the feedback, so the CI page says what to fix.
The file validates against the common JUnit schema (Jenkins' junit-10.xsd; tests/schemas/):
scores go into the suite's properties (a testcase may hold none there), and every testcase
has a `time`, since readers such as dorny/test-reporter show NaN without one. A testcase's
time is what can be put down to that check alone: training for accuracy, else 0, because
one worker measures shapes and counts together; the suite's time is the whole grading.
Feedback can quote anything a submission printed, and XML 1.0 forbids most control
characters: those are dropped or replaced rather than written into a file no parser accepts.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from ..results import CheckResult, GradeResult
from .text import plain

NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
OUTCOME = {"failed": "failure", "error": "error", "skipped": "skipped"}


def xml_text(text: str) -> str:
    """`text` without terminal escapes, and what else XML 1.0 cannot hold replaced by U+FFFD."""
    return NOT_XML.sub("\ufffd", plain(text))


def render(result: GradeResult) -> str:
    counts = {k: str(sum(c.status == s for c in result.checks))
              for s, k in (("failed", "failures"), ("error", "errors"))}
    common = {"tests": str(len(result.checks)), **counts, "time": f"{result.duration_s:.3f}"}
    root = ET.Element("testsuites", name="cnn-grader", **common)
    suite = ET.SubElement(root, "testsuite", name=xml_text(result.assignment), **common,
                          skipped=str(sum(c.status == "skipped" for c in result.checks)))
    props = ET.SubElement(suite, "properties")
    values = [("submission", result.submission), ("score", f"{result.score:g}"),
              ("max_score", f"{result.max_score:g}"), ("device", result.device),
              ("status", result.status)]
    values += [(f"{key}.{c.id}", f"{getattr(c, key):g}") for c in result.checks
               for key in ("score", "max_score")]
    for name, value in values:
        ET.SubElement(props, "property", name=xml_text(name), value=xml_text(value))
    for check in result.checks:
        suite.append(_testcase(result.assignment, check))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def check_seconds(check: CheckResult) -> float:
    """The time that belongs to this check alone (see the module's docstring)."""
    seconds = check.details.get("train_seconds") if check.kind == "accuracy" else None
    return float(seconds) if isinstance(seconds, (int, float)) else 0.0


def _testcase(assignment: str, check: CheckResult) -> ET.Element:
    case = ET.Element("testcase", classname=xml_text(assignment), name=xml_text(check.id),
                      time=f"{check_seconds(check):.3f}")
    feedback = xml_text(check.feedback)
    outcome = OUTCOME.get(check.status)
    if outcome is None:
        ET.SubElement(case, "system-out").text = feedback
        return case
    first = (feedback.splitlines() or [""])[0]
    if outcome == "skipped":
        ET.SubElement(case, outcome, message=first)
        return case
    element = ET.SubElement(case, outcome, message=f"{check.score:g} / {check.max_score:g} "
                                                   f"points: {first}")
    element.set("type", check.status)
    element.text = feedback
    return case
