"""Everything a replayed forward may do: one closed table of tensor operations, and its checks.

The replay worker runs a program the submission wrote (grader/worker/artifact.py),
so that program must not be able to do anything but arithmetic on tensors.
That is decided here, and only here:

- a function is called only if its name is in FUNCTIONS (torch.*, F.*, operator.*
  by name, each written out below: nothing is added because a torch release has it);
- a method is called only on a tensor (TENSOR_METHODS) or a torch.Size (SIZE_METHODS);
- an attribute is read only from a tensor, and only from TENSOR_ATTRIBUTES;
- a library module is built only from LIBRARY_MODULES;
- every argument and every result is a plain value (`check_value`): tensors, numbers,
  strings, None, dtypes, devices, slices and tuples or lists of those. A callable, a
  module, a storage or any other object cannot even be held, so no operation can hand
  the program a way out (which is how `operator.attrgetter` + `operator.call` once
  reached `exec`).

Names that some torch version lacks are simply absent from the table there.
"""
from __future__ import annotations

import builtins
import operator
from typing import Any, Callable

import torch
import torch.nn.functional as F

TORCH_FUNCTIONS = """
abs absolute acos acosh adaptive_avg_pool1d adaptive_max_pool1d add addbmm addcdiv addcmul addmm
addmv addr all allclose amax amin aminmax angle any arange arccos arccosh arcsin arcsinh arctan
arctan2 arctanh argmax argmin argsort argwhere as_tensor asin asinh atan atan2 atanh atleast_1d
atleast_2d atleast_3d avg_pool1d baddbmm batch_norm bernoulli bilinear binary_cross_entropy_with_logits
bincount bitwise_and bitwise_not bitwise_or bitwise_xor block_diag bmm broadcast_shapes
broadcast_tensors broadcast_to bucketize cartesian_prod cat cdist ceil celu chain_matmul
channel_shuffle chunk clamp clamp_max clamp_min clip clone column_stack combinations concat
concatenate conj constant_pad_nd conv1d conv2d conv3d conv_tbc conv_transpose1d conv_transpose2d
conv_transpose3d cos cosh cosine_similarity count_nonzero cov cross cummax cummin cumprod cumsum
deg2rad detach diag diag_embed diagflat diagonal diff digamma dist div divide dot dropout dsplit
dstack einsum empty empty_like eq equal erf erfc erfinv exp exp2 expm1 eye feature_dropout
flatten flip fliplr flipud float_power floor floor_divide fmax fmin fmod frac full full_like gather
gcd ge gelu ger greater greater_equal group_norm gt hardshrink heaviside histc hsplit hstack
hypot i0 index_add index_copy index_fill index_put index_reduce index_select inner instance_norm
is_complex is_floating_point is_nonzero is_tensor isclose isfinite isin isinf isnan isneginf
isposinf isreal kron kthvalue layer_norm lcm ldexp le lerp less less_equal lgamma linspace log
log10 log1p log2 log_softmax logaddexp logaddexp2 logcumsumexp logdet logical_and logical_not
logical_or logical_xor logit logspace logsumexp lt masked_fill masked_scatter masked_select matmul
max max_pool1d max_pool1d_with_indices max_pool2d max_pool3d maximum mean median meshgrid min
minimum mm mode moveaxis movedim msort mul multinomial multiply mv mvlgamma nan_to_num nanmean
nanmedian nanquantile nansum narrow narrow_copy native_batch_norm native_layer_norm ne neg
negative nextafter nonzero norm normal not_equal numel ones ones_like outer pairwise_distance
pdist permute pinverse pixel_shuffle pixel_unshuffle poisson polar polygamma positive pow prelu
prod quantile rad2deg rand rand_like randint randint_like randn randn_like randperm range ravel
reciprocal relu relu_ remainder renorm repeat_interleave reshape resolve_conj resolve_neg roll
rot90 round rrelu rsqrt scalar_tensor scatter scatter_add scatter_reduce searchsorted select
select_scatter selu sgn sigmoid sign signbit sin sinc sinh slice_scatter softmax sort split
split_with_sizes sqrt square squeeze stack std std_mean sub subtract sum svd swapaxes swapdims t
take take_along_dim tan tanh tensor tensor_split tensordot threshold tile topk trace transpose
trapezoid trapz tril tril_indices triu triu_indices true_divide trunc unbind unflatten
unique unique_consecutive unravel_index unsqueeze vander var var_mean vdot view_as_complex
view_as_real vsplit vstack where xlogy zeros zeros_like
""".split()

FUNCTIONAL = """
adaptive_avg_pool1d adaptive_avg_pool2d adaptive_avg_pool3d adaptive_max_pool1d
adaptive_max_pool1d_with_indices adaptive_max_pool2d adaptive_max_pool2d_with_indices
adaptive_max_pool3d affine_grid alpha_dropout avg_pool1d avg_pool2d avg_pool3d batch_norm
bilinear binary_cross_entropy binary_cross_entropy_with_logits celu channel_shuffle conv1d conv2d
conv3d conv_transpose1d conv_transpose2d conv_transpose3d cosine_similarity cross_entropy dropout
dropout1d dropout2d dropout3d elu embedding feature_alpha_dropout fold fractional_max_pool2d
gelu glu grid_sample group_norm gumbel_softmax hardshrink hardsigmoid hardswish hardtanh
instance_norm interpolate kl_div l1_loss layer_norm leaky_relu linear local_response_norm
log_softmax logsigmoid lp_pool1d lp_pool2d max_pool1d max_pool1d_with_indices max_pool2d
max_pool2d_with_indices max_pool3d max_unpool1d max_unpool2d mish mse_loss nll_loss normalize
one_hot pad pairwise_distance pdist pixel_shuffle pixel_unshuffle prelu relu relu6 rms_norm rrelu
selu sigmoid silu smooth_l1_loss softmax softmin softplus softshrink softsign tanh tanhshrink
threshold unfold upsample upsample_bilinear upsample_nearest
""".split()

OPERATORS = """
abs add and_ contains eq floordiv ge getitem gt iadd iand ifloordiv imatmul imod imul index
invert ior ipow isub itruediv ixor le lt matmul mod mul ne neg not_ or_ pos pow setitem sub
truediv truth xor
""".split()

TENSOR_METHODS = """
abs abs_ absolute acos add add_ addbmm addcdiv addcdiv_ addcmul addcmul_ addmm addmv all allclose
amax amin aminmax any argmax argmin argsort argwhere as_strided_scatter asin atan atan2 baddbmm
bernoulli bernoulli_ bfloat16 bincount bitwise_and bitwise_not bitwise_or bitwise_xor bmm bool
broadcast_to byte ceil ceil_ char chunk clamp clamp_ clamp_max clamp_min clip clip_ clone
contiguous copy_ cos cosh count_nonzero cpu cross cuda cummax cummin cumprod cumsum deg2rad detach
detach_ diag diag_embed diagonal diff dim div div_ divide dot double dsplit element_size eq eq_
equal erf erf_ erfinv exp exp_ expand expand_as expm1 exponential_ fill_ fill_diagonal_ fix flatten
flip fliplr flipud float float_power floor floor_ floor_divide fmax fmin fmod frac gather gcd ge
ge_ gelu geometric_ get_device greater greater_equal gt gt_ half hardshrink heaviside histc hsplit
hypot index_add index_add_ index_copy index_copy_ index_fill index_fill_ index_put index_put_
index_select inner int is_complex is_contiguous is_floating_point is_nonzero isclose isfinite isinf
isnan item kron kthvalue lcm ldexp le le_ lerp lerp_ less less_equal lgamma log log10 log1p log2
log_ log_normal_ log_softmax logaddexp logcumsumexp logical_and logical_not logical_or logical_xor
logit logsumexp long lt lt_ masked_fill masked_fill_ masked_scatter masked_scatter_ masked_select
matmul max maximum mean median min minimum mm mode moveaxis movedim msort mul mul_ multinomial
multiply mv nan_to_num nan_to_num_ nanmean nanmedian nanquantile nansum narrow narrow_copy ndimension
ne ne_ neg neg_ negative nelement new_empty new_full new_ones new_tensor new_zeros nonzero norm
normal_ not_equal numel outer permute pow pow_ prod quantile rad2deg random_ ravel reciprocal
reciprocal_ relu relu_ remainder remainder_ renorm repeat repeat_interleave requires_grad_ reshape
reshape_as resize_as_ roll rot90 round round_ rsqrt rsqrt_ scatter scatter_ scatter_add
scatter_add_ scatter_reduce select short sigmoid sigmoid_ sign sign_ signbit sin sin_ sinh size
softmax sort split sqrt sqrt_ square square_ squeeze squeeze_ std stride sub sub_ subtract sum
sum_to_size swapaxes swapdims t t_ take take_along_dim tan tanh tanh_ tensor_split tile to tolist
topk trace transpose transpose_ tril tril_ triu triu_ true_divide trunc trunc_ type type_as unbind
unflatten unfold uniform_ unique unique_consecutive unsqueeze unsqueeze_ var vdot view view_as
vsplit where xlogy zero_
""".split()

TENSOR_OPERATORS = """
__abs__ __add__ __and__ __eq__ __floordiv__ __ge__ __getitem__ __gt__ __iadd__ __iand__
__imul__ __invert__ __ior__ __isub__ __itruediv__ __ixor__ __le__ __lt__ __matmul__ __mod__
__mul__ __ne__ __neg__ __or__ __pos__ __pow__ __radd__ __rand__ __rfloordiv__ __rmatmul__
__rmod__ __rmul__ __ror__ __rpow__ __rsub__ __rtruediv__ __rxor__ __setitem__ __sub__
__truediv__ __xor__
""".split()   # what `x[i]`, `x + y`, ... become when fx records them as methods

SIZE_METHODS = ("numel", "index", "count")
TENSOR_ATTRIBUTES = ("shape", "dtype", "device", "ndim", "T", "mT", "data", "is_cuda",
                     "requires_grad", "is_leaf", "layout")

LIBRARY_MODULES = """
AdaptiveAvgPool1d AdaptiveAvgPool2d AdaptiveAvgPool3d AdaptiveMaxPool1d AdaptiveMaxPool2d
AdaptiveMaxPool3d AlphaDropout AvgPool1d AvgPool2d AvgPool3d BatchNorm1d BatchNorm2d BatchNorm3d
Bilinear CELU ChannelShuffle ConstantPad1d ConstantPad2d ConstantPad3d Conv1d Conv2d Conv3d
ConvTranspose1d ConvTranspose2d ConvTranspose3d CrossMapLRN2d Dropout Dropout1d Dropout2d
Dropout3d ELU Embedding FeatureAlphaDropout Flatten Fold GELU GLU GroupNorm Hardshrink Hardsigmoid
Hardswish Hardtanh Identity InstanceNorm1d InstanceNorm2d InstanceNorm3d LPPool1d LPPool2d
LayerNorm LeakyReLU Linear LocalResponseNorm LogSigmoid LogSoftmax MaxPool1d MaxPool2d MaxPool3d
MaxUnpool1d MaxUnpool2d Mish ModuleDict ModuleList PReLU PixelShuffle PixelUnshuffle RMSNorm ReLU
ReLU6 ReflectionPad1d ReflectionPad2d ReplicationPad1d ReplicationPad2d SELU SiLU Sequential
Sigmoid Softmax Softmax2d Softmin Softplus Softshrink Softsign Tanh Tanhshrink Threshold Unflatten
Unfold Upsample UpsamplingBilinear2d UpsamplingNearest2d ZeroPad1d ZeroPad2d
""".split()

GUARD = "grader.guard"         # a check the tracer recorded where it fixed a size (capture.py)
RAISE = "grader.raise"         # where the captured forward raised
MAX_ITEMS = 100_000            # items in one tuple or list value
MAX_DEPTH = 8                  # nesting of tuples and lists
MAX_STR = 1_000
MAX_INT = 1 << 62
PLAIN = (bool, int, float, str, type(None), type(Ellipsis), torch.dtype, torch.device,
         torch.memory_format, torch.layout)


class ReplayRefused(Exception):
    """An exported program asked for something outside this table."""


def check_value(value: Any, depth: int = 0) -> None:
    """Refuse anything that is not plain tensor-program data (see the module docstring)."""
    if isinstance(value, torch.Tensor):
        if type(value) not in (torch.Tensor, torch.nn.Parameter):
            raise ReplayRefused(f"a value of type {type(value).__name__} is not a plain tensor")
        return
    kind = type(value)
    if kind in PLAIN:
        if kind is int and not -MAX_INT <= value <= MAX_INT:
            raise ReplayRefused("an integer beyond 2**62 is not a size or an index")
        if kind is str and len(value) > MAX_STR:
            raise ReplayRefused("a string argument is longer than any tensor operation needs")
        return
    if kind in (tuple, list, torch.Size) or kind.__module__ == "torch.return_types":
        if depth >= MAX_DEPTH or len(value) > MAX_ITEMS:
            raise ReplayRefused("a tuple or list value is nested too deep or is too long")
        for item in value:
            check_value(item, depth + 1)
        return
    if kind is slice:
        for part in (value.start, value.stop, value.step):
            check_value(part, depth + 1)
        return
    raise ReplayRefused(f"a {kind.__name__} value is not tensor-program data")


def check_arguments(args: Any, kwargs: dict[str, Any]) -> None:
    check_value(tuple(args))
    for key, item in kwargs.items():
        if type(key) is not str or len(key) > 64:
            raise ReplayRefused("a keyword argument name is not a short string")
        check_value(item)


def _attribute(obj: Any, name: Any) -> Any:
    """fx writes `x.shape` as getattr(x, "shape"): only a tensor's own data attributes, and
    the tensor fields of what torch.max and friends return (`.values`, `.indices`)."""
    if isinstance(obj, torch.Tensor) and name in TENSOR_ATTRIBUTES:
        return builtins.getattr(obj, name)
    if type(obj).__module__ == "torch.return_types" and isinstance(name, str) and \
            name.isidentifier() and not name.startswith("_"):
        value = builtins.getattr(obj, name, None)
        if isinstance(value, torch.Tensor):
            return value
    raise ReplayRefused(f"reading {name!r} of a {type(obj).__name__} is not replayable")


def _power(base: Any, exponent: Any) -> Any:
    """`**` on Python integers can take the worker's lifetime; sizes never need big powers."""
    if type(base) is int and type(exponent) is int and abs(exponent) > 64:
        raise ReplayRefused("an integer power beyond 64 is not a size computation")
    return operator.pow(base, exponent)


def guard(value: Any, expected: Any) -> Any:
    """Where the tracer fixed a value that came from a size (an `if` on x.size(1), a
    `range(h)`), the replayed program checks that the size is still the traced one."""
    if value != expected:
        raise ReplayRefused(f"the forward was traced for a size of {expected!r}, but got "
                            f"{value!r}: its Python control flow depends on the input's size "
                            "at this line, and the grader replays it only for the traced size")
    return value


def raise_error(kind: Any, message: Any) -> None:
    """Where the student's forward raised while it was captured (its own `raise`, a failed
    `assert`), the replayed program raises the same: same type name, same message."""
    name = kind if isinstance(kind, str) and kind.isidentifier() and len(kind) <= 60 else "Error"
    raise type(name, (Exception,), {})(str(message)[:2000])


def _table() -> dict[str, Callable]:
    table: dict[str, Callable] = {}
    for prefix, namespace, names in (("torch", torch, TORCH_FUNCTIONS), ("F", F, FUNCTIONAL),
                                     ("operator", operator, OPERATORS)):
        for name in names:
            fn = getattr(namespace, name, None)
            if callable(fn):
                table[f"{prefix}.{name}"] = fn
    table["operator.pow"] = table["operator.ipow"] = _power
    table["getattr"] = _attribute
    table["len"] = builtins.len
    table[GUARD] = guard
    table[RAISE] = raise_error
    return table


FUNCTIONS = _table()
_IDS = {id(fn): name for name, fn in reversed(list(FUNCTIONS.items()))}
_IDS.update({id(operator.pow): "operator.pow", id(operator.ipow): "operator.ipow",
             id(builtins.getattr): "getattr", id(builtins.len): "len", id(guard): GUARD,
             id(raise_error): RAISE})
METHODS = frozenset(m for m in TENSOR_METHODS + TENSOR_OPERATORS
                    if callable(getattr(torch.Tensor, m, None)))
MODULE_CLASSES = {name: getattr(torch.nn, name) for name in LIBRARY_MODULES
                  if isinstance(getattr(torch.nn, name, None), type)}


def function_name(fn: Any) -> str | None:
    """The table's name for a function a forward called, or None when it is not in the table."""
    return _IDS.get(id(fn))


def call_function(name: str, args: Any, kwargs: dict[str, Any]) -> Any:
    fn = FUNCTIONS.get(name) if isinstance(name, str) else None
    if fn is None:
        raise ReplayRefused(f"{name!r} is not an operation the grader replays")
    check_arguments(args, kwargs)
    result = fn(*args, **kwargs)
    check_value(result)
    return result


def call_method(name: str, args: Any, kwargs: dict[str, Any]) -> Any:
    if not args:
        raise ReplayRefused(f"method {name!r} is called on nothing")
    obj = args[0]
    allowed = METHODS if isinstance(obj, torch.Tensor) else \
        SIZE_METHODS if type(obj) is torch.Size else ()
    if name not in allowed:
        if isinstance(name, str) and not hasattr(type(obj), name):   # as Python would say it
            raise AttributeError(f"'{type(obj).__name__}' object has no attribute '{name}'")
        raise ReplayRefused(f"method {name!r} of a {type(obj).__name__} is not replayable")
    check_arguments(args, kwargs)
    result = getattr(obj, name)(*args[1:], **kwargs)
    check_value(result)
    return result


def module_class(name: str) -> type[torch.nn.Module]:
    cls = MODULE_CLASSES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ReplayRefused(f"{name!r} is not a torch.nn module the grader builds")
    return cls
