"""The uncertainty every conclusion of the lab is decided against: paired and unpaired
differences with their standard errors, interleaved repeated timings with their spread,
and the distances between random vectors.

No torch here: numbers in, numbers out, each function testable on its own.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

#: Two-sided 97.5 % quantiles of Student's t for 1..30 degrees of freedom: a mean difference
#: over n blocks counts as real when it exceeds t(n - 1) standard errors (a 95 % interval
#: that excludes 0); beyond 30 degrees of freedom, 2.
T_975 = (12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23, 2.20, 2.18, 2.16, 2.14, 2.13)
T_975 += (2.12, 2.11, 2.10, 2.09, 2.09, 2.08, 2.07, 2.07, 2.06, 2.06, 2.06, 2.05, 2.05, 2.05, 2.04)


def t_critical(n: int) -> float:
    """The factor on the standard error of a mean over ``n`` values for a 95 % interval."""
    if n < 2:
        return math.inf
    return T_975[n - 2] if n - 1 <= len(T_975) else 2.0


@dataclass(frozen=True)
class Difference:
    """The mean of ``a - b`` with its standard error over ``n`` blocks (or seeds)."""

    mean: float
    se: float
    n: int

    @property
    def margin(self) -> float:
        """Half the width of the 95 % interval of the mean."""
        return t_critical(self.n) * self.se

    @property
    def below(self) -> bool:
        """``a`` is lower than ``b``: the 95 % interval of the difference lies below 0."""
        return self.n > 1 and self.mean + self.margin < 0

    @property
    def above(self) -> bool:
        """``a`` is higher than ``b``: the 95 % interval of the difference lies above 0."""
        return self.n > 1 and self.mean - self.margin > 0

    def text(self, digits: int = 3) -> str:
        """``-0.123 ± 0.045`` (the ± is the 95 % interval), or the value alone for one block."""
        if self.n < 2:
            return f"{self.mean:.{digits}g} (one value, no spread)"
        return f"{self.mean:.{digits}g} ± {self.margin:.2g}"


def paired(a: Sequence[float], b: Sequence[float]) -> Difference:
    """``a - b`` block by block (the same validation rows, the same seed): the shared part
    of the variation cancels."""
    if len(a) != len(b):
        raise ValueError(f"paired comparison of {len(a)} against {len(b)} values")
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else float("inf")
    return Difference(float(d.mean()) if len(d) else float("nan"), se, len(d))


def unpaired(a: Sequence[float], b: Sequence[float]) -> Difference:
    """mean(a) - mean(b), with the standard errors of the two means combined."""

    def se(x: np.ndarray) -> float:
        return float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("inf")

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = min(len(x), len(y))
    return Difference(float(x.mean() - y.mean()), math.hypot(se(x), se(y)), n)


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for a single value)."""
    x = np.asarray(values, dtype=float)
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else 0.0


def sign_counts(values: Sequence[float]) -> tuple[int, int]:
    """How many values are negative, and how many positive."""
    return sum(v < 0 for v in values), sum(v > 0 for v in values)


def sign_test(negative: int, positive: int) -> float:
    """Two-sided p-value of the sign test: the chance that, with no effect, at least this
    many of the ``negative + positive`` values fall on the more common side."""
    n, k = negative + positive, max(negative, positive)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k, n + 1)) / 2**n
    return min(1.0, 2 * tail)


# --------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class Timing:
    """Seconds per token of one variant, one value per repeat."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def quartiles(self) -> tuple[float, float]:
        """Lower and upper quartile (the spread that a gap must exceed)."""
        if len(self.samples) < 2:
            return self.samples[0], self.samples[0]
        q = statistics.quantiles(self.samples, n=4, method="inclusive")
        return q[0], q[2]

    def text(self, scale: float = 1e6) -> str:
        """``12.3 (11.9–12.8)``: the median and the interquartile range, times ``scale``."""
        if len(self.samples) == 1:
            return f"{self.median * scale:.3g} (one run)"
        lo, hi = self.quartiles
        return f"{self.median * scale:.3g} ({lo * scale:.3g}–{hi * scale:.3g})"


def clearly_faster(a: Timing, b: Timing) -> bool:
    """``a`` is faster than ``b`` by more than the spread: its upper quartile lies below
    ``b``'s lower quartile."""
    return a.quartiles[1] < b.quartiles[0]


def interleaved_timing(
    variants: dict[str, Callable[[], tuple[float, int]]],
    repeats: int,
    tick: Callable[[], None] | None = None,
) -> dict[str, Timing]:
    """Time each variant ``repeats`` times, in alternation, after one untimed warm-up round.

    Each variant is a callable returning (seconds, tokens) of one run. Alternating the
    variants spreads a busy machine's slow moments over all of them, so the medians stay
    comparable; one stall can no longer decide a comparison.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    names = list(variants)
    for name in names:  # warm-up: kernel selection, allocator growth, caches
        variants[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            seconds, tokens = variants[name]()
            samples[name].append(seconds / tokens)
            if tick:
                tick()
    return {name: Timing(tuple(s)) for name, s in samples.items()}


# --------------------------------------------------------------------------- random vectors


def random_cosine_distances(dim: int, n_pairs: int, rng: np.random.Generator) -> np.ndarray:
    """Cosine distances between ``n_pairs`` pairs of independent Gaussian vectors of size
    ``dim`` (the distribution of ``nn.Embedding``'s initial rows): mean 1, spread about
    1/sqrt(dim)."""
    a = rng.standard_normal((n_pairs, dim))
    b = rng.standard_normal((n_pairs, dim))
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return 1.0 - cos
