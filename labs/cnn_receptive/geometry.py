"""The geometry students read: what one layer of a CNN does to the receptive field.

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

At the image border a box is clipped: :meth:`LayerField.unit_box_clipped` gives the pixels
a unit really reads, and :func:`fraction_fully_inside` the share of a layer's units whose
whole box lies inside the image.

The rules per layer type are in :mod:`.rules`; tracing a model is :mod:`.tracing`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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

    def units_inside(self, image: int) -> int:
        """How many units see a box that lies wholly inside an image axis of ``image``
        pixels (no padding in it): unit ``i`` does when ``lo + i j >= 0`` and
        ``hi + i j <= image - 1``."""
        if self.jump == 0:
            return self.size if self.lo >= 0 and self.hi <= image - 1 else 0
        first = -(self.lo // self.jump) if self.lo < 0 else 0  # ceil(-lo / j)
        last = min(self.size - 1, (image - 1 - self.hi) // self.jump)
        return max(0, last - first + 1)


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
        return self.unit_box_clipped(self.centre_unit)

    def unit_box(self, unit: Sequence[int]) -> tuple[tuple[int, int], ...]:
        """Input box ``((first, last), ...)`` of the unit at index ``unit`` (one index per
        axis, 0-based), unclipped: it may reach into the padding."""
        return tuple(a.box(i) for a, i in zip(self._need(), unit, strict=True))

    def unit_box_clipped(self, unit: Sequence[int]) -> tuple[tuple[int, int], ...] | None:
        """The first and last image pixel the unit at index ``unit`` depends on, per axis
        (see :attr:`centre_box_clipped`); ``None`` if it sees only padding."""
        out = []
        for a, i in zip(self._need(), unit, strict=True):
            box = a.used_box(i)
            if box is None:
                return None
            out.append(box)
        return tuple(out)

    @property
    def border_box_clipped(self) -> tuple[tuple[int, int], ...] | None:
        """What the first unit (the top-left corner of the map) really sees of the image:
        its box clipped by the image border, as :meth:`unit_box_clipped`."""
        return self.unit_box_clipped((0,) * len(self._need()))


def fraction_fully_inside(layer: LayerField) -> float:
    """The share of ``layer``'s units whose whole box lies inside the image (no part of it
    in the padding): the product over the axes of the share along each axis."""
    share = 1.0
    for a, image in zip(layer._need(), layer.input_size, strict=True):
        share *= a.units_inside(image) / a.size
    return share


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
    if a.used is not None and kernel == 1 and pad_lo == 0 and (size - 1) * stride < a.size:
        # One tap per unit, always inside the image (most of them: 1x1 convolutions): unit i
        # depends on what input unit i s depends on.
        used = expand_used(a)[: (size - 1) * stride + 1 : stride]
    elif a.used is not None:
        # The taps of unit i are input units i s - p_l + t d; those outside 0..n-1 are padding.
        taps = np.arange(size)[:, None] * stride - pad_lo + np.arange(kernel)[None, :] * dilation
        real = (taps >= 0) & (taps < a.size)
        # np.minimum/np.maximum, not np.clip: the same integers, without np.clip's overhead
        src = expand_used(a)[np.minimum(np.maximum(taps, 0), a.size - 1)]
        first = np.where(real, src[..., 0], _EMPTY64).min(axis=1)
        last = np.where(real, src[..., 1], -1).max(axis=1)
        used = np.stack([first, last], axis=1)
    # BEGIN SOLUTION the receptive-field recurrence (j, r and start after one layer)
    return AxisField(
        size=size,
        jump=a.jump * stride,
        lo=a.lo - pad_lo * a.jump,
        hi=a.hi + (dilation * (kernel - 1) - pad_lo) * a.jump,
        axis=a.axis,
        used=used,
    )
    # END SOLUTION


#: ``used`` of a unit that depends on no image pixel: (EMPTY, -1), so min/max just work.
EMPTY = np.iinfo(np.int64).max
# As a numpy scalar: a Python int this large makes numpy look up int64's limits every call.
_EMPTY64 = np.int64(EMPTY)


def expand_used(a: AxisField) -> np.ndarray:
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


# --------------------------------------------------------------------------- tensors


class Unsupported(Exception):
    """Raised inside a rule: the operation is outside what the calculator reasons about."""


def window(geom: TensorGeometry, d: int, kernel, stride, pads, dilation, ceil_mode) -> TensorGeometry:
    """Apply a sliding window to the last ``d`` dims of ``geom``."""
    dims = list(geom.dims)
    if len(dims) < d:
        raise ReceptiveFieldError(f"a {d}-D window on a {len(dims)}-D tensor")
    for i in range(d):
        pos = len(dims) - d + i
        a = dims[pos]
        if a is None:
            raise Unsupported("a sliding window over a dimension that is not spatial")
        dims[pos] = window_axis(a, kernel[i], stride[i], pads[i][0], pads[i][1], dilation[i], ceil_mode)
    return TensorGeometry(tuple(dims))


def pad(geom: TensorGeometry, widths: Sequence[int]) -> TensorGeometry:
    """Constant padding, given as F.pad does (last dim first: left, right, top, bottom, ...):
    n grows, and unit 0 now sits ``left`` units before the old unit 0."""
    dims = list(geom.dims)
    for i in range(len(widths) // 2):
        pos = len(dims) - 1 - i
        a = dims[pos]
        if a is None:
            continue
        lo, hi = widths[2 * i], widths[2 * i + 1]
        used = None
        if a.used is not None:
            # Negative padding crops; the new border units depend on nothing.
            empty = np.array([[EMPTY, -1]])
            body = expand_used(a)[max(-lo, 0) : a.size - max(-hi, 0)]
            used = np.concatenate([np.repeat(empty, max(lo, 0), 0), body, np.repeat(empty, max(hi, 0), 0)])
        dims[pos] = AxisField(a.size + lo + hi, a.jump, a.lo - lo * a.jump, a.hi - lo * a.jump, a.axis, used)
    return TensorGeometry(tuple(dims))


def union(geoms: Iterable[TensorGeometry | None]) -> TensorGeometry:
    """Union of the fields of broadcast operands (constants, given as None, are skipped)."""
    known = [g for g in geoms if g is not None]
    n = max(len(g.dims) for g in known)
    dims: list[AxisField | None] = [None] * n
    for g in known:
        padded = (None,) * (n - len(g.dims)) + g.dims
        for i, a in enumerate(padded):
            if a is None:
                continue
            dims[i] = a if dims[i] is None else union_axis(dims[i], a)
    return TensorGeometry(tuple(dims))


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
