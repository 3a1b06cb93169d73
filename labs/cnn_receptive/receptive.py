"""The receptive-field calculator: for every layer of a CNN, the output size, the jump
(effective stride), the receptive-field size, the centre of the first unit's field and
the input box seen by the centre unit.

A model is traced with ``torch.fx`` (:mod:`.tracing`); every node gets a
:class:`~.geometry.LayerField` from the rule of its layer type (:mod:`.rules`), which applies
the recurrences of :mod:`.geometry`. Operations the calculator cannot reason about (adaptive
pooling with uneven windows, attention, upsampling, a padding mode that wraps around) are
reported with ``kind == "unsupported"`` and a reason, and every layer that depends on them is
marked too: nothing is guessed.

This module is also the calculator's public face: it re-exports what callers use.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from .geometry import (
    AxisField,
    LayerField,
    ReceptiveFieldError,
    TensorGeometry,
    Unsupported,
    feature_output,
    fraction_fully_inside,
    output_size,
    spatial_layers,
    union_axis,
    unsupported,
    window_axis,
)
from .rules import CONV, node_rule
from .tracing import (
    MetaPass,
    Submodules,
    first_module,
    node_label,
    on_meta_device,
    trace,
    trace_for_calculator,
)

__all__ = [
    "AxisField",
    "LayerField",
    "ReceptiveFieldError",
    "TensorGeometry",
    "feature_output",
    "fraction_fully_inside",
    "output_size",
    "receptive_fields",
    "spatial_layers",
    "trace",
    "union_axis",
    "unsupported",
    "window_axis",
]


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
    with _no_cycle_collection():
        root, graph = trace_for_calculator(model)
        size = (input_size, input_size) if isinstance(input_size, int) else tuple(int(n) for n in input_size)
        if not size or any(n < 1 for n in size):
            raise ReceptiveFieldError(f"invalid input size {input_size!r}")
        if in_channels is None:
            first = first_module(root, graph, CONV + (nn.Linear,))
            in_channels = first.in_channels if isinstance(first, CONV) else 1
        return on_meta_device(root, lambda: _fields(root, graph, size, in_channels))


@contextlib.contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Python's cycle collector paused while one model is traced and computed: tracing
    allocates tens of thousands of small objects (fx nodes, proxies, geometry records), and
    the collector kept walking every object of the process for them (about a sixth of the
    calculator's time over the zoo). Reference counting still frees what is not in a cycle;
    the collector runs again as before afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _fields(root: nn.Module, graph: fx.Graph, size: tuple[int, ...], in_channels: int) -> list[LayerField]:
    d = len(size)
    modules = Submodules(root)
    metas = MetaPass(root, graph, (1, in_channels, *size), modules)

    geometry: dict[str, TensorGeometry | None] = {}
    broken: dict[str, str] = {}  # node name -> why its geometry is unknown
    fields: list[LayerField] = []
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "output":
            continue
        upstream = [broken[a.name] for a in node.all_input_nodes if a.name in broken]
        if not upstream:  # the meta pass runs in graph order, and never after a broken layer
            metas.run(node)
        name, desc, mtype = node_label(modules, node)
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
        if upstream:
            broken[node.name] = upstream[0]
            fields.append(LayerField(kind="unsupported", axes=None, reason=f"after {upstream[0]}", **record))
            continue
        if node.name not in metas.values:
            reason = f"does not run on a {'x'.join(map(str, size))} input: {metas.error}"
            broken[node.name] = f"{name} ({desc}): {reason}"
            fields.append(LayerField(kind="unsupported", axes=None, reason=reason, **record))
            continue
        try:
            kind, geom = node_rule(modules, node, geometry, metas.values)
        except (Unsupported, ReceptiveFieldError) as exc:
            reason = f"{name} ({desc}): {exc}"
            broken[node.name] = reason
            fields.append(LayerField(kind="unsupported", axes=None, reason=str(exc), **record))
            continue
        geometry[node.name] = geom
        if geom is None:  # a computation on constants only
            continue
        out = metas.values[node.name]
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
