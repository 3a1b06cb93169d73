"""Q2.3: the distance between two words' embeddings, measured against its value at
initialisation and against random vectors, per seed; and the helpers Q2.5 shares
(:mod:`.distances`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from labrunner import exercise_function
from labrunner.stats import Difference, mean_se, paired, sign_counts

from . import corpus as corpora
from . import figures, text
from .forcing import train_seeds
from .model import (
    WordVectors,
    cosine_distance,
    pca_2d,
)
from .session import Lab, Trained

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


def pair_name(words: tuple[str, str]) -> str:
    """The pair's part of the metrics' names: ``army_taxpayer`` for ``("army", "taxpayer")``."""
    a, b = words
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


@dataclass(frozen=True)
class EmbeddingDistance:
    """What Q2.3 measured: the pair's distance in the run's teacher-forced model and at its
    initialisation, the same per seed, random vectors' distances, the nearest neighbours, the
    PCA of the frequent words and (with a true grammar) the neighbours' classes. The pair's
    distances are None (and the per-seed lists empty) when a word is not in the vocabulary."""

    words: tuple[str, str]
    dim: int
    #: Cosine distance between random vectors: mean, sd, 2.5 % and 97.5 % quantiles.
    random: tuple[float, float, float, float]
    random_pairs: int
    dist: float | None
    dist0: float | None
    #: Per seed: the pair's distance at initialisation and after teacher-forced training.
    init: list[float]
    final: list[float]
    #: The true grammar's class of each word of the pair (None without a grammar).
    classes: tuple[str | None, str | None] | None
    #: Rows of the neighbours' table: word, training count, its nearest neighbours.
    neighbours: list[list[Any]]
    k: int
    #: The words of the PCA figure and their coordinates.
    shown: list[str]
    xy: np.ndarray
    #: Per open-class word, 1 when its nearest neighbour shares its class, trained and
    #: initialised, and the share a random neighbour would give (None without a grammar).
    hits: tuple[list[float], list[float], float] | None

    @property
    def known(self) -> bool:
        return self.dist is not None

    @property
    def change(self) -> float | None:
        return None if self.dist is None or self.dist0 is None else self.dist - self.dist0

    @property
    def moved(self) -> Difference:
        """The change of distance over the seeds, each against its own initial distance."""
        return paired(self.final, self.init)

    @property
    def closer_apart(self) -> tuple[int, int]:
        return sign_counts([f - i for f, i in zip(self.final, self.init, strict=True)])

    @property
    def vs_random(self) -> Difference:
        return paired(self.final, [self.random[0]] * len(self.final))

    @property
    def closer_than_random(self) -> bool:
        """The whole interval of trained − random distance lies below −SMALLEST_CLOSENESS."""
        return self.vs_random.n > 1 and self.vs_random.interval[1] < -SMALLEST_CLOSENESS

    @property
    def purity(self) -> tuple[float, float, float] | None:
        if self.hits is None:
            return None
        return float(np.mean(self.hits[0])), float(np.mean(self.hits[1])), self.hits[2]

    @property
    def distance_in_range(self) -> bool:
        return self.dist is None or 0.0 <= self.dist <= 2.0


def measure_embedding_distance(
    lab: Lab, main: Trained, by_seed: dict[int, dict[str, Trained]]
) -> EmbeddingDistance:
    """The run's teacher-forced model ``main`` and every seed's teacher-forced training."""
    cfg, corpus = lab.cfg, lab.corpus
    a, b = cfg.distance_words
    words = corpus.dictionary.words
    vectors, init_vectors = WordVectors.of(main.model, words), WordVectors(main.init_embedding, words)
    known = a in corpus.dictionary and b in corpus.dictionary
    dist = dist0 = None
    init: list[float] = []
    final: list[float] = []
    if known:
        dist, dist0 = cosine_distance(vectors, a, b), cosine_distance(init_vectors, a, b)
        init, final = teacher_distances(lab, by_seed)
    counts = corpus.counts()
    probe = list(dict.fromkeys(w for w in (a, b, "company", "the", "said", "N") if w in corpus.dictionary))
    neighbours = [
        [
            w,
            int(counts[corpus.dictionary.index[w]]),
            ", ".join(f"{n} ({d:.2f})" for n, d in vectors.nearest(w, cfg.neighbours)),
        ]
        for w in probe
    ]
    frequent = [w for w in words[: cfg.pca_words] if w != corpora.UNK]
    shown = frequent + [w for w in (a, b) if w in corpus.dictionary and w not in frequent]
    xy = pca_2d(np.stack([vectors.vector(w) for w in shown]))
    classes = hits = None
    if corpus.grammar is not None:
        cls = figures.word_classes(corpus)
        classes = (cls.get(a), cls.get(b))
        hits = (neighbour_hits(vectors, corpus), neighbour_hits(init_vectors, corpus), class_chance(corpus))
    return EmbeddingDistance(
        (a, b), cfg.embedding_dim, random_distance_spread(lab), cfg.random_pairs, dist, dist0, init, final,
        classes, neighbours, cfg.neighbours, shown, xy, hits,
    )  # fmt: skip


def record_embedding_distance(ex: Any, m: EmbeddingDistance, corpus: corpora.Corpus) -> None:
    """Q2.3's metrics, claims, neighbours' table, PCA figure and check."""
    a, b = m.words
    ex.metric("distance_random_mean", m.random[0])
    ex.metric("distance_random_sd", m.random[1])
    if m.known:
        record_pair_distance(ex, m)
    ex.table(
        m.neighbours,
        columns=["word", "training count", f"{m.k} nearest by cosine distance"],
        caption="Nearest neighbours in the teacher-forced model's embedding space.",
    )
    ex.figure(
        figures.embedding_pca(m.shown, m.xy, corpus, (a, b)),
        "embedding_pca",
        caption=text.PCA_CAPTION.format(n=len(m.shown)),
    )
    if m.hits is not None and m.purity is not None:
        d = paired(m.hits[0], m.hits[1])
        trained, initialised, chance = m.purity
        ex.metric("neighbour_class_purity", trained)
        ex.metric("neighbour_class_purity_init", initialised)
        ex.claim(
            "embeddings_cluster_by_class",
            d.above,
            statement="after training, a word's nearest neighbour shares its grammatical class more often than "
            "in the initialised model",
            evidence=f"same-class nearest neighbour: {trained:.1%} trained, {initialised:.1%} initialised "
            f"(difference {d.text()}, chance {chance:.1%})",
            baseline=f"the initialised model, paired over the {d.n} open-class words; ± is the 95 % interval",
        )
    ex.check(
        "distance_in_range",
        m.distance_in_range,
        expected="[0, 2]",
        actual=m.dist if m.known else "pair not in the vocabulary",
    )


def record_pair_distance(ex: Any, m: EmbeddingDistance) -> None:
    """The pair's distance: the run's metrics, and the claims decided over the seeds."""
    a, b = m.words
    pair = pair_name(m.words)
    ex.metric(f"distance_{pair}", m.dist)
    ex.metric(f"distance_{pair}_init", m.dist0)
    ex.metric(f"distance_{pair}_change", m.change)
    # One training is one draw: the verdicts are decided over the seeds' teacher-forced
    # trainings, each against its own initial distance (paired), as Q2.5 does.
    moved, (closer, apart) = m.moved, m.closer_apart
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
    ex.claim(
        "pair_closer_than_random",
        m.closer_than_random,
        statement=f'after training, "{a}" and "{b}" are close: closer than two random vectors are on '
        f"average by more than {SMALLEST_CLOSENESS} (the smallest gap this lab calls close)",
        evidence=f"trained distance over {m.vs_random.n} seeds {mean_se(m.final)[0]:.4f}; minus the random "
        f"mean: {m.vs_random.text(3)}",
        baseline=f"random vectors of size {m.dim}: mean distance {m.random[0]:.3f} over "
        f"{m.random_pairs:,} pairs; Student's t over the seeds; the whole interval must lie below "
        f"-{SMALLEST_CLOSENESS}",
    )
    ex.metric(f"distance_{pair}_change_over_seeds", moved.mean)
    if m.classes is not None:
        ex.claim(
            "pair_same_class",
            m.classes[0] == m.classes[1],
            statement=f'the true grammar puts "{a}" and "{b}" in the same class (they are interchangeable '
            "up to their frequencies)",
            evidence=f"{a}: {m.classes[0]}, {b}: {m.classes[1]}",
            baseline="the grammar that generated the corpus (exact)",
        )


def distance_answer_values(m: EmbeddingDistance, setting: dict) -> dict[str, Any]:
    """The values the answer template (A23) is filled with."""
    a, b = m.words
    values: dict[str, Any] = dict(a=a, b=b, dim=m.dim, rand=m.random, purity=m.purity, k=m.k, setting=setting)
    values.update(dist=m.dist, dist0=m.dist0, change=m.change)
    if m.known:
        closer, apart = m.closer_apart
        values.update(
            moved=m.moved, closer=closer, apart=apart, final_mean=mean_se(m.final)[0],
            vs_random=m.vs_random, closeness=SMALLEST_CLOSENESS,
        )  # fmt: skip
    return values


@exercise_function
def q2_3_embedding_distance(lab: Lab, main: Trained) -> dict[int, dict[str, Trained]]:
    """Q2.3, decided over every seed's teacher-forced training (trained here, for Q2.4 and
    Q2.5 too); returns the trainings by seed."""
    a, b = lab.cfg.distance_words
    ex = lab.exercise(
        "Q2.3 Embedding distance", text.Q23.replace("{a}", a).replace("{b}", b), points=8
    )  # opened first: a stub below ends this exercise
    by_seed = train_seeds(lab, main)
    m = measure_embedding_distance(lab, main, by_seed)
    with ex:
        record_embedding_distance(ex, m, lab.corpus)
        # STUDENT ANSWER
        ex.answer(text.A23, **distance_answer_values(m, lab.setting))
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
