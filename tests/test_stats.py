"""labrunner.stats: the intervals and tests every lab decides its claims against."""

from __future__ import annotations

import math
import random

import pytest

from labrunner import stats as S


def test_wilson_interval_known_values():
    lo, hi = S.wilson(6, 6)
    assert lo == pytest.approx(0.6097, abs=1e-4) and hi == 1.0
    lo, hi = S.wilson(0, 6)
    assert lo == pytest.approx(0.0, abs=1e-12) and hi == pytest.approx(0.3903, abs=1e-4)
    lo, hi = S.wilson(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)
    assert S.wilson(0, 0) == (0.0, 1.0)
    assert S.rate_text(6, 6) == "6/6 (95 % interval 61–100 %)"


def test_rates_are_apart_only_when_their_intervals_are():
    assert S.rates_apart(6, 6, 0, 6)
    assert not S.rates_apart(1, 1, 0, 1)  # one pair each: anything can happen
    assert not S.rates_apart(4, 6, 2, 6)


def test_binomial_tail():
    assert S.binomial_tail(0, 5, 0.3) == 1.0 and S.binomial_tail(3, 0, 0.3) == 1.0
    assert S.binomial_tail(5, 5, 0.5) == pytest.approx(1 / 32)
    p0 = 0.02275
    assert S.binomial_tail(2, 6, p0) == pytest.approx(1 - (1 - p0) ** 6 - 6 * p0 * (1 - p0) ** 5)


def test_sign_test_exact_p_values_one_and_two_sided():
    t = S.sign_test([1, 2, 3, 4, 5, 6], [0] * 6)
    assert (t.wins, t.losses, t.ties) == (6, 0, 0) and t.p == pytest.approx(1 / 64) and t.holds
    assert t.p_two_sided == pytest.approx(2 / 64) and t.differs
    t = S.sign_test([1, 1, 0, 0, 5], [0, 0, 0, 1, 4])
    assert (t.wins, t.losses, t.ties) == (3, 1, 1) and t.p == pytest.approx(5 / 16) and not t.holds
    assert S.sign_test([math.nan, 1.0], [0.0, 0.0]).n == 1  # undefined pairs are skipped
    assert S.sign_test([], []).p == 1.0 and not S.sign_test([], []).holds
    assert "3 of 5 pairs" in S.sign_test([1, 1, 0, 0, 5], [0, 0, 0, 1, 4]).text("A", "B")
    # two-sided: either side, the same p
    assert S.SignTest(0, 5).p_two_sided == pytest.approx(2 / 32) == S.SignTest(5, 0).p_two_sided
    assert S.SignTest(2, 2).p_two_sided == 1.0 and S.SignTest(0, 0).p_two_sided == 1.0
    assert S.SignTest(1, 9).p_two_sided == pytest.approx(2 * 11 / 1024)
    assert not S.SignTest(0, 5).holds and S.SignTest(0, 6).differs is True


def test_sign_test_needed():
    assert S.sign_test_needed(10) == 9 and S.sign_test_needed(30) == 21
    assert S.sign_test_needed(5) is None  # even 5 of 5 (p = 0.0625) cannot decide
    assert S.sign_test_needed(5, two_sided=False) == 5


def test_paired_difference_cancels_the_shared_variation():
    rng = random.Random(0)
    shared = [rng.gauss(0, 5) for _ in range(30)]
    a = [s + 0.1 for s in shared]
    b = [s + rng.gauss(0, 0.01) for s in shared]
    d = S.paired(a, b)
    assert d.n == 30 and d.mean == pytest.approx(0.1, abs=0.01)
    assert d.above and not d.below
    assert not S.unpaired(a, b).above  # unpaired, the shared variation hides the same gap
    lo, hi = d.interval
    assert lo < d.mean < hi and hi - lo == pytest.approx(2 * d.margin)


def test_a_difference_needs_two_values_and_uses_students_t():
    assert not S.paired([1.0], [0.0]).above and not S.paired([1.0], [0.0]).below
    assert "no spread" in S.paired([1.0], [0.0]).text()
    assert S.t_critical(2) == pytest.approx(12.706) and S.t_critical(21) == pytest.approx(2.086)
    assert S.t_critical(101) == pytest.approx(1.984, abs=1e-3) and math.isinf(S.t_critical(1))
    d = S.paired([1.0, 1.5], [0.0, 0.0])  # two seeds: t(1) = 12.7 standard errors
    assert d.margin == pytest.approx(12.706 * 0.25)
    assert not d.above and S.paired([1.0, 1.5, 1.2, 1.3, 1.1], [0.0] * 5).above
    with pytest.raises(ValueError, match="paired comparison"):
        S.paired([1.0, 2.0], [1.0])


def test_mean_sd_and_se():
    assert S.mean_sd([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2)))
    assert S.mean_sd([4.0]) == (4.0, 0.0)
    assert all(math.isnan(v) for v in S.mean_sd([]))
    assert S.mean_se([1.0, 3.0]) == (2.0, pytest.approx(1.0))


def test_interleaved_alternates_rotates_and_warms_up():
    calls: list[str] = []

    def variant(name: str, seconds: float):
        def run():
            calls.append(name)
            return seconds

        return run

    result = S.interleaved({"a": variant("a", 1.0), "b": variant("b", 2.0)}, rounds=3)
    assert calls[:2] == ["a", "b"]  # the warm-up
    assert calls[2:] == ["a", "b", "b", "a", "a", "b"]  # the order rotates
    assert result["a"].samples == (1.0, 1.0, 1.0) and result["b"].median == 2.0
    assert result["b"].rounds == (2.0, 2.0, 2.0)
    with pytest.raises(ValueError, match="rounds"):
        S.interleaved({"a": variant("a", 1.0)}, rounds=0)


def test_a_round_is_the_median_of_its_calls():
    values = iter([1.0, 9.0, 1.0, 1.0, 1.0, 1.0])
    t = S.interleaved({"a": lambda: next(values)}, rounds=2, per_round=3, warmup=0)["a"]
    assert t.rounds == (1.0, 1.0) and len(t.samples) == 6


def test_time_ratio_interval_matches_the_sign_test():
    base = S.Timing((1.0,) * 30, (1.0,) * 30)
    slower = S.Timing((2.0,) * 30, (1.1,) * 21 + (0.9,) * 9)  # 21 of 30 slower: decides
    r = S.time_ratio(slower, base)
    assert r.slower and not r.faster and r.low == pytest.approx(1.1) and "30 rounds" in r.text()
    same = S.Timing((2.0,) * 30, (1.1,) * 20 + (0.9,) * 10)  # 20 of 30: the test cannot decide
    assert not S.time_ratio(same, base).slower and not S.time_ratio(same, base).faster
    faster = S.Timing((0.5,) * 10, (0.5,) * 9 + (3.0,))  # one stalled round changes nothing
    assert S.time_ratio(faster, S.Timing((1.0,) * 10, (1.0,) * 10)).faster
    few = S.time_ratio(S.Timing((2.0,) * 5, (2.0,) * 5), S.Timing((1.0,) * 5, (1.0,) * 5))
    assert few.low is None and not few.slower and "too few" in few.text()


def test_median_interval_covers_the_median_at_least_95_percent():
    rng = random.Random(1)
    hits = 0
    for _ in range(400):
        low, high = S.median_interval([rng.gauss(0, 1) for _ in range(15)])
        hits += low <= 0 <= high
    assert hits / 400 >= 0.93
    assert S.median_interval([1.0] * 5) == (None, None)


def test_timing_text():
    t = S.Timing((1.0, 1.1, 1.2, 1.0, 1.1), (1.0,))
    assert t.median == 1.1 and t.text() == "1.1 (1–1.1)"
    assert S.Timing((2.0,), (2.0,)).text(1e3) == "2e+03 (one reading)"
