"""Exercise 3 on its own: the three forms of the position-wise FFN share weights and agree."""

from __future__ import annotations

import pytest
import torch
from labrunner.labs.attention import ffn

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def forms(linear: ffn.LinearFFN) -> dict:
    return {"linear": linear, "conv": ffn.ConvFFN(linear), "vmap": ffn.make_vmap_ffn(linear)}


def test_default_d_ff_is_four_times_d_model():
    assert ffn.default_d_ff(64) == 256
    assert ffn.default_d_ff(64, 100) == 100
    assert ffn.LinearFFN(64).fc1.out_features == 256
    assert ffn.LinearFFN(8, 5).fc2.in_features == 5


@pytest.mark.parametrize("shape", [(16, 32, 64), (1, 1, 8), (3, 7, 16), (2, 5, 12)])
@pytest.mark.parametrize("d_ff", [0, 24])
def test_three_forms_equal_the_formula(shape, d_ff):
    torch.manual_seed(sum(shape) + d_ff)
    linear = ffn.LinearFFN(shape[-1], d_ff)
    x = torch.randn(*shape)
    with torch.no_grad():
        expected = ffn.ffn_reference(x, *ffn.linear_weights(linear))
        for name, form in forms(linear).items():
            out = form(x)
            assert out.shape == x.shape, name
            torch.testing.assert_close(out, expected, rtol=0, atol=1e-5, msg=name)


def test_formula_is_relu_then_affine():
    w1, b1 = torch.tensor([[1.0, -1.0]]), torch.tensor([0.0, 0.5])
    w2, b2 = torch.tensor([[2.0], [3.0]]), torch.tensor([1.0])
    x = torch.tensor([[2.0], [-2.0]])
    # x = 2: hidden (2, -1.5) -> (2, 0) -> 4 + 1; x = -2: hidden (-2, 2.5) -> (0, 2.5) -> 7.5 + 1
    assert ffn.ffn_reference(x, w1, b1, w2, b2).tolist() == [[5.0], [8.5]]


def test_the_forms_share_one_set_of_weights():
    linear = ffn.LinearFFN(8)
    conv = ffn.ConvFFN(linear)
    assert conv.conv1.weight.data_ptr() == linear.fc1.weight.data_ptr()
    assert conv.conv2.bias.data_ptr() == linear.fc2.bias.data_ptr()
    x = torch.randn(2, 3, 8)
    vmapped = ffn.make_vmap_ffn(linear)
    with torch.no_grad():
        linear.fc2.bias.add_(1.0)  # a change through one form is seen by the others
        torch.testing.assert_close(conv(x), linear(x), rtol=0, atol=1e-5)
        torch.testing.assert_close(vmapped(x), linear(x), rtol=0, atol=1e-5)


def test_ffn_position_is_the_ffn_of_one_token():
    linear = ffn.LinearFFN(6)
    v = torch.randn(6)
    params = ffn.ffn_params(linear)
    with torch.no_grad():
        torch.testing.assert_close(ffn.ffn_position(linear, params, v), linear(v))


def test_each_position_is_transformed_independently():
    linear = ffn.LinearFFN(4)
    x = torch.randn(2, 5, 4)
    y = x.clone()
    y[1, 3] += 10.0  # change one token
    with torch.no_grad():
        for form in forms(linear).values():
            changed = (form(y) - form(x)).abs().amax(-1) > 0
            assert changed.nonzero().tolist() == [[1, 3]]


def test_functionalize_removes_the_in_place_ops():
    linear = ffn.LinearFFN(8)
    x = torch.randn(2, 3, 8)
    weights = ffn.linear_weights(linear)
    inplace = ffn.inplace_ops(ffn.ffn_inplace, x, *weights)
    assert inplace == ["aten.add_.Tensor", "aten.relu_.default", "aten.add_.Tensor"]
    functional = ffn.functionalized_ffn()
    assert ffn.inplace_ops(functional, x, *weights) == []
    ops = ffn.dispatched_ops(functional, x, *weights)
    assert "aten.relu.default" in ops and "aten.mm.default" in ops
    with torch.no_grad():
        expected = ffn.ffn_reference(x, *weights)
        torch.testing.assert_close(functional(x, *weights), expected, rtol=0, atol=1e-6)
        torch.testing.assert_close(ffn.ffn_inplace(x, *weights), expected, rtol=0, atol=1e-6)


def test_time_forms_times_every_form_in_paired_rounds():
    linear = ffn.LinearFFN(8)
    times = ffn.time_forms(forms(linear), torch.randn(2, 3, 8), repeats=10, warmup=1, rounds=5)
    assert set(times) == {"linear", "conv", "vmap"}
    for timing in times.values():
        assert len(timing.samples) == 10 and len(timing.rounds) == 5
        assert all(t > 0 for t in timing.samples) and timing.median > 0


def test_rounding_bound_holds_and_a_different_function_exceeds_it():
    torch.manual_seed(0)
    linear = ffn.LinearFFN(32)
    x = torch.randn(4, 16, 32)
    weights = ffn.linear_weights(linear)
    bound = 2 * ffn.ffn_rounding_bound(x, *weights)
    with torch.no_grad():
        ref = ffn.ffn_reference(x, *weights)
        for form in forms(linear).values():
            assert ((form(x) - ref).abs() <= bound).all()
        exact = ffn.ffn_reference(x.double(), *(w.double() for w in weights))
        assert ((ref.double() - exact).abs() <= bound / 2).all()  # against the float64 formula too
        wrong = torch.relu(x @ weights[0]) @ weights[2] + weights[3]  # b1 forgotten
        assert ((wrong - ref).abs() > bound).any()
    assert float(bound.max()) < 1e-3 * float(ref.abs().max())  # not a vacuous bound
