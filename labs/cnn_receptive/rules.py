"""The rules per layer type: what a module, function or method does to the receptive field.

Each rule takes the geometry of a layer's input (a
:class:`~.geometry.TensorGeometry`) and returns ``(kind, output geometry)``, where kind is
``conv``, ``pool``, ``same``, ``merge``, ``reshape`` or ``head`` (see
:class:`~.geometry.LayerField`). The rules are tables: :data:`MODULE_RULES` maps a module
type to its rule (a subclass finds its parent's), :data:`MODULE_RULES_BY_NAME` covers
torchvision's types by name, :data:`FUNCTION_RULES` and :data:`METHOD_RULES` map the
functions and tensor methods a traced graph calls. Anything missing raises
:class:`Unsupported`, which the calculator reports instead of guessing.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.fx as fx
from torch import nn
from torch.nn import functional as F

from .geometry import AxisField, TensorGeometry, Unsupported, expand_used, pad, union, window

Rule = tuple[str, TensorGeometry | None]


# --------------------------------------------------------------------------- layer types

SAME_MODULES: tuple[type, ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Threshold,
    nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.GroupNorm, nn.LocalResponseNorm,
)  # fmt: skip
#: Module types from torchvision that act position by position (matched by name, before
#: their base classes: ``LayerNorm2d`` is an ``nn.LayerNorm`` over channels).
SAME_MODULE_NAMES = ("StochasticDepth", "FrozenBatchNorm2d", "LayerNorm2d")

CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
MAXPOOL = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
AVGPOOL = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
LPPOOL = tuple(c for c in (getattr(nn, "LPPool1d", None), getattr(nn, "LPPool2d", None),
                           getattr(nn, "LPPool3d", None)) if c is not None)  # fmt: skip
ADAPTIVE = (
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
)  # fmt: skip
ZERO_PADS = tuple(getattr(nn, f"{kind}Pad{d}d") for kind in ("Zero", "Constant") for d in (1, 2, 3)
                  if hasattr(nn, f"{kind}Pad{d}d"))  # fmt: skip
REPEATING_PADS = tuple(getattr(nn, f"{kind}Pad{d}d") for kind in ("Reflection", "Replication", "Circular")
                       for d in (1, 2, 3) if hasattr(nn, f"{kind}Pad{d}d"))  # fmt: skip


# Functions and methods that work element by element (with broadcasting).
POINTWISE_FUNCS = {
    operator.add, operator.iadd, operator.mul, operator.imul, operator.sub, operator.isub, operator.truediv,
    operator.itruediv, operator.neg, torch.add, torch.mul, torch.sub, torch.div, torch.relu, torch.sigmoid,
    torch.tanh, torch.clamp, torch.exp, torch.abs, torch.where, F.relu, F.relu6, F.leaky_relu, F.elu, F.selu,
    F.gelu, F.silu, F.mish, F.hardswish, F.hardsigmoid, F.hardtanh, F.sigmoid, F.tanh, F.dropout, F.dropout1d,
    F.dropout2d, F.dropout3d, F.batch_norm, F.instance_norm, F.group_norm, F.local_response_norm,
}  # fmt: skip
try:  # torchvision's stochastic depth drops whole samples: position by position
    from torchvision.ops import stochastic_depth as _stochastic_depth

    POINTWISE_FUNCS.add(_stochastic_depth)
except ImportError:  # pragma: no cover
    pass  # fmt: skip
POINTWISE_METHODS = {
    "add", "add_", "mul", "mul_", "sub", "sub_", "div", "div_", "relu", "relu_", "sigmoid",
    "sigmoid_", "tanh", "clamp", "clamp_", "contiguous", "clone", "float", "double", "half", "to",
    "type", "type_as", "exp", "abs", "neg", "detach", "requires_grad_",
}  # fmt: skip

#: Casts: element by element, but their other arguments (a dtype, a tensor) are no input.
CAST_METHODS = ("to", "type", "type_as")


def nd(value: Any, d: int) -> tuple[int, ...]:
    """``value`` as one entry per axis (``3`` -> ``(3, 3)`` for ``d = 2``)."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * d


# --------------------------------------------------------------------------- geometry transforms


def _conv_pads(module: nn.Module, d: int) -> list[tuple[int, int]]:
    """Left/right padding per axis of a convolution, including ``padding="same"``
    (PyTorch puts the odd extra column on the right)."""
    k, dil = nd(module.kernel_size, d), nd(module.dilation, d)
    if module.padding == "valid":
        return [(0, 0)] * d
    if module.padding == "same":
        pads = []
        for kk, dd in zip(k, dil, strict=False):
            total = dd * (kk - 1)
            pads.append((total // 2, total - total // 2))
        return pads
    return [(p, p) for p in nd(module.padding, d)]


def _last_dims_not_spatial(geom: TensorGeometry, count: int, what: str) -> TensorGeometry:
    if any(a is not None for a in geom.dims[len(geom.dims) - count :]):
        raise Unsupported(f"{what} mixes positions along a spatial axis")
    return geom


def _adaptive(geom: TensorGeometry, d: int, output_size: Any) -> TensorGeometry:
    """Adaptive pooling is an ordinary window only when each output size divides the input
    size (window = stride = n_in / n_out); otherwise its windows differ in size and overlap
    unevenly, which one (n, j, r, start) cannot describe."""
    out = nd(output_size, d)
    dims = list(geom.dims)
    k = []
    for i in range(d):
        a = dims[len(dims) - d + i]
        if a is None:
            raise Unsupported("adaptive pooling over a dimension that is not spatial")
        o = a.size if out[i] is None else out[i]
        if a.size % o:
            raise Unsupported(
                f"adaptive pooling from {a.size} to {o} (uneven windows: the field differs from unit to unit)"
            )
        k.append(a.size // o)
    return window(geom, d, k, k, [(0, 0)] * d, [1] * d, False)


def _flatten(geom: TensorGeometry, start: int, end: int) -> Rule:
    nd_ = len(geom.dims)
    start, end = start % nd_, end % nd_
    merged = geom.dims[start : end + 1]
    if all(a is None for a in merged):
        dims = geom.dims[:start] + (None,) + geom.dims[end + 1 :]
        return "reshape", TensorGeometry(dims)
    if all(a is None or a.size == 1 for a in merged) or start <= end:
        # Spatial positions become features: the map ends here.
        return "head", TensorGeometry(tuple(None for _ in geom.dims[:start]) + (None,) + geom.dims[end + 1 :])
    raise Unsupported("flatten")


def _reshape_by_shape(geom: TensorGeometry, in_shape: Sequence[int], out_shape: Sequence[int]) -> Rule:
    """A view/reshape: the spatial dims survive when they are the trailing dims of the input
    and the output ends with the same sizes (channel shuffles, splitting channels)."""
    spatial_pos = [i for i, a in enumerate(geom.dims) if a is not None]
    if not spatial_pos:
        return "reshape", TensorGeometry((None,) * len(out_shape))
    n = len(in_shape)
    tail = n - spatial_pos[0]
    if spatial_pos == list(range(n - tail, n)) and len(out_shape) >= tail and \
            tuple(out_shape[len(out_shape) - tail:]) == tuple(in_shape[n - tail:]):  # fmt: skip
        dims = (None,) * (len(out_shape) - tail) + geom.dims[n - tail :]
        return "reshape", TensorGeometry(dims)
    if (
        all(geom.dims[i].size == 1 for i in spatial_pos)
        or math.prod(out_shape[2:]) == 1
        or len(out_shape) <= 2
    ):
        return "head", TensorGeometry((None,) * len(out_shape))
    raise Unsupported(f"reshape from {tuple(in_shape)} to {tuple(out_shape)} mixes spatial axes")


# --------------------------------------------------------------------------- modules

ModuleRule = Callable[[nn.Module, TensorGeometry], Rule]


def _conv(module: nn.Module, geom: TensorGeometry) -> Rule:
    d = len(module.kernel_size)
    if module.padding_mode != "zeros" and module.padding != "valid" and module.padding != 0:
        # Reflected or circular padding shows in-image pixels again: the box would be wrong.
        raise Unsupported(f"padding_mode={module.padding_mode!r} (the padded border repeats the image)")
    return "conv", window(geom, d, nd(module.kernel_size, d), nd(module.stride, d),
                           _conv_pads(module, d), nd(module.dilation, d), False)  # fmt: skip


def _pool(module: nn.Module, geom: TensorGeometry) -> Rule:
    d = int(type(module).__name__[-2])
    k = nd(module.kernel_size, d)
    s = nd(module.stride if module.stride else module.kernel_size, d)
    p = nd(getattr(module, "padding", 0), d)
    dil = nd(getattr(module, "dilation", 1), d)
    return "pool", window(geom, d, k, s, [(x, x) for x in p], dil, bool(module.ceil_mode))


def _adaptive_module(module: nn.Module, geom: TensorGeometry) -> Rule:
    return "pool", _adaptive(geom, int(type(module).__name__[-2]), module.output_size)


def _same(module: nn.Module, geom: TensorGeometry) -> Rule:
    return "same", geom


def _layer_norm(module: nn.Module, geom: TensorGeometry) -> Rule:
    return "same", _last_dims_not_spatial(geom, len(module.normalized_shape), "LayerNorm")


def _linear(module: nn.Module, geom: TensorGeometry) -> Rule:
    return ("same" if any(geom.dims) else "head"), _last_dims_not_spatial(geom, 1, "Linear")


def _flatten_module(module: nn.Module, geom: TensorGeometry) -> Rule:
    return _flatten(geom, module.start_dim, module.end_dim)


def _softmax(module: nn.Module, geom: TensorGeometry) -> Rule:
    if module.dim in (-1, None):
        return "same", _last_dims_not_spatial(geom, 1, type(module).__name__)
    return "same", geom


def _zero_pad(module: nn.Module, geom: TensorGeometry) -> Rule:
    return "same", pad(geom, module.padding)


def _repeating_pad(module: nn.Module, geom: TensorGeometry) -> Rule:
    raise Unsupported(f"{type(module).__name__} (the padded border repeats the image)")


def _permute_module(module: nn.Module, geom: TensorGeometry) -> Rule:  # torchvision.ops.Permute
    return "reshape", TensorGeometry(tuple(geom.dims[i] for i in module.dims))


#: The rule of each module type; a subclass uses the rule of its nearest listed base class.
MODULE_RULES: dict[type, ModuleRule] = {
    **dict.fromkeys(CONV, _conv),
    **dict.fromkeys(MAXPOOL + AVGPOOL + LPPOOL, _pool),
    **dict.fromkeys(ADAPTIVE, _adaptive_module),
    **dict.fromkeys(SAME_MODULES, _same),
    nn.LayerNorm: _layer_norm,
    nn.Linear: _linear,
    nn.Flatten: _flatten_module,
    nn.Softmax: _softmax,
    nn.LogSoftmax: _softmax,
    **dict.fromkeys(ZERO_PADS, _zero_pad),
    **dict.fromkeys(REPEATING_PADS, _repeating_pad),
}
#: Rules for module types looked up by class name (torchvision's, without importing it);
#: checked first.
MODULE_RULES_BY_NAME: dict[str, ModuleRule] = {
    **dict.fromkeys(SAME_MODULE_NAMES, _same),
    "Permute": _permute_module,
}


def module_rule(module: nn.Module, geom: TensorGeometry) -> Rule:
    """(kind, output geometry) of a leaf module, from the tables."""
    rule = MODULE_RULES_BY_NAME.get(type(module).__name__)
    for cls in type(module).__mro__:
        if rule is not None:
            break
        rule = MODULE_RULES.get(cls)
    if rule is None:
        raise Unsupported(f"no rule for module type {type(module).__name__}")
    return rule(module, geom)


# --------------------------------------------------------------------------- functions and methods


@dataclass(frozen=True)
class Call:
    """What the rule of a traced function or method sees: the node, the geometry of every
    node so far, and the meta outputs (shapes) of every node."""

    node: fx.Node
    geometry: Mapping[str, TensorGeometry | None]
    metas: Mapping[str, Any]

    @property
    def inputs(self) -> list[TensorGeometry | None]:
        """Geometry of each tensor input (``None`` for constants)."""
        return [self.geometry.get(a.name) for a in self.node.all_input_nodes]

    @property
    def first(self) -> TensorGeometry | None:
        """Geometry of the first tensor input."""
        nodes = self.node.all_input_nodes
        return self.geometry.get(nodes[0].name) if nodes else None

    def arg(self, index: int, name: str, default: Any) -> Any:
        """Argument ``index`` (positional) or ``name`` (keyword)."""
        if len(self.node.args) > index:
            return self.node.args[index]
        return self.node.kwargs.get(name, default)


CallRule = Callable[[Call], Rule]


def _pointwise(c: Call) -> Rule:
    geoms = c.inputs
    return ("merge" if sum(g is not None for g in geoms) > 1 else "same"), union(geoms)


def _cast(c: Call) -> Rule:
    return "same", union(c.inputs[:1])


def _getitem(c: Call) -> Rule:
    """Indexing a tensor: plain slices of the whole of every spatial axis keep the geometry."""
    src = c.node.args[0]
    if isinstance(c.metas.get(src.name), (tuple, list)):  # an element of chunk()/split() output
        return "same", c.first
    index = c.node.args[1]
    idx = index if isinstance(index, tuple) else (index,)
    dims = list(c.first.dims)
    result = []
    pos = 0
    for item in idx:
        if item is Ellipsis:
            skip = len(dims) - (len(idx) - 1 - idx.count(None)) - pos
            result.extend(dims[pos : pos + skip])
            pos += skip
        elif item is None:
            result.append(None)
        elif isinstance(item, slice):
            if dims[pos] is not None and item != slice(None):
                raise Unsupported("slicing a spatial axis")
            result.append(dims[pos])
            pos += 1
        elif isinstance(item, int):
            if dims[pos] is not None:
                raise Unsupported("indexing a spatial axis")
            pos += 1
        else:
            raise Unsupported("advanced indexing")
    result.extend(dims[pos:])
    return "same", TensorGeometry(tuple(result))


def _concat(c: Call) -> Rule:
    """Concatenation (or stacking) of branches along a non-spatial dim: the union."""
    parts = [c.geometry.get(a.name) for a in c.node.args[0]]
    known = [g for g in parts if g is not None]
    ref = known[0]
    stack = c.node.target is torch.stack
    dim = None if stack else c.arg(1, "dim", 0) % len(ref.dims)
    if dim is not None and ref.dims[dim] is not None:
        raise Unsupported("concatenation along a spatial axis")
    merged = union(known)
    if stack:
        at = c.arg(1, "dim", 0) % (len(ref.dims) + 1)
        merged = TensorGeometry(merged.dims[:at] + (None,) + merged.dims[at:])
    return ("merge" if len(known) > 1 else "same"), merged


def _split(c: Call) -> Rule:
    g0 = c.first
    if g0.dims[c.arg(2, "dim", 0) % len(g0.dims)] is not None:
        raise Unsupported("splitting along a spatial axis")
    return "same", g0


def _transpose(c: Call) -> Rule:
    g0 = c.first
    i, j = (a % len(g0.dims) for a in c.node.args[1:3])
    dims = list(g0.dims)
    dims[i], dims[j] = dims[j], dims[i]
    return "reshape", TensorGeometry(tuple(dims))


def _permute(c: Call) -> Rule:
    g0 = c.first
    order = c.node.args[1:] if c.node.op == "call_method" else (c.node.args[1],)
    if len(order) == 1 and isinstance(order[0], (tuple, list)):
        order = order[0]
    return "reshape", TensorGeometry(tuple(g0.dims[i % len(g0.dims)] for i in order))


def _reshape(c: Call) -> Rule:
    src = c.metas[c.node.all_input_nodes[0].name]
    return _reshape_by_shape(c.first, tuple(src.shape), tuple(c.metas[c.node.name].shape))


def _reduce(c: Call) -> Rule:
    """A mean/sum over dims: reducing every spatial axis is global pooling (kept as size-1
    axes with ``keepdim``; otherwise the spatial map ends, kind ``head``)."""
    geom = c.first
    dim = c.arg(1, "dim", None)
    keep = c.arg(2, "keepdim", False)
    n = len(geom.dims)
    reduced = range(n) if dim is None else [d % n for d in nd(dim, 1)]
    out = list(geom.dims)
    for i in reduced:
        a = out[i]
        if a is not None:
            last = a.box(a.size - 1)
            used = None
            if a.used is not None:
                u = expand_used(a)
                used = np.array([[u[:, 0].min(), u[:, 1].max()]])
            out[i] = AxisField(1, 0, a.lo, last[1], a.axis, used)
    if keep:
        return "pool", TensorGeometry(tuple(out))
    kept = tuple(a for i, a in enumerate(out) if i not in reduced)
    if any(a is not None for i, a in enumerate(geom.dims) if i in reduced):
        return "head", TensorGeometry(tuple(None for _ in kept))
    return "same", TensorGeometry(kept)


def _adaptive_fn(c: Call) -> Rule:
    d = 2 if "2d" in c.node.target.__name__ else 1
    return "pool", _adaptive(c.first, d, c.arg(1, "output_size", None))


def _pool_fn(c: Call) -> Rule:
    target = c.node.target
    d = 2 if "2d" in target.__name__ else 1
    k = nd(c.arg(1, "kernel_size", None), d)
    s = c.arg(2, "stride", None)
    s = nd(s if s else k, d)
    p = nd(c.arg(3, "padding", 0), d)
    is_max = target in (F.max_pool2d, F.max_pool1d)
    dil = nd(c.arg(4, "dilation", 1), d) if is_max else (1,) * d
    ceil = c.arg(5 if is_max else 4, "ceil_mode", False)
    return "pool", window(c.first, d, k, s, [(x, x) for x in p], dil, bool(ceil))


def _pad_fn(c: Call) -> Rule:
    mode = c.arg(2, "mode", "constant")
    if mode != "constant":
        raise Unsupported(f"padding mode {mode!r} (the padded border repeats the image)")
    return "same", pad(c.first, c.arg(1, "pad", ()))


def _layer_norm_fn(c: Call) -> Rule:
    count = len(nd(c.arg(1, "normalized_shape", ()), 1))
    return "same", _last_dims_not_spatial(c.first, count, "layer_norm")


#: The rule of each function a traced graph calls (``call_function`` nodes).
FUNCTION_RULES: dict[Any, CallRule] = {
    **dict.fromkeys(POINTWISE_FUNCS, _pointwise),
    operator.getitem: _getitem,
    **dict.fromkeys((torch.cat, torch.concat, torch.stack), _concat),
    **dict.fromkeys((torch.chunk, torch.split), _split),
    torch.transpose: _transpose,
    torch.permute: _permute,
    **dict.fromkeys((torch.flatten, torch.reshape), _reshape),
    **dict.fromkeys((torch.mean, torch.sum, torch.amax), _reduce),
    **dict.fromkeys(
        (F.adaptive_avg_pool2d, F.adaptive_avg_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool1d),
        _adaptive_fn,
    ),
    **dict.fromkeys((F.max_pool2d, F.avg_pool2d, F.max_pool1d, F.avg_pool1d), _pool_fn),
    F.pad: _pad_fn,
    F.layer_norm: _layer_norm_fn,
}
#: The rule of each tensor method a traced graph calls (``call_method`` nodes).
METHOD_RULES: dict[str, CallRule] = {
    **dict.fromkeys(POINTWISE_METHODS, _pointwise),
    **dict.fromkeys(CAST_METHODS, _cast),
    **dict.fromkeys(("chunk", "split"), _split),
    "transpose": _transpose,
    "permute": _permute,
    **dict.fromkeys(("view", "reshape", "flatten", "squeeze", "unsqueeze"), _reshape),
    **dict.fromkeys(("mean", "sum", "amax", "max"), _reduce),
}


def _holds_tensor(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    return isinstance(value, (tuple, list)) and any(isinstance(v, torch.Tensor) for v in value)


def node_rule(
    modules: Any,
    node: fx.Node,
    geometry: Mapping[str, TensorGeometry | None],
    metas: Mapping[str, Any],
) -> Rule:
    """(kind, output geometry) of one traced node; ``modules.get_submodule`` finds the module
    of a ``call_module`` node. ``(\"same\", None)`` for a computation on constants only."""
    call = Call(node, geometry, metas)
    if all(g is None for g in call.inputs) or not _holds_tensor(metas.get(node.name)):
        return "same", None  # constants, and sizes or shapes read from a tensor
    if node.op == "call_module":
        if call.first is None:
            raise Unsupported("the module's first input does not depend on the image")
        return module_rule(modules.get_submodule(node.target), call.first)
    table: Mapping[Any, CallRule] = {"call_function": FUNCTION_RULES, "call_method": METHOD_RULES}.get(
        node.op, {}
    )
    try:
        rule = table.get(node.target)
    except TypeError:  # an unhashable target
        rule = None
    if rule is None:
        raise Unsupported(f"no rule for {node.op} {getattr(node.target, '__name__', str(node.target))}")
    return rule(call)
