"""The baselines the lab's claims are decided against: random-vector distances, the grammar's
and the unigram model's log-probabilities (the tests themselves: tests/test_stats.py)."""

from __future__ import annotations

import numpy as np
import pytest
from labrunner.labs.rnn_lm import corpus as C
from labrunner.labs.rnn_lm.embeddings import random_cosine_distances


def test_random_vector_distances_centre_on_one_with_spread_one_over_sqrt_dim():
    d = random_cosine_distances(64, 4000, np.random.default_rng(0))
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
