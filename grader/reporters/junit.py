"""JUnit XML: one testcase per check, for GitHub Classroom, GitLab and other CI test views.

A check that lost points is a <failure>, one the grader could not measure an <error>,
each carrying the feedback, so the CI page says what to fix. Scores go into properties.
Feedback can quote
anything a submission printed, and XML 1.0 forbids most control characters: those are
dropped or replaced rather than written into a file no parser would accept.
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
              for s, k in (("failed", "failures"), ("error", "errors"), ("skipped", "skipped"))}
    common = {"tests": str(len(result.checks)), **counts, "time": f"{result.duration_s:.3f}"}
    root = ET.Element("testsuites", name="cnn-grader", **common)
    suite = ET.SubElement(root, "testsuite", name=xml_text(result.assignment), **common)
    props = ET.SubElement(suite, "properties")
    for name, value in (("submission", result.submission), ("score", f"{result.score:g}"),
                        ("max_score", f"{result.max_score:g}"), ("device", result.device)):
        ET.SubElement(props, "property", name=name, value=xml_text(value))
    for check in result.checks:
        suite.append(_testcase(result.assignment, check))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _testcase(assignment: str, check: CheckResult) -> ET.Element:
    case = ET.Element("testcase", classname=xml_text(assignment), name=xml_text(check.id))
    props = ET.SubElement(case, "properties")
    for name, value in (("score", check.score), ("max_score", check.max_score)):
        ET.SubElement(props, "property", name=name, value=f"{value:g}")
    feedback = xml_text(check.feedback)
    outcome = OUTCOME.get(check.status)
    if outcome is None:
        ET.SubElement(case, "system-out").text = feedback
        return case
    first = (feedback.splitlines() or [""])[0]
    element = ET.SubElement(case, outcome, message=f"{check.score:g} / {check.max_score:g} "
                                                   f"points: {first}")
    if outcome != "skipped":
        element.set("type", check.status)
        element.text = feedback
    return case
