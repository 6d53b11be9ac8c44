"""Capture a module's forward as a tensor program, the way honest student code is written.

torch.fx traces a forward with proxies that have no values, so ordinary Python
on sizes fails: `if x.dim() == 3:`, `for s in x.size()[1:]:` (the PyTorch
tutorial's num_flat_features), `range(h)`, `len(x.shape)`. This tracer runs
the real computation beside the symbolic one: every node also carries the
value it had for the probe input. Where Python needs a real bool, int or
length, the tracer looks at where the value came from:

- from sizes only (x.size(), x.shape, x.dim(), arithmetic on those, a module's
  non-tensor argument): it uses the probe's value, as torch.export does, and
  records a guard node, so the replayed program checks the size is the same;
- from tensor data (`if x.sum() > 0`, `int(x.max())`): it refuses, because the
  branch would depend on each input and no single program is the model.

`x.view(x.size(0), -1)` needs no fixing at all: the size stays a node, and the
replayed model takes any batch size. Children stay whole (one call_module node
each); each custom child is captured on its own, with the inputs it received
in a real forward pass of the whole model (`first_inputs`).
"""
from __future__ import annotations

import builtins
import contextlib
import functools
import inspect
import linecache
import operator
import os
import sys
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.fx
from torch import nn
from torch.fx.node import map_aggregate, map_arg

from . import ops
from .trace import walk_modules

SIZE_METHODS = {"size", "dim", "numel", "nelement", "ndimension", "stride", "element_size",
                "get_device", "is_contiguous", "is_floating_point", "is_complex"}
SIZE_ATTRIBUTES = {"shape", "ndim", "dtype", "device", "is_cuda", "layout"}
CONSTRUCTORS = ("zeros", "ones", "full", "empty", "rand", "randn", "randint", "arange", "eye",
                "linspace", "logspace", "tensor", "as_tensor", "scalar_tensor", "randperm")
DATA_HINT = ("write the forward without Python `if`, `int()` or `.item()` on tensor values "
             "(use torch.where, or tensor operations that work for every input)")


class DataDependent(torch.fx.proxy.TraceError):
    """A forward's Python control flow depends on tensor values: it is not one program."""


def first_inputs(model: nn.Module, modules: list[nn.Module], x: torch.Tensor
                 ) -> dict[int, tuple[tuple, dict]]:
    """Run the model once on `x` and keep each listed module's first (args, kwargs).

    A forward that crashes still leaves the inputs of every module it reached.
    """
    captured: dict[int, tuple[tuple, dict]] = {}

    def keep(module, args, kwargs):
        if id(module) not in captured:
            captured[id(module)] = map_aggregate((args, kwargs), _detach)
    handles = [m.register_forward_pre_hook(keep, with_kwargs=True) for m in modules]
    try:
        with torch.no_grad():
            model(x)
    except Exception:  # noqa: BLE001 - the replay worker reports the crash; inputs so far stand
        pass
    finally:
        for h in handles:
            h.remove()
    return captured


def _detach(value: Any) -> Any:
    return value.detach().clone() if isinstance(value, torch.Tensor) else value


class Capture(torch.fx.Tracer):
    """Traces one module's own forward with values beside the proxies (module docstring)."""

    def __init__(self, root: nn.Module, student_root: Path,
                 inputs: tuple[tuple, dict] | None):
        super().__init__()
        self.traced_root = root
        self.student_root = str(student_root.resolve()) + os.sep
        self.inputs = inputs
        self.bound: dict[str, Any] | None = None
        self.executing = False   # running real code to get a value: no nodes, no proxies
        self.installed: set[int] | None = None   # ids of the traced root's own modules

    # ---- what becomes a node
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return m is not self.traced_root

    def call_module(self, m, forward, args, kwargs):
        if self.executing or self._made_in_forward(m):
            return forward(*args, **kwargs)
        return super().call_module(m, forward, args, kwargs)

    def _made_in_forward(self, m: nn.Module) -> bool:
        """`nn.ReLU()(x)`, `nn.Softmax(dim=1)(x)`, `nn.Flatten()(x)`: a module without
        tensors, built inside the forward, is traced through (its own calls become nodes),
        as the student's code runs it. One with parameters stays an error (torch.fx: "not
        installed as a submodule"): it would be a new, untrained layer at every call."""
        if vars(m)["_parameters"] or any(b is not None for b in vars(m)["_buffers"].values()):
            return False
        if self.installed is None:
            self.installed = {id(sub) for _, sub in walk_modules(self.traced_root)}
        return id(m) not in self.installed and m is not self.traced_root

    def getattr(self, attr, attr_val, parameter_proxy_cache):
        if self.executing:
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)

    def trace(self, root, concrete_args=None):
        if self.inputs is not None:
            signature = inspect.signature(type(root).forward)
            bound = signature.bind(root, *self.inputs[0], **self.inputs[1])
            bound.apply_defaults()
            self.bound = dict(bound.arguments)
        with _real_numbers(type(root).forward.__globals__):
            return super().trace(root, concrete_args)

    def create_node(self, kind, target, args, kwargs, name=None, type_expr=None):
        node = super().create_node(kind, target, args, kwargs, name, type_expr)
        node.meta["student_frames"] = self._student_frames()
        if self.bound is not None:
            self._evaluate(node)
        return node

    # ---- values beside the proxies
    def _evaluate(self, node: torch.fx.Node) -> None:
        """The node's value for the probe input, and whether it comes from sizes only."""
        if node.op == "output":
            return
        args = map_arg(node.args, _value)
        kwargs = map_arg(node.kwargs, _value)
        if any(n.meta.get("missing") for n in node.all_input_nodes):
            node.meta["missing"] = True
            return
        self.executing = True
        try:
            with torch.no_grad():
                value = self._run(node, args, kwargs)
        except Exception:  # noqa: BLE001 - the forward fails here; the replay will show where
            node.meta["missing"] = True
            return
        finally:
            self.executing = False
        node.meta["value"] = value
        node.meta["sizes_only"] = _sizes_only(node, value)

    def _run(self, node: torch.fx.Node, args: Any, kwargs: Any) -> Any:
        if node.op == "placeholder":
            name = node.target.lstrip("*")
            return self.bound[name] if name in self.bound else args[0]
        if node.op == "get_attr":   # a copy: a write into it (`k[mask] = w`) stays in here
            return _detach(_fetch(self.traced_root, node.target))
        if node.op == "call_module":
            return self.traced_root.get_submodule(node.target)(*args, **kwargs)
        if node.op == "call_method":
            return getattr(args[0], node.target)(*args[1:], **kwargs)
        return node.target(*args, **kwargs)

    # ---- where Python asks for a real value
    def to_bool(self, obj: torch.fx.Proxy) -> bool:
        return bool(self.fixed(obj, "use it in an `if` or `while`"))

    def iter(self, obj: torch.fx.Proxy) -> Iterator:
        return (obj[i] for i in range(self.length(obj)))

    def length(self, obj: torch.fx.Proxy) -> int:
        """len() of a traced tuple or tensor: structure, so fixed and guarded like a size."""
        return int(self.fixed(self.create_proxy("call_function", len, (obj,), {}), "take its len()"))

    def fixed(self, obj: torch.fx.Proxy, use: str) -> Any:
        """The probe's value of a size-derived proxy, guarded in the program; else refuse."""
        value = self._value_of(obj, use)
        if not obj.node.meta.get("sizes_only"):
            frames = self._student_frames()
            where = f" at {frames[-1]['file']}, line {frames[-1]['line']}: " \
                    f"`{frames[-1]['code']}`" if frames else ""
            raise DataDependent(f"its Python code needs a tensor's value (to {use}){where}; "
                                f"{DATA_HINT}")
        self._guard(obj, value)
        return value

    def _value_of(self, obj: torch.fx.Proxy, use: str) -> Any:
        node = obj.node
        if "value" not in node.meta:
            raise torch.fx.proxy.TraceError(f"a traced value is used to {use}, and the grader "
                                            "could not work out its value for the probe input")
        return node.meta["value"]

    def _guard(self, obj: torch.fx.Proxy, value: Any) -> None:
        self.create_proxy("call_function", ops.guard, (obj, value), {})

    # ---- where in the student's code each node came from
    def _student_frames(self) -> list[dict[str, Any]]:
        frames = []
        frame = sys._getframe(1)
        while frame is not None:
            code = frame.f_code
            if os.path.realpath(code.co_filename).startswith(self.student_root):
                frames.append({"file": Path(code.co_filename).name, "line": frame.f_lineno,
                               "function": code.co_name,
                               "code": linecache.getline(code.co_filename, frame.f_lineno).strip()})
            frame = frame.f_back
        return frames[::-1][-5:]


def _value(node: torch.fx.Node) -> Any:
    return node.meta.get("value")


def _fetch(root: nn.Module, target: str) -> Any:
    value: Any = root
    for part in target.split("."):
        value = getattr(value, part)
    return value


def _sizes_only(node: torch.fx.Node, value: Any) -> bool:
    """Whether a node's value depends on the sizes of tensors and not on their contents."""
    if isinstance(value, torch.Tensor):
        return False
    if node.op == "placeholder" or node.target is len:
        return True   # a module's non-tensor argument, or a length: the program's structure
    if node.op == "call_method" and node.target in SIZE_METHODS:
        return True
    if node.op == "call_function" and node.target is getattr:
        return node.args[1] in SIZE_ATTRIBUTES
    if node.op in ("call_function", "call_method"):
        inputs = node.all_input_nodes
        return bool(inputs) and all(n.meta.get("sizes_only") for n in inputs)
    return False


def _shown(self) -> str:
    """A proxy printed (print(x.shape) in a forward, an f-string in a message) shows the value
    it had for the probe input, as the student's own run would."""
    if "value" in self.node.meta:
        return repr(self.node.meta["value"])
    return f"Proxy({self.node.name})"


def _recorded(fn):
    """torch.zeros(x.size(0), 10) and friends: tensor factories get no tensor argument, so
    torch.fx never sees them; with a proxy among their arguments they become a node."""
    @functools.wraps(fn)
    def factory(*args, **kwargs):
        proxies = []
        map_aggregate((args, kwargs), lambda v: proxies.append(v)
                      if isinstance(v, torch.fx.Proxy) else None)
        if proxies:
            return proxies[0].tracer.create_proxy("call_function", fn, args, kwargs)
        return fn(*args, **kwargs)
    return factory


def _assign(self, index, value) -> None:
    """`proxy[index] = value`: an in-place write, recorded as a node like any other call
    (the replayed program runs it on its own tensors, in the same order)."""
    self.tracer.create_proxy("call_function", operator.setitem, (self, index, value), {})


@contextlib.contextmanager
def _real_numbers(namespace: dict[str, Any]):
    """While tracing, a size-derived proxy may become an int, a float or an index, fixed by
    the tracer's `fixed` (torch.fx refuses all of them outright); `len()` in the student's
    module goes through the tracer too.

    Only size-derived proxies convert: for any other proxy the conversion raises TypeError,
    as for an object without it, so torch's argument parsers, which try conversions while
    matching overloads, and `tuple()`, which asks for a length hint, see a tensor proxy as
    an object that has none. `len()` of a tensor proxy (its first size) goes through the
    module's own `len`, patched here. Item assignment (`kernel[mask] = w`, `x[:, 0] = 0`),
    which torch.fx cannot trace, becomes an `operator.setitem` node (`_assign`).
    """
    proxy = torch.fx.Proxy
    saved = {name: proxy.__dict__.get(name) for name in ("__index__", "__int__", "__float__",
                                                          "__len__", "__repr__", "__setitem__")}

    def via(use: str, convert):
        def method(self):
            if isinstance(self.tracer, Capture) and self.node.meta.get("sizes_only"):
                return convert(self.tracer.fixed(self, use))
            raise TypeError(f"a traced tensor cannot be used to {use}")
        return method

    def traced_len(obj):
        if isinstance(obj, proxy) and isinstance(obj.tracer, Capture):
            return obj.tracer.length(obj)
        return builtins.len(obj)

    proxy.__len__ = via("take its len()", len)
    proxy.__repr__ = _shown
    proxy.__index__ = via("use it as an index or a range", int)
    proxy.__int__ = via("turn it into an int", int)
    proxy.__float__ = via("turn it into a float", float)
    proxy.__setitem__ = _assign
    had_len, old_len = "len" in namespace, namespace.get("len")
    namespace["len"] = traced_len
    constructors = {name: getattr(torch, name) for name in CONSTRUCTORS if hasattr(torch, name)}
    for name, fn in constructors.items():
        setattr(torch, name, _recorded(fn))
    try:
        yield
    finally:
        for name, fn in constructors.items():
            setattr(torch, name, fn)
        for name, original in saved.items():
            if original is None:
                delattr(proxy, name)
            else:
                setattr(proxy, name, original)
        if had_len:
            namespace["len"] = old_len
        else:
            namespace.pop("len", None)
