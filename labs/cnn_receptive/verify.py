"""Measuring receptive fields with gradients.

Back-propagating from one output unit to the input marks every input pixel the unit
depends on, but only if no gradient is lost on the way: max-pooling sends the gradient
to the one input that won, ReLU sends none where it was inactive, and positive and
negative weights can cancel. :func:`probe_model` therefore rebuilds a traced model with
the same geometry but a gradient that can never vanish: every convolution becomes an
average with constant positive weights, every pooling an average over its window,
activations, normalisation and dropout become identities. The non-zero gradient of the
probe is then exactly the theoretical receptive field.

:func:`effective_field_gradients` is the opposite measurement (Luo et al., 2016): the
model as it is, with its own weights, and the gradient magnitude for random inputs (their
mean is the effective receptive field, :mod:`.erf`).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch.nn import functional as F

from .geometry import LayerField, output_size
from .networks import ASSIGNMENT_INPUT, assignment_network
from .rules import ADAPTIVE, AVGPOOL, CONV, LPPOOL, MAXPOOL, SAME_MODULE_NAMES, SAME_MODULES, nd
from .tables import box_1based
from .tracing import run_nodes, trace

# --------------------------------------------------------------------------- probe layers


def _identity(x: Any, *args: Any, **kwargs: Any) -> Any:
    """Stands in for an activation or normalisation: passes the gradient through unchanged."""
    return x


_CONV_FN = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


class ProbeConv(nn.Module):
    """A convolution with the geometry of ``conv`` whose every weight is positive: the mean
    over input channels, then a constant kernel, copied to all output channels (as a view,
    so a wide layer costs what a one-channel one does)."""

    def __init__(self, conv: nn.Module):
        super().__init__()
        self.d = len(conv.kernel_size)
        self.kernel = tuple(conv.kernel_size)
        self.stride, self.dilation = tuple(conv.stride), tuple(conv.dilation)
        self.padding = conv.padding if isinstance(conv.padding, str) else tuple(conv.padding)
        self.out_channels = conv.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        weight = torch.full(
            (1, 1, *self.kernel), 1.0 / math.prod(self.kernel), dtype=x.dtype, device=x.device
        )
        y = _CONV_FN[self.d](mean, weight, None, self.stride, self.padding, self.dilation)
        return y.expand(-1, self.out_channels, *y.shape[2:])


class ProbePool(nn.Module):
    """A pooling window (max, average or Lp; with padding, dilation and ceil_mode) as an
    average: every input of the window gets a share of the gradient, not only the winner."""

    def __init__(self, d: int, kernel, stride, padding, dilation, ceil_mode: bool):
        super().__init__()
        self.d = d
        self.kernel = nd(kernel, d)
        self.stride = nd(stride if stride else kernel, d)
        self.padding = nd(padding, d)
        self.dilation = nd(dilation, d)
        self.ceil_mode = bool(ceil_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > 1 and x.stride(1) == 0:  # all channels are one (a ProbeConv output)
            return self.forward(x[:, :1]).expand(-1, x.shape[1], *([-1] * self.d))
        d, c = self.d, x.shape[1]
        pad: list[int] = []
        for i in reversed(range(d)):  # F.pad lists the last axis first
            n = x.shape[2 + i]
            k, s, p, dil = self.kernel[i], self.stride[i], self.padding[i], self.dilation[i]
            out = output_size(n, k, s, p, p, dil, self.ceil_mode)
            # ceil_mode lets the last window run past the padding: pad enough for it.
            right = max(p, (out - 1) * s + dil * (k - 1) + 1 - n - p)
            pad += [p, right]
        x = F.pad(x, pad)
        weight = torch.full(
            (c, 1, *self.kernel), 1.0 / math.prod(self.kernel), dtype=x.dtype, device=x.device
        )
        return _CONV_FN[d](x, weight, None, self.stride, 0, self.dilation, groups=c)


class ProbeLinear(nn.Module):
    """A linear layer on features (not positions) with positive weights: the mean."""

    def __init__(self, out_features: int):
        super().__init__()
        self.out_features = out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=-1, keepdim=True).expand(*x.shape[:-1], self.out_features)


def _probe_module(module: nn.Module) -> nn.Module:
    """The positive-gradient stand-in for one leaf module."""
    name = type(module).__name__
    if isinstance(module, CONV):
        return ProbeConv(module)
    if isinstance(module, MAXPOOL + AVGPOOL + LPPOOL):
        d = int(name[-2])
        return ProbePool(
            d,
            module.kernel_size,
            module.stride,
            getattr(module, "padding", 0),
            getattr(module, "dilation", 1),
            module.ceil_mode,
        )
    if isinstance(module, ADAPTIVE):
        d = int(name[-2])
        pool = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}[d]
        return pool(module.output_size)
    if isinstance(module, nn.Linear):
        return ProbeLinear(module.out_features)
    if isinstance(module, SAME_MODULES + (nn.LayerNorm, nn.Softmax)) or name in SAME_MODULE_NAMES:
        return nn.Identity()
    return module


def _probe_pool_fn(d: int, is_max: bool):
    def pool(x, kernel_size, stride=None, padding=0, *args, **kwargs):
        dilation = (args[0] if args else kwargs.get("dilation", 1)) if is_max else 1
        ceil = (
            (args[1] if len(args) > 1 else kwargs.get("ceil_mode", False))
            if is_max
            else (args[0] if args else kwargs.get("ceil_mode", False))
        )
        return ProbePool(d, kernel_size, stride, padding, dilation, ceil)(x)

    return pool


_IDENTITY_FUNCS = {
    torch.relu, torch.sigmoid, torch.tanh, F.relu, F.relu6, F.leaky_relu, F.elu, F.selu, F.gelu,
    F.silu, F.mish, F.hardswish, F.hardsigmoid, F.hardtanh, F.sigmoid, F.tanh, F.dropout,
    F.dropout1d, F.dropout2d, F.dropout3d, F.batch_norm, F.instance_norm, F.group_norm,
    F.local_response_norm, F.layer_norm, torch.clamp,
}  # fmt: skip
_IDENTITY_METHODS = {"relu", "relu_", "sigmoid", "sigmoid_", "tanh", "clamp", "clamp_"}
_OUT_OF_PLACE = {operator.iadd: operator.add, operator.imul: operator.mul, operator.isub: operator.sub}
_OUT_OF_PLACE_METHODS = {"add_": "add", "mul_": "mul", "sub_": "sub", "div_": "div"}
_FN_POOLS = {
    F.max_pool1d: (1, True), F.max_pool2d: (2, True), F.avg_pool1d: (1, False), F.avg_pool2d: (2, False),
}  # fmt: skip
_ADAPTIVE_FNS = {F.adaptive_max_pool1d: F.adaptive_avg_pool1d, F.adaptive_max_pool2d: F.adaptive_avg_pool2d}
try:
    from torchvision.ops import stochastic_depth as _stochastic_depth

    _IDENTITY_FUNCS.add(_stochastic_depth)
except ImportError:  # pragma: no cover
    pass


def probe_model(model: nn.Module | Sequence[nn.Module]) -> fx.GraphModule:
    """The traced ``model`` with the same geometry and a gradient that never vanishes
    (see the module docstring); the original model is not modified."""
    gm = trace(model)
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    graph.graph_copy(gm.graph, env)
    root: dict[str, Any] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            root[node.target] = _probe_module(gm.get_submodule(node.target))
        elif node.op == "get_attr":
            value = gm
            for part in node.target.split("."):
                value = getattr(value, part)
            if isinstance(value, torch.Tensor):
                # A model built on the meta device has no values; a positive constant keeps
                # the gradient from vanishing (layer scales, for example).
                value = torch.ones_like(value, device="cpu") if value.is_meta else value.detach().abs()
            root[node.target] = value
        elif node.op == "call_function":
            if node.target in _IDENTITY_FUNCS:
                node.target = _identity
            elif node.target in _OUT_OF_PLACE:
                node.target = _OUT_OF_PLACE[node.target]
            elif node.target in _FN_POOLS:
                node.target = _probe_pool_fn(*_FN_POOLS[node.target])
            elif node.target in _ADAPTIVE_FNS:
                node.target = _ADAPTIVE_FNS[node.target]
                node.kwargs = {k: v for k, v in node.kwargs.items() if k != "return_indices"}
        elif node.op == "call_method":
            if node.target in _IDENTITY_METHODS:
                node.op, node.target = "call_function", _identity
            elif node.target in _OUT_OF_PLACE_METHODS:
                node.target = _OUT_OF_PLACE_METHODS[node.target]
    probe = fx.GraphModule(root, graph)
    return probe.eval()


# --------------------------------------------------------------------------- gradient boxes


def nonzero_box(grad: torch.Tensor) -> tuple[tuple[int, int], ...] | None:
    """Bounding box ``((first, last), ...)`` (0-based) of the non-zero entries of an input
    gradient of shape (channels, *spatial), or ``None`` if it is zero everywhere."""
    mask = grad.abs().sum(dim=0) > 0
    if not bool(mask.any()):
        return None
    box = []
    for axis in range(mask.dim()):
        other = tuple(a for a in range(mask.dim()) if a != axis)
        line = mask.any(dim=other) if other else mask
        idx = torch.nonzero(line).flatten()
        box.append((int(idx[0]), int(idx[-1])))
    return tuple(box)


def centre_index(output: torch.Tensor, dims: Sequence[int | None]) -> tuple[Any, ...]:
    """Index of the centre unit of ``output`` at every spatial dim (``dims[i]`` is the
    input axis carried by dim ``i``, or ``None``); all of every other dim (batch included)."""
    return tuple(slice(None) if a is None else (n - 1) // 2 for n, a in zip(output.shape, dims, strict=False))


def gradient_boxes(
    model: nn.Module | Sequence[nn.Module],
    input_size: Sequence[int],
    layers: Sequence[LayerField],
    in_channels: int = 3,
    tick: Callable[[int], Any] = lambda n: None,
) -> dict[str, tuple[tuple[int, int], ...] | None]:
    """The measured field of the centre unit of each of ``layers`` (from
    :func:`~.receptive.receptive_fields`): the bounding box (0-based, per input axis) of
    the non-zero input gradient of the probe model, keyed by layer name; ``None`` where
    the gradient is zero everywhere."""
    probe = probe_model(model)
    x = torch.ones((1, in_channels, *input_size), dtype=torch.float64, requires_grad=True)
    with torch.enable_grad():
        outputs = run_nodes(probe, x, {f.node for f in layers})
        boxes = {}
        for f in layers:
            out = outputs.get(f.node)
            if not isinstance(out, torch.Tensor) or not out.requires_grad:
                boxes[f.name] = None
                tick(1)
                continue
            (grad,) = torch.autograd.grad(out[centre_index(out, f.dims)].sum(), x, retain_graph=True)
            boxes[f.name] = nonzero_box(grad[0])
            tick(1)
    return boxes


# --------------------------------------------------------------------------- effective field


def effective_field_gradients(
    model: nn.Module,
    layer: LayerField,
    inputs: torch.Tensor,
) -> torch.Tensor:
    """Luo et al. (2016): the gradient magnitude of the centre unit of ``layer`` (all its
    channels; a :class:`~.geometry.LayerField`) with respect to each of ``inputs``
    (standard-normal images, shape ``(samples, channels, *spatial)``), summed over input
    channels: one map per input, shape ``(samples, *spatial)``. The model is used as it is
    (eval mode); their mean over inputs is the effective receptive field."""
    gm = trace(model).eval()
    x = inputs.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = run_nodes(gm, x, {layer.node})[layer.node]
        # Samples are independent in eval mode, so one backward pass serves the whole batch.
        (grad,) = torch.autograd.grad(out[centre_index(out, layer.dims)].sum(), x)
    return grad.abs().sum(dim=1).detach()


# --------------------------------------------------------------------------- naive measurements


def naive_measurements(table: list[LayerField], seed_gen: torch.Generator) -> list[dict[str, Any]]:
    """The assignment's network with its default random weights, measured four ways from the
    centre unit of channel 0 of each layer: as built (ReLU, max-pool), with average pooling,
    with identity activations too, and the probe. Rows: variant, layer, non-zero pixels,
    box area, bounding box, whether it equals the computed box."""
    base = assignment_network()
    variants = {
        "as built (ReLU, max-pool)": base,
        "average pooling": _copy_weights(assignment_network(max_pool=False), base),
        "average pooling, identity activations": _copy_weights(assignment_network(False, False), base),
        "probe (constant positive weights)": probe_model(base),
    }
    x = torch.randn((1, 3, ASSIGNMENT_INPUT, ASSIGNMENT_INPUT), generator=seed_gen)
    rows = []
    nodes = {"conv1": "conv1", "pool1": "pool1", "conv2": "conv2", "conv2 after ReLU": "relu2"}
    theory = {"conv1": table[1], "pool1": table[2], "conv2": table[3], "conv2 after ReLU": table[3]}
    for variant, model in variants.items():
        # The probe computes in float64 (see verify.py); the real layers in float32, as trained.
        xi = (x.double() if hasattr(model, "graph") else x).clone().requires_grad_(True)
        model.eval()
        with torch.enable_grad():
            outs = _named_outputs(model, xi, run_nodes)
            for label, node in nodes.items():
                out = outs[node]
                c = (out.shape[-1] - 1) // 2
                (grad,) = torch.autograd.grad(out[0, 0, c, c], xi, retain_graph=True)
                box = nonzero_box(grad[0])
                f = theory[label]
                (lo, hi), _ = f.centre_box_clipped
                area = (hi - lo + 1) ** 2
                count = int((grad[0].abs().sum(0) > 0).sum())
                rows.append(
                    {
                        "variant": variant,
                        "layer": label,
                        "non-zero pixels": count,
                        "box area": area,
                        "gradient box": box_1based(box),
                        "equals computed": "yes" if box == f.centre_box_clipped and count == area else "no",
                    }
                )
    return rows


def _named_outputs(model: nn.Module, x: torch.Tensor, run_nodes: Any) -> dict[str, torch.Tensor]:
    """Outputs of the assignment network's layers by name (``conv1``, ``pool1``, ...)."""
    if isinstance(model, nn.Sequential):
        outs = {}
        for name, layer in model.named_children():
            x = layer(x)
            outs[name] = x
        return outs
    return run_nodes(model, x)


def _copy_weights(target: nn.Module, source: nn.Module) -> nn.Module:
    target.load_state_dict(source.state_dict())
    return target


def relu_dead_fraction(seed_gen: torch.Generator) -> float:
    """Share of conv2's channels whose centre unit, measured after its ReLU, has a zero
    gradient everywhere (the unit is inactive for this input)."""
    net = assignment_network().eval()
    x = torch.randn((1, 3, ASSIGNMENT_INPUT, ASSIGNMENT_INPUT), generator=seed_gen)
    with torch.no_grad():
        out = net(x)
    c = (out.shape[-1] - 1) // 2
    return float((out[0, :, c, c] <= 0).double().mean())


def average_pooling_coverage(seed_gen: torch.Generator, inputs: int = 16) -> list[int]:
    """For ``inputs`` random inputs, the number of input pixels reached by the gradient of
    pool1's centre unit (channel 0) in the assignment's network with average pooling but its
    ReLU kept: less than the whole field wherever the ReLU after conv1 switched units off."""
    net = _copy_weights(assignment_network(max_pool=False), assignment_network()).eval()
    counts = []
    for _ in range(inputs):
        x = torch.randn((1, 3, ASSIGNMENT_INPUT, ASSIGNMENT_INPUT), generator=seed_gen).requires_grad_(True)
        with torch.enable_grad():
            out = net.pool1(net.relu1(net.conv1(x)))
            c = (out.shape[-1] - 1) // 2
            (grad,) = torch.autograd.grad(out[0, 0, c, c], x)
        counts.append(int((grad[0].abs().sum(0) > 0).sum()))
    return counts
