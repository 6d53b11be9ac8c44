"""What a spec is: the dataclasses a loaded spec.yaml becomes, and the names each key may use.

Reading and validating them is the sibling modules' work (a map is in grader/spec/__init__.py);
this module imports none of them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import formulas

CHECK_KINDS = ("shapes", "params", "functions", "accuracy")
ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "gelu", "elu")
DATASETS = ("mnist", "fashion_mnist", "cifar10")

# Per layer type: required hyperparameters, then optional ones with defaults.
LAYER_TYPES: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "conv2d": (("in_channels", "out_channels", "kernel_size"),
               {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True}),
    "conv_transpose2d": (("in_channels", "out_channels", "kernel_size"),
                         {"stride": 1, "padding": 0, "dilation": 1, "groups": 1,
                          "bias": True, "output_padding": 0}),
    "maxpool2d": (("kernel_size",), {"stride": None, "padding": 0, "dilation": 1,
                                     "ceil_mode": False}),
    "avgpool2d": (("kernel_size",), {"stride": None, "padding": 0, "ceil_mode": False}),
    "subsample": (("kernel_size",), {"stride": None}),
    "linear": (("in_features", "out_features"), {"bias": True}),
    "flatten": ((), {}),
    # Layers that change values but not shapes (issue 14's cifar10_vgg): batch normalisation
    # learns a scale and a shift per channel; dropout learns nothing.
    "batchnorm2d": (("num_features",), {}),
    "dropout": ((), {}),
}
SHAPE_KEEPING = ("batchnorm2d", "dropout")

# Bars for data other than the full dataset, keyed by the variant that was found (grader/data.py).
THRESHOLD_VARIANTS = ("subset", "embedded")
# Per scheduler: the keys it takes besides `name` (sections.py says what they mean).
SCHEDULERS = {"multistep": {"milestones", "gamma"},
              "onecycle": {"max_lr", "pct_start", "anneal", "div_factor", "final_div_factor"}}
# What a function and its cases may name (the grammar is documented in cases.py).
RETURNS = ("any", "int", "float", "tensor")
DTYPES = ("float32", "float64", "int64", "bool", "uint8")
RANDOM_DISTS = ("normal", "uniform", "integers", "simplex")
LIVE_KINDS = ("loader", "optimizer", "loss", "device")


@dataclass(frozen=True)
class AltParams:
    """A parameter count that is not the spec's but still earns some credit."""

    count: int
    credit: float
    note: str


@dataclass(frozen=True)
class FormSpec:
    """An equivalent form of a layer (grader/checks/matching.py FORMS) and what it earns."""

    form: str
    credit: float
    note: str


@dataclass(frozen=True)
class LayerSpec:
    name: str
    type: str
    hp: dict[str, Any]
    activation: str | None = None
    params: int | None = None          # explicit count (e.g. LeNet's C3 table: 1516)
    accept_params: tuple[AltParams, ...] = ()
    accept_forms: tuple[FormSpec, ...] = ()   # default: every form the grader knows, full credit
    input_from: str | None = None      # spatial input from another layer (skip paths)
    note: str = ""

    @property
    def expected_params(self) -> int:
        if self.params is not None:
            return self.params
        hp = self.hp
        if self.type in ("conv2d", "conv_transpose2d"):
            return formulas.conv_params(hp["in_channels"], hp["out_channels"],
                                        hp["kernel_size"], hp["groups"], hp["bias"])
        if self.type == "linear":
            return formulas.linear_params(hp["in_features"], hp["out_features"], hp["bias"])
        if self.type == "batchnorm2d":
            return formulas.batchnorm_params(hp["num_features"])
        return 0  # pooling, flatten and dropout learn nothing; subsample is set in expected_shapes


@dataclass(frozen=True)
class CheckSpec:
    id: str
    kind: str
    points: float
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FunctionSpec:
    """A module-level function the student writes (top-level `functions:` entry)."""

    name: str
    signature: str = ""                # shown in feedback, e.g. "conv2d(x, weight, bias=None)"
    reference: str | None = None       # grader reference for cases without `expect`
    returns: str = "any"               # any | int | float | tensor
    rtol: float = 1e-4
    atol: float = 1e-5
    forbid: tuple[str, ...] = ()       # torch functions it must not call ("from scratch")
    time_limit_s: float = 5.0
    accept: tuple[str, ...] = ()       # other references whose answer also passes
    mistakes: tuple[Mistake, ...] = ()  # known wrong answers, named in feedback


@dataclass(frozen=True)
class Mistake:
    """A known wrong answer: a reference that makes the mistake, and what to tell a student
    whose answer equals it."""

    reference: str
    says: str


@dataclass(frozen=True)
class CaseSpec:
    """One call of a student function: inputs, and where the expected value comes from."""

    function: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    expect: Any = None
    has_expect: bool = False           # `expect:` given (else the reference computes it)
    reference: str | None = None
    rtol: float | None = None
    atol: float | None = None
    label: str = ""
    hidden: bool = False               # from hidden_cases.yaml: inputs never shown to students
    where: str = ""                    # file and key, for error messages
    observe: Any = None                # None (the return value), an OBSERVATIONS name, or
                                       # {apply_to: IMAGES, draws: N}


@dataclass(frozen=True)
class TrainingSpec:
    dataset: str
    epochs: int
    batch_size: int
    optimizer: dict[str, Any]
    scheduler: dict[str, Any] | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    pad: int = 0
    hflip: bool = False
    crop_padding: int = 0
    max_train: int | None = None


@dataclass(frozen=True)
class Spec:
    path: Path
    name: str
    title: str
    input_shape: tuple[int, ...]
    layers: tuple[LayerSpec, ...]
    checks: tuple[CheckSpec, ...]
    training: TrainingSpec | None
    timeout_s: float
    functions: tuple[FunctionSpec, ...] = ()
    self_reported: bool = False        # grade what could not be exported from the student's
                                       # own process (marked in every report; default off)

    @property
    def folder(self) -> Path:
        return self.path.parent

    def check_kinds(self) -> set[str]:
        return {c.kind for c in self.checks}
