"""Tracing a model with ``torch.fx``, and the meta pass that gives every node's output shape
without computing anything.

This is the plumbing under the calculator; the one private torch.fx module it uses (the
lazy graph module, which skips generating Python code the calculator never runs) is
imported in :func:`trace_for_calculator` only, with a fallback when a torch release
moves it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch.nn import functional as F

from .geometry import ReceptiveFieldError
from .rules import ADAPTIVE, CAST_METHODS, POINTWISE_FUNCS, POINTWISE_METHODS, SAME_MODULES, nd


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


def trace_for_calculator(model: nn.Module | Sequence[nn.Module]) -> fx.GraphModule:
    """:func:`trace`, but the graph module's Python code is only generated if it is ever
    called: the calculator interprets the graph node by node and never calls it, and the code
    generation costs about as much as the rest of the calculator for a large model."""
    try:
        from torch.fx._lazy_graph_module import _use_lazy_graph_module
    except ImportError:  # pragma: no cover - an older or newer torch
        return trace(model)
    with _use_lazy_graph_module(True):
        return trace(model)


def describe(module: nn.Module) -> str:
    """A short description of a module's geometry: ``Conv2d 11x11 s4 p0``."""
    name = type(module).__name__
    k = getattr(module, "kernel_size", None)
    if k is None or isinstance(module, ADAPTIVE):
        size = getattr(module, "output_size", None)
        return f"{name}({size})" if size is not None else name
    d = len(k) if isinstance(k, tuple) else 1
    parts = [name, "x".join(map(str, nd(k, d)))]
    s = nd(getattr(module, "stride", 1) or k, d)
    parts.append("s" + "x".join(map(str, s)))
    p = getattr(module, "padding", 0)
    parts.append("p" + (p if isinstance(p, str) else "x".join(map(str, nd(p, d)))))
    dil = nd(getattr(module, "dilation", 1), d)
    if any(x != 1 for x in dil):
        parts.append("d" + "x".join(map(str, dil)))
    if getattr(module, "ceil_mode", False):
        parts.append("ceil")
    return " ".join(parts)


class Submodules:
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


def node_label(gm: fx.GraphModule | Submodules, node: fx.Node) -> tuple[str, str, str]:
    """(name, description, module type) of a node for the report."""
    if node.op == "call_module":
        mod = gm.get_submodule(node.target)
        return str(node.target), describe(mod), type(mod).__name__
    if node.op == "call_function":
        fname = getattr(node.target, "__name__", str(node.target))
        return node.name, fname, fname
    if node.op == "call_method":
        return node.name, f".{node.target}()", str(node.target)
    return node.name, node.op, node.op


def meta_shapes(
    gm: fx.GraphModule, shape: tuple[int, ...], modules: Submodules | None = None
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


def _cheap_meta(interp: fx.Interpreter, n: fx.Node, modules: Submodules | None = None) -> Any:
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
        if isinstance(mod, SAME_MODULES + (nn.LayerNorm,)):
            return value
        shape = _module_out_shape(mod, value)
        return None if shape is None else torch.empty(shape, dtype=value.dtype, device="meta")
    if n.op == "call_function" and n.target is F.layer_norm:
        value = interp.env[n.args[0]]
        return torch.empty(value.shape, dtype=value.dtype, device="meta")
    pointwise = (n.op == "call_function" and n.target in POINTWISE_FUNCS) or (
        n.op == "call_method" and n.target in POINTWISE_METHODS and n.target not in CAST_METHODS
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
        out = nd(mod.output_size, d)
        if len(out) != d or any(o is not None and (not isinstance(o, int) or o < 1) for o in out):
            return None
        return (*x.shape[:2], *(n if o is None else o for n, o in zip(x.shape[2:], out, strict=True)))
    return None


def _weights_fit(mod: nn.Module, out: int) -> bool:
    """Whether a layer's bias (if any) matches its ``out`` outputs, on the weight's dtype."""
    bias = mod.bias
    return bias is None or (bias.shape == (out,) and bias.dtype == mod.weight.dtype)


def run_nodes(gm: fx.GraphModule, x: torch.Tensor, names: set[str] | None = None) -> dict[str, Any]:
    """Run ``gm`` on ``x`` and return the outputs of the fx nodes called ``names`` (all when
    ``None``), keeping the autograd graph. Stops after the last node asked for."""
    outputs: dict[str, Any] = {}
    wanted = set(names) if names is not None else None

    class Done(Exception):
        pass

    class Recorder(fx.Interpreter):
        def run_node(self, n: fx.Node) -> Any:
            result = super().run_node(n)
            if wanted is None or n.name in wanted:
                outputs[n.name] = result
                if wanted is not None and len(outputs) == len(wanted):
                    raise Done
            return result

    try:
        Recorder(gm).run(x)
    except Done:
        pass
    return outputs
