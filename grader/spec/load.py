"""load_spec: read spec.yaml's top level, hand each section to its reader, then check what
spans sections (layers for the model checks, a recipe for accuracy, a possible shape chain).
"""
from __future__ import annotations

from pathlib import Path

from ..errors import SpecError
from . import cases, sections
from .reader import Reader, check_unique, read_yaml
from .shapes import expected_shapes
from .types import Spec


def load_spec(path: Path | str) -> Spec:
    """Parse and validate a spec.yaml; raises SpecError naming the file and the key."""
    path = Path(path)
    top = Reader(path, read_yaml(path), "")
    top.unknown({"name", "title", "input_shape", "layers", "checks", "training", "timeout_s",
                 "functions", "notes", "self_reported"})
    name = top.get("name", str)
    if name != path.parent.name:
        raise SpecError(path, "name", f"is {name!r} but the folder is {path.parent.name!r}",
                        f"set `name: {path.parent.name}` (assignment names are folder names)")
    layers = tuple(sections.layer(path, raw, i)
                   for i, raw in enumerate(top.get("layers", list, [])))
    check_unique(path, "layers", [layer.name for layer in layers])
    functions = tuple(cases.function(path, raw, i)
                      for i, raw in enumerate(top.get("functions", list, [])))
    check_unique(path, "functions", [f.name for f in functions])
    checks = tuple(sections.check(path, raw, i, functions)
                   for i, raw in enumerate(top.get("checks", list)))
    check_unique(path, "checks", [c.id for c in checks])
    raw_training = top.get("training", dict, None)
    spec = Spec(
        path=path, name=name, title=top.get("title", str, name),
        input_shape=sections.shape(path, top.get("input_shape", list, [])),
        layers=layers, checks=checks,
        training=sections.training(path, raw_training) if raw_training is not None else None,
        timeout_s=float(top.positive("timeout_s", 600, kind=float)),
        functions=functions,
        self_reported=top.get("self_reported", bool, False),
    )
    _cross_check(spec)
    return spec


def _cross_check(spec: Spec) -> None:
    """Checks that span keys: the model checks need layers, accuracy needs training."""
    kinds = spec.check_kinds()
    names = {layer.name for layer in spec.layers}
    if kinds & {"shapes", "params"} and not (spec.layers and spec.input_shape):
        raise SpecError(spec.path, "layers", "shapes/params checks need `input_shape` and `layers`",
                        "list the layers the model must have, in call order")
    if "accuracy" in kinds and spec.training is None:
        raise SpecError(spec.path, "training", "an accuracy check needs a training recipe",
                        "add a `training:` section (dataset, epochs, batch_size, optimizer, normalize)")
    for i, layer in enumerate(spec.layers):
        if layer.input_from and layer.input_from not in names:
            raise SpecError(spec.path, f"layers[{i}].input_from",
                            f"names no layer: {layer.input_from!r}", "use another layer's name")
    expected_shapes(spec)  # raises on an impossible chain
