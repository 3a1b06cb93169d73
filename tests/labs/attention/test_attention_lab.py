"""The whole lab in the smoke profile: it passes, records what the report needs, and its checks
fail when the self-attention under test is wrong."""

from __future__ import annotations

import subprocess
import sys

import pytest
from labrunner.labs.attention import AttentionLab
from labrunner.labs.attention import attention as att

from labrunner.testing import assert_checks_pass, assert_metric, run_lab_in, torch_threads


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    """One smoke run shared by the tests of this module (single-threaded: see the math tests)."""
    tmp = tmp_path_factory.mktemp("attention")
    with pytest.MonkeyPatch.context() as mp, torch_threads(1):
        mp.setenv("LABRUNNER_CACHE_DIR", str(tmp / "cache"))
        yield run_lab_in(AttentionLab(), tmp / "run", profile="smoke")


@pytest.mark.slow  # runs the lab (seconds)
def test_smoke_run_passes(result):
    assert_checks_pass(result)
    assert result.status == "passed"
    assert [ex.title[:2] for ex in result.exercises] == ["1.", "2.", "3."]
    assert [ex.fidelity for ex in result.exercises] == ["assignment"] * 3
    assert AttentionLab.part == "Problem 3" and AttentionLab.title.startswith("Problem 3")


@pytest.mark.slow  # runs the lab (seconds)
def test_every_conclusion_is_a_claim_that_holds_on_the_smoke_run(result):
    claims = {c.name: c for ex in result.exercises for c in ex.claims}
    timing = {n for n in claims if n.startswith(("ffn_conv1d_", "ffn_vmap_", "ffn_functionalize_"))}
    timing |= {"ffn_linear_fastest", "vmap_bit_identical"}  # decided by the machine and the backend
    assert {n for n, c in claims.items() if not c.holds} <= timing
    for key in ("conv1d", "vmap", "functionalize"):  # a form is never both slower and faster
        assert not (claims[f"ffn_{key}_slower"].holds and claims[f"ffn_{key}_faster"].holds)
    for c in claims.values():
        assert c.statement and c.evidence, c.name
        assert "nan" not in c.evidence.lower()
    assert "rounding" in claims["equivariant_f64"].baseline


@pytest.mark.slow  # runs the lab (seconds)
def test_cases_that_permute_nothing_are_counted_apart(result):
    cases = assert_metric(result, "equivariance_cases")
    nontrivial = assert_metric(result, "equivariance_cases_nontrivial")
    assert nontrivial == cases  # the smoke shapes have no single-token sequence


@pytest.mark.slow  # runs the lab (seconds)
def test_metrics_are_what_the_issue_asks_for(result):
    assert_metric(result, "equivariance_max_err_f64", at_most=1e-12)
    assert_metric(result, "equivariance_max_err_f32", at_most=1e-5)
    assert_metric(result, "equivariance_err_sinusoidal_pe", at_least=0.1)
    assert_metric(result, "equivariance_err_learned_pe", at_least=0.1)
    assert_metric(result, "invariance_max_err_sum_f64", at_most=1e-12)
    assert_metric(result, "invariance_max_err_mean_f64", at_most=1e-12)
    assert_metric(result, "invariance_err_flatten_linear", at_least=0.1)
    for form in ("linear", "conv1d", "vmap", "functionalize"):
        assert_metric(result, f"ffn_max_err_{form}", at_most=1e-5)
    for form in ("conv1d", "vmap", "functionalize"):
        assert_metric(result, f"ffn_time_ratio_{form}", at_least=0)


@pytest.mark.slow  # runs the lab (seconds)
def test_report_records(result, tmp_path_factory):
    ex1, ex2, ex3 = result.exercises
    assert "Lemma" in ex1.answer and "{{" not in ex1.answer and "{%" not in ex1.answer
    assert "column" in ex2.answer
    figures = [r.path for ex in result.exercises for r in ex.records if r.kind == "figure"]
    assert figures == ["figures/attention_permuted.png", "figures/readout_invariance.png"]
    timing = [
        r for r in ex3.records if r.kind == "table" and "time / nn.Linear (median of the rounds)" in r.columns
    ]
    assert len(timing) == 1 and len(timing[0].rows) == 4
    assert sum(c.points for c in result.checks) > 0


@pytest.mark.slow  # runs the lab (seconds)
def test_a_wrong_self_attention_fails_the_lab(tmp_path, monkeypatch):
    """Swap in the K.reshape bug: the float64 equivariance check must fail (status failed)."""
    monkeypatch.setenv("LABRUNNER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(att, "self_attention", att.attention_transpose_by_reshape)
    with torch_threads(1):
        wrong = run_lab_in(
            AttentionLab(),
            tmp_path / "run",
            profile="smoke",
            shapes=((3, 4, 4, 4), (6, 5, 3, 2)),
            ffn_shapes=((2, 3, 8),),
            timing_shape=(2, 3, 8),
            timing_repeats=2,
        )
    assert wrong.status == "failed"
    failed = {c.name for c in wrong.checks if not c.passed}
    assert "PS(X) = S(PX) in float64 (error / rounding bound)" in failed
    assert "G = 1^T S(X) is invariant (float64, error / rounding bound)" in failed
    claims = {c.name: c.holds for c in wrong.exercises[0].claims}
    assert claims["equivariant_f64"] is False
    assert "**not** equivariant" in wrong.exercises[0].answer
    assert "These are rounding errors" not in wrong.exercises[0].answer


def test_importing_the_lab_does_not_import_torch():
    code = "import sys, labrunner.labs.attention as m; print(*(x in sys.modules for x in ('torch', 'matplotlib', 'numpy')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"] * 3
