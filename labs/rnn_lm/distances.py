"""Q2.5: the distance between the two words' embeddings under each training, per seed.

:func:`measure_distance_under_training` reads the distance at initialisation and after each
trainer of every seed; :class:`DistanceUnderTraining` compares them (no context needed);
:func:`record_distance_under_training` records it; :func:`q2_5_distance_under_each_training`
is the exercise."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from labrunner import exercise_function
from labrunner.stats import SignTest, mean_se, paired, sign_counts

from . import figures, text
from .embeddings import pair_distance, pair_name, random_distance_spread
from .model import WordVectors
from .session import MODE_LABELS, Lab, Trained


@dataclass(frozen=True)
class DistanceUnderTraining:
    """What Q2.5 measured: the pair's distance at initialisation and after each trainer, per
    seed (empty when a word is not in the vocabulary), and random vectors' distances."""

    words: tuple[str, str]
    seeds: list[int]
    #: Per seed, the distance at initialisation (the same for the seed's three trainers).
    init: list[float]
    #: Trainer -> per seed, the distance after training.
    final: dict[str, list[float]]
    rand_mean: float
    rand_sd: float
    known: bool

    @property
    def change(self) -> dict[str, list[float]]:
        return {m: [d - d0 for d, d0 in zip(self.final[m], self.init, strict=True)] for m in self.final}

    @property
    def summary(self) -> dict[str, dict[str, Any]]:
        """Per trainer: mean and sd of the distance over the seeds, how many seeds moved the
        pair closer or apart, and the mean change with its standard error."""
        out = {}
        for m, final in self.final.items():
            closer, apart = sign_counts(self.change[m])
            out[m] = {
                "mean": mean_se(final)[0],
                "sd": float(np.std(final, ddof=1)) if len(final) > 1 else 0.0,
                "closer": closer,
                "apart": apart,
                "change": mean_se(self.change[m]),
            }
        return out

    @property
    def diffs(self) -> dict[str, dict[str, Any]]:
        """Free running and scheduled sampling against teacher forcing, paired over the seeds."""
        out = {}
        for other in ("free", "scheduled"):
            counts = sign_counts(
                [x - y for x, y in zip(self.final[other], self.final["teacher"], strict=True)]
            )
            d = paired(self.final[other], self.final["teacher"])
            out[other] = {"d": d, "counts": counts, "sign_p": SignTest(*counts).p_two_sided}
        return out

    @property
    def distances_finite(self) -> bool:
        return all(math.isfinite(x) for xs in self.final.values() for x in xs)


def measure_distance_under_training(
    lab: Lab, by_seed: dict[int, dict[str, Trained]]
) -> DistanceUnderTraining:
    """The pair's distance in every trainer's model under every seed (the run's seed first)."""
    corpus = lab.corpus
    a, b = lab.cfg.distance_words
    known = a in corpus.dictionary and b in corpus.dictionary
    seeds = list(by_seed)
    models = by_seed[seeds[0]]
    words = corpus.dictionary.words
    init: list[float] = []
    final: dict[str, list[float]] = {m: [] for m in models}
    for s in seeds:
        for mode in models:
            tr = by_seed[s][mode]
            if not known:
                continue
            if mode == "teacher":
                init.append(pair_distance(tr.init_embedding, words, a, b))
            final[mode].append(pair_distance(WordVectors.of(tr.model, words).weight, words, a, b))
    rand_mean, rand_sd, _, _ = random_distance_spread(lab)
    return DistanceUnderTraining((a, b), seeds, init, final, rand_mean, rand_sd, known)


def record_distance_under_training(ex: Any, m: DistanceUnderTraining, pair: str) -> None:
    """Q2.5's table, figure, metrics, claims and check (``pair``: the metrics' name of the pair)."""
    a, b = m.words
    change, summary, n = m.change, m.summary, len(m.seeds)
    ex.table(
        [
            [s, round(m.init[i], 4)] + [f"{m.final[t][i]:.4f} ({change[t][i]:+.4f})" for t in m.final]
            for i, s in enumerate(m.seeds)
        ],
        columns=["seed", "initialised"] + [f"{MODE_LABELS[t]} (change)" for t in m.final],
        caption=f"Cosine distance between '{a}' and '{b}': each seed's three trainings start from the same "
        "initialised embedding, so each change is measured against its own starting point.",
    )
    ex.figure(
        figures.paired_distances(m.seeds, m.init, {MODE_LABELS[t]: m.final[t] for t in m.final}, (a, b)),
        "distance_per_seed",
        caption=text.PAIRED_CAPTION,
    )
    ex.metric(f"distance_{pair}_free_running", m.final["free"][0])
    for t, key in (("teacher", "teacher"), ("free", "free_running"), ("scheduled", "scheduled_sampling")):
        ex.metric(f"distance_mean_{key}", summary[t]["mean"])
        ex.metric(f"distance_sd_{key}", summary[t]["sd"])
    ex.metric("distance_mean_init", float(np.mean(m.init)))
    seed_baseline = (
        f"paired over {n} seeds (each against its own initial distance); ± is the 95 % interval (Student's t)"
    )
    for t in m.final:
        if t == "teacher":  # Q2.3's pair_moved_closer / pair_moved_apart: the same test
            continue
        d = paired(m.final[t], m.init)
        for name, holds, word in (
            (f"{t}_moves_pair_closer", d.below, "closer"),
            (f"{t}_moves_pair_apart", d.above, "apart"),
        ):
            ex.claim(
                name,
                holds,
                statement=f'{MODE_LABELS[t]} moves "{a}" and "{b}" {word} than they were at initialisation',
                evidence=f"change of distance {d.text(3)}; closer in {summary[t]['closer']} of {n} seeds, "
                f"apart in {summary[t]['apart']}",
                baseline=seed_baseline,
            )
    free = m.diffs["free"]  # the assignment compares teacher forcing with free running
    for name, holds, word in (
        ("free_further_than_teacher", free["d"].above, "further apart"),
        ("free_closer_than_teacher", free["d"].below, "closer"),
    ):
        ex.claim(
            name,
            holds,
            statement=f'{MODE_LABELS["free"]} puts "{a}" and "{b}" {word} than teacher forcing does',
            evidence=f"distance, {MODE_LABELS['free']} − teacher forcing: {free['d'].text(3)}; smaller in "
            f"{free['counts'][0]} of {n} seeds, larger in {free['counts'][1]}",
            baseline=seed_baseline,
        )
    ex.check("distances_finite", m.distances_finite, expected=True, actual=m.final)


def under_training_answer_values(m: DistanceUnderTraining, setting: dict) -> dict[str, Any]:
    """The values the answer template (A25) is filled with."""
    a, b = m.words
    return dict(
        a=a, b=b, n=len(m.seeds), s=m.summary, diffs=m.diffs, labels=MODE_LABELS, init=mean_se(m.init),
        rand_sd=m.rand_sd, rand_mean=m.rand_mean, setting=setting,
    )  # fmt: skip


@exercise_function
def q2_5_distance_under_each_training(lab: Lab, by_seed: dict[int, dict[str, Trained]]) -> None:
    """``by_seed``: every trainer under every seed, as Q2.4 trained them (the run's seed first)."""
    a, b = lab.cfg.distance_words
    ex = lab.exercise(
        "Q2.5 Distance under each training",
        text.Q25.replace("{a}", a).replace("{b}", b),
        points=1,
        bonus=True,
    )  # opened first: a stub below ends this exercise
    m = measure_distance_under_training(lab, by_seed)
    with ex:
        if not m.known:
            # STUDENT ANSWER
            ex.answer(text.A25_UNKNOWN, a=a, b=b)
            return
        record_distance_under_training(ex, m, pair_name(lab.cfg.distance_words))
        # STUDENT ANSWER
        ex.answer(text.A25, **under_training_answer_values(m, lab.setting))
