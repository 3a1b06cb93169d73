"""The tests behind the claims: Wilson intervals, exact sign and binomial tests."""

from __future__ import annotations

import math

import pytest
from labrunner.labs.adversarial.stats import (
    BEYOND_2SD,
    binomial_tail,
    mean_sd,
    rate_above,
    sign_test,
    wilson,
)


def test_wilson_interval_known_values():
    lo, hi = wilson(6, 6)
    assert lo == pytest.approx(0.6097, abs=1e-4) and hi == 1.0
    lo, hi = wilson(0, 6)
    assert lo == pytest.approx(0.0, abs=1e-12) and hi == pytest.approx(0.3903, abs=1e-4)
    lo, hi = wilson(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)


def test_rates_are_apart_only_when_their_intervals_are():
    assert rate_above(6, 6, 0, 6)
    assert not rate_above(1, 1, 0, 1)  # one pair each: anything can happen
    assert not rate_above(4, 6, 2, 6)


def test_sign_test_exact_p_values():
    t = sign_test([1, 2, 3, 4, 5, 6], [0] * 6)
    assert (t.wins, t.losses, t.ties) == (6, 0, 0) and t.p == pytest.approx(1 / 64) and t.holds
    t = sign_test([1, 1, 0, 0, 5], [0, 0, 0, 1, 4])
    assert (t.wins, t.losses, t.ties) == (3, 1, 1) and t.p == pytest.approx(5 / 16) and not t.holds
    assert sign_test([math.nan, 1.0], [0.0, 0.0]).n == 1  # undefined pairs are skipped
    assert sign_test([], []).p == 1.0 and not sign_test([], []).holds
    assert "3 of 5 pairs" in sign_test([1, 1, 0, 0, 5], [0, 0, 0, 1, 4]).text("A", "B")


def test_binomial_tail_and_the_two_sd_share():
    assert binomial_tail(0, 5, 0.3) == 1.0
    assert binomial_tail(5, 5, 0.5) == pytest.approx(1 / 32)
    p0 = BEYOND_2SD
    assert binomial_tail(2, 6, p0) == pytest.approx(1 - (1 - p0) ** 6 - 6 * p0 * (1 - p0) ** 5)
    two_sd = 0.5 * math.erfc(2 / math.sqrt(2))  # the normal tail beyond two sd
    assert abs(p0 - two_sd) < 1e-5


def test_mean_sd():
    assert mean_sd([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2)))
    assert mean_sd([4.0]) == (4.0, 0.0)
    assert all(math.isnan(v) for v in mean_sd([]))
