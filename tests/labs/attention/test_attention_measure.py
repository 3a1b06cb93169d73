"""The exercises' measurements without a context: each returns a frozen dataclass whose
conditions (the ones its claims and checks record) can be tested directly."""

from __future__ import annotations

import dataclasses

import pytest
from labrunner.labs.attention import AttentionConfig
from labrunner.labs.attention import attention as att
from labrunner.labs.attention.equivariance import measure_equivariance
from labrunner.labs.attention.ffn_exercise import measure_ffn_forms
from labrunner.labs.attention.readout import measure_readouts
from labrunner.labs.attention.shared import Setup

from labrunner.testing import torch_threads

SETUP = Setup(shapes=((3, 4, 4, 4), (6, 5, 3, 2)), draws=1, permutations=2, seed=0, alpha=None)


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


def test_equivariance_of_the_correct_implementation_and_the_rejected_variants():
    m = measure_equivariance(SETUP, figure_tokens=4)
    assert m.s64.within_rounding and m.s32.within_rounding
    assert m.s64.cases == 2 * 1 * 2 and m.s64.nontrivial == m.s64.cases
    assert m.lemma_holds and m.rows_sum_to_one
    assert m.every_wrong_variant_rejected and len(m.wrong) == 4
    assert m.sweeps["bug: softmax over columns"].within_rounding  # equivariant, wrong all the same
    assert m.row_sums_catch_columns  # ... which the row sums see
    assert m.row_sums["sinusoidal positional encoding"] is None
    assert m.maps.tokens == 4 and sorted(m.maps.perm) == [0, 1, 2, 3] and m.maps.error.ratio <= 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.s64 = m.s32  # type: ignore[misc]


def test_equivariance_fails_for_a_wrong_self_attention(monkeypatch):
    monkeypatch.setattr(att, "self_attention", att.attention_transpose_by_reshape)
    m = measure_equivariance(SETUP, figure_tokens=4)
    assert not m.s64.within_rounding and m.s64.max_ratio > 1


def test_equivariance_is_the_same_for_the_same_seed_and_differs_for_another():
    a, b = measure_equivariance(SETUP, 4), measure_equivariance(SETUP, 4)
    c = measure_equivariance(dataclasses.replace(SETUP, seed=1), 4)
    assert a.s64.max_error == b.s64.max_error and a.maps.perm == b.maps.perm
    assert c.s64.max_error != a.s64.max_error


def test_readouts_sum_and_mean_are_invariant_the_others_are_not():
    m = measure_readouts(SETUP)
    assert m.sum64.within_rounding and m.sum32.within_rounding
    assert m.mean64.within_rounding and m.mean32.within_rounding
    assert m.rows_eq.within_rounding and not m.rows_inv.within_rounding
    assert not m.flat.within_rounding
    assert [row[3] for row in m.table] == ["invariant", "invariant", "equivariant", "neither"]


def test_ffn_forms_agree_functionalize_removes_mutation_and_timing_has_every_round():
    cfg = dataclasses.replace(
        AttentionConfig(), ffn_shapes=((2, 3, 8), (1, 1, 4)), timing_shape=(2, 3, 8), timing_repeats=4
    )
    m = measure_ffn_forms(cfg, "cpu", seed=0)
    assert all(r <= 1 for r in m.ratios.values()) and m.shared
    assert m.inplace and not m.inplace_func and m.ratio_func <= 1
    assert [row[0] for row in m.rows] == ["(2, 3, 8)", "(1, 1, 4)"] and m.rows[0][1] == 32  # d_ff = 4 D
    assert m.rounds == 4 and set(m.verdicts) == {
        "nn.Conv1d(k=1)",
        "torch.func vmap",
        "functionalize(in-place)",
    }
    assert set(m.verdicts.values()) <= {"slower", "faster", "same"}
