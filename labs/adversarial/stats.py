"""The uncertainty behind each claim: intervals for success rates, and sign tests for
paired comparisons on the same (image, target) pairs.

With the assignment's six pairs, nothing is decided by a bare cut-off: a rate is compared
with its baseline through 95 % Wilson intervals, and "A is smaller than B" through an
exact one-sided sign test over the pairs where the two differ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: Significance level of every test in this lab (one-sided).
LEVEL = 0.05
Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a rate ``k / n`` (95 % by default); (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def rate_text(k: int, n: int) -> str:
    """``k/n`` with its 95 % interval, for evidence strings."""
    lo, hi = wilson(k, n)
    return f"{k}/{n} (95 % interval {100 * lo:.0f}–{100 * hi:.0f} %)"


def rate_above(k1: int, n1: int, k2: int, n2: int) -> bool:
    """Whether rate ``k1/n1`` is above ``k2/n2`` beyond doubt: their 95 % intervals are apart."""
    return wilson(k1, n1)[0] > wilson(k2, n2)[1]


def binomial_tail(k: int, n: int, p0: float) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, p0)``: how often chance alone gives ``k`` or more
    of ``n`` (1 when n is 0)."""
    if n <= 0 or k <= 0:
        return 1.0
    return sum(math.comb(n, i) * p0**i * (1 - p0) ** (n - i) for i in range(k, n + 1))


#: The share of a normal spread beyond two standard deviations on one side.
BEYOND_2SD = 0.02275


@dataclass(frozen=True)
class SignTest:
    """A paired comparison: in ``wins`` pairs A beat B, in ``losses`` B beat A, ``ties`` equal.

    ``p`` is the exact one-sided p-value of at least ``wins`` wins among the untied pairs if
    A and B were alike (each pair a fair coin); ``holds`` when ``p`` is below :data:`LEVEL`.
    """

    wins: int
    losses: int
    ties: int

    @property
    def n(self) -> int:
        return self.wins + self.losses + self.ties

    @property
    def p(self) -> float:
        return binomial_tail(self.wins, self.wins + self.losses, 0.5)

    @property
    def holds(self) -> bool:
        return self.p < LEVEL

    def text(self, a: str, b: str) -> str:
        """``a`` beat ``b`` in w of n pairs (l the other way), with the p-value."""
        tie = f", {self.ties} tied" if self.ties else ""
        return f"{a} in {self.wins} of {self.n} pairs, {b} in {self.losses}{tie} (sign test p = {self.p:.3g})"


def sign_test(a: Sequence[float], b: Sequence[float]) -> SignTest:
    """Paired test that ``a`` is larger than ``b`` pair by pair (NaN pairs are skipped)."""
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


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for fewer than two values)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
