"""Exercises 1 and 2 on their own: self-attention, the equivariance check (and the mistakes it
does and does not catch), positional encodings and the invariant readouts."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from labrunner.labs.attention import attention as att

SHAPES = ((1, 3, 2, 2), (2, 3, 4, 5), (7, 8, 4, 6), (12, 5, 3, 9))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def rand(*size: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_self_attention_is_the_assignment_formula_written_out():
    x, w_q, w_k, w_v = rand(4, 3, seed=1), rand(3, 2, seed=2), rand(3, 2, seed=3), rand(3, 5, seed=4)
    alpha = 1.7
    scores = x @ w_q @ w_k.T @ x.T / alpha
    expected = torch.empty(4, 5, dtype=torch.float64)
    for i in range(4):  # row-wise softmax by hand, then the weighted average of the values
        weights = [math.exp(scores[i, j]) for j in range(4)]
        total = sum(weights)
        expected[i] = sum(w / total * (x[j] @ w_v) for j, w in enumerate(weights))
    torch.testing.assert_close(att.self_attention(x, w_q, w_k, w_v, alpha), expected, rtol=0, atol=1e-12)


def test_default_alpha_is_sqrt_dk_and_rows_are_probabilities():
    x, w = rand(6, 4), rand(4, 9, seed=5)
    a = att.attention_matrix(x, w, w)
    torch.testing.assert_close(a, torch.softmax(x @ w @ w.T @ x.T / 3.0, dim=-1))
    assert torch.all(a >= 0)
    torch.testing.assert_close(a.sum(-1), torch.ones(6, dtype=torch.float64))


def test_batched_inputs_give_one_result_per_sequence():
    xs, w = rand(3, 5, 4), rand(4, 4, seed=2)
    batched = att.self_attention(xs, w, w, w)
    for i in range(3):
        torch.testing.assert_close(batched[i], att.self_attention(xs[i], w, w, w), rtol=0, atol=1e-14)


def test_permutation_matrix_reorders_rows():
    perm = torch.tensor([2, 0, 3, 1])
    x = rand(4, 3)
    p = att.permutation_matrix(perm)
    assert torch.equal(p @ x, x[perm])
    assert torch.equal(p.T @ p, torch.eye(4, dtype=torch.float64))


def test_self_attention_is_permutation_equivariant():
    sweep = att.equivariance_sweep(att.self_attention, SHAPES, draws=2, permutations=5)
    assert sweep.cases == len(SHAPES) * 10
    assert sweep.nontrivial == (len(SHAPES) - 1) * 10  # one token: only the identity permutation
    assert sweep.max_error < 1e-12
    assert sweep.per_shape[(1, 3, 2, 2)] == 0.0
    assert 0 < sweep.max_ratio <= 1 and sweep.within_rounding
    assert att.is_equivariant(att.self_attention)


def test_random_permutations_are_never_the_identity_when_there_is_a_choice():
    gen = torch.Generator().manual_seed(0)
    perms = [att.random_permutation(2, gen) for _ in range(50)]
    assert all(p.tolist() == [1, 0] for p in perms)  # the identity would test nothing
    assert att.random_permutation(1, gen).tolist() == [0]
    case = next(att.random_cases(((3, 2, 2, 2),), 1, 7, torch.float64, 0))
    assert case.nontrivial == 7


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_rounding_bound_holds_against_a_float64_reference_and_is_not_vacuous(dtype):
    # the bound is on |fl(S(X)) - S(X)|: check it against S computed in float64 from the same
    # float32 inputs, which is exact to float32's eyes
    for case in att.random_cases(((7, 8, 4, 6), (33, 7, 3, 11)), 2, 1, dtype, 1):
        args = (case.w_q, case.w_k, case.w_v)
        computed = att.self_attention(case.x, *args)
        exact = att.self_attention(*(v.double() for v in (case.x, *args)))
        bound = att.attention_rounding_bound(case.x, *args, dtype=dtype)
        assert ((computed.double() - exact).abs() <= bound).all()
        assert float(bound.max()) < 1e3 * att.unit_roundoff(dtype) * 33  # tens of ulps, not a blanket


def test_float32_error_is_rounding_sized():
    sweep = att.equivariance_sweep(att.self_attention, SHAPES, draws=2, permutations=5, dtype=torch.float32)
    assert 0 < sweep.max_error < 1e-5
    assert sweep.within_rounding


@settings(max_examples=25, deadline=None)
@given(
    t=st.integers(1, 12),
    d_in=st.integers(1, 6),
    d_k=st.integers(1, 6),
    d_v=st.integers(1, 6),
    seed=st.integers(0, 10_000),
    alpha=st.floats(0.25, 8.0),
)
def test_equivariance_property(t, d_in, d_k, d_v, seed, alpha):
    case = next(att.random_cases(((t, d_in, d_k, d_v),), 1, 1, torch.float64, seed))
    assert att.equivariance_error(att.self_attention, case, alpha) < 1e-12
    g = att.invariance_error(att.invariant_pool, att.self_attention, case, alpha)
    assert g < 1e-12 * max(1, t)


@pytest.mark.parametrize(
    "wrong",
    [att.attention_transpose_by_reshape, att.attention_causal],
    ids=["K.reshape instead of K.T", "causal mask"],
)
def test_a_wrong_implementation_fails_the_equivariance_check(wrong):
    sweep = att.equivariance_sweep(wrong, SHAPES, draws=2, permutations=5)
    assert sweep.max_error > 1e-3
    assert sweep.max_ratio > 1e6  # far outside what rounding can do
    assert not att.is_equivariant(wrong)


def test_softmax_over_the_wrong_axis_passes_equivariance_but_fails_the_row_sums():
    # Normalising columns commutes with P . P^T just as normalising rows does, so the
    # equivariance check cannot see this bug; the rows of A no longer sum to one.
    wrong = att.attention_softmax_over_columns
    assert att.is_equivariant(wrong)
    cases = list(att.random_cases(SHAPES[1:], 2, 1, torch.float64, 0))
    assert max(att.row_sum_error(wrong, c) for c in cases) > 1e-2
    assert max(att.row_sum_check(wrong, c).ratio for c in cases) > 1
    assert max(att.row_sum_error(att.self_attention, c) for c in cases) < 1e-12
    assert max(att.row_sum_check(att.self_attention, c).ratio for c in cases) <= 1
    # and it is a different function, which a comparison with the formula catches
    c = cases[0]
    assert not torch.allclose(wrong(c.x, c.w_q, c.w_k, c.w_v), att.self_attention(c.x, c.w_q, c.w_k, c.w_v))


def test_row_sum_probe_does_not_change_the_scores():
    case = next(att.random_cases(((5, 4, 3, 2),), 1, 1, torch.float64, 3))
    assert att.row_sum_error(att.self_attention, case) < 1e-12


def test_sinusoidal_encoding_values():
    e = att.sinusoidal_positional_encoding(50, 7)
    assert e.shape == (50, 7)
    torch.testing.assert_close(e[0], torch.tensor([0.0, 1, 0, 1, 0, 1, 0], dtype=torch.float64))
    assert e[3, 0] == pytest.approx(math.sin(3))
    assert e[3, 1] == pytest.approx(math.cos(3))
    assert e[3, 2] == pytest.approx(math.sin(3 / 10000 ** (2 / 7)))


@pytest.mark.parametrize("encoding", ["sinusoidal", "learned"])
def test_positional_encoding_breaks_equivariance_unless_permuted_along(encoding):
    encoded = att.with_positional_encoding(att.self_attention, encoding)
    sweep = att.equivariance_sweep(encoded, SHAPES, draws=2, permutations=5)
    assert sweep.max_error > 1e-2 and not sweep.within_rounding
    # the same table for X and PX (a trained model's table does not change between calls)
    x = rand(6, 4)
    w = rand(4, 4, seed=9)
    torch.testing.assert_close(encoded(x, w, w, w), encoded(x, w, w, w), rtol=0, atol=0)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_invariant_pool_is_permutation_invariant(reduction):
    def make(t, d, g):
        return lambda s: att.invariant_pool(s, reduction)

    sweep = att.invariance_sweep(make, att.self_attention, SHAPES, draws=2, permutations=5)
    assert sweep.max_error < 1e-12 and sweep.within_rounding


def test_invariant_pool_sums_columns_over_tokens():
    s = torch.arange(6.0).reshape(3, 2)  # 3 tokens, 2 features
    assert att.invariant_pool(s).tolist() == [6.0, 9.0]  # column sums: one per feature
    assert att.invariant_pool(s, "mean").tolist() == [2.0, 3.0]
    with pytest.raises(ValueError, match="reduction"):
        att.invariant_pool(s, "max")


def test_row_sums_are_equivariant_not_invariant():
    def make(t, d, g):
        return att.row_sums

    assert att.invariance_sweep(make, att.self_attention, SHAPES, draws=2, permutations=5).max_error > 1e-2
    as_equivariant = att.invariance_sweep(
        make, att.self_attention, SHAPES, draws=2, permutations=5, equivariant=True
    )
    assert as_equivariant.within_rounding and as_equivariant.max_error < 1e-12


def test_flatten_linear_readout_is_not_invariant():
    sweep = att.invariance_sweep(
        att.flatten_linear_readout, att.self_attention, SHAPES, draws=2, permutations=5
    )
    assert sweep.max_error > 1e-2 and not sweep.within_rounding


def test_random_cases_are_deterministic_and_the_same_in_both_precisions():
    a = list(att.random_cases(SHAPES, 2, 2, torch.float64, seed=4))
    b = list(att.random_cases(SHAPES, 2, 2, torch.float64, seed=4))
    c = list(att.random_cases(SHAPES, 2, 2, torch.float32, seed=4))
    assert len(a) == len(SHAPES) * 2  # one case per draw, holding a stack of 2 permutations
    assert a[-1].p.shape == (2, 12, 12)
    for u, v, w in zip(a, b, c, strict=True):
        assert torch.equal(u.x, v.x) and torch.equal(u.p, v.p)
        assert torch.equal(u.x.float(), w.x) and torch.equal(u.p.float(), w.p)
