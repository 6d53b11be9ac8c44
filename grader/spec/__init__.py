"""Assignment specs: load `spec.yaml`, validate every key, derive expected shapes.

A spec is the instructor's whole statement of what a submission must be. It is
validated up front so that a typo fails loudly (file, key, fix) before any
student is graded against it, rather than silently costing students points.

Where each concern lives (import the names below from `grader.spec`):
  types.py      what a spec is: the dataclasses (Spec, LayerSpec, CheckSpec, FunctionSpec,
                CaseSpec, TrainingSpec, ...) and the names each key may use (CHECK_KINDS,
                LAYER_TYPES, ACTIVATIONS, DATASETS, THRESHOLD_VARIANTS, RETURNS, DTYPES, ...)
  reader.py     how malformed input is refused: Reader (typed keys, SpecError with file,
                key and fix), read_yaml, check_unique
  load.py       load_spec: the top level, each section handed to its reader, then the checks
                that span sections
  sections.py   readers of input_shape, layers (accepted forms and parameter counts), checks
                (accuracy bars, measured figures) and training (optimizer, scheduler)
  cases.py      the functions check: the grammar of function cases (documented there) and its
                reader, hidden cases (hidden_cases_file) and live values
  shapes.py     expected_shapes / layer_output_shape: the layers through the formulas
  discovery.py  find_spec: the spec `--assignment` names, or the nearest one
"""
from __future__ import annotations

from .cases import HIDDEN_CASES_FILE, MAX_RANDOM_VALUES, hidden_cases_file
from .discovery import find_spec
from .load import load_spec
from .shapes import ExpectedLayer, expected_shapes, layer_output_shape
from .types import (ACTIVATIONS, CHECK_KINDS, DATASETS, DTYPES, LAYER_TYPES, LIVE_KINDS,
                    RANDOM_DISTS, RETURNS, SCHEDULERS, SHAPE_KEEPING, THRESHOLD_VARIANTS,
                    AltParams, CaseSpec, CheckSpec, FormSpec, FunctionSpec, LayerSpec, Mistake,
                    Spec, TrainingSpec)

__all__ = [
    "ACTIVATIONS", "CHECK_KINDS", "DATASETS", "DTYPES", "HIDDEN_CASES_FILE", "LAYER_TYPES",
    "LIVE_KINDS", "MAX_RANDOM_VALUES", "RANDOM_DISTS", "RETURNS", "SCHEDULERS", "SHAPE_KEEPING",
    "THRESHOLD_VARIANTS", "AltParams", "CaseSpec", "CheckSpec", "ExpectedLayer", "FormSpec",
    "FunctionSpec", "LayerSpec", "Mistake", "Spec", "TrainingSpec", "expected_shapes",
    "find_spec", "hidden_cases_file", "layer_output_shape", "load_spec",
]
