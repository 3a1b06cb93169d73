"""The receptive-field calculator on hand-checked cases: the assignment's network, AlexNet,
dilation, ceil_mode, asymmetric and 'same' padding, non-square kernels, 1-D layers,
residual and concatenated branches, squeeze-and-excitation, and what it refuses to guess."""

from __future__ import annotations

import pytest
import torch
import torchvision
from labrunner.labs.cnn_receptive.receptive import (
    ReceptiveFieldError,
    feature_output,
    output_size,
    receptive_fields,
    spatial_layers,
    unsupported,
)
from labrunner.labs.cnn_receptive.verify import gradient_boxes
from torch import nn


def by_name(fields):
    return {f.name: f for f in fields}


def assert_gradient_matches(model, size, in_channels=1):
    """Every known layer's clipped centre box equals the probe's non-zero gradient box."""
    fields = receptive_fields(model, size, in_channels=in_channels)
    layers = [f for f in fields if f.known and f.kind != "input"]
    size = (size, size) if isinstance(size, int) else tuple(size)
    measured = gradient_boxes(model, size, layers, in_channels=in_channels)
    for f in layers:
        assert measured[f.name] == f.centre_box_clipped, f.name
    return fields


def test_assignment_network_matches_the_worked_answer():
    net = [nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Conv2d(96, 256, 5, padding=2)]
    f = by_name(receptive_fields(net, 227))
    assert (f["0"].size, f["0"].jump, f["0"].rf, f["0"].start) == ((55, 55), (4, 4), (11, 11), (5.0, 5.0))
    assert (f["2"].size, f["2"].jump, f["2"].rf, f["2"].start) == ((27, 27), (8, 8), (19, 19), (9.0, 9.0))
    assert (f["3"].size, f["3"].jump, f["3"].rf, f["3"].start) == ((27, 27), (8, 8), (51, 51), (9.0, 9.0))
    # 1-based: 109..119, 105..123, 89..139
    assert f["0"].centre_box == ((108, 118), (108, 118))
    assert f["2"].centre_box == ((104, 122), (104, 122))
    assert f["3"].centre_box == ((88, 138), (88, 138))
    assert f["1"].kind == "same" and f["1"].rf == (11, 11)


def test_alexnet_final_field_is_195():
    with torch.device("meta"):
        model = torchvision.models.alexnet(weights=None)
    fields = receptive_fields(model, 224)
    final = feature_output(fields)
    assert final.name == "features.12"
    assert final.rf == (195, 195) and final.jump == (32, 32) and final.size == (6, 6)
    assert [f.rf[0] for f in spatial_layers(fields)] == [1, 11, 19, 51, 67, 99, 131, 163, 195, 195]


def test_dilation():
    conv = nn.Conv2d(1, 1, 3, dilation=2)  # effective kernel 5
    f = by_name(receptive_fields([conv], 11))["0"]
    assert f.size == (7, 7) and f.rf == (5, 5) and f.start == (2.0, 2.0)
    two = [nn.Conv2d(1, 1, 3, dilation=2), nn.Conv2d(1, 1, 3, dilation=4, padding=4)]
    g = by_name(receptive_fields(two, 21))["1"]
    assert g.rf == (5 + 8, 5 + 8)  # r = 5 + d (k - 1) j = 5 + 4 * 2 * 1
    assert_gradient_matches(nn.Sequential(*two), 21)


def test_ceil_mode_follows_pytorch():
    # floor((5 - 2) / 2) + 1 = 2, ceil gives 3: the last window hangs over the edge.
    pool = nn.MaxPool2d(2, 2, ceil_mode=True)
    f = by_name(receptive_fields([pool], 5, in_channels=1))["0"]
    assert f.size == (3, 3)
    assert f.axes[0].box(2) == (4, 5)  # unclipped: one column past the image
    # PyTorch drops a last window that would start in the right padding.
    for n in range(3, 12):
        for k, s, p in [(3, 2, 1), (2, 2, 0), (3, 3, 1), (2, 3, 1)]:
            x = torch.zeros(1, 1, n)
            real = nn.functional.max_pool1d(x, k, s, p, ceil_mode=True).shape[-1]
            assert output_size(n, k, s, p, p, 1, ceil_mode=True) == real, (n, k, s, p)
    assert_gradient_matches(nn.Sequential(nn.Conv2d(1, 1, 3), nn.MaxPool2d(3, 2, ceil_mode=True)), 10)


def test_asymmetric_and_same_padding():
    # ZeroPad2d((left, right, top, bottom)) then a valid conv
    net = nn.Sequential(nn.ZeroPad2d((1, 2, 3, 0)), nn.Conv2d(1, 1, 3))
    f = by_name(receptive_fields(net, 8, in_channels=1))
    conv = f["1"]
    assert conv.size == (8 + 3 - 2, 8 + 3 - 2)  # rows: 8 + 3 + 0 - 2, cols: 8 + 1 + 2 - 2
    assert conv.axes[0].lo == -3 and conv.axes[1].lo == -1
    assert conv.start == (-2.0, 0.0)
    # padding="same" with an even kernel: PyTorch puts the extra column on the right.
    same = nn.Conv2d(1, 1, 4, padding="same")
    g = by_name(receptive_fields([same], 9, in_channels=1))["0"]
    assert g.size == (9, 9) and g.rf == (4, 4) and g.axes[0].lo == -1 and g.axes[0].hi == 2
    assert_gradient_matches(net, 8)
    assert_gradient_matches(nn.Sequential(same, nn.Conv2d(1, 1, 2, stride=2, padding=1)), 9)


def test_non_square_kernels_strides_and_paddings():
    conv = nn.Conv2d(1, 1, (3, 5), stride=(1, 2), padding=(1, 0))
    f = by_name(receptive_fields([conv, nn.MaxPool2d((2, 3), stride=(2, 1))], (10, 15), in_channels=1))
    assert f["0"].size == (10, 6) and f["0"].jump == (1, 2) and f["0"].rf == (3, 5)
    assert f["1"].size == (5, 4) and f["1"].jump == (2, 2) and f["1"].rf == (4, 9)
    assert_gradient_matches(nn.Sequential(conv, nn.MaxPool2d((2, 3), stride=(2, 1))), (10, 15))


def test_one_dimensional_layers():
    net = nn.Sequential(
        nn.Conv1d(2, 4, 5, stride=2), nn.ReLU(), nn.MaxPool1d(3, 2), nn.Conv1d(4, 4, 3, padding=1)
    )
    f = by_name(receptive_fields(net, (50,)))
    assert f["0"].size == (23,) and f["2"].size == (11,) and f["3"].size == (11,)
    assert f["3"].rf == (5 + 2 * 2 + 2 * 4,)
    fields = receptive_fields(net, (50,))
    measured = gradient_boxes(net, (50,), [x for x in fields if x.kind != "input"], in_channels=2)
    assert all(measured[x.name] == x.centre_box_clipped for x in fields if x.kind != "input")


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 1, 3, padding=1)
        self.conv2 = nn.Conv2d(1, 1, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(x + self.conv2(self.relu(self.conv1(x))))


def test_residual_block_is_the_union_of_its_paths():
    net = nn.Sequential(nn.Conv2d(1, 1, 2, stride=2), Residual())
    f = by_name(receptive_fields(net, 16))
    add = next(x for x in f.values() if x.kind == "merge")
    assert add.rf == (2 + 2 * 2 * 2, 2 + 4 * 2)  # the long path: two 3x3 at jump 2
    assert f["1.relu:2"].rf == add.rf  # the reused ReLU is a second layer
    assert_gradient_matches(net, 16)


def test_torchvision_basic_block_with_downsample():
    from torchvision.models.resnet import BasicBlock

    down = nn.Sequential(nn.Conv2d(4, 8, 1, stride=2), nn.BatchNorm2d(8))
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), BasicBlock(4, 8, stride=2, downsample=down))
    fields = assert_gradient_matches(net, 20)
    assert fields[-2].rf == (3 + 2 + 2 * 2, 9) and fields[-2].jump == (2, 2)


class TwoBranches(nn.Module):
    """An Inception-style block: a 1x1 and a 5x5 branch, concatenated on channels."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 2, 1)
        self.b = nn.Conv2d(1, 3, 5, padding=2)

    def forward(self, x):
        return torch.cat([self.a(x), self.b(x)], dim=1)


def test_concatenation_is_the_union():
    fields = assert_gradient_matches(nn.Sequential(TwoBranches(), nn.Conv2d(5, 1, 3)), 12)
    cat = next(f for f in fields if f.kind == "merge")
    assert cat.rf == (5, 5)
    assert fields[-1].rf == (7, 7)


def test_squeeze_excitation_makes_the_field_global():
    from torchvision.ops import SqueezeExcitation

    net = nn.Sequential(nn.Conv2d(1, 4, 3), SqueezeExcitation(4, 2), nn.Conv2d(4, 1, 3))
    fields = assert_gradient_matches(net, 11)
    scaled = next(f for f in fields if f.kind == "merge")
    assert scaled.jump == (0, 0) and scaled.rf == (11, 11)  # every unit sees the whole image


def test_channels_last_linear_keeps_the_geometry():
    """ConvNeXt's pattern: permute to (N, H, W, C), LayerNorm and Linear on C, permute back."""
    from torchvision.ops import Permute

    net = nn.Sequential(nn.Conv2d(1, 4, 3), Permute([0, 2, 3, 1]), nn.LayerNorm(4), nn.Linear(4, 4),
                        Permute([0, 3, 1, 2]), nn.Conv2d(4, 1, 3))  # fmt: skip
    fields = receptive_fields(net, 9, in_channels=1)
    assert [f.kind for f in fields] == ["input", "conv", "reshape", "same", "same", "reshape", "conv"]
    assert fields[3].rf == (3, 3) and fields[-1].rf == (5, 5)
    assert_gradient_matches(net, 9)


def test_adaptive_pooling_is_exact_or_reported():
    exact = receptive_fields([nn.Conv2d(1, 1, 3), nn.AdaptiveAvgPool2d(1)], 9)
    assert exact[-1].size == (1, 1) and exact[-1].rf == (9, 9)
    uneven = receptive_fields([nn.Conv2d(1, 1, 3), nn.AdaptiveAvgPool2d(5), nn.Conv2d(1, 1, 3)], 9)
    assert uneven[2].kind == "unsupported" and "uneven windows" in uneven[2].reason
    assert uneven[3].kind == "unsupported" and uneven[3].reason.startswith("after ")
    assert [f.name for f in unsupported(uneven)] == ["1"]
    assert feature_output(uneven).name == "0"


def test_upsampling_and_reflect_padding_are_not_guessed():
    up = receptive_fields([nn.Conv2d(1, 1, 3), nn.Upsample(scale_factor=2)], 9)
    assert up[-1].kind == "unsupported" and "Upsample" in up[-1].reason
    refl = receptive_fields([nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect")], 9)
    assert refl[-1].kind == "unsupported" and "reflect" in refl[-1].reason


def test_classifier_head_ends_the_spatial_map():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 7 * 7, 3))
    fields = receptive_fields(net, 9)
    assert [f.kind for f in fields] == ["input", "conv", "head", "head"]
    assert not fields[-1].known
    with pytest.raises(ValueError, match="no spatial geometry"):
        _ = fields[-1].rf


def test_input_too_small_is_reported():
    fields = receptive_fields([nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 5)], 5)
    assert fields[1].rf == (3, 3)
    assert fields[2].kind == "unsupported" and "does not run on a 5x5 input" in fields[2].reason
    with pytest.raises(ReceptiveFieldError, match="invalid input size"):
        receptive_fields([nn.Conv2d(1, 1, 5)], (0, 3))


def test_shapes_worked_out_without_running_match_the_meta_kernels():
    """The meta pass works out convolution, linear and adaptive-pooling shapes itself; they
    must be what the layers' own meta kernels give, and anything unusual must run for real."""
    from labrunner.labs.cnn_receptive.tracing import _module_out_shape

    layers = [
        nn.Conv2d(3, 8, 3),
        nn.Conv2d(3, 6, (3, 5), stride=(2, 3), padding=(1, 2), dilation=(2, 1), groups=3),
        nn.Conv2d(3, 4, 7, stride=4, padding=3, bias=False),
        nn.Conv1d(3, 5, 4, stride=3, padding=1),
        nn.Conv3d(3, 2, 2, stride=2),
        nn.Linear(9, 4),
        nn.AdaptiveAvgPool2d((3, None)),
        nn.AdaptiveAvgPool2d(1),
        nn.AdaptiveAvgPool1d(2),
    ]
    inputs = [
        (1, 3, 9, 9),
        (1, 3, 11, 12),
        (2, 3, 5, 6),
        (1, 3, 10),
        (1, 3, 4, 5, 6),
        (1, 7, 9),
        (1, 3, 9, 9),
    ]
    inputs += [(1, 3, 7), (1, 3, 2, 2), (1, 4, 9, 9)]
    checked = 0
    for layer in layers:
        meta_layer = layer.to("meta")
        for shape in inputs:
            x = torch.empty(shape, device="meta")
            worked_out = _module_out_shape(meta_layer, x)
            try:
                expected = tuple(meta_layer(x).shape)
            except Exception:  # noqa: BLE001 - the layer cannot take this input
                assert worked_out is None, (layer, shape)
                continue
            if worked_out is not None:
                assert worked_out == expected, (layer, shape)
                checked += 1
    assert checked >= 10
    assert (
        _module_out_shape(nn.Conv2d(3, 3, 3, padding=1, padding_mode="reflect"), torch.empty(1, 3, 5, 5))
        is None
    )
    assert _module_out_shape(nn.Conv2d(3, 3, 3, padding="same"), torch.empty(1, 3, 5, 5)) is None
