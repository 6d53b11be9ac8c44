"""Propose accuracy thresholds from both sides: what a correct model reaches, and what
models that must fail reach.

A bar is fair only between the two. Below it must lie every seed of the
reference solution (trained with the spec's recipe, on the course's own data
and hardware); above it, the negative controls: a linear classifier on the
flattened image (what a network that learned no features can do), and the
reference with its activations removed (a stack of linear maps, apart from
what max pooling adds). When the reference's worst seed is not clearly above
the linear control, no bar can tell a correct model from a broken one on that
data, and calibration refuses with the numbers and what would widen the gap.
"""
from __future__ import annotations

import ast
import math
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError
from .progress import Sink
from .runner import Options, grade
from .spec import THRESHOLD_VARIANTS, Spec, expected_shapes

MIN_GAP = 0.02             # between the linear control and the bar, at least two points


class CalibrationFailed(UsageError):
    """No fair threshold: the reference did not train, or the controls reach it."""


@dataclass(frozen=True)
class Run:
    seed: int
    accuracy: float
    seconds: float


@dataclass(frozen=True)
class Calibration:
    reference: tuple[Run, ...]
    linear: Run                       # must fail: decides where partial credit starts
    no_activation: Run                # measured and recorded; fails where the recipe can
    variant: str                      # full | subset
    device: str

    @property
    def accuracies(self) -> list[float]:
        return [r.accuracy for r in self.reference]

    @property
    def proposed_min(self) -> float:
        """Worst seed minus max(1 point, 2 standard deviations), rounded down to a percent."""
        acc = self.accuracies
        spread = statistics.pstdev(acc) if len(acc) > 1 else 0.0
        return math.floor((min(acc) - max(0.01, 2 * spread)) * 100 + 1e-9) / 100

    @property
    def proposed_partial_from(self) -> float:
        """Partial credit starts just above the linear control, so the control earns none."""
        return math.ceil((self.linear.accuracy + 0.01) * 100 - 1e-9) / 100

    @property
    def fair(self) -> bool:
        return self.proposed_min - self.proposed_partial_from >= MIN_GAP - 1e-9

    def activation_free_passes(self) -> bool:
        return self.no_activation.accuracy >= self.proposed_min


def calibrate(solution: Path, spec: Spec, seeds: list[int], opts: Options,
              on_epoch: Sink | None = None) -> Calibration:
    """Train the reference on every seed and each control on the first; raises
    CalibrationFailed when the reference does not train."""
    def train(path: Path, seed: int, what: str) -> tuple[Run, dict]:
        return train_once(path, spec, seed, opts, what, on_epoch)

    runs = [train(solution, seed, "the reference solution") for seed in seeds]
    with tempfile.TemporaryDirectory(prefix="grade-controls-") as tmp:
        linear, _ = train(write_control(Path(tmp), "linear", spec, solution), seeds[0],
                          "the linear control")
        bare, _ = train(write_control(Path(tmp), "no_activation", spec, solution), seeds[0],
                        "the activation-free control")
    details = runs[0][1]
    return Calibration(tuple(run for run, _ in runs), linear, bare,
                       details["dataset"]["variant"], details.get("device", ""))


def train_once(path: Path, spec: Spec, seed: int, opts: Options, what: str,
               on_epoch: Sink | None = None) -> tuple[Run, dict]:
    """One accuracy run, exactly as grading trains: what it reached, and the check's details
    (data variant, device)."""
    run_opts = Options(device=opts.device, seed=seed, data_dir=opts.data_dir,
                       only=frozenset({"accuracy"}), timeout_s=opts.timeout_s)
    result = grade(path, spec, run_opts, on_epoch=on_epoch)
    check = next(c for c in result.checks if c.kind == "accuracy")
    if "accuracy" not in check.details or check.status == "error":
        raise CalibrationFailed(f"{what} did not train on seed {seed}: {check.feedback}")
    details = check.details
    return Run(seed, details["accuracy"], details.get("train_seconds") or 0.0), details


# ---------------------------------------------------------------- the controls

LINEAR = '''"""Negative control: a linear classifier on the flattened image (no features learned)."""
import torch
from torch import nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear({inputs}, {classes})

    def forward(self, x):
        return self.linear(torch.flatten(x, 1))
'''

ACTIVATION_CALLS = {"relu", "relu_", "tanh", "tanh_", "sigmoid", "sigmoid_", "gelu", "elu",
                    "elu_", "leaky_relu", "leaky_relu_"}
ACTIVATION_MODULES = {"ReLU", "Tanh", "Sigmoid", "GELU", "ELU", "LeakyReLU"}


class _WithoutActivations(ast.NodeTransformer):
    """`F.relu(x)`, `torch.tanh(x)` and `x.relu()` become `x`; `nn.ReLU()` becomes
    `nn.Identity()`. The reference stays the same program otherwise."""

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        func = node.func
        if not isinstance(func, ast.Attribute):
            return node
        if func.attr in ACTIVATION_MODULES:
            return ast.Call(ast.Attribute(func.value, "Identity", ast.Load()), [], [])
        if func.attr not in ACTIVATION_CALLS:
            return node
        if isinstance(func.value, ast.Name) and func.value.id in ("torch", "F"):
            return node.args[0] if node.args else node
        return func.value                                    # x.relu() -> x


def without_activations(source: str) -> str:
    tree = _WithoutActivations().visit(ast.parse(source))
    return '"""Negative control: the reference solution with every activation removed."""\n' + \
        ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def write_control(folder: Path, name: str, spec: Spec, solution: Path) -> Path:
    """The control `name` as a submission file in `folder`."""
    path = folder / name / "model.py"
    path.parent.mkdir(parents=True)
    if name == "linear":
        classes = expected_shapes(spec)[-1].out_shape[0]
        path.write_text(LINEAR.format(inputs=math.prod(spec.input_shape), classes=classes))
    else:
        path.write_text(without_activations((solution / "model.py").read_text()))
    return path


# ---------------------------------------------------------------- the report

def report(spec: Spec, cal: Calibration) -> str:
    """What was measured, and the YAML to paste into the spec (or why there is none)."""
    lines = [f"{spec.name}: reference over {len(cal.reference)} seeds and two controls, on "
             f"{cal.device} ({cal.variant} data)"]
    lines += [f"  reference, seed {r.seed}: {r.accuracy:.4f}  ({r.seconds:.1f} s training)"
              for r in cal.reference]
    lines += [f"  linear control, seed {cal.linear.seed}: {cal.linear.accuracy:.4f}",
              f"  activation-free reference, seed {cal.no_activation.seed}: "
              f"{cal.no_activation.accuracy:.4f}"]
    if cal.activation_free_passes():
        lines.append("  note: the activation-free reference reaches the bar: on this data a network "
                     "without activations (a linear map, but for any max pooling) does as well, so "
                     "only the shapes check's activation verdicts catch it")
    indent = "      " if cal.variant in THRESHOLD_VARIANTS else "    "
    block = [f"min_accuracy: {cal.proposed_min:.2f}",
             f"partial_from: {cal.proposed_partial_from:.2f}",
             "measured:", f"  reference: [{', '.join(f'{a:.4f}' for a in cal.accuracies)}]",
             f"  linear: {cal.linear.accuracy:.4f}",
             f"  no_activation: {cal.no_activation.accuracy:.4f}",
             f"  setup: \"{cal.device}, seeds {cal.reference[0].seed}-{cal.reference[-1].seed}\""]
    head = ["", "Proposed for spec.yaml, in the accuracy check" +
            (f" under `{cal.variant}:`" if cal.variant in THRESHOLD_VARIANTS else "") + ":"]
    return "\n".join(lines + head + [indent + b for b in block])


def refusal(cal: Calibration) -> str:
    """Why no bar is fair on this data, with the numbers and what would widen the gap."""
    return (f"no fair bar: the reference's worst seed reaches {min(cal.accuracies):.4f} "
            f"(a bar of {cal.proposed_min:.2f} after its spread), the linear control "
            f"{cal.linear.accuracy:.4f} (partial credit would start at "
            f"{cal.proposed_partial_from:.2f}); a bar needs {MIN_GAP:.2f} between them. Widen "
            "the gap: more epochs or a better recipe for the reference, or more data (the full "
            "dataset instead of a subset)")
