"""The uncertainty every lab decides its claims against: rates with Wilson intervals, paired
comparisons with the sign test or Student's t interval, and speed as interleaved ratios.

Numbers in, numbers out: no torch or numpy here, so a lab's tests call these on plain lists.
Every test is at the 5 % level (:data:`LEVEL`); an interval is a 95 % interval.

- :func:`wilson`: the interval of a rate ``k / n``; :func:`rates_apart` compares two rates.
- :class:`SignTest` / :func:`sign_test`: the exact sign test over paired values (how often
  ``a`` beat ``b``), one- or two-sided, and :func:`sign_test_needed` (how many of ``n`` pairs
  must agree before the test can decide at all).
- :class:`Difference` / :func:`paired` / :func:`unpaired`: the mean difference with its
  Student-t interval (seeds or blocks as the units).
- :func:`interleaved`: time several variants side by side in rotating order;
  :func:`time_ratio` turns two of them into a ratio with a distribution-free interval
  (the median per-round ratio), which is how a lab states a comparison of speed.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: Significance level of every test (one- or two-sided as each function says).
LEVEL = 0.05
#: The normal 97.5 % quantile (a two-sided 95 % interval).
Z95 = 1.959963984540054

# --------------------------------------------------------------------------- rates


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a rate ``k / n`` (95 % by default); (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def rate_text(k: int, n: int) -> str:
    """``k/n (95 % interval 61–100 %)``, for evidence strings."""
    lo, hi = wilson(k, n)
    return f"{k}/{n} (95 % interval {100 * lo:.0f}–{100 * hi:.0f} %)"


def rates_apart(k1: int, n1: int, k2: int, n2: int) -> bool:
    """Whether rate ``k1/n1`` is above ``k2/n2`` beyond doubt: their 95 % intervals are apart."""
    return wilson(k1, n1)[0] > wilson(k2, n2)[1]


def binomial_tail(k: int, n: int, p0: float) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, p0)``: how often chance alone gives ``k`` or more
    of ``n`` (1 when ``k`` is 0 or less, or ``n`` is 0)."""
    if n <= 0 or k <= 0:
        return 1.0
    return min(1.0, sum(math.comb(n, i) * p0**i * (1 - p0) ** (n - i) for i in range(k, n + 1)))


# --------------------------------------------------------------------------- sign test


@dataclass(frozen=True)
class SignTest:
    """A paired comparison: in ``wins`` pairs A was above B, in ``losses`` below, ``ties`` equal.

    With A and B alike every untied pair is a fair coin: ``p`` is the exact one-sided
    p-value of at least ``wins`` wins, ``p_two_sided`` that of a split at least this uneven
    on either side.
    """

    wins: int
    losses: int
    ties: int = 0

    @property
    def n(self) -> int:
        """All pairs, ties included."""
        return self.wins + self.losses + self.ties

    @property
    def p(self) -> float:
        """One-sided p-value: A above B."""
        return binomial_tail(self.wins, self.wins + self.losses, 0.5)

    @property
    def p_two_sided(self) -> float:
        """Two-sided p-value: A and B differ either way."""
        untied = self.wins + self.losses
        if untied == 0:
            return 1.0
        return min(1.0, 2 * binomial_tail(max(self.wins, self.losses), untied, 0.5))

    @property
    def holds(self) -> bool:
        """A is above B (one-sided, at :data:`LEVEL`)."""
        return self.p < LEVEL

    @property
    def differs(self) -> bool:
        """A and B differ in either direction (two-sided, at :data:`LEVEL`)."""
        return self.p_two_sided < LEVEL

    def text(self, a: str, b: str, unit: str = "pairs") -> str:
        """``a in w of n pairs, b in l (sign test p = ...)`` (the one-sided p-value)."""
        tie = f", {self.ties} tied" if self.ties else ""
        return (
            f"{a} in {self.wins} of {self.n} {unit}, {b} in {self.losses}{tie} (sign test p = {self.p:.3g})"
        )


def sign_test(a: Sequence[float], b: Sequence[float]) -> SignTest:
    """The sign test that ``a`` is above ``b`` pair by pair (pairs with a NaN are skipped)."""
    wins = losses = ties = 0
    for x, y in zip(a, b, strict=True):
        if math.isnan(x) or math.isnan(y):
            continue
        if x > y:
            wins += 1
        elif x < y:
            losses += 1
        else:
            ties += 1
    return SignTest(wins, losses, ties)


def sign_counts(values: Sequence[float]) -> tuple[int, int]:
    """How many values are negative, and how many positive (for :class:`SignTest` against 0)."""
    return sum(v < 0 for v in values), sum(v > 0 for v in values)


def sign_test_needed(n: int, two_sided: bool = True) -> int | None:
    """The fewest of ``n`` untied pairs that must fall on one side for the sign test to
    decide at :data:`LEVEL` (9 of 10 two-sided); None when no split of ``n`` can (n < 6)."""
    for k in range(n // 2 + 1, n + 1):
        test = SignTest(k, n - k)
        if (test.p_two_sided if two_sided else test.p) < LEVEL:
            return k
    return None


# --------------------------------------------------------------------------- means


def t_critical(n: int) -> float:
    """The factor on the standard error of a mean over ``n`` values for a two-sided 95 %
    interval: Student's t quantile with ``n - 1`` degrees of freedom (inf below two values)."""
    if n < 2:
        return math.inf
    return _t975(n - 1)


#: Student's t 97.5 % quantiles for 1..30 degrees of freedom.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)
_T975 += (2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086)
_T975 += (2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def _t975(df: int) -> float:
    if df <= len(_T975):
        return _T975[df - 1]
    z = Z95  # Cornish-Fisher expansion: within 1e-4 beyond 30 degrees of freedom
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (NaN, NaN for no values; sd 0 for one)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = math.fsum(values) / n
    if n < 2:
        return mean, 0.0
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for a single value)."""
    mean, sd = mean_sd(values)
    return mean, sd / math.sqrt(len(values)) if len(values) > 1 else 0.0


@dataclass(frozen=True)
class Difference:
    """The mean of ``a - b`` with its standard error over ``n`` units (seeds or blocks)."""

    mean: float
    se: float
    n: int

    @property
    def margin(self) -> float:
        """Half the width of the 95 % interval of the mean (Student's t)."""
        return t_critical(self.n) * self.se

    @property
    def interval(self) -> tuple[float, float]:
        """The 95 % interval of the mean difference."""
        return self.mean - self.margin, self.mean + self.margin

    @property
    def below(self) -> bool:
        """``a`` is lower than ``b``: the 95 % interval of the difference lies below 0."""
        return self.n > 1 and self.mean + self.margin < 0

    @property
    def above(self) -> bool:
        """``a`` is higher than ``b``: the 95 % interval of the difference lies above 0."""
        return self.n > 1 and self.mean - self.margin > 0

    def text(self, digits: int = 3) -> str:
        """``-0.123 ± 0.045`` (the ± is the 95 % interval), or the value alone for one unit."""
        if self.n < 2:
            return f"{self.mean:.{digits}g} (one value, no spread)"
        return f"{self.mean:.{digits}g} ± {self.margin:.2g}"


def paired(a: Sequence[float], b: Sequence[float]) -> Difference:
    """``a - b`` unit by unit (the same seed, the same validation rows): the shared part of
    the variation cancels."""
    if len(a) != len(b):
        raise ValueError(f"paired comparison of {len(a)} against {len(b)} values")
    d = [float(x) - float(y) for x, y in zip(a, b, strict=True)]
    if not d:
        return Difference(math.nan, math.inf, 0)
    mean, sd = mean_sd(d)
    return Difference(mean, sd / math.sqrt(len(d)) if len(d) > 1 else math.inf, len(d))


def unpaired(a: Sequence[float], b: Sequence[float]) -> Difference:
    """mean(a) - mean(b), with the standard errors of the two means combined."""

    def se(x: Sequence[float]) -> float:
        return mean_sd(x)[1] / math.sqrt(len(x)) if len(x) > 1 else math.inf

    return Difference(mean_sd(a)[0] - mean_sd(b)[0], math.hypot(se(a), se(b)), min(len(a), len(b)))


# --------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class Timing:
    """The measured cost of one variant: every sample, and each interleaved round's median
    (the rounds of two variants are paired: they ran under the same load)."""

    samples: tuple[float, ...]
    rounds: tuple[float, ...]

    @property
    def median(self) -> float:
        """The median of all samples."""
        return statistics.median(self.samples)

    @property
    def quartiles(self) -> tuple[float, float]:
        """Lower and upper quartile of the samples."""
        if len(self.samples) < 2:
            return self.samples[0], self.samples[0]
        q = statistics.quantiles(self.samples, n=4, method="inclusive")
        return q[0], q[2]

    def text(self, scale: float = 1.0) -> str:
        """``12.3 (11.9–12.8)``: the median and the interquartile range, times ``scale``."""
        if len(self.samples) == 1:
            return f"{self.median * scale:.3g} (one reading)"
        lo, hi = self.quartiles
        return f"{self.median * scale:.3g} ({lo * scale:.3g}–{hi * scale:.3g})"


@dataclass(frozen=True)
class Ratio:
    """``a``'s time over ``b``'s: the median of the per-round ratios with its distribution-free
    95 % interval (order statistics of the rounds; None when too few rounds to have one).

    The interval excludes 1 exactly when the two-sided sign test over the rounds decides, so
    ``slower``/``faster`` are that test and the interval says by how much.
    """

    median: float
    low: float | None
    high: float | None
    n: int

    @property
    def slower(self) -> bool:
        """``a`` is slower: the whole interval lies above 1."""
        return self.low is not None and self.low > 1

    @property
    def faster(self) -> bool:
        """``a`` is faster: the whole interval lies below 1."""
        return self.high is not None and self.high < 1

    def times(self, factor: float) -> Ratio:
        """The ratio of ``factor`` times as much work on ``a``'s side (per update rather than per token)."""
        low = None if self.low is None else self.low * factor
        high = None if self.high is None else self.high * factor
        return Ratio(self.median * factor, low, high, self.n)

    def text(self) -> str:
        """``2.31× (95 % interval 2.12–2.50×, 30 rounds)``."""
        if self.low is None or self.high is None:
            return f"{self.median:.3g}× (median of {self.n} rounds: too few for an interval)"
        return f"{self.median:.3g}× (95 % interval {self.low:.3g}–{self.high:.3g}×, {self.n} rounds)"


def median_interval(values: Sequence[float]) -> tuple[float | None, float | None]:
    """The distribution-free 95 % interval of the median: the order statistics ``x_(j)`` and
    ``x_(n+1-j)`` with the largest ``j`` whose coverage is at least 95 % ((None, None) for
    fewer than six values)."""
    x = sorted(values)
    n = len(x)
    best = None
    for j in range(1, n // 2 + 1):
        # P(x_(j) <= median <= x_(n+1-j)) = 1 - 2 P(Bin(n, 1/2) <= j - 1)
        if 1 - 2 * (1 - binomial_tail(j, n, 0.5)) >= 1 - LEVEL:
            best = j
    if best is None:
        return None, None
    return x[best - 1], x[n - best]


def time_ratio(a: Timing, b: Timing) -> Ratio:
    """``a``'s time over ``b``'s, round by round (paired: the same load)."""
    ratios = [x / y for x, y in zip(a.rounds, b.rounds, strict=True)]
    low, high = median_interval(ratios)
    return Ratio(statistics.median(ratios), low, high, len(ratios))


def interleaved(
    variants: dict[str, Callable[[], float]],
    rounds: int,
    per_round: int = 1,
    warmup: int = 1,
    tick: Callable[[], None] | None = None,
) -> dict[str, Timing]:
    """Measure each variant ``rounds * per_round`` times side by side.

    Each variant is a callable returning one reading (seconds, or seconds per token). After
    ``warmup`` untimed calls of each, the variants are called in alternation, the order
    rotating from one pass to the next (A B C, B C A, ...), so that a burst of load on a
    shared machine hits all of them alike; each round's median per variant is that round's
    paired value. ``tick`` is called after every reading (a progress bar).
    """
    if rounds < 1 or per_round < 1:
        raise ValueError(f"rounds and per_round must be at least 1, got {rounds} and {per_round}")
    names = list(variants)
    for name in names:
        for _ in range(warmup):  # kernel selection, allocator growth, caches
            variants[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    medians: dict[str, list[float]] = {name: [] for name in names}
    passes = 0
    for _ in range(rounds):
        readings: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(per_round):
            shift = passes % len(names)
            passes += 1
            for name in names[shift:] + names[:shift]:
                readings[name].append(float(variants[name]()))
                if tick:
                    tick()
        for name in names:
            samples[name] += readings[name]
            medians[name].append(statistics.median(readings[name]))
    return {name: Timing(tuple(samples[name]), tuple(medians[name])) for name in names}
