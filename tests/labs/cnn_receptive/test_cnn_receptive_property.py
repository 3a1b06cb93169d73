"""Property tests: for random small stacks of convolutions and pooling layers (1-D and 2-D,
strides, paddings, dilation, ceil_mode, residual blocks), the computed centre box of every
layer equals the bounding box of the probe's non-zero input gradient, and the computed
sizes equal PyTorch's (the calculator checks those itself and raises otherwise)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from labrunner.labs.cnn_receptive.receptive import output_size, receptive_fields
from labrunner.labs.cnn_receptive.verify import gradient_boxes
from torch import nn

CONV = {1: nn.Conv1d, 2: nn.Conv2d}
MAXPOOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d}
AVGPOOL = {1: nn.AvgPool1d, 2: nn.AvgPool2d}


@st.composite
def axis_window(draw, pool: bool):
    """(kernel, stride, padding, dilation) of one axis: strides larger than the kernel and
    dilation leave holes in the field, which the clipped box must get right at the border."""
    k = draw(st.integers(1, 4))
    s = draw(st.integers(1, 3))
    d = draw(st.integers(1, 2)) if k > 1 else 1
    p = draw(st.integers(0, k // 2))
    return k, s, p, d


class Residual(nn.Module):
    """x + conv(relu(conv(x))) with size-preserving convolutions."""

    def __init__(self, dim: int, k: int):
        super().__init__()
        self.a = CONV[dim](1, 1, k, padding=k // 2)
        self.b = CONV[dim](1, 1, k, padding=k // 2)

    def forward(self, x):
        return x + self.b(torch.relu(self.a(x)))


@st.composite
def conv_stack(draw):
    """(model, input size) for a random valid stack of 1 to 5 layers."""
    dim = draw(st.sampled_from([1, 2]))
    size = tuple(draw(st.integers(6, 28)) for _ in range(dim))
    layers, current = [], list(size)
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["conv", "max", "avg", "relu", "residual"]))
        if kind == "relu":
            layers.append(nn.ReLU())
            continue
        if kind == "residual":
            layers.append(Residual(dim, draw(st.sampled_from([1, 3]))))
            continue
        axes = [draw(axis_window(pool=kind != "conv")) for _ in range(dim)]
        k, s, p, d = (tuple(a[i] for a in axes) for i in range(4))
        ceil = kind != "conv" and draw(st.booleans())
        if kind == "avg":
            assume(all(x == 1 for x in d))
        new = []
        for n, kk, ss, pp, dd in zip(current, k, s, p, d, strict=True):
            assume(n + 2 * pp >= dd * (kk - 1) + 1)
            new.append(output_size(n, kk, ss, pp, pp, dd, ceil))
        current = new
        if kind == "conv":
            layers.append(CONV[dim](1, 1, k, stride=s, padding=p, dilation=d))
        elif kind == "max":
            layers.append(MAXPOOL[dim](k, stride=s, padding=p, dilation=d, ceil_mode=ceil))
        else:
            layers.append(AVGPOOL[dim](k, stride=s, padding=p, ceil_mode=ceil))
    return nn.Sequential(*layers), size


@pytest.mark.slow
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
@given(conv_stack())
def test_computed_box_equals_gradient_box(case):
    model, size = case
    fields = receptive_fields(model, size, in_channels=1)
    layers = [f for f in fields if f.kind != "input"]
    assert all(f.known for f in layers), [f.reason for f in layers if not f.known]
    measured = gradient_boxes(model, size, layers, in_channels=1)
    for f in layers:
        assert measured[f.name] == f.centre_box_clipped, (f.name, f.op)


@given(
    n=st.integers(1, 40),
    k=st.integers(1, 6),
    s=st.integers(1, 4),
    d=st.integers(1, 3),
    ceil=st.booleans(),
    data=st.data(),
)
def test_output_size_equals_pytorch(n, k, s, d, ceil, data):
    p = data.draw(st.integers(0, k // 2))
    assume(n + 2 * p >= d * (k - 1) + 1)
    real = nn.functional.max_pool1d(torch.zeros(1, 1, n), k, s, p, d, ceil_mode=ceil).shape[-1]
    assert output_size(n, k, s, p, p, d, ceil) == real
