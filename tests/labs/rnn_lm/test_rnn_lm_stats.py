"""The uncertainty the lab's claims are decided against: paired differences, Student's t,
interleaved timing, random-vector distances; and the baselines of the corpus."""

from __future__ import annotations

import math

import numpy as np
import pytest
from labrunner.labs.rnn_lm import corpus as C
from labrunner.labs.rnn_lm import stats as S


def test_paired_difference_cancels_the_shared_variation():
    rng = np.random.default_rng(0)
    shared = rng.normal(0, 5, 30)  # large row-to-row variation, common to both
    a, b = shared + 0.1, shared + rng.normal(0, 0.01, 30)
    d = S.paired(a, b)
    assert d.n == 30 and d.mean == pytest.approx(0.1, abs=0.01)
    assert d.above and not d.below
    # unpaired, the shared variation hides the same gap
    assert not S.unpaired(a, b).above


def test_a_difference_needs_more_than_one_value_and_uses_students_t():
    assert not S.paired([1.0], [0.0]).above and not S.paired([1.0], [0.0]).below
    assert "no spread" in S.paired([1.0], [0.0]).text()
    assert S.t_critical(2) == pytest.approx(12.71) and S.t_critical(21) == pytest.approx(2.09)
    assert S.t_critical(1000) == 2.0 and math.isinf(S.t_critical(1))
    # two seeds give a wide interval: t(1) = 12.7 standard errors
    d = S.paired([1.0, 1.5], [0.0, 0.0])
    assert d.margin == pytest.approx(12.71 * 0.25)
    assert not d.above and S.paired([1.0, 1.5, 1.2, 1.3, 1.1], [0.0] * 5).above
    with pytest.raises(ValueError, match="paired comparison"):
        S.paired([1.0, 2.0], [1.0])


def test_sign_counts():
    assert S.sign_counts([-1.0, 0.0, 2.0, 3.0]) == (1, 2)


def test_clearly_faster_needs_separate_interquartile_ranges():
    fast, slow = S.Timing((1.0, 1.1, 1.2, 1.0, 1.1)), S.Timing((2.0, 2.1, 1.9, 2.2, 2.0))
    assert S.clearly_faster(fast, slow) and not S.clearly_faster(slow, fast)
    overlapping = S.Timing((1.0, 1.05, 2.1, 1.2, 2.0))
    assert not S.clearly_faster(fast, overlapping) and not S.clearly_faster(overlapping, slow)
    assert fast.median == 1.1 and fast.text(1.0) == "1.1 (1–1.1)"


def test_interleaved_timing_alternates_and_warms_up():
    calls: list[str] = []

    def variant(name: str, seconds: float):
        def run():
            calls.append(name)
            return seconds, 10

        return run

    result = S.interleaved_timing({"a": variant("a", 1.0), "b": variant("b", 2.0)}, repeats=3)
    assert calls[:2] == ["a", "b"]  # the warm-up round
    assert calls[2:] == ["a", "b", "b", "a", "a", "b"]  # the order rotates
    assert result["a"].samples == (0.1, 0.1, 0.1) and result["b"].median == 0.2
    with pytest.raises(ValueError, match="repeats"):
        S.interleaved_timing({"a": variant("a", 1.0)}, repeats=0)


def test_random_vector_distances_centre_on_one_with_spread_one_over_sqrt_dim():
    d = S.random_cosine_distances(64, 4000, np.random.default_rng(0))
    assert d.mean() == pytest.approx(1.0, abs=0.01)
    assert d.std() == pytest.approx(1 / 8, rel=0.05)


def test_grammar_log_probability_matches_the_sentence_scorer_and_forbids_errors():
    corpus = C.synthetic_corpus(0, 2000, 80)
    ids = corpus.train[:200]
    eos = corpus.dictionary.index[C.EOS]
    lp = corpus.grammar_logp(np.concatenate([[eos], ids[:-1]]), ids)
    assert np.isfinite(lp).all()
    assert lp.sum() == pytest.approx(C.log_prob(corpus.grammar, corpus.dictionary.decode(ids)))
    # DET -> DET never happens in the grammar; <unk> is no word of it
    the, a = corpus.dictionary.index["the"], corpus.dictionary.index["a"]
    unk = corpus.dictionary.index[C.UNK]
    assert np.isneginf(corpus.grammar_logp(np.array([the, eos]), np.array([a, unk]))).all()


def test_unigram_model_is_a_smoothed_distribution_of_the_training_counts():
    corpus = C.synthetic_corpus(0, 2000, 80)
    logp = corpus.unigram_logp()
    assert np.exp(logp).sum() == pytest.approx(1.0)
    counts = corpus.counts()
    assert np.isfinite(logp[counts == 0]).all()
    assert logp[np.argmax(counts)] == logp.max()


def test_sign_test():
    assert S.sign_test(0, 5) == pytest.approx(2 / 32)
    assert S.sign_test(5, 0) == S.sign_test(0, 5)
    assert S.sign_test(2, 2) == 1.0 and S.sign_test(0, 0) == 1.0
    assert S.sign_test(1, 9) == pytest.approx(2 * 11 / 1024)
