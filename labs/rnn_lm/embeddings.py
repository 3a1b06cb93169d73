"""Q2.3 and Q2.5: the distance between two words' embeddings, measured against its value at
initialisation and against random vectors, per training and per seed."""

from __future__ import annotations

import math
import re

import numpy as np

from labrunner import exercise_function
from labrunner.stats import SignTest, mean_se, paired, sign_counts

from . import corpus as corpora
from . import figures, text
from .forcing import train_seeds
from .model import (
    WordVectors,
    cosine_distance,
    pca_2d,
)
from .session import MODE_LABELS, Lab, Trained

# --------------------------------------------------------------------------- Q2.3


def random_cosine_distances(dim: int, n_pairs: int, rng: np.random.Generator) -> np.ndarray:
    """Cosine distances between ``n_pairs`` pairs of independent Gaussian vectors of size
    ``dim`` (the distribution of ``nn.Embedding``'s initial rows): mean 1, spread about
    1/sqrt(dim)."""
    a = rng.standard_normal((n_pairs, dim))
    b = rng.standard_normal((n_pairs, dim))
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return 1.0 - cos


def metric_word(word: str) -> str:
    return re.sub(r"\W+", "_", word.lower()).strip("_") or "word"


#: How much closer than two random vectors (in cosine distance, whose mean for random vectors
#: is 1) two words must end up for this lab to call them close: a quarter of the random
#: distance. A smaller gap is within what the seeds' trainings spread over (about ±0.1 over
#: eight seeds), so a verdict on it would change with the seed.
SMALLEST_CLOSENESS = 0.25


def pair_name(cfg) -> str:
    a, b = cfg.distance_words
    return f"{metric_word(a)}_{metric_word(b)}"


def random_distance_spread(lab: Lab) -> tuple[float, float, float, float]:
    """Mean, sd, 2.5 % and 97.5 % quantiles of the cosine distance between random vectors of
    the embedding's size."""
    d = random_cosine_distances(
        lab.cfg.embedding_dim, lab.cfg.random_pairs, np.random.default_rng([lab.ctx.seed, 23])
    )
    return float(d.mean()), float(d.std(ddof=1)), float(np.quantile(d, 0.025)), float(np.quantile(d, 0.975))


def pair_distance(weight: np.ndarray, words: list[str], a: str, b: str) -> float:
    return cosine_distance(WordVectors(weight, words), a, b)


def teacher_distances(lab: Lab, by_seed: dict[int, dict[str, Trained]]) -> tuple[list[float], list[float]]:
    """Per seed, the pair's distance at initialisation and after teacher-forced training."""
    words = lab.corpus.dictionary.words
    a, b = lab.cfg.distance_words
    init = [pair_distance(by_seed[s]["teacher"].init_embedding, words, a, b) for s in by_seed]
    final = [
        pair_distance(WordVectors.of(by_seed[s]["teacher"].model, words).weight, words, a, b) for s in by_seed
    ]
    return init, final


@exercise_function
def q2_3_embedding_distance(lab: Lab, main: Trained) -> dict[int, dict[str, Trained]]:
    """Q2.3, decided over every seed's teacher-forced training (trained here, for Q2.4 and
    Q2.5 too); returns the trainings by seed."""
    cfg, corpus = lab.cfg, lab.corpus
    a, b = cfg.distance_words
    ex = lab.exercise(
        "Q2.3 Embedding distance", text.Q23.replace("{a}", a).replace("{b}", b), points=8
    )  # opened first: a stub below ends this exercise
    by_seed = train_seeds(lab, main)
    words = corpus.dictionary.words
    vectors = WordVectors.of(main.model, words)
    init_vectors = WordVectors(main.init_embedding, words)
    rand_mean, rand_sd, rand_lo, rand_hi = random_distance_spread(lab)
    known = a in corpus.dictionary and b in corpus.dictionary
    with ex:
        ex.metric("distance_random_mean", rand_mean)
        ex.metric("distance_random_sd", rand_sd)
        values: dict = dict(a=a, b=b, dim=cfg.embedding_dim, rand=(rand_mean, rand_sd, rand_lo, rand_hi))
        if known:
            dist, dist0 = cosine_distance(vectors, a, b), cosine_distance(init_vectors, a, b)
            change = dist - dist0
            ex.metric(f"distance_{pair_name(cfg)}", dist)
            ex.metric(f"distance_{pair_name(cfg)}_init", dist0)
            ex.metric(f"distance_{pair_name(cfg)}_change", change)
            # One training is one draw: the verdicts are decided over the seeds' teacher-forced
            # trainings, each against its own initial distance (paired), as Q2.5 does.
            init, final = teacher_distances(lab, by_seed)
            moved = paired(final, init)
            closer, apart = sign_counts([f - i for f, i in zip(final, init, strict=True)])
            ev = f"change of distance over {moved.n} seeds {moved.text(3)}; closer in {closer}, apart in {apart}"
            seeds = f"paired over {moved.n} seeds, each training against its own initial distance; ± is the 95 % interval (Student's t)"
            for name, holds, word in (
                ("pair_moved_closer", moved.below, "closer"),
                ("pair_moved_apart", moved.above, "apart"),
            ):
                ex.claim(
                    name,
                    holds,
                    statement=f'teacher-forced training moves "{a}" and "{b}" {word} than they were at initialisation',
                    evidence=ev,
                    baseline=seeds,
                )
            vs_random = paired(final, [rand_mean] * len(final))
            ex.claim(
                "pair_closer_than_random",
                vs_random.n > 1 and vs_random.interval[1] < -SMALLEST_CLOSENESS,
                statement=f'after training, "{a}" and "{b}" are close: closer than two random vectors are on '
                f"average by more than {SMALLEST_CLOSENESS} (the smallest gap this lab calls close)",
                evidence=f"trained distance over {vs_random.n} seeds {mean_se(final)[0]:.4f}; minus the random "
                f"mean: {vs_random.text(3)}",
                baseline=f"random vectors of size {cfg.embedding_dim}: mean distance {rand_mean:.3f} over "
                f"{cfg.random_pairs:,} pairs; Student's t over the seeds; the whole interval must lie below "
                f"-{SMALLEST_CLOSENESS}",
            )
            ex.metric(f"distance_{pair_name(cfg)}_change_over_seeds", moved.mean)
            values.update(
                dist=dist, dist0=dist0, change=change, moved=moved, closer=closer, apart=apart,
                final_mean=mean_se(final)[0], vs_random=vs_random, closeness=SMALLEST_CLOSENESS,
            )  # fmt: skip
            if corpus.grammar is not None:
                cls = figures.word_classes(corpus)
                ex.claim(
                    "pair_same_class",
                    cls.get(a) == cls.get(b),
                    statement=f'the true grammar puts "{a}" and "{b}" in the same class (they are interchangeable '
                    "up to their frequencies)",
                    evidence=f"{a}: {cls.get(a)}, {b}: {cls.get(b)}",
                    baseline="the grammar that generated the corpus (exact)",
                )
        else:
            values.update(dist=None, dist0=None, change=None)
        counts = corpus.counts()
        probe = [w for w in (a, b, "company", "the", "said", "N") if w in corpus.dictionary]
        probe = list(dict.fromkeys(probe))
        ex.table(
            [
                [
                    w,
                    int(counts[corpus.dictionary.index[w]]),
                    ", ".join(f"{n} ({d:.2f})" for n, d in vectors.nearest(w, cfg.neighbours)),
                ]
                for w in probe
            ],
            columns=["word", "training count", f"{cfg.neighbours} nearest by cosine distance"],
            caption="Nearest neighbours in the teacher-forced model's embedding space.",
        )
        frequent = [w for w in words[: cfg.pca_words] if w != corpora.UNK]
        shown = frequent + [w for w in (a, b) if w in corpus.dictionary and w not in frequent]
        xy = pca_2d(np.stack([vectors.vector(w) for w in shown]))
        ex.figure(
            figures.embedding_pca(shown, xy, corpus, (a, b)),
            "embedding_pca",
            caption=text.PCA_CAPTION.format(n=len(shown)),
        )
        purity = None
        if corpus.grammar is not None:
            hits, hits0, chance = (
                neighbour_hits(vectors, corpus),
                neighbour_hits(init_vectors, corpus),
                class_chance(corpus),
            )
            d = paired(hits, hits0)
            purity = (float(np.mean(hits)), float(np.mean(hits0)), chance)
            ex.metric("neighbour_class_purity", purity[0])
            ex.metric("neighbour_class_purity_init", purity[1])
            ex.claim(
                "embeddings_cluster_by_class",
                d.above,
                statement="after training, a word's nearest neighbour shares its grammatical class more often than "
                "in the initialised model",
                evidence=f"same-class nearest neighbour: {purity[0]:.1%} trained, {purity[1]:.1%} initialised "
                f"(difference {d.text()}, chance {chance:.1%})",
                baseline=f"the initialised model, paired over the {d.n} open-class words; ± is the 95 % interval",
            )
        ex.check(
            "distance_in_range",
            not known or 0.0 <= values["dist"] <= 2.0,
            expected="[0, 2]",
            actual=values["dist"] if known else "pair not in the vocabulary",
        )
        # STUDENT ANSWER
        ex.answer(text.A23, purity=purity, k=cfg.neighbours, setting=lab.setting, **values)
    return by_seed


OPEN_CLASSES = ("NOUN", "VERB", "ADJ", "ADV")


def neighbour_hits(vectors: WordVectors, corpus: corpora.Corpus) -> list[float]:
    """1 for each open-class word whose nearest neighbour has the same class, else 0."""
    cls = figures.word_classes(corpus)
    words = [w for w in corpus.dictionary.words if cls.get(w) in OPEN_CLASSES]
    return [float(cls.get(vectors.nearest(w, 1)[0][0]) == cls[w]) for w in words]


def class_chance(corpus: corpora.Corpus) -> float:
    """The share of same-class neighbours a random neighbour would give."""
    cls = figures.word_classes(corpus)
    words = [w for w in corpus.dictionary.words if cls.get(w) in OPEN_CLASSES]
    vocab = len(corpus.dictionary)
    share = {c: sum(cls.get(x) == c for x in corpus.dictionary.words) / vocab for c in OPEN_CLASSES}
    return sum(share[cls[w]] for w in words) / max(len(words), 1)


# --------------------------------------------------------------------------- Q2.5


@exercise_function
def q2_5_distance_under_each_training(lab: Lab, by_seed: dict[int, dict[str, Trained]]) -> None:
    """``by_seed``: every trainer under every seed, as Q2.4 trained them (the run's seed first)."""
    cfg, corpus = lab.cfg, lab.corpus
    a, b = cfg.distance_words
    ex = lab.exercise(
        "Q2.5 Distance under each training",
        text.Q25.replace("{a}", a).replace("{b}", b),
        points=1,
        bonus=True,
    )  # opened first: a stub below ends this exercise
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
    with ex:
        if not known:
            # STUDENT ANSWER
            ex.answer(text.A25_UNKNOWN, a=a, b=b)
            return
        change = {m: [d - d0 for d, d0 in zip(final[m], init, strict=True)] for m in models}
        ex.table(
            [
                [s, round(init[i], 4)] + [f"{final[m][i]:.4f} ({change[m][i]:+.4f})" for m in models]
                for i, s in enumerate(seeds)
            ],
            columns=["seed", "initialised"] + [f"{MODE_LABELS[m]} (change)" for m in models],
            caption=f"Cosine distance between '{a}' and '{b}': each seed's three trainings start from the same "
            "initialised embedding, so each change is measured against its own starting point.",
        )
        ex.figure(
            figures.paired_distances(seeds, init, {MODE_LABELS[m]: final[m] for m in models}, (a, b)),
            "distance_per_seed",
            caption=text.PAIRED_CAPTION,
        )
        summary = {}
        for m in models:
            mean, _ = mean_se(final[m])
            sd = float(np.std(final[m], ddof=1)) if len(final[m]) > 1 else 0.0
            closer, apart = sign_counts(change[m])
            summary[m] = {
                "mean": mean,
                "sd": sd,
                "closer": closer,
                "apart": apart,
                "change": mean_se(change[m]),
            }
        ex.metric(f"distance_{pair_name(cfg)}_free_running", final["free"][0])
        for m, key in (("teacher", "teacher"), ("free", "free_running"), ("scheduled", "scheduled_sampling")):
            ex.metric(f"distance_mean_{key}", summary[m]["mean"])
            ex.metric(f"distance_sd_{key}", summary[m]["sd"])
        ex.metric("distance_mean_init", float(np.mean(init)))
        seed_baseline = f"paired over {len(seeds)} seeds (each against its own initial distance); ± is the 95 % interval (Student's t)"
        for m in models:
            if m == "teacher":  # Q2.3's pair_moved_closer / pair_moved_apart: the same test
                continue
            d = paired(final[m], init)
            for name, holds, word in (
                (f"{m}_moves_pair_closer", d.below, "closer"),
                (f"{m}_moves_pair_apart", d.above, "apart"),
            ):
                ex.claim(
                    name,
                    holds,
                    statement=f'{MODE_LABELS[m]} moves "{a}" and "{b}" {word} than they were at initialisation',
                    evidence=f"change of distance {d.text(3)}; closer in {summary[m]['closer']} of {len(seeds)} seeds, "
                    f"apart in {summary[m]['apart']}",
                    baseline=seed_baseline,
                )
        diffs = {}
        for other in ("free", "scheduled"):
            d = paired(final[other], final["teacher"])
            diffs[other] = {
                "d": d,
                "counts": sign_counts([x - y for x, y in zip(final[other], final["teacher"], strict=True)]),
            }
            diffs[other]["sign_p"] = SignTest(*diffs[other]["counts"]).p_two_sided
            if other != "free":  # the assignment compares teacher forcing with free running
                continue
            for name, holds, word in (
                (f"{other}_further_than_teacher", d.above, "further apart"),
                (f"{other}_closer_than_teacher", d.below, "closer"),
            ):
                ex.claim(
                    name,
                    holds,
                    statement=f'{MODE_LABELS[other]} puts "{a}" and "{b}" {word} than teacher forcing does',
                    evidence=f"distance, {MODE_LABELS[other]} − teacher forcing: {d.text(3)}; smaller in "
                    f"{diffs[other]['counts'][0]} of {len(seeds)} seeds, larger in {diffs[other]['counts'][1]}",
                    baseline=seed_baseline,
                )
        ex.check(
            "distances_finite",
            all(math.isfinite(x) for xs in final.values() for x in xs),
            expected=True,
            actual=final,
        )
        # STUDENT ANSWER
        ex.answer(
            text.A25,
            a=a,
            b=b,
            n=len(seeds),
            s=summary,
            diffs=diffs,
            labels=MODE_LABELS,
            init=mean_se(init),
            rand_sd=rand_sd,
            rand_mean=rand_mean,
            setting=lab.setting,
        )
