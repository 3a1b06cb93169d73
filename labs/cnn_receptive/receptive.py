"""The receptive-field calculator: for every layer of a CNN, the output size, the jump
(effective stride), the receptive-field size, the centre of the first unit's field and
the input box seen by the centre unit.

The recurrences, per spatial axis, for a layer with kernel ``k``, stride ``s``, padding
``p`` (left ``p_l``, right ``p_r``) and dilation ``d`` (effective kernel ``d (k - 1) + 1``)::

    n_out     = floor((n_in + p_l + p_r - d (k - 1) - 1) / s) + 1      (ceil with ceil_mode)
    j_out     = j_in * s
    r_out     = r_in + d (k - 1) j_in
    start_out = start_in + (d (k - 1) / 2 - p_l) j_in

They are carried here as the *box* of the first unit, ``[lo, hi]`` in 0-based input
coordinates (padded, so ``lo`` may be negative): unit ``i`` of a layer sees
``[lo + i j, hi + i j]``, ``r = hi - lo + 1`` and ``start = (lo + hi) / 2``. A box is what
makes branches easy: where two paths meet (a residual addition, a concatenation), the
field is the union of their boxes, as in the published receptive-field libraries.

A model is traced with ``torch.fx``; every node gets a :class:`LayerField`. Operations the
calculator cannot reason about (adaptive pooling with uneven windows, attention, upsampling,
a padding mode that wraps around) are reported with ``kind == "unsupported"`` and a reason,
and every layer that depends on them is marked too: nothing is guessed.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.fx as fx
from torch import nn
from torch.nn import functional as F

# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class AxisField:
    """The geometry of one spatial axis of a layer's output.

    ``size`` is n; ``jump`` is j (0 once every unit sees the same region, after a global
    pooling that is broadcast back); ``lo``/``hi`` bound the input coordinates (0-based,
    padded) seen by unit 0; ``axis`` says which input axis this is (0 = first spatial axis).

    ``used`` is an ``(n, 2)`` integer array: for every unit, the first and last image pixel it
    actually depends on (``(EMPTY, -1)`` for none). It is what the box becomes at the image
    border, exactly, where the field can have holes or lose rows that floor division dropped.
    """

    size: int
    jump: int
    lo: int
    hi: int
    axis: int
    used: Any = field(default=None, compare=False, repr=False)

    def used_box(self, unit: int) -> tuple[int, int] | None:
        """The first and last image pixel ``unit`` depends on, or ``None`` if none."""
        if self.used is None:
            return None
        first, last = (int(v) for v in self.used[unit if self.size > 1 else 0])
        return (first, last) if first <= last else None

    @property
    def rf(self) -> int:
        """Receptive-field size r along this axis."""
        return self.hi - self.lo + 1

    @property
    def start(self) -> float:
        """Input coordinate (0-based) of the centre of unit 0's field."""
        return (self.lo + self.hi) / 2

    @property
    def centre(self) -> int:
        """Index of the centre unit (the left one of the two middle units when n is even)."""
        return (self.size - 1) // 2

    def box(self, unit: int) -> tuple[int, int]:
        """Input coordinates ``(first, last)`` (0-based, unclipped) seen by ``unit``."""
        return self.lo + unit * self.jump, self.hi + unit * self.jump


@dataclass(frozen=True)
class TensorGeometry:
    """What each dimension of a tensor is: ``None`` for batch/channel/feature dims, or
    the :class:`AxisField` of a spatial axis."""

    dims: tuple[AxisField | None, ...]

    @property
    def spatial(self) -> tuple[AxisField, ...]:
        """The spatial axes, ordered as the input's axes."""
        return tuple(sorted((a for a in self.dims if a is not None), key=lambda a: a.axis))


@dataclass(frozen=True)
class LayerField:
    """The receptive field of one layer (one traced node).

    ``kind`` is ``input``, ``conv``, ``pool``, ``same`` (geometry unchanged: activations,
    normalisation, dropout), ``merge`` (union of branches), ``reshape``, ``head`` (the
    spatial layout has ended: flatten, linear layers on features), or ``unsupported``
    (see ``reason``). ``axes`` holds one :class:`AxisField` per input spatial axis for
    the kinds that have a spatial geometry, else ``None``.
    """

    name: str
    op: str
    kind: str
    axes: tuple[AxisField, ...] | None
    input_size: tuple[int, ...]
    reason: str = ""
    module: str = ""  # the module type (``Conv2d``) or function name
    node: str = ""  # the torch.fx node name (unique; what the gradient probe looks up)
    dims: tuple[int | None, ...] = ()  # per tensor dim: the input axis it carries, or None

    @property
    def known(self) -> bool:
        """Whether this layer has a computed spatial geometry."""
        return self.axes is not None

    def _need(self) -> tuple[AxisField, ...]:
        if self.axes is None:
            raise ValueError(f"layer {self.name!r} has no spatial geometry ({self.kind}: {self.reason})")
        return self.axes

    @property
    def size(self) -> tuple[int, ...]:
        """Output size n per axis."""
        return tuple(a.size for a in self._need())

    @property
    def jump(self) -> tuple[int, ...]:
        """Jump j (effective stride) per axis."""
        return tuple(a.jump for a in self._need())

    @property
    def rf(self) -> tuple[int, ...]:
        """Receptive-field size r per axis."""
        return tuple(a.rf for a in self._need())

    @property
    def start(self) -> tuple[float, ...]:
        """Input coordinate (0-based) of the centre of the first unit's field, per axis."""
        return tuple(a.start for a in self._need())

    @property
    def centre_unit(self) -> tuple[int, ...]:
        """Index of the centre unit, per axis."""
        return tuple(a.centre for a in self._need())

    @property
    def centre_box(self) -> tuple[tuple[int, int], ...]:
        """Input box ``((first, last), ...)`` of the centre unit, 0-based, unclipped."""
        return tuple(a.box(a.centre) for a in self._need())

    @property
    def centre_box_clipped(self) -> tuple[tuple[int, int], ...] | None:
        """The centre box clipped to the image, 0-based: the first and last pixel the centre
        unit actually depends on, along each axis; ``None`` if it sees only padding.

        Inside the image this is the centre box; at the border it can stop short of the
        image edge, where the field has holes (a stride larger than the kernel, a dilated
        window whose padding leads it past the first pixels) or where floor division dropped
        the last rows (a 3 x 3 stride-2 convolution on 6 pixels never reads pixel 6)."""
        out = []
        for a in self._need():
            box = a.used_box(a.centre)
            if box is None:
                return None
            out.append(box)
        return tuple(out)


class ReceptiveFieldError(ValueError):
    """The model cannot be traced, or the input size does not fit it."""


# --------------------------------------------------------------------------- the maths of one layer


def output_size(
    n: int, kernel: int, stride: int, pad_lo: int, pad_hi: int, dilation: int = 1, ceil_mode: bool = False
) -> int:
    """n_out = floor((n + p_l + p_r - d (k - 1) - 1) / s) + 1, or ceil with ``ceil_mode``
    (where, as in PyTorch, the last window must start inside the input or the left padding)."""
    span = n + pad_lo + pad_hi - dilation * (kernel - 1) - 1
    if span < 0:
        raise ReceptiveFieldError(
            f"kernel {kernel} (dilation {dilation}) is larger than the padded input {n}"
        )
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= n + pad_lo:
        out -= 1
    return out


def window_axis(
    a: AxisField,
    kernel: int,
    stride: int,
    pad_lo: int,
    pad_hi: int,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> AxisField:
    """The geometry after a sliding window (convolution or pooling) along one axis:
    n, then j_out = j s, and the first unit's box widened by the window, which gives
    r_out = r + d (k - 1) j and start_out = start + (d (k - 1) / 2 - p_l) j."""
    size = output_size(a.size, kernel, stride, pad_lo, pad_hi, dilation, ceil_mode)
    used = None
    if a.used is not None:
        # The taps of unit i are input units i s - p_l + t d; those outside 0..n-1 are padding.
        taps = np.arange(size)[:, None] * stride - pad_lo + np.arange(kernel)[None, :] * dilation
        real = (taps >= 0) & (taps < a.size)
        src = _expand_used(a)[np.clip(taps, 0, a.size - 1)]
        first = np.where(real, src[..., 0], _EMPTY64).min(axis=1)
        last = np.where(real, src[..., 1], -1).max(axis=1)
        used = np.stack([first, last], axis=1)
    return AxisField(
        size=size,
        jump=a.jump * stride,
        lo=a.lo - pad_lo * a.jump,
        hi=a.hi + (dilation * (kernel - 1) - pad_lo) * a.jump,
        axis=a.axis,
        used=used,
    )


#: ``used`` of a unit that depends on no image pixel: (EMPTY, -1), so min/max just work.
EMPTY = np.iinfo(np.int64).max
# As a numpy scalar: a Python int this large makes numpy look up int64's limits every call.
_EMPTY64 = np.int64(EMPTY)


def _expand_used(a: AxisField) -> np.ndarray:
    """``a.used`` with one row per unit (a broadcast size-1 axis repeats its row)."""
    used = a.used
    return np.repeat(used, a.size, axis=0) if len(used) == 1 and a.size > 1 else used


def _union_used(a: AxisField, b: AxisField, size: int) -> np.ndarray | None:
    if a.used is None or b.used is None:
        return None
    ua = np.broadcast_to(a.used, (size, 2)) if len(a.used) == 1 else a.used
    ub = np.broadcast_to(b.used, (size, 2)) if len(b.used) == 1 else b.used
    return np.stack([np.minimum(ua[:, 0], ub[:, 0]), np.maximum(ua[:, 1], ub[:, 1])], axis=1)


def union_axis(a: AxisField, b: AxisField) -> AxisField:
    """The field of a unit that sees both ``a`` and ``b`` at the same position (a residual
    addition, a concatenation of branches): the union of the two boxes. A size-1 axis is
    broadcast, so its box is seen by every unit (jump 0)."""
    if a.axis != b.axis:
        raise ReceptiveFieldError("branches disagree on which input axis a dimension is")
    if a.size == b.size and (a.jump == b.jump or a.size == 1):
        return AxisField(a.size, a.jump, min(a.lo, b.lo), max(a.hi, b.hi), a.axis, _union_used(a, b, a.size))
    for big, small in ((a, b), (b, a)):
        if small.size == 1 or (small.jump == 0 and small.size == big.size):
            used = _union_used(big, small, big.size)
            last = big.box(big.size - 1)
            if small.lo <= big.lo and small.hi >= last[1]:
                return AxisField(big.size, 0, small.lo, small.hi, a.axis, used)
            if big.jump == 0:
                return AxisField(big.size, 0, min(big.lo, small.lo), max(big.hi, small.hi), a.axis, used)
    raise ReceptiveFieldError(
        f"branches meet with different grids (n {a.size} vs {b.size}, jump {a.jump} vs {b.jump})"
    )


# --------------------------------------------------------------------------- layer rules

_SAME_MODULES: tuple[type, ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Threshold,
    nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.GroupNorm, nn.LocalResponseNorm,
)  # fmt: skip
# Module types from torchvision that act position by position.
_SAME_MODULE_NAMES = {"StochasticDepth", "FrozenBatchNorm2d", "LayerNorm2d"}

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_MAXPOOL = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
_AVGPOOL = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
_LPPOOL = tuple(c for c in (getattr(nn, "LPPool1d", None), getattr(nn, "LPPool2d", None),
                            getattr(nn, "LPPool3d", None)) if c is not None)  # fmt: skip
_ADAPTIVE = (
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
)  # fmt: skip

# Functions and methods that work element by element (with broadcasting).
_POINTWISE_FUNCS = {
    operator.add,
    operator.iadd,
    operator.mul,
    operator.imul,
    operator.sub,
    operator.isub,
    operator.truediv,
    operator.itruediv,
    operator.neg,
    torch.add,
    torch.mul,
    torch.sub,
    torch.div,
    torch.relu,
    torch.sigmoid,
    torch.tanh,
    torch.clamp,
    torch.exp,
    torch.abs,
    torch.where,
    F.relu,
    F.relu6,
    F.leaky_relu,
    F.elu,
    F.selu,
    F.gelu,
    F.silu,
    F.mish,
    F.hardswish,
    F.hardsigmoid,
    F.hardtanh,
    F.sigmoid,
    F.tanh,
    F.dropout,
    F.dropout1d,
    F.dropout2d,
    F.dropout3d,
    F.batch_norm,
    F.instance_norm,
    F.group_norm,
    F.local_response_norm,
}
try:  # torchvision's stochastic depth drops whole samples: position by position
    from torchvision.ops import stochastic_depth as _stochastic_depth

    _POINTWISE_FUNCS.add(_stochastic_depth)
except ImportError:  # pragma: no cover
    pass  # fmt: skip
_POINTWISE_METHODS = {
    "add", "add_", "mul", "mul_", "sub", "sub_", "div", "div_", "relu", "relu_", "sigmoid",
    "sigmoid_", "tanh", "clamp", "clamp_", "contiguous", "clone", "float", "double", "half", "to",
    "type", "type_as", "exp", "abs", "neg", "detach", "requires_grad_",
}  # fmt: skip
_RESHAPE_FUNCS = {torch.flatten, torch.reshape}
_RESHAPE_METHODS = {"view", "reshape", "flatten", "squeeze", "unsqueeze"}
_PERMUTE = {torch.permute, torch.transpose}
_PERMUTE_METHODS = {"permute", "transpose"}
_CAT = {torch.cat, torch.concat, torch.stack}
_SPLIT_METHODS = {"chunk", "split"}


def _nd(value: Any, d: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * d


def _describe(module: nn.Module) -> str:
    """A short description of a module's geometry: ``Conv2d 11x11 s4 p0``."""
    name = type(module).__name__
    k = getattr(module, "kernel_size", None)
    if k is None or isinstance(module, _ADAPTIVE):
        size = getattr(module, "output_size", None)
        return f"{name}({size})" if size is not None else name
    d = len(k) if isinstance(k, tuple) else 1
    parts = [name, "x".join(map(str, _nd(k, d)))]
    s = _nd(getattr(module, "stride", 1) or k, d)
    parts.append("s" + "x".join(map(str, s)))
    p = getattr(module, "padding", 0)
    parts.append("p" + (p if isinstance(p, str) else "x".join(map(str, _nd(p, d)))))
    dil = _nd(getattr(module, "dilation", 1), d)
    if any(x != 1 for x in dil):
        parts.append("d" + "x".join(map(str, dil)))
    if getattr(module, "ceil_mode", False):
        parts.append("ceil")
    return " ".join(parts)


def _conv_pads(module: nn.Module, d: int) -> list[tuple[int, int]]:
    """Left/right padding per axis of a convolution, including ``padding="same"``
    (PyTorch puts the odd extra column on the right)."""
    k, dil = _nd(module.kernel_size, d), _nd(module.dilation, d)
    if module.padding == "valid":
        return [(0, 0)] * d
    if module.padding == "same":
        pads = []
        for kk, dd in zip(k, dil, strict=False):
            total = dd * (kk - 1)
            pads.append((total // 2, total - total // 2))
        return pads
    return [(p, p) for p in _nd(module.padding, d)]


def _window(geom: TensorGeometry, d: int, kernel, stride, pads, dilation, ceil_mode) -> TensorGeometry:
    """Apply a sliding window to the last ``d`` dims of ``geom``."""
    dims = list(geom.dims)
    if len(dims) < d:
        raise ReceptiveFieldError(f"a {d}-D window on a {len(dims)}-D tensor")
    for i in range(d):
        pos = len(dims) - d + i
        a = dims[pos]
        if a is None:
            raise _Unsupported("a sliding window over a dimension that is not spatial")
        dims[pos] = window_axis(a, kernel[i], stride[i], pads[i][0], pads[i][1], dilation[i], ceil_mode)
    return TensorGeometry(tuple(dims))


class _Unsupported(Exception):
    """Raised inside a rule: the operation is outside what the calculator reasons about."""


def _module_rule(module: nn.Module, geom: TensorGeometry) -> tuple[str, TensorGeometry]:
    """(kind, output geometry) of a leaf module."""
    name = type(module).__name__
    if isinstance(module, _CONV):
        d = len(module.kernel_size)
        if module.padding_mode != "zeros" and module.padding != "valid" and module.padding != 0:
            # Reflected or circular padding shows in-image pixels again: the box would be wrong.
            raise _Unsupported(f"padding_mode={module.padding_mode!r} (the padded border repeats the image)")
        return "conv", _window(geom, d, _nd(module.kernel_size, d), _nd(module.stride, d),
                               _conv_pads(module, d), _nd(module.dilation, d), False)  # fmt: skip
    if isinstance(module, _MAXPOOL + _AVGPOOL + _LPPOOL):
        d = int(name[-2])
        k = _nd(module.kernel_size, d)
        s = _nd(module.stride if module.stride else module.kernel_size, d)
        p = _nd(getattr(module, "padding", 0), d)
        dil = _nd(getattr(module, "dilation", 1), d)
        return "pool", _window(geom, d, k, s, [(x, x) for x in p], dil, bool(module.ceil_mode))
    if isinstance(module, _ADAPTIVE):
        return "pool", _adaptive(geom, int(name[-2]), module.output_size)
    if isinstance(module, _SAME_MODULES) or name in _SAME_MODULE_NAMES:
        return "same", geom
    if isinstance(module, nn.LayerNorm):
        return "same", _last_dims_not_spatial(geom, len(module.normalized_shape), "LayerNorm")
    if isinstance(module, nn.Linear):
        return "same" if any(geom.dims) else "head", _last_dims_not_spatial(geom, 1, "Linear")
    if isinstance(module, nn.Flatten):
        return _reshape_flatten(geom, module.start_dim, module.end_dim)
    if isinstance(module, (nn.Softmax, nn.LogSoftmax)):
        return "same", _last_dims_not_spatial(geom, 1, name) if module.dim in (-1, None) else geom
    if name.startswith(("ZeroPad", "ConstantPad")):
        return "same", _pad(geom, module.padding)
    if name.startswith(("ReflectionPad", "ReplicationPad", "CircularPad")):
        raise _Unsupported(f"{name} (the padded border repeats the image)")
    if name == "Permute":  # torchvision.ops.Permute
        return "reshape", TensorGeometry(tuple(geom.dims[i] for i in module.dims))
    raise _Unsupported(f"no rule for module type {name}")


def _pad(geom: TensorGeometry, pad: Sequence[int]) -> TensorGeometry:
    """Constant padding, given as F.pad does (last dim first: left, right, top, bottom, ...):
    n grows, and unit 0 now sits ``left`` units before the old unit 0."""
    dims = list(geom.dims)
    for i in range(len(pad) // 2):
        pos = len(dims) - 1 - i
        a = dims[pos]
        if a is None:
            continue
        lo, hi = pad[2 * i], pad[2 * i + 1]
        used = None
        if a.used is not None:
            # Negative padding crops; the new border units depend on nothing.
            empty = np.array([[EMPTY, -1]])
            body = _expand_used(a)[max(-lo, 0) : a.size - max(-hi, 0)]
            used = np.concatenate([np.repeat(empty, max(lo, 0), 0), body, np.repeat(empty, max(hi, 0), 0)])
        dims[pos] = AxisField(a.size + lo + hi, a.jump, a.lo - lo * a.jump, a.hi - lo * a.jump, a.axis, used)
    return TensorGeometry(tuple(dims))


def _last_dims_not_spatial(geom: TensorGeometry, count: int, what: str) -> TensorGeometry:
    if any(a is not None for a in geom.dims[len(geom.dims) - count :]):
        raise _Unsupported(f"{what} mixes positions along a spatial axis")
    return geom


def _adaptive(geom: TensorGeometry, d: int, output_size: Any) -> TensorGeometry:
    """Adaptive pooling is an ordinary window only when each output size divides the input
    size (window = stride = n_in / n_out); otherwise its windows differ in size and overlap
    unevenly, which one (n, j, r, start) cannot describe."""
    out = _nd(output_size, d)
    dims = list(geom.dims)
    k, s = [], []
    for i in range(d):
        a = dims[len(dims) - d + i]
        if a is None:
            raise _Unsupported("adaptive pooling over a dimension that is not spatial")
        o = a.size if out[i] is None else out[i]
        if a.size % o:
            raise _Unsupported(
                f"adaptive pooling from {a.size} to {o} (uneven windows: the field differs from unit to unit)"
            )
        k.append(a.size // o)
        s.append(a.size // o)
    return _window(geom, d, k, s, [(0, 0)] * d, [1] * d, False)


def _reshape_flatten(geom: TensorGeometry, start: int, end: int) -> tuple[str, TensorGeometry]:
    nd = len(geom.dims)
    start, end = start % nd, end % nd
    merged = geom.dims[start : end + 1]
    if all(a is None for a in merged):
        dims = geom.dims[:start] + (None,) + geom.dims[end + 1 :]
        return "reshape", TensorGeometry(dims)
    if all(a is None or a.size == 1 for a in merged) or start <= end:
        # Spatial positions become features: the map ends here.
        return "head", TensorGeometry(tuple(None for _ in geom.dims[:start]) + (None,) + geom.dims[end + 1 :])
    raise _Unsupported("flatten")


def _reshape_by_shape(
    geom: TensorGeometry, in_shape: Sequence[int], out_shape: Sequence[int]
) -> tuple[str, TensorGeometry]:
    """A view/reshape: the spatial dims survive when they are the trailing dims of the input
    and the output ends with the same sizes (channel shuffles, splitting channels)."""
    spatial_pos = [i for i, a in enumerate(geom.dims) if a is not None]
    if not spatial_pos:
        return "reshape", TensorGeometry((None,) * len(out_shape))
    nd = len(in_shape)
    tail = nd - spatial_pos[0]
    if spatial_pos == list(range(nd - tail, nd)) and len(out_shape) >= tail and \
            tuple(out_shape[len(out_shape) - tail:]) == tuple(in_shape[nd - tail:]):  # fmt: skip
        dims = (None,) * (len(out_shape) - tail) + geom.dims[nd - tail :]
        return "reshape", TensorGeometry(dims)
    if (
        all(geom.dims[i].size == 1 for i in spatial_pos)
        or math.prod(out_shape[2:]) == 1
        or len(out_shape) <= 2
    ):
        return "head", TensorGeometry((None,) * len(out_shape))
    raise _Unsupported(f"reshape from {tuple(in_shape)} to {tuple(out_shape)} mixes spatial axes")


def _union(geoms: Iterable[TensorGeometry]) -> TensorGeometry:
    """Union of the fields of broadcast operands (constants, given as None, are skipped)."""
    geoms = [g for g in geoms if g is not None]
    nd = max(len(g.dims) for g in geoms)
    dims: list[AxisField | None] = [None] * nd
    for g in geoms:
        padded = (None,) * (nd - len(g.dims)) + g.dims
        for i, a in enumerate(padded):
            if a is None:
                continue
            dims[i] = a if dims[i] is None else union_axis(dims[i], a)
    return TensorGeometry(tuple(dims))


# --------------------------------------------------------------------------- tracing


def _as_module(model: nn.Module | Sequence[nn.Module]) -> nn.Module:
    if isinstance(model, nn.Module):
        return model
    return nn.Sequential(*model)


def trace(model: nn.Module | Sequence[nn.Module]) -> fx.GraphModule:
    """A ``torch.fx`` graph of ``model`` (a module, or a list of layers run in sequence)."""
    module = _as_module(model)
    if isinstance(module, fx.GraphModule):
        return module
    try:
        return fx.symbolic_trace(module)
    except Exception as exc:  # fx raises many types for data-dependent control flow
        raise ReceptiveFieldError(f"cannot trace {type(module).__name__} with torch.fx: {exc}") from exc


def _trace_for_calculator(model: nn.Module | Sequence[nn.Module]) -> fx.GraphModule:
    """:func:`trace`, but the graph module's Python code is only generated if it is ever
    called: the calculator interprets the graph node by node and never calls it, and the code
    generation costs about as much as the rest of the calculator for a large model."""
    try:
        from torch.fx._lazy_graph_module import _use_lazy_graph_module
    except ImportError:  # pragma: no cover - an older or newer torch
        return trace(model)
    with _use_lazy_graph_module(True):
        return trace(model)


class _Submodules:
    """``get_submodule`` of a graph module, remembered: each node looks its module up three
    times (label, meta pass, rule), and the path walk adds up over a large model."""

    def __init__(self, gm: fx.GraphModule):
        self._gm = gm
        self._found: dict[str, nn.Module] = {}

    def get_submodule(self, target: str) -> nn.Module:
        try:
            return self._found[target]
        except KeyError:
            mod = self._found[target] = self._gm.get_submodule(target)
            return mod


def _node_label(gm: fx.GraphModule | _Submodules, node: fx.Node) -> tuple[str, str, str]:
    """(name, description, module type) of a node for the report."""
    if node.op == "call_module":
        mod = gm.get_submodule(node.target)
        return str(node.target), _describe(mod), type(mod).__name__
    if node.op == "call_function":
        fname = getattr(node.target, "__name__", str(node.target))
        return node.name, fname, fname
    if node.op == "call_method":
        return node.name, f".{node.target}()", str(node.target)
    return node.name, node.op, node.op


def _meta_shapes(
    gm: fx.GraphModule, shape: tuple[int, ...], modules: _Submodules | None = None
) -> tuple[dict[str, Any], str]:
    """The output of every node for an input of ``shape``, on the meta device (no compute),
    and the error of the first node that could not run (``""`` if all ran)."""
    outputs: dict[str, Any] = {}

    class Recorder(fx.Interpreter):
        def run_node(self, n: fx.Node) -> Any:
            result = _cheap_meta(self, n, modules)
            if result is None:
                result = super().run_node(n)
            outputs[n.name] = result
            return result

    class Runner(nn.Module):
        def __init__(self, inner: nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> Any:
            return Recorder(self.inner).run(x)

    runner = Runner(gm)
    x = torch.empty(shape, device="meta")
    try:
        if all(t.is_meta for t in gm.parameters()) and all(t.is_meta for t in gm.buffers()):
            runner(x)  # already on the meta device (as the survey builds models): nothing to swap
        else:
            state = {
                k: torch.empty_like(v, device="meta") for k, v in runner.state_dict(keep_vars=True).items()
            }
            torch.func.functional_call(runner, state, (x,))
    except Exception as exc:
        # Keep what ran: the failing layer and those after it are reported as unsupported.
        message = str(exc).strip()
        return outputs, message.splitlines()[0] if message else type(exc).__name__
    return outputs, ""


def _cheap_meta(interp: fx.Interpreter, n: fx.Node, modules: _Submodules | None = None) -> Any:
    """The meta output of a layer that keeps its input's shape, without running it: meta
    kernels of element-wise ops go through Python decompositions and would dominate the
    calculator's time. ``None`` when the node has to run."""
    if n.op == "call_module":
        mod = (modules or interp.module).get_submodule(n.target)
        if n.kwargs or len(n.args) != 1 or not isinstance(n.args[0], fx.Node):
            return None
        value = interp.env[n.args[0]]
        if not isinstance(value, torch.Tensor):
            return None
        if isinstance(mod, _SAME_MODULES + (nn.LayerNorm,)):
            return value
        shape = _module_out_shape(mod, value)
        return None if shape is None else torch.empty(shape, dtype=value.dtype, device="meta")
    if n.op == "call_function" and n.target is F.layer_norm:
        value = interp.env[n.args[0]]
        return torch.empty(value.shape, dtype=value.dtype, device="meta")
    pointwise = (n.op == "call_function" and n.target in _POINTWISE_FUNCS) or (
        n.op == "call_method" and n.target in _POINTWISE_METHODS and n.target not in ("to", "type", "type_as")
    )
    if not pointwise or n.kwargs:
        return None
    values = [interp.env[a] if isinstance(a, fx.Node) else a for a in n.args]
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    if not tensors or any(not isinstance(v, (torch.Tensor, int, float, bool)) for v in values):
        return None
    shape = torch.broadcast_shapes(*(t.shape for t in tensors))
    return torch.empty(shape, dtype=tensors[0].dtype, device="meta")


def _module_out_shape(mod: nn.Module, x: torch.Tensor) -> tuple[int, ...] | None:
    """The output shape of a convolution, linear layer or adaptive average pooling on ``x``,
    worked out from the layer's own geometry (running their meta kernels is most of the cost
    of the meta pass); ``None`` for anything unusual, which then runs for real (and raises
    PyTorch's own error where the input does not fit)."""
    t = type(mod)
    if t in (nn.Conv1d, nn.Conv2d, nn.Conv3d):
        d = len(mod.kernel_size)
        w = mod.weight
        if x.dim() != d + 2 or x.shape[1] != mod.in_channels or x.dtype != w.dtype or x.numel() == 0:
            return None
        if mod.padding_mode != "zeros" or isinstance(mod.padding, str) or not _weights_fit(mod, w.shape[0]):
            return None
        if (
            w.dim() != d + 2
            or w.shape[1] * mod.groups != mod.in_channels
            or tuple(w.shape[2:]) != mod.kernel_size
        ):
            return None
        if min(mod.stride) < 1 or min(mod.dilation) < 1 or min(mod.padding) < 0:
            return None
        sizes = []
        for n, k, st, p, dil in zip(
            x.shape[2:], mod.kernel_size, mod.stride, mod.padding, mod.dilation, strict=True
        ):
            span = n + 2 * p - dil * (k - 1) - 1
            if span < 0:
                return None
            sizes.append(span // st + 1)
        return (x.shape[0], w.shape[0], *sizes)
    if t is nn.Linear:
        w = mod.weight
        if x.dim() < 1 or x.dtype != w.dtype or w.shape != (mod.out_features, mod.in_features):
            return None
        if x.shape[-1] != mod.in_features or not _weights_fit(mod, mod.out_features):
            return None
        return (*x.shape[:-1], mod.out_features)
    if t in (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d):
        d = 1 if t is nn.AdaptiveAvgPool1d else 2
        if x.dim() != d + 2 or any(n < 1 for n in x.shape[1:]) or not x.dtype.is_floating_point:
            return None
        out = _nd(mod.output_size, d)
        if len(out) != d or any(o is not None and (not isinstance(o, int) or o < 1) for o in out):
            return None
        return (*x.shape[:2], *(n if o is None else o for n, o in zip(x.shape[2:], out, strict=True)))
    return None


def _weights_fit(mod: nn.Module, out: int) -> bool:
    """Whether a layer's bias (if any) matches its ``out`` outputs, on the weight's dtype."""
    bias = mod.bias
    return bias is None or (bias.shape == (out,) and bias.dtype == mod.weight.dtype)


def _first_tensor_input(node: fx.Node) -> fx.Node | None:
    for arg in node.all_input_nodes:
        return arg
    return None


def _arg(node: fx.Node, index: int, name: str, default: Any) -> Any:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def receptive_fields(
    model: nn.Module | Sequence[nn.Module],
    input_size: int | Sequence[int],
    in_channels: int | None = None,
) -> list[LayerField]:
    """Receptive fields of every layer of ``model`` for an input of ``input_size``.

    ``model`` is an ``nn.Module`` (traced with ``torch.fx``, so branches and skip connections
    are followed) or a list of layers applied in sequence. ``input_size`` is the spatial size:
    an int (a square 2-D image), ``(L,)`` for 1-D or ``(H, W)`` for 2-D. ``in_channels`` is
    taken from the first convolution when not given.

    Returns one :class:`LayerField` per traced node in execution order, starting with the
    input: its output size n, jump j, receptive field r, ``start`` and the centre unit's box
    (see :class:`LayerField`). Layers whose geometry cannot be derived have
    ``kind == "unsupported"`` and a ``reason``; everything downstream of them is unsupported too.
    """
    gm = _trace_for_calculator(model)
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(int(n) for n in input_size)
    if not size or any(n < 1 for n in size):
        raise ReceptiveFieldError(f"invalid input size {input_size!r}")
    d = len(size)
    if in_channels is None:
        first = next((m for m in gm.modules() if isinstance(m, _CONV + (nn.Linear,))), None)
        in_channels = first.in_channels if isinstance(first, _CONV) else 1
    modules = _Submodules(gm)
    metas, meta_error = _meta_shapes(gm, (1, in_channels, *size), modules)

    geometry: dict[str, TensorGeometry | None] = {}
    broken: dict[str, str] = {}  # node name -> why its geometry is unknown
    fields: list[LayerField] = []
    calls: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "output":
            continue
        name, desc, mtype = _node_label(modules, node)
        if node.op == "call_module":  # a module called twice (ResNet's relu) gets ":2"
            calls[name] = calls.get(name, 0) + 1
            name = name if calls[name] == 1 else f"{name}:{calls[name]}"
        record = dict(name=name, op=desc, input_size=size, module=mtype, node=node.name)
        if node.op == "placeholder":
            if fields:
                geometry[node.name] = None
                continue
            axes = tuple(
                AxisField(n, 1, 0, 0, i, np.stack([np.arange(n), np.arange(n)], axis=1))
                for i, n in enumerate(size)
            )
            geometry[node.name] = TensorGeometry((None, None) + axes)
            fields.append(LayerField(kind="input", axes=axes, dims=(None, None, *range(d)), **record))
            continue
        if node.op == "get_attr":
            geometry[node.name] = None  # a parameter or buffer: no input dependence
            continue
        inputs = [a for a in node.all_input_nodes]
        upstream = [broken[a.name] for a in inputs if a.name in broken]
        if upstream:
            broken[node.name] = upstream[0]
            fields.append(LayerField(kind="unsupported", axes=None, reason=f"after {upstream[0]}", **record))
            continue
        if node.name not in metas:
            reason = f"does not run on a {'x'.join(map(str, size))} input: {meta_error}"
            broken[node.name] = f"{name} ({desc}): {reason}"
            fields.append(LayerField(kind="unsupported", axes=None, reason=reason, **record))
            continue
        try:
            kind, geom = _node_rule(modules, node, geometry, metas)
        except (_Unsupported, ReceptiveFieldError) as exc:
            reason = f"{name} ({desc}): {exc}"
            broken[node.name] = reason
            fields.append(LayerField(kind="unsupported", axes=None, reason=str(exc), **record))
            continue
        geometry[node.name] = geom
        if geom is None:  # a computation on constants only
            continue
        out = metas[node.name]
        axes = geom.spatial if isinstance(out, torch.Tensor) and kind != "head" else ()
        if isinstance(out, torch.Tensor) and len(axes) == d:
            _check_sizes(name, geom, out)
            dims = tuple(None if a is None else a.axis for a in geom.dims)
            fields.append(LayerField(kind=kind, axes=axes, dims=dims, **record))
        else:
            fields.append(LayerField(kind="head" if kind != "unsupported" else kind, axes=None, **record))
    return fields


def _check_sizes(name: str, geom: TensorGeometry, out: torch.Tensor) -> None:
    """The computed n must equal the real tensor's size (a bug here would be silent otherwise)."""
    for i, a in enumerate(geom.dims):
        if a is not None and out.shape[i] != a.size:
            raise ReceptiveFieldError(
                f"{name}: computed size {a.size} but the tensor has {out.shape[i]} (dim {i})"
            )


def _holds_tensor(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    return isinstance(value, (tuple, list)) and any(isinstance(v, torch.Tensor) for v in value)


def _node_rule(
    gm: fx.GraphModule | _Submodules,
    node: fx.Node,
    geometry: dict[str, TensorGeometry | None],
    metas: dict[str, Any],
) -> tuple[str, TensorGeometry | None]:
    """(kind, output geometry) of one traced node."""
    tensor_inputs = [a for a in node.all_input_nodes]
    geoms = [geometry.get(a.name) for a in tensor_inputs]
    if all(g is None for g in geoms) or not _holds_tensor(metas.get(node.name)):
        return "same", None  # constants, and sizes or shapes read from a tensor
    first = _first_tensor_input(node)
    g0 = geometry.get(first.name) if first is not None else None
    if node.op == "call_module":
        mod = gm.get_submodule(node.target)
        if g0 is None:
            raise _Unsupported("the module's first input does not depend on the image")
        return _module_rule(mod, g0)
    target = node.target
    if node.op == "call_function" and target in _POINTWISE_FUNCS or \
            node.op == "call_method" and target in _POINTWISE_METHODS:  # fmt: skip
        if isinstance(target, str) and target in ("to", "type", "type_as"):
            geoms = geoms[:1]
        return ("merge" if sum(g is not None for g in geoms) > 1 else "same"), _union(geoms)
    if node.op == "call_function" and target is operator.getitem:
        src = node.args[0]
        if isinstance(metas.get(src.name), (tuple, list)):  # an element of chunk()/split() output
            return "same", g0
        return _getitem(g0, node.args[1], metas[node.name])
    if node.op == "call_function" and target in _CAT:
        dim = _arg(node, 1, "dim", 0)
        parts = [geometry.get(a.name) for a in node.args[0]]
        known = [g for g in parts if g is not None]
        ref = known[0]
        dim = dim % len(ref.dims) if target is not torch.stack else None
        if dim is not None and ref.dims[dim] is not None:
            raise _Unsupported("concatenation along a spatial axis")
        merged = _union(known)
        if target is torch.stack:
            stack_dim = _arg(node, 1, "dim", 0) % (len(ref.dims) + 1)
            merged = TensorGeometry(merged.dims[:stack_dim] + (None,) + merged.dims[stack_dim:])
        return ("merge" if len(known) > 1 else "same"), merged
    if node.op == "call_method" and target in _SPLIT_METHODS or \
            node.op == "call_function" and target in (torch.chunk, torch.split):  # fmt: skip
        dim = _arg(node, 2, "dim", 0)
        if g0.dims[dim % len(g0.dims)] is not None:
            raise _Unsupported("splitting along a spatial axis")
        return "same", g0
    if (
        node.op == "call_function"
        and target in _PERMUTE
        or node.op == "call_method"
        and target in _PERMUTE_METHODS
    ):
        nd = len(g0.dims)
        if target in (torch.transpose, "transpose"):
            i, j = (a % nd for a in node.args[1:3])
            dims = list(g0.dims)
            dims[i], dims[j] = dims[j], dims[i]
            return "reshape", TensorGeometry(tuple(dims))
        order = node.args[1:] if node.op == "call_method" else (node.args[1],)
        if len(order) == 1 and isinstance(order[0], (tuple, list)):
            order = order[0]
        return "reshape", TensorGeometry(tuple(g0.dims[i % nd] for i in order))
    if (node.op == "call_function" and target in _RESHAPE_FUNCS) or (
        node.op == "call_method" and target in _RESHAPE_METHODS
    ):
        out = metas[node.name]
        src = metas[first.name]
        return _reshape_by_shape(g0, tuple(src.shape), tuple(out.shape))
    if node.op == "call_method" and target in ("mean", "sum", "amax", "max") or \
            node.op == "call_function" and target in (torch.mean, torch.sum, torch.amax):  # fmt: skip
        return _reduce(g0, node, metas)
    if node.op == "call_function" and target in (F.adaptive_avg_pool2d, F.adaptive_avg_pool1d,
                                                 F.adaptive_max_pool2d, F.adaptive_max_pool1d):  # fmt: skip
        d = 2 if "2d" in target.__name__ else 1
        return "pool", _adaptive(g0, d, _arg(node, 1, "output_size", None))
    if node.op == "call_function" and target in (F.max_pool2d, F.avg_pool2d, F.max_pool1d, F.avg_pool1d):
        d = 2 if "2d" in target.__name__ else 1
        k = _nd(_arg(node, 1, "kernel_size", None), d)
        s = _arg(node, 2, "stride", None)
        s = _nd(s if s else k, d)
        p = _nd(_arg(node, 3, "padding", 0), d)
        is_max = target in (F.max_pool2d, F.max_pool1d)
        dil = _nd(_arg(node, 4, "dilation", 1), d) if is_max else (1,) * d
        ceil = _arg(node, 5 if is_max else 4, "ceil_mode", False)
        return "pool", _window(g0, d, k, s, [(x, x) for x in p], dil, bool(ceil))
    if node.op == "call_function" and target is F.pad:
        pad = _arg(node, 1, "pad", ())
        mode = _arg(node, 2, "mode", "constant")
        if mode != "constant":
            raise _Unsupported(f"padding mode {mode!r} (the padded border repeats the image)")
        return "same", _pad(g0, pad)
    if node.op == "call_function" and target is F.layer_norm:
        return "same", _last_dims_not_spatial(
            g0, len(_nd(_arg(node, 1, "normalized_shape", ()), 1)), "layer_norm"
        )
    if node.op == "call_function" and target is torch.flatten:
        return _reshape_flatten(g0, _arg(node, 1, "start_dim", 0), _arg(node, 2, "end_dim", -1))
    fname = getattr(target, "__name__", str(target))
    raise _Unsupported(f"no rule for {node.op} {fname}")


def _getitem(geom: TensorGeometry, index: Any, out: Any) -> tuple[str, TensorGeometry]:
    """Indexing a tensor: plain slices of the whole of every spatial axis keep the geometry."""
    idx = index if isinstance(index, tuple) else (index,)
    dims = list(geom.dims)
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
                raise _Unsupported("slicing a spatial axis")
            result.append(dims[pos])
            pos += 1
        elif isinstance(item, int):
            if dims[pos] is not None:
                raise _Unsupported("indexing a spatial axis")
            pos += 1
        else:
            raise _Unsupported("advanced indexing")
    result.extend(dims[pos:])
    return "same", TensorGeometry(tuple(result))


def _reduce(geom: TensorGeometry, node: fx.Node, metas: dict[str, Any]) -> tuple[str, TensorGeometry]:
    """A mean/sum over dims: reducing every spatial axis is global pooling (kept as size-1
    axes with ``keepdim``; otherwise the spatial map ends, kind ``head``)."""
    dim = _arg(node, 1, "dim", None)
    keep = _arg(node, 2, "keepdim", False)
    nd = len(geom.dims)
    dims_ = range(nd) if dim is None else [d % nd for d in _nd(dim, 1)]
    out = list(geom.dims)
    for i in dims_:
        a = out[i]
        if a is not None:
            last = a.box(a.size - 1)
            used = None
            if a.used is not None:
                u = _expand_used(a)
                used = np.array([[u[:, 0].min(), u[:, 1].max()]])
            out[i] = AxisField(1, 0, a.lo, last[1], a.axis, used)
    if keep:
        return "pool", TensorGeometry(tuple(out))
    kept = tuple(a for i, a in enumerate(out) if i not in dims_)
    if any(a is not None for i, a in enumerate(geom.dims) if i in dims_):
        return "head", TensorGeometry(tuple(None for _ in kept))
    return "same", TensorGeometry(kept)


# --------------------------------------------------------------------------- summaries


def spatial_layers(fields: Sequence[LayerField]) -> list[LayerField]:
    """The layers that change the geometry (input, convolutions, pooling, merges): the rows
    of a receptive-field table."""
    out = []
    for f in fields:
        if not f.known:
            continue
        if f.kind in ("input", "conv", "pool") or (f.kind == "merge" and out and f.rf != out[-1].rf):
            out.append(f)
    return out


def feature_output(fields: Sequence[LayerField]) -> LayerField:
    """The last layer of the convolutional feature extractor, whose field is what one
    quotes as "the receptive field of the network": the last layer with a computed
    spatial map larger than 1 x 1 that is not an adaptive pooling (those only prepare
    the classifier head). For AlexNet this is ``features.12`` (r = 195)."""
    for f in reversed(fields):
        if f.known and min(f.size) > 1 and not f.module.lower().startswith("adaptive"):
            return f
    raise ReceptiveFieldError("the model has no spatial layer larger than 1 x 1")


def unsupported(fields: Sequence[LayerField]) -> list[LayerField]:
    """The layers the calculator could not reason about, first cause first."""
    return [f for f in fields if f.kind == "unsupported" and not f.reason.startswith("after ")]


def with_name(field: LayerField, name: str) -> LayerField:
    """A copy of ``field`` under another name (for display)."""
    return replace(field, name=name)
