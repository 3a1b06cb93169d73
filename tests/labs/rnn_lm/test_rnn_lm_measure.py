"""Each exercise's measurement as a frozen dataclass: the conditions its claims and checks
decide, on numbers written by hand (no context, no training)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from labrunner.labs.rnn_lm.bptt import DetachOrNot, Window, memory_line
from labrunner.labs.rnn_lm.distances import DistanceUnderTraining
from labrunner.labs.rnn_lm.embeddings import SMALLEST_CLOSENESS, EmbeddingDistance
from labrunner.labs.rnn_lm.forcing import TeacherForcing
from labrunner.labs.rnn_lm.sampling import Sampling
from labrunner.labs.rnn_lm.trained_model import TrainedModel
from labrunner.labs.rnn_lm.training import History

from labrunner.stats import Timing


def history(ppls: list[float], rows: list[list[float]] | None = None, seconds: float = 1.0) -> History:
    rows = rows or [[math.log(p)] * 4 for p in ppls]
    return History(
        steps=[10 * (i + 1) for i in range(len(ppls))],
        seconds=[seconds * (i + 1) for i in range(len(ppls))],
        valid_ppl=ppls,
        valid_row_nll=rows,
        train_loss=[math.log(p) for p in ppls],
        epochs_done=1,
        train_seconds=seconds,
        train_tokens=1000,
    )


def test_a_measurement_is_frozen():
    m = TrainedModel(history([50.0]), [3.9] * 4, [4.0] * 4, None, None, 100, None, 1, True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.epochs = 2  # type: ignore[misc]


def test_the_trained_model_against_the_unigram_model_and_the_true_grammar():
    rows, unigram, grammar = [3.0, 3.1, 2.9, 3.05], [4.0, 4.2, 3.9, 4.1], [2.5, 2.6, 2.45, 2.55]
    m = TrainedModel(
        history([40.0, math.exp(3.0125)], [rows, rows]), rows, unigram, grammar, 12.0, 100, 2.4, 1, True
    )
    assert m.vs_unigram.below and m.gap is not None and m.gap.above
    # the share of the way from the unigram model to the grammar: log-perplexities
    expected = (math.log(m.unigram_ppl) - 3.0125) / (math.log(m.unigram_ppl) - math.log(m.optimal_valid))
    assert m.closed == pytest.approx(expected) and 0 < m.closed < 1
    plain = dataclasses.replace(m, grammar_rows=None)
    assert plain.gap is None and plain.closed is None and plain.optimal_valid is None


def window(kind: str, segments: int, saved: float, ppl: float, per_token_s: list[float], cuda: float = 0.0):
    memory = {"saved_bytes": saved} | ({"cuda_peak_bytes": cuda} if cuda else {})
    rows = [math.log(ppl) + 0.01 * i for i in range(4)]
    return Window(
        kind,
        segments * 30,
        memory,
        history([ppl], [rows]),
        Timing(tuple(per_token_s), tuple(per_token_s)),
    )


def detach(**kw) -> DetachOrNot:
    windows = {
        "truncated": window(
            "truncated", 1, 1000 + 30 * 50, 40.0, [1.0, 1.1, 1.0, 1.05, 1.0, 1.02, 0.99, 1.01, 1.0]
        ),
        "window": window(
            "window", 4, 1000 + 120 * 50, 38.0, [0.8, 0.85, 0.8, 0.82, 0.81, 0.8, 0.79, 0.83, 0.81]
        ),
    }
    args = dict(k=4, seq=30, full_k=40, length=1201, batch=20, cuda=False, limit_mb=1.0, epochs=1, repeats=9)
    return DetachOrNot(**(args | kw), windows=windows)


def test_the_memory_line_through_two_windows_predicts_full_bptt():
    assert memory_line(1000 + 30 * 50, 1000 + 120 * 50, 4, 30) == (1000, 50)
    m = detach()
    assert (m.fixed, m.per_token) == (1000, 50)
    assert m.predicted_full == 1000 + 50 * 40 * 30
    assert m.full_fits  # 61,000 bytes below 1 MiB
    assert not detach(limit_mb=0.05).full_fits
    assert m.window_saves_more and m.more_memory("window", "truncated")
    assert m.ratio_mem == pytest.approx(7000 / 2500)


def test_the_window_is_cheaper_per_token_and_slower_per_update():
    m = detach()
    assert m.per_token_ratio.faster and not m.per_token_ratio.slower
    assert m.per_update_ratio.median == pytest.approx(4 * m.per_token_ratio.median)
    assert m.per_update_ratio.slower
    assert m.rows_difference.above  # truncated's rows are higher: the window reached the lower perplexity
    v = m.values()
    assert v["window"]["us_per_token"] == pytest.approx(0.81e6)
    assert v["window"]["ms_per_update"] == pytest.approx(0.81 * 120 * 20 * 1e3)
    assert v["truncated"]["updates"] == 10 and v["window"]["tokens"] == 120


def test_on_cuda_the_memory_claims_compare_the_peak():
    m = detach(cuda=True)
    m.windows["truncated"].memory["cuda_peak_bytes"] = 9e6
    m.windows["window"].memory["cuda_peak_bytes"] = 8e6
    assert m.memory_key == "cuda_peak_bytes"
    assert not m.more_memory("window", "truncated") and m.window_saves_more


def forcing(rows: dict[int, dict[str, list[float]]]) -> TeacherForcing:
    histories = {mode: history([math.exp(sum(r) / len(r))], [r]) for mode, r in rows[0].items()}
    timing = {mode: Timing((1.0, 1.0, 1.0), (1.0, 1.0, 1.0)) for mode in rows[0]}
    return TeacherForcing(rows, histories, timing, [4.0] * 4, None, 1, 3)


def test_trainers_are_compared_over_the_seeds():
    rows = {
        s: {"teacher": [3.0 + 0.01 * s] * 4, "free": [3.98 + 0.01 * s] * 4, "scheduled": [3.5] * 4}
        for s in range(4)
    }
    m = forcing(rows)
    assert m.differences("teacher", "free") == pytest.approx([-0.98] * 4)
    assert m.differences("free", [4.0] * 4) == pytest.approx([-0.02 + 0.01 * s for s in range(4)])
    assert m.nearer.above  # free running ends nearer the unigram model than teacher forcing
    assert m.vs_unigram["scheduled"]["d"].below and m.vs_unigram["scheduled"]["counts"] == (4, 0)
    assert m.trainer("free")["share"] == pytest.approx(0.02)  # 2 % of teacher forcing's gain
    assert m.trainer("free")["share_text"] == "2.0 %" and m.every_trainer_evaluated
    assert m.seeds == [0, 1, 2, 3] and m.run_rows is rows[0]


def test_greedy_decoding_counts_its_one_distinct_sequence_once():
    per = {
        "greedy": {"logp": [-1.0], "rep": [0.9]},
        "multinomial": {"logp": [-4.0, -4.2, -3.9, -4.1], "rep": [0.1, 0.0, 0.05, 0.1]},
        "true_text": {"logp": [-4.5, -4.4, -4.6, -4.5], "rep": [0.0, 0.0, 0.05, 0.0]},
    }
    labels = {"greedy": "greedy", "multinomial": "multinomial", "true_text": "text"}
    m = Sampling(labels, per, [], 4, 60, False, None)
    assert m.methods == ["greedy", "multinomial"]
    assert m.compare("logp", "greedy", "multinomial").above
    assert m.compare("rep", "multinomial", "greedy").below
    assert m.every_sampler_scored
    bad = Sampling(
        labels, {**per, "multinomial": {"logp": [math.nan] * 4, "rep": [0.0] * 4}}, [], 4, 60, False, None
    )
    assert not bad.every_sampler_scored


def embedding(final: list[float], init: list[float], known: bool = True) -> EmbeddingDistance:
    return EmbeddingDistance(
        ("army", "taxpayer"), 32, (1.0, 0.18, 0.65, 1.35), 1000, 0.6 if known else None, 1.0 if known else None,
        init, final, None, [], 5, [], np.zeros((0, 2)), None,
    )  # fmt: skip


def test_close_means_the_whole_interval_below_the_smallest_gap():
    near = embedding([0.55, 0.6, 0.58, 0.62, 0.57], [1.0, 0.98, 1.02, 1.01, 0.99])
    assert near.closer_than_random and near.moved.below and near.closer_apart == (5, 0)
    assert near.change == pytest.approx(-0.4) and near.distance_in_range
    # closer than random, but by less than the gap the lab calls close
    slightly = embedding(
        [1.0 - SMALLEST_CLOSENESS / 2 + d for d in (-0.01, 0.0, 0.01, 0.0, 0.005)], near.init
    )
    assert slightly.vs_random.interval[1] < 0 and not slightly.closer_than_random
    one_seed = embedding([0.1], [1.0])
    assert not one_seed.closer_than_random  # one training has no interval
    unknown = embedding([], [], known=False)
    assert not unknown.known and unknown.change is None and unknown.distance_in_range


def test_distances_under_each_training_are_paired_per_seed():
    m = DistanceUnderTraining(
        ("army", "taxpayer"),
        [0, 1, 2],
        [1.0, 1.1, 0.9],
        {"teacher": [0.8, 0.9, 0.7], "free": [1.0, 1.15, 0.95], "scheduled": [0.85, 0.9, 0.75]},
        1.0,
        0.2,
        True,
    )
    assert m.change["free"] == pytest.approx([0.0, 0.05, 0.05])
    assert m.summary["teacher"]["closer"] == 3 and m.summary["free"]["apart"] == 2
    assert m.summary["teacher"]["mean"] == pytest.approx(0.8)
    assert m.diffs["free"]["counts"] == (0, 3) and m.diffs["scheduled"]["counts"] == (0, 2)
    assert m.distances_finite
