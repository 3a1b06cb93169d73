"""The calculator's lighter tracing and meta pass give what torch.fx's own would: the same
graph, the same first layer, the same fields; and models are built without their weights."""

from __future__ import annotations

import pytest
import torch
import torch.fx as fx
from labrunner.labs.cnn_receptive.networks import build_model
from labrunner.labs.cnn_receptive.receptive import feature_output, receptive_fields, unsupported
from labrunner.labs.cnn_receptive.tracing import first_module, trace_for_calculator
from torch import nn


class HeadFirst(nn.Module):
    """Registers its head before its convolution, reads a parameter and a buffer directly,
    and uses one parameter twice: fx's module order and get_attr names are at stake."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(8, 2)
        self.scale = nn.Parameter(torch.ones(1, 8, 1, 1))
        self.register_buffer("shift", torch.zeros(1, 8, 1, 1))
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU())

    def forward(self, x):
        x = self.body(x) * self.scale + self.shift
        x = x * self.scale
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def graph_rows(graph: fx.Graph) -> list[tuple]:
    return [(n.name, n.op, str(n.target), str(n.args), str(n.kwargs)) for n in graph.nodes]


@pytest.mark.parametrize("make", [HeadFirst, lambda: build_model("convnext_tiny", meta=True)])
def test_the_graph_is_fx_symbolic_traces(make):
    model = make()
    root, graph = trace_for_calculator(model)
    reference = fx.symbolic_trace(model)
    assert root is model
    assert graph_rows(graph) == graph_rows(reference.graph)
    assert any(n.op == "get_attr" for n in graph.nodes)  # the table of names was used
    types = (nn.Conv2d, nn.Linear)
    expected = next(m for m in reference.modules() if isinstance(m, types))
    assert first_module(root, graph, types) is expected


def test_the_input_channels_come_from_the_first_layer_called_not_the_first_registered():
    # model.modules() would find the head (a Linear: 1 input channel) and the 3-channel
    # convolution could not run
    fields = receptive_fields(HeadFirst(), 9)
    assert not unsupported(fields)
    assert feature_output(fields).rf == (3, 3)


CALLS = []


@fx.wrap  # a node of the graph, run by the meta pass (not when tracing)
def tripwire(x):
    CALLS.append(tuple(x.shape))
    return x


class Tripwired(nn.Module):
    def __init__(self, before: nn.Module):
        super().__init__()
        self.before, self.conv = before, nn.Conv2d(2, 2, 3)

    def forward(self, x):
        return self.conv(tripwire(self.before(x)))


def test_nothing_downstream_of_an_unsupported_layer_runs():
    CALLS.clear()
    fields = receptive_fields(Tripwired(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Upsample(scale_factor=2))), 16)
    assert [f.kind for f in fields] == ["input", "conv", "unsupported", "unsupported", "unsupported"]
    assert fields[3].reason.startswith("after before.1 (Upsample")
    assert CALLS == []
    fields = receptive_fields(Tripwired(nn.Conv2d(1, 2, 3)), 16)
    assert CALLS == [(1, 2, 14, 14)]  # where it is reached, the tripwire does fire
    assert fields[2].kind == "unsupported" and "no rule" in fields[2].reason


def test_a_model_with_weights_gives_the_fields_of_the_same_model_on_meta():
    real = build_model("resnet18")
    weights = real.conv1.weight.detach().clone()
    fields = receptive_fields(real, 96)
    assert real.conv1.weight.device.type == "cpu" and torch.equal(
        real.conv1.weight, weights
    )  # left as it was
    meta = receptive_fields(build_model("resnet18", meta=True), 96)
    assert [(f.name, f.kind, f.axes) for f in fields] == [(f.name, f.kind, f.axes) for f in meta]


def test_a_model_whose_constructor_computes_with_torch_is_still_built_without_weights():
    # RegNet works out its stage widths with torch tensors, which the meta device cannot
    model = build_model("regnet_y_400mf", meta=True)
    assert all(p.is_meta for p in model.parameters()) and all(b.is_meta for b in model.buffers())
    assert nn.Linear(2, 2).weight.device.type == "cpu"  # registration is back to normal
    real = build_model("regnet_y_400mf")
    assert [(n, p.shape) for n, p in model.named_parameters()] == [
        (n, p.shape) for n, p in real.named_parameters()
    ]
    meta_fields, real_fields = receptive_fields(model, 224), receptive_fields(real, 224)
    assert [(f.name, f.axes) for f in meta_fields] == [(f.name, f.axes) for f in real_fields]
    assert feature_output(meta_fields).rf == feature_output(real_fields).rf
