"""The geometry at the image border: what a border unit really sees (its clipped box, checked
against the probe's gradient), how many units have their whole box inside the image, and the
input size that holds a whole box."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from labrunner.labs.cnn_receptive.geometry import AxisField
from labrunner.labs.cnn_receptive.networks import smallest_input_holding_box
from labrunner.labs.cnn_receptive.receptive import feature_output, fraction_fully_inside, receptive_fields
from labrunner.labs.cnn_receptive.tracing import run_nodes
from labrunner.labs.cnn_receptive.verify import nonzero_box, probe_model
from torch import nn


def test_units_inside_a_three_by_three_convolution_with_padding():
    # k = 3, p = 1 on 5 pixels: unit i sees i-1..i+1, so units 1, 2, 3 lie inside.
    f = receptive_fields([nn.Conv2d(1, 1, 3, padding=1)], 5, in_channels=1)[-1]
    assert f.axes[0].units_inside(5) == 3
    assert fraction_fully_inside(f) == pytest.approx(9 / 25)
    assert f.border_box_clipped == ((0, 1), (0, 1))  # unit 0 sees pixel -1 (padding), 0 and 1
    assert f.unit_box((0, 4)) == ((-1, 1), (3, 5))
    assert f.unit_box_clipped((0, 4)) == ((0, 1), (3, 4))


def test_without_padding_every_unit_lies_inside():
    f = receptive_fields([nn.Conv2d(1, 1, 3, stride=2)], 9, in_channels=1)[-1]
    assert fraction_fully_inside(f) == 1.0
    assert f.border_box_clipped == f.unit_box((0, 0)) == ((0, 2), (0, 2))


def test_alexnet_last_layer_centre_border_and_units_inside():
    with torch.device("meta"):
        import torchvision

        model = torchvision.models.alexnet(weights=None)
    final = feature_output(receptive_fields(model, 224))
    assert final.centre_box == ((-2, 192), (-2, 192))
    assert final.centre_box_clipped == ((0, 192), (0, 192))
    assert final.unit_box((0, 0)) == ((-66, 128), (-66, 128))
    assert final.border_box_clipped == ((0, 128), (0, 128))  # 129 of 224 pixels, not 195
    assert fraction_fully_inside(final) == 0.0
    # at 256 pixels the centre unit's whole box fits, and so does exactly one unit per axis
    big = feature_output(receptive_fields(model, 256))
    assert big.centre_box_clipped == big.centre_box
    assert fraction_fully_inside(big) == pytest.approx(1 / 49)


def test_smallest_input_holding_box_of_alexnet():
    import torchvision

    with torch.device("meta"):
        alexnet = torchvision.models.alexnet(weights=None)
    assert smallest_input_holding_box(alexnet) == 256
    final = feature_output(receptive_fields(alexnet, 240))  # one step smaller still cuts the box
    assert final.centre_box_clipped != final.centre_box


@pytest.mark.slow
def test_smallest_input_holding_box_of_resnet18():
    import torchvision

    with torch.device("meta"):
        resnet = torchvision.models.resnet18(weights=None)
    size = smallest_input_holding_box(resnet)
    assert size == 464
    final = feature_output(receptive_fields(resnet, size))
    (lo, hi), _ = final.centre_box
    assert final.rf[0] == 435 and lo >= 0 and hi <= size - 1


def test_jump_zero_axis_counts_all_units_or_none():
    inside = AxisField(size=4, jump=0, lo=0, hi=9, axis=0)
    outside = AxisField(size=4, jump=0, lo=-1, hi=9, axis=0)
    assert inside.units_inside(10) == 4 and outside.units_inside(10) == 0


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(1, 30),
    jump=st.integers(1, 8),
    lo=st.integers(-20, 10),
    r=st.integers(1, 25),
    image=st.integers(1, 60),
)
def test_units_inside_equals_counting_unit_by_unit(size, jump, lo, r, image):
    a = AxisField(size=size, jump=jump, lo=lo, hi=lo + r - 1, axis=0)
    brute = sum(1 for i in range(size) if a.box(i)[0] >= 0 and a.box(i)[1] <= image - 1)
    assert a.units_inside(image) == brute


@pytest.mark.parametrize(
    "layers, size",
    [
        ([nn.Conv2d(1, 1, 5, stride=2, padding=2), nn.MaxPool2d(3, 2, padding=1)], 17),
        ([nn.Conv2d(1, 1, 3, stride=3, padding=1), nn.Conv2d(1, 1, 3, dilation=2, padding=2)], 14),
    ],
)
def test_border_box_equals_the_probe_gradient_of_the_corner_unit(layers, size):
    model = nn.Sequential(*layers)
    fields = [f for f in receptive_fields(model, size, in_channels=1) if f.kind in ("conv", "pool")]
    probe = probe_model(model)
    x = torch.ones((1, 1, size, size), dtype=torch.float64, requires_grad=True)
    outs = run_nodes(probe, x)
    for f in fields:
        for unit in ((0, 0), (0, f.size[1] - 1), (f.size[0] - 1, 0)):
            (grad,) = torch.autograd.grad(outs[f.node][0, 0, unit[0], unit[1]], x, retain_graph=True)
            assert nonzero_box(grad[0]) == f.unit_box_clipped(unit), (f.name, unit)
