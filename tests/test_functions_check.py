"""The `functions` check on the four function assignments, and on a small made-up one.

For each assignment: the reference solution earns full marks through the real CLI, the skeleton
(made from the solution by nbgrader's stub rule) earns 0 and exits 1, and planted-bug variants
lose exactly the points their failing cases are worth (points * cases passed / cases run; the
hidden cases in solutions/<name>/hidden_cases.yaml run here because solutions/ is present).
Variants are graded in-process through `runner.grade` (the same path as the CLI, minus one
Python start) to keep the suite quick.
"""
from __future__ import annotations

import json
import math
import shutil

import pytest

from conftest import ASSIGNMENTS, SOLUTIONS, grade, variant
from grader.course import make_skeleton
from grader.errors import SpecError
from grader.runner import Options
from grader.runner import grade as grade_in_process
from grader.spec import load_spec

NAMES = ("fcn_parameters", "conv_arithmetic", "pooling", "softmax_cross_entropy")


def solution(name):
    return SOLUTIONS / name / f"{name}.py"


def max_points(name) -> float:
    return sum(c.points for c in load_spec(ASSIGNMENTS / name / "spec.yaml").checks)


def scores(tmp_path, name, replacements) -> tuple[dict[str, float], dict[str, str], dict]:
    """Grade a planted-bug copy of the solution: per-check scores, feedback and JSON details."""
    path = variant(tmp_path, solution(name), replacements, name=f"{name}.py")
    result = grade_in_process(path, load_spec(ASSIGNMENTS / name / "spec.yaml"),
                              Options(only=frozenset({"functions"})))
    return ({c.id: c.score for c in result.checks}, {c.id: c.feedback for c in result.checks},
            {c.id: c.to_json() for c in result.checks})


def full(name) -> dict[str, float]:
    return {c.id: c.points for c in load_spec(ASSIGNMENTS / name / "spec.yaml").checks}


def share(points, passed, total) -> float:
    return round(points * passed / total, 4)


# ---------------------------------------------------------------- solutions and skeletons

@pytest.mark.parametrize("name,only", [("fcn_parameters", "functions"),
                                       ("conv_arithmetic", "shapes,params,functions"),
                                       ("pooling", "functions"),
                                       ("softmax_cross_entropy", "shapes,params,functions")])
def test_solution_earns_full_marks(name, only):
    run = grade(SOLUTIONS / name, "--only", only, "--format", "json")
    assert run.code == 0, run.out + run.err
    result = run.json()
    assert result["score"] == result["max_score"] == max_points(name)
    assert {c["kind"] for c in result["checks"]} == {"functions"}
    assert all(c["status"] == "passed" for c in result["checks"])
    # solutions/ is present, so the hidden cases ran and count
    assert sum(c["details"]["hidden_run"] for c in result["checks"]) >= 3


@pytest.mark.parametrize("name", NAMES)
def test_skeleton_earns_zero_and_says_what_is_unfinished(tmp_path, name):
    folder = tmp_path / "submission"
    folder.mkdir()
    skeleton = make_skeleton(solution(name).read_text())
    assert "### BEGIN SOLUTION" not in skeleton and "raise NotImplementedError()" in skeleton
    (folder / f"{name}.py").write_text(skeleton)
    run = grade(folder, "--assignment", name, "--only", "functions", "--format", "json")
    assert run.code == 1
    result = run.json()
    assert result["score"] == 0 and result["max_score"] == max_points(name)
    for check in result["checks"]:
        assert check["status"] == "failed"
        assert "a TODO is still unfinished (NotImplementedError)" in check["feedback"]
    assert "Traceback" not in run.out + run.err


# ---------------------------------------------------------------- fcn_parameters

def test_count_parameters_that_counts_frozen_layers(tmp_path):
    got, feedback, _ = scores(tmp_path, "fcn_parameters", [
        ("sum(p.numel() for p in model.parameters() if p.requires_grad)",
         "sum(p.numel() for p in model.parameters())")])
    # fails the visible frozen case and the hidden frozen CNN: 6 of 8 cases
    assert got == {**full("fcn_parameters"), "count_parameters": share(3, 6, 8)}
    trainable = (512 + 1) * 10                 # only the second layer of 784 -> 512 -> 10 learns
    everything = (784 + 1) * 512 + trainable
    assert f"expected: {trainable:,}" in feedback["count_parameters"]
    assert f"got:      {everything:,}" in feedback["count_parameters"]
    assert "frozen (requires_grad=False): layer 0" in feedback["count_parameters"]


def test_linear_params_without_bias(tmp_path):
    got, feedback, _ = scores(tmp_path, "fcn_parameters", [
        ("return n_in * n_out + (n_out if bias else 0)", "return n_in * n_out")])
    # linear_params fails every case with a bias (4 visible, 1 hidden); conv_params all pass
    assert got == {**full("fcn_parameters"), "formulas": share(3, 7, 12)}
    assert f"expected {784 * 512 + 512:,}, got {784 * 512:,}" in feedback["formulas"]


def test_flattening_the_whole_batch(tmp_path):
    got, feedback, _ = scores(tmp_path, "fcn_parameters", [
        ("return x.reshape(x.shape[0], -1)", "return x.reshape(-1)")])
    assert got == {**full("fcn_parameters"), "flattening": share(3, 6, 9)}
    assert f"shape {2 * 28 * 28}, expected 2x{28 * 28}" in feedback["flattening"]
    assert "random normal 2x1x28x28 tensor (seed 1)" in feedback["flattening"]


# ---------------------------------------------------------------- conv_arithmetic

def test_true_division_in_the_size_formula(tmp_path):
    got, feedback, _ = scores(tmp_path, "conv_arithmetic", [
        ("return (I - K + 2 * P) // S + 1", "return (I - K + 2 * P) / S + 1")])
    # every size is a float now, and conv2d cannot make a tensor of float size;
    # only the three make_filter cases of feature_maps still pass, and no worked example
    assert got == {"output_size": 0.0, "conv2d": 0.0, "feature_maps": share(3, 3, 9),
                   "worked_examples": 0.0}
    assert f"returned a float ({32 - 5 + 1}.0); expected a whole number (int)" in feedback["output_size"]


def test_flipped_kernel_passes_only_symmetric_kernels(tmp_path):
    got, feedback, _ = scores(tmp_path, "conv_arithmetic", [
        ("(window[:, None] * weight[None])", "(window[:, None] * weight.flip(2, 3)[None])")])
    # conv2d: only the hidden 1x1 kernel survives a flip. feature_maps: the X's diagonal kernel,
    # outline and blur are symmetric under a half turn; the random 2x2 and hidden 3x3 kernels fail.
    # worked_examples: the lecture's filter and the 2 hidden random ones are not symmetric, so
    # its 5 conv2d cases fail and its 8 conv_output_shape cases pass
    assert got == {"output_size": 3.0, "conv2d": share(4, 1, 10), "feature_maps": share(3, 7, 9),
                   "worked_examples": share(3, 8, 13)}
    lecture = [[10 * 1 + 20 * 0 + 0 * 0 + 1 * 2, 20 * 1 + 30 * 0 + 1 * 0 + 0 * 2]]  # 12, 20
    assert f"expected: tensor([[[[{lecture[0][0]}.0, {lecture[0][1]}.0," in feedback["conv2d"]


def test_padding_ignored(tmp_path):
    got, feedback, _ = scores(tmp_path, "conv_arithmetic", [
        ("    x = F.pad(x, (padding, padding, padding, padding))\n", "")])
    # conv2d: 3 visible padding cases and 1 hidden fail; match_map: padding 1 and hidden padding 2;
    # worked_examples: the lecture's padding-1 map and one hidden random case with padding 1
    assert got == {"output_size": 3.0, "conv2d": share(4, 6, 10), "feature_maps": share(3, 7, 9),
                   "worked_examples": share(3, 11, 13)}
    assert "padding=1" in feedback["conv2d"] and "RuntimeError" in feedback["conv2d"]


def test_sum_instead_of_mean_in_match_map(tmp_path):
    got, feedback, _ = scores(tmp_path, "conv_arithmetic", [
        ("return out / kernel.numel()", "return out")])
    assert got == {"output_size": 3.0, "conv2d": 4.0, "feature_maps": share(3, 5, 9),
                   "worked_examples": 3.0}
    # the X's best match: 9 agreeing pixels sum to 9, their mean is 1
    assert "expected 1.0, got 9.0" in feedback["feature_maps"]
    assert "0.01 + 0.0001*|expected|" in feedback["feature_maps"]


def test_calling_torch_conv2d_earns_nothing(tmp_path):
    got, feedback, details = scores(tmp_path, "conv_arithmetic", [
        ("    n, _, h, w = x.shape\n", "    return F.conv2d(x, weight, bias, stride, padding)\n")])
    # right values, but every conv2d and match_map call uses torch's conv2d (5 of the 13 worked
    # examples call conv2d)
    assert got == {"output_size": 3.0, "conv2d": 0.0, "feature_maps": share(3, 3, 9),
                   "worked_examples": share(3, 8, 13)}
    assert "calls torch's conv2d; the assignment asks you to write conv2d yourself" in feedback["conv2d"]
    # hidden cases are named and counted, never shown
    hidden = [c for c in details["conv2d"]["details"]["cases"] if c["hidden"]]
    assert len(hidden) == 3 and all(c["problem"] == "calls torch's conv2d" for c in hidden)
    text = json.dumps(details)
    assert "seed 101" not in text and "seed 104" not in text and "#8 (hidden)" in feedback["conv2d"]


def test_non_square_shape_with_the_axes_swapped(tmp_path):
    got, feedback, _ = scores(tmp_path, "conv_arithmetic", [
        ("    return conv_output_size(H, FH, P, S), conv_output_size(W, FW, P, S)",
         "    return conv_output_size(H, FW, P, S), conv_output_size(W, FH, P, S)")])

    def size(i, k, p=0, s=1):
        return (i - k + 2 * p) // s + 1

    def survives(case):   # conv2d is untouched; a shape case passes where the swap changes nothing
        if case.function != "conv_output_shape":
            return True
        h, w, fh, fw, *rest = case.args
        return (size(h, fw, *rest), size(w, fh, *rest)) == (size(h, fh, *rest), size(w, fw, *rest))

    worked = next(c for c in load_spec(ASSIGNMENTS / "conv_arithmetic" / "spec.yaml").checks
                  if c.id == "worked_examples").options["cases"]
    assert got == {**full("conv_arithmetic"),
                   "worked_examples": share(3, sum(map(survives, worked)), len(worked))}
    assert f"expected {size(28, 5)}, got {size(28, 3)}" in feedback["worked_examples"]


# ---------------------------------------------------------------- pooling

def test_average_pooling_that_sums(tmp_path):
    got, feedback, _ = scores(tmp_path, "pooling", [
        ("out[:, :, i, j] = window.mean(dim=(2, 3))", "out[:, :, i, j] = window.sum(dim=(2, 3))")])
    assert got == {**full("pooling"), "avg_pool": 0.0}
    window = [5, 6, 7, 8]  # bottom-right 2x2 window of the 4x4 example
    assert f"expected {sum(window) / 4}, got {float(sum(window))}" in feedback["avg_pool"]


def test_max_pooling_that_ignores_stride(tmp_path):
    old = "\n".join([
        "    stride = stride or kernel_size",
        "    out = torch.zeros(pool_output_shape(x.shape, kernel_size, stride), dtype=x.dtype)",
        "    for i in range(out.shape[2]):",
        "        for j in range(out.shape[3]):",
        "            top, left = i * stride, j * stride",
        "            window = x[:, :, top:top + kernel_size, left:left + kernel_size]",
        "            out[:, :, i, j] = window.amax"])
    got, feedback, _ = scores(tmp_path, "pooling", [(old, old.replace("stride or kernel_size", "kernel_size"))])
    # the 3x3/stride 2 and 2x2/stride 1 cases fail; the hidden 3x3/stride 3 case still passes
    assert got == {**full("pooling"), "max_pool": share(4, 7, 9)}
    size = (7 - 3) // 2 + 1
    assert f"shape 1x2x2x2, expected 1x2x{size}x{size}" in feedback["max_pool"]


def test_max_pooling_that_starts_from_zero(tmp_path):
    got, feedback, _ = scores(tmp_path, "pooling", [
        ("out[:, :, i, j] = window.amax(dim=(2, 3))", "out[:, :, i, j] = window.amax(dim=(2, 3)).clamp(min=0)")])
    # every case with a negative window maximum fails: 3 visible random cases and 1 hidden
    assert got == {**full("pooling"), "max_pool": share(4, 5, 9)}
    assert "got 0.0" in feedback["max_pool"] and "channel count stays 3" in feedback["max_pool"]


def test_output_shape_without_stride_cascades(tmp_path):
    got, _, _ = scores(tmp_path, "pooling", [
        ("return (n, c, (h - kernel_size) // stride + 1, (w - kernel_size) // stride + 1)",
         "return (n, c, h // kernel_size, w // kernel_size)")])
    # h // k is right only when stride == k and k divides h: 9 // 3 and 12 // 3 (hidden) still pass
    assert got == {"pool_shapes": share(2, 4, 6), "max_pool": share(4, 7, 9),
                   "avg_pool": share(3, 3, 5)}


# ---------------------------------------------------------------- softmax_cross_entropy

def test_softmax_without_the_max_shift_overflows(tmp_path):
    got, feedback, _ = scores(tmp_path, "softmax_cross_entropy", [
        ("torch.exp(z - z.max(dim=-1, keepdim=True).values)", "torch.exp(z)")])
    assert got == {**full("softmax_cross_entropy"), "softmax": share(2, 4, 6)}
    e = [math.exp(v - 1002) for v in (1000, 1001, 1002)]
    assert f"expected {e[0] / sum(e):.6g}, got nan" in feedback["softmax"]


def test_entropy_without_zero_log_zero(tmp_path):
    got, feedback, _ = scores(tmp_path, "softmax_cross_entropy", [
        ("logs = torch.log2(torch.where(p > 0, p, torch.ones_like(p)))", "logs = torch.log2(p)")])
    assert got == {**full("softmax_cross_entropy"), "information": share(4, 10, 12)}
    assert "entropy_bits(tensor([1.0, 0.0]))" in feedback["information"]
    assert "expected 0.0, got nan" in feedback["information"]


def test_entropy_in_nats_instead_of_bits(tmp_path):
    got, feedback, _ = scores(tmp_path, "softmax_cross_entropy", [
        ("logs = torch.log2(torch.where(p > 0, p, torch.ones_like(p)))",
         "logs = torch.log(torch.where(p > 0, p, torch.ones_like(p)))")])
    # entropy passes only for the sure event (0 bits = 0 nats); KL = CE - H fails everywhere,
    # even for p against itself (H in bits minus H in nats); cross_entropy_bits is untouched
    assert got == {**full("softmax_cross_entropy"), "information": share(4, 4, 12)}
    assert f"expected 1.0, got {math.log(2):.6g}" in feedback["information"]  # the fair coin


def test_cross_entropy_that_sums_over_the_batch(tmp_path):
    got, _, _ = scores(tmp_path, "softmax_cross_entropy", [
        ("return -log_probs[torch.arange(len(targets)), targets].mean()",
         "return -log_probs[torch.arange(len(targets)), targets].sum()")])
    # only the one-image case survives (sum = mean for one row)
    assert got == {**full("softmax_cross_entropy"), "loss": share(3, 5, 8)}


def test_relu_from_torch_is_not_from_scratch(tmp_path):
    got, feedback, _ = scores(tmp_path, "softmax_cross_entropy", [
        ("return torch.where(x > 0, x, torch.zeros_like(x))", "return torch.nn.functional.relu(x)")])
    assert got == {**full("softmax_cross_entropy"), "activations": share(2, 4, 6)}
    assert "calls torch's relu" in feedback["activations"]


# ---------------------------------------------------------------- hidden cases

def test_without_solutions_hidden_cases_do_not_run(tmp_path):
    """A student's copy of the course has no solutions/: the visible cases decide the score."""
    course = tmp_path / "course"
    shutil.copytree(ASSIGNMENTS / "pooling", course / "assignments" / "pooling")
    run = grade(solution("pooling"), "--assignment", str(course / "assignments" / "pooling"),
                "--only", "functions", "--format", "json", env={"GRADER_SOLUTIONS": ""})
    assert run.code == 0
    checks = run.json()["checks"]
    assert [c["details"]["hidden_run"] for c in checks] == [0, 0, 0]
    assert [c["details"]["total"] for c in checks] == [5, 7, 4]
    assert all("Your instructor also grades this check on hidden cases." in c["feedback"]
               for c in checks)


# ---------------------------------------------------------------- a made-up assignment

TOY_SPEC = """\
name: toy
functions:
  - {name: double, signature: "double(x) -> Tensor", returns: tensor}
  - {name: slow, time_limit_s: 0.5, returns: int}
  - {name: inverse, returns: float}
  - {name: quits}
  - {name: listed, returns: tensor}
  - {name: missing, signature: "missing(x)"}
  - {name: relu, reference: relu, returns: tensor}
checks:
  - id: toy
    kind: functions
    points: 8
    cases:
      - {function: double, args: [{tensor: [1, 2]}], expect: {tensor: [2, 4]}}
      - {function: double, args: [{random: [2, 3], seed: 1}], expect: {tensor: [[0, 0, 0], [0, 0, 0]]}}
      - {function: slow, args: [1], expect: 1}
      - {function: slow, args: [2], expect: 2}
      - {function: inverse, args: [4], expect: 0.25}
      - {function: inverse, args: [0], expect: .inf}
      - {function: quits, args: [1], expect: 1}
      - {function: listed, args: [{tensor: [1, 2]}], expect: {tensor: [1, 2]}}
      - {function: missing, args: [1], expect: 1}
      - {function: relu, args: [{random: [3, 4], seed: 2}]}
      - {hidden: more, function: relu}
"""

TOY_CODE = """\
import sys
import torch


def double(x):
    return 2 * x


def slow(n):
    while n > 1:
        pass
    return n


def inverse(x):
    return 1 / x


def quits(n):
    sys.exit(3)


def listed(x):
    return x.tolist()


def relu(x):
    return torch.clamp(x, min=0)
"""


def toy(tmp_path, spec=TOY_SPEC, hidden=None):
    folder = tmp_path / "assignments" / "toy"
    folder.mkdir(parents=True)
    (folder / "spec.yaml").write_text(spec)
    if hidden is not None:
        (tmp_path / "solutions" / "toy").mkdir(parents=True)
        (tmp_path / "solutions" / "toy" / "hidden_cases.yaml").write_text(hidden)
    (tmp_path / "toy.py").write_text(TOY_CODE)
    return folder


def test_each_case_fails_on_its_own(tmp_path):
    folder = toy(tmp_path, hidden="more:\n  - {args: [{random: [5], seed: 77}]}\n")
    run = grade(tmp_path / "toy.py", "--assignment", str(folder), "--format", "json",
                env={"GRADER_SOLUTIONS": ""})
    assert run.code == 1, run.err
    check = run.check("toy")
    passed = [c["passed"] for c in check["details"]["cases"]]
    # an endless loop, a crash, sys.exit, a list and a missing function each cost only their case
    assert passed == [True, False, True, False, True, False, False, False, False, True, True]
    assert check["score"] == round(8 * 5 / 11, 4)
    fb = check["feedback"]
    assert "5 of 11 cases passed (1 of them hidden)." in fb
    assert "ran for more than 0.5 s and was stopped" in fb
    assert "ZeroDivisionError: division by zero at toy.py, line 16 in inverse(): `return 1 / x`" in fb
    assert "the code called sys.exit(3)" in fb
    assert "returned a list of 2 values; return a torch.Tensor" in fb
    assert "missing is not defined in toy.py; write `def missing(x)`" in fb
    # the first mismatch shows input, expected and got with the tolerance
    assert "call:     double(random normal 2x3 tensor (seed 1))" in fb
    assert "expected: tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])" in fb
    assert "tolerance: |got - expected| <= 1e-05 + 0.0001*|expected|" in fb


def test_hidden_file_found_through_grader_solutions(tmp_path, monkeypatch):
    folder = toy(tmp_path)
    elsewhere = tmp_path / "private"
    (elsewhere / "toy").mkdir(parents=True)
    (elsewhere / "toy" / "hidden_cases.yaml").write_text(
        "more:\n  - {args: [{random: [3], seed: 5}]}\n  - {args: [{tensor: [-1, 2]}], expect: {tensor: [0, 1]}}\n")
    monkeypatch.setenv("GRADER_SOLUTIONS", str(elsewhere))
    spec = load_spec(folder / "spec.yaml")
    cases = spec.checks[0].options["cases"]
    assert [c.hidden for c in cases].count(True) == 2
    assert cases[-1].where == "hidden_cases.yaml: more[1]"


@pytest.mark.parametrize("old,new,key,words", [
    ("reference: relu,", "reference: rellu,", "functions[6].reference", "unknown reference 'rellu'"),
    ("{function: missing, args: [1], expect: 1}", "{function: missing, args: [1]}",
     "checks[0].cases[8]", "has neither `expect:` nor a reference"),
    ("{function: quits, args: [1], expect: 1}", "{function: quit, args: [1], expect: 1}",
     "checks[0].cases[6].function", "names no function under `functions:` ('quit')"),
    ("{random: [2, 3], seed: 1}", "{random: [2, 3]}", "checks[0].cases[1].args[0].seed", "missing"),
    ("{random: [2, 3], seed: 1}", "{random: [2, -3], seed: 1}", "checks[0].cases[1].args[0].random",
     "expected a shape of positive integers"),
    ("{random: [2, 3], seed: 1}", "{randum: [2, 3], seed: 1}", "checks[0].cases[1].args[0]",
     "is a mapping but not a value the grader knows"),
    ("expect: 0.25}", "expect: 0.25, atol: -1}", "checks[0].cases[4].atol", "must be >= 0"),
    ("returns: float}", "returns: number}", "functions[2].returns", "unknown return kind 'number'"),
    ("{function: slow, args: [1], expect: 1}", "{function: slow, args: [1], expect: one}",
     "checks[0].cases[2].expect", "is not a number or a rectangular list of numbers"),
    ("{function: missing, args: [1], expect: 1}",
     "{function: missing, args: [{model: [[Linear, 2, 3, {bais: false}]]}], expect: 1}",
     "checks[0].cases[8].args[0].model[0]", "does not build models with"),
])
def test_broken_functions_spec_names_key_and_fix(tmp_path, old, new, key, words):
    assert old in TOY_SPEC
    folder = toy(tmp_path, TOY_SPEC.replace(old, new, 1))
    with pytest.raises(SpecError) as info:
        load_spec(folder / "spec.yaml")
    assert info.value.key == key and words in str(info.value)


def test_code_that_does_not_import_scores_zero_with_the_line(tmp_path):
    folder = toy(tmp_path)
    (tmp_path / "toy.py").write_text("def double(x)\n    return 2 * x\n")
    run = grade(tmp_path / "toy.py", "--assignment", str(folder), "--format", "json")
    assert run.code == 1
    check = run.check("toy")
    assert check["score"] == 0 and check["status"] == "error"
    assert check["feedback"] == ("No functions could be called: toy.py, line 1: `def double(x)`: "
                                 "SyntaxError: expected ':'. Fix this line so the file can be imported.")


def test_broken_spec_is_exit_2_before_any_grading(tmp_path):
    folder = toy(tmp_path, TOY_SPEC.replace("kind: functions", "kind: functions\n    casez: []"))
    run = grade(tmp_path / "toy.py", "--assignment", str(folder))
    assert run.code == 2 and "checks[0].casez: unknown key" in run.err


def test_hidden_group_missing_from_hidden_file(tmp_path):
    folder = toy(tmp_path, hidden="other: []\n")
    with pytest.raises(SpecError) as info:
        load_spec(folder / "spec.yaml")
    assert info.value.file.endswith("hidden_cases.yaml") and info.value.key == "more"
    assert "remove `hidden: more`" in str(info.value)


def test_inputs_travel_without_expected_values(tmp_path):
    """The worker's request holds inputs only: no expected value, no hidden expectation."""
    from grader.checks.functions import prepare_request

    folder = toy(tmp_path, hidden="more:\n  - {args: [{tensor: [-7, 2]}], expect: {tensor: [0, 12345]}}\n")
    spec = load_spec(folder / "spec.yaml")
    visible, hidden = prepare_request(spec, hidden=False), prepare_request(spec, hidden=True)
    for request in (visible, hidden):
        text = json.dumps(request)
        assert "12345" not in text and "expect" not in text
    # the hidden case's input goes only to the hidden-case worker, whose output nobody reads
    hidden_input = [{"array": {"shape": [2], "dtype": "float32", "values": [-7.0, 2.0]}}]
    assert hidden["cases"][-1]["args"] == hidden_input
    assert all(case["args"] != hidden_input for case in visible["cases"])
