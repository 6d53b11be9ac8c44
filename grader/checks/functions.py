"""Functions: call the student's own functions and compare what they return, or what the
call did (the weights a training step left, the mode a model was evaluated in).

Expected values come from the spec (`expect:`, numbers from the course material)
or from a reference (grader/references.py), computed here in the parent on the
same inputs the worker was given. Inputs are made here too (grader/checks/
case_inputs.py) and travel in the request as data; expected values never leave
this process. A check scores points * (cases passed / cases run). Feedback shows,
for each function, the first failing call: its input, the expected value, what
came back and the tolerance, and names the mistake when the answer is one the
spec knows (`mistakes:`). Hidden cases (solutions/<name>/hidden_cases.yaml) count
only where that file exists, and their inputs and values are never shown.

torch is imported lazily: only references and live inputs need it, so the
shapes/params path of the parent never loads it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..casekinds import OBSERVATIONS, PER_CALL
from ..measurements import Measurements, explain_error
from ..records import CaseRecord, ErrorInfo
from ..references import REFERENCES
from ..results import CheckResult, score_fraction, status_for
from ..spec import CaseSpec, CheckSpec, FunctionSpec, Spec
from ..static import Finding, forbidden_uses
from .case_inputs import (call_text, is_live, materialize, observe_to_worker, to_torch,
                          to_worker)
from .values import Value, agreed, compare, compare_calls, decode

BUDGET_S = 90.0            # all cases together; below the runner's probe timeout


def all_cases(spec: Spec, hidden: bool) -> list[tuple[CheckSpec, CaseSpec]]:
    """Every visible (or hidden) case of every functions check, in spec order: index n is
    the worker's case n (visible and hidden cases go to different workers)."""
    return [(c, case) for c in spec.checks if c.kind == "functions"
            for case in c.options["cases"] if case.hidden == hidden]


def has_hidden_cases(spec: Spec) -> bool:
    return bool(all_cases(spec, hidden=True))


def prepare_request(spec: Spec, hidden: bool) -> dict[str, Any]:
    """The request's `functions` entry: the visible (or hidden) cases' inputs and limits."""
    functions = {f.name: f for f in spec.functions}
    cases = []
    for _, case in all_cases(spec, hidden):
        fn = functions[case.function]
        cases.append({"function": case.function,
                      "args": [to_worker(materialize(v)) for v in case.args],
                      "kwargs": {k: to_worker(materialize(v)) for k, v in case.kwargs.items()},
                      "observe": observe_to_worker(case.observe),
                      "forbid": list(fn.forbid), "time_limit_s": fn.time_limit_s})
    return {"cases": cases, "budget_s": BUDGET_S}


# ---------------------------------------------------------------- expected values

def expected_value(case: CaseSpec, fn: FunctionSpec) -> Value:
    """The value the case expects: the spec's literal, or its reference on the case's inputs."""
    if case.has_expect:
        arr = np.asarray(materialize(case.expect))
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float64)
        if arr.ndim == 0:
            kind = {"i": "int", "u": "int", "b": "bool"}.get(arr.dtype.kind, "float")
        else:
            kind = "tensor" if isinstance(case.expect, dict) else "sequence"
        return Value(kind, arr)
    return reference_value(case.reference or fn.reference, case)


def reference_value(name: str, case: CaseSpec) -> Value:
    """What the reference `name` gives on the case's inputs. A live case runs it the way the
    worker ran the student's function (grader/worker/fixtures.py, float32, seeded) and
    observes the same thing; a plain one calls it on float64 tensors, the accurate side."""
    from ..worker.functions import encode

    ref = REFERENCES[name]
    if is_live(case):
        from ..worker import fixtures

        args, kwargs = fixtures.decode_inputs([to_worker(materialize(v)) for v in case.args],
                                              {k: to_worker(materialize(v))
                                               for k, v in case.kwargs.items()})
        out = fixtures.call(ref, args, kwargs)
        seen = fixtures.observe(observe_to_worker(case.observe), out, args, kwargs)
        return decode(encode(seen, max_values=10**8))
    args = [to_torch(materialize(v)) for v in case.args]
    kwargs = {k: to_torch(materialize(v)) for k, v in case.kwargs.items()}
    return decode(encode(ref(*args, **kwargs), max_values=10**8))


def problem_with(case: CaseSpec, fn: FunctionSpec, expected: Value, got: Value) -> str | None:
    """None when `got` is the expected value (or observation); else what is wrong."""
    if case.observe in PER_CALL:
        return compare_calls(agreed(expected), got, OBSERVATIONS[case.observe])
    rtol = fn.rtol if case.rtol is None else case.rtol
    atol = fn.atol if case.atol is None else case.atol
    return compare(expected, got, fn.returns if case.observe is None else "any", rtol, atol)


def _equals_reference(name: str, case: CaseSpec, fn: FunctionSpec, got: Value) -> bool:
    try:
        return problem_with(case, fn, reference_value(name, case), got) is None
    except ValueError:   # a mistake whose calls do not agree among themselves: not this one
        return False


def shown(case: CaseSpec, value: Value) -> str:
    return agreed(value).describe() if case.observe in PER_CALL else value.describe()


# ---------------------------------------------------------------- scoring

@dataclass
class Outcome:
    n: int
    case: CaseSpec
    passed: bool
    problem: str = ""           # full sentence (may show values: visible cases only)
    short: str = ""             # what went wrong without any values (hidden cases)
    got: str = ""
    expected: str = ""
    error_type: str = ""
    mistake: str = ""           # the spec's words for a known wrong answer, when it is one


def run(check: CheckSpec, spec: Spec, m: Measurements) -> CheckResult:
    cases: tuple[CaseSpec, ...] = check.options["cases"]
    absent = check.options.get("hidden_absent", ())
    if not m.ok("functions"):
        return CheckResult(check.id, "functions", 0.0, check.points, "error",
                           f"No functions could be called: {m.blocker('functions')}",
                           {"cases": [], "passed": 0, "total": len(cases)})
    functions = {f.name: f for f in spec.functions}
    results = _results_by_case(check, spec, m)
    static = _static_findings(spec, m)
    outcomes = [_outcome(i + 1, case, functions[case.function], results[i], m,
                         static.get(case.function, []))
                for i, case in enumerate(cases)]
    passed = sum(o.passed for o in outcomes)
    score = score_fraction(check.points, passed / len(outcomes))
    hidden_run = sum(o.case.hidden for o in outcomes)
    lines = [f"{passed} of {len(outcomes)} {'case' if len(outcomes) == 1 else 'cases'} passed"
             + (f" ({hidden_run} of them hidden)." if hidden_run else ".")]
    for name in dict.fromkeys(o.case.function for o in outcomes):
        lines += _function_feedback(functions[name], [o for o in outcomes if o.case.function == name],
                                    m)
    if absent:
        lines.append("Your instructor also grades this check on hidden cases.")
    details = {"cases": [{"n": o.n, "function": o.case.function,
                          "label": "" if o.case.hidden else o.case.label,
                          "hidden": o.case.hidden, "passed": o.passed,
                          "problem": o.short if o.case.hidden else o.problem,
                          "mistake": o.mistake} for o in outcomes],
               "passed": passed, "total": len(outcomes), "hidden_run": hidden_run,
               "hidden_absent": list(absent)}
    return CheckResult(check.id, "functions", score, check.points, status_for(score, check.points),
                       "\n".join(lines), details)


def _results_by_case(check: CheckSpec, spec: Spec, m: Measurements) -> list[CaseRecord | None]:
    """This check's cases' results, in its order: visible ones from the submission's worker,
    hidden ones from the hidden-case worker."""
    by_stage = {}
    for hidden, stage in ((False, "functions"), (True, "hidden")):
        record = m.record(stage)
        got = list(record.cases) if record is not None else []
        mine = [i for i, (c, _) in enumerate(all_cases(spec, hidden)) if c.id == check.id]
        by_stage[hidden] = iter([got[i] if i < len(got) else None for i in mine])
    return [next(by_stage[case.hidden]) for case in check.options["cases"]]


def _static_findings(spec: Spec, m: Measurements) -> dict[str, list[Finding]]:
    """For each function with forbidden calls: what the parent found in the source."""
    files = m.source.files()
    return {f.name: forbidden_uses(files, m.source.entry_name, f.name, f.forbid)
            for f in spec.functions if f.forbid}


def _outcome(n: int, case: CaseSpec, fn: FunctionSpec, result: CaseRecord | None,
             m: Measurements, findings: list[Finding]) -> Outcome:
    out = Outcome(n, case, False)
    if result is None:
        out.problem = out.short = "no result came back for this case"
        return out
    if not result.ok:
        err = result.error or ErrorInfo("Error", "")
        out.error_type = err.type
        out.problem = _error_text(err, fn, m)
        out.short = _error_text(err, fn, m, hidden=True)
        return out
    expected = expected_value(case, fn)
    got = decode(result.result)
    out.expected, out.got = shown(case, expected), got.describe()
    problem = problem_with(case, fn, expected, got)
    if problem is not None and any(_equals_reference(alt, case, fn, got) for alt in fn.accept):
        problem = None
    if problem is None:
        problem, out.short = _forbidden_problem(fn, result.calls, findings)
    else:
        out.mistake = next((mk.says for mk in fn.mistakes
                            if _equals_reference(mk.reference, case, fn, got)), "")
    out.passed = problem is None
    out.problem = problem or ""
    if problem and not out.short:
        out.short = out.mistake or ("wrong shape" if problem.startswith("shape") else (
            "wrong type" if problem.startswith("returned") else "wrong values"))
    return out


def _forbidden_problem(fn: FunctionSpec, calls: tuple[str, ...], findings: list[Finding]
                       ) -> tuple[str | None, str]:
    """Why a right answer still fails: a forbidden function was called (seen while it ran, or
    named in the source), or the source reaches names the grader cannot check."""
    used = sorted({c for c in calls if c in fn.forbid})
    named = [f for f in findings if not f.dynamic]
    if used or named:
        what = ", ".join(used) or named[0].what.removeprefix("uses torch's ")
        where = f" ({named[0].sentence()})" if named else ""
        return (f"calls torch's {what}; the assignment asks you to write {fn.name} yourself "
                f"with basic tensor operations{where}"), f"calls torch's {what}"
    if findings:
        return (f"{findings[0].sentence()}, so the grader cannot check that {fn.name} is "
                "written without torch's own version; write it with plain names"), \
            "cannot be checked (dynamic names)"
    return None, ""


def _error_text(err: ErrorInfo, fn: FunctionSpec, m: Measurements, hidden: bool = False) -> str:
    etype = err.type
    if etype == "MissingFunction":
        return f"{fn.name} is not defined in {m.source.origin.name}; write `def {fn.signature or fn.name + '(...)'}`"
    if etype == "TimeLimit":
        return f"ran for more than {fn.time_limit_s:g} s and was stopped (an endless loop?)"
    if etype == "NotRun":
        return "not run: the time for all cases ran out"
    if hidden:   # the type only: a message or a line could carry the hidden inputs out
        return f"raised {etype}"
    text = explain_error("functions", err, m.source)
    return text.replace("calling your functions failed: ", "", 1)


def _function_feedback(fn: FunctionSpec, outcomes: list[Outcome], m: Measurements) -> list[str]:
    failed = [o for o in outcomes if not o.passed]
    if not failed:
        return []
    head = f"{fn.signature or fn.name}: {len(failed)} of {len(outcomes)} cases failed."
    types = {o.error_type for o in failed}
    if len(failed) == len(outcomes) and len(types) == 1 and types & {"MissingFunction", "NotImplementedError"}:
        return [f"{head} {failed[0].problem}"]
    lines = [head]
    first = next((o for o in failed if not o.case.hidden), None)
    if first is not None:
        label = f" ({first.case.label})" if first.case.label else ""
        lines.append(f"  First failing case, #{first.n}{label}:")
        lines.append(f"    call:     {call_text(first.case)}")
        if first.expected:
            lines.append(f"    expected: {first.expected}")
            lines.append(f"    got:      {first.got}")
        if first.mistake:
            lines.append(f"    mistake:  {first.mistake}")
        lines.append(f"    problem:  {first.problem}")
    groups: dict[str, list[str]] = {}
    for o in failed:
        if o is not first:
            groups.setdefault(o.short, []).append(f"#{o.n}" + (" (hidden)" if o.case.hidden else ""))
    if groups:
        lines.append("  Also failed: " + "; ".join(f"{', '.join(cases)}: {short}"
                                                   for short, cases in groups.items()))
    return lines
