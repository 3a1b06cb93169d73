"""The measurements behind the lab's claims, each a function that measures (returning a
frozen dataclass) and one that records its claims with their evidence and baseline: FGSM's
step against its linearisation and random steps, what a larger L1 penalty does; and which
method's perturbation is smallest pair by pair."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from labrunner.stats import LEVEL, SignTest, binomial_tail, sign_test

from .attacks import Linearisation, fgsm_linearisation, median
from .records import MethodRun

if TYPE_CHECKING:
    from .methods import PlannedAttack


#: The share of a normal spread beyond two standard deviations on one side.
BEYOND_2SD = 0.02275


def fgsm_linearisation_all(cfg: Any, net, plan: list[PlannedAttack], device: Any, seed: int) -> Linearisation:
    """:func:`fgsm_linearisation` for every planned image, concatenated in plan order; the
    random steps are drawn from a generator seeded with ``seed + 3``."""
    gen = torch.Generator().manual_seed(seed + 3)
    parts = [
        fgsm_linearisation(
            net,
            item.image.pixels.to(device),
            item.targets.to(device),
            item.clean,
            eps=cfg.fgsm_eps / 255,
            draws=cfg.random_draws,
            generator=gen,
        )
        for item in plan
    ]
    fields = Linearisation.__dataclass_fields__
    return Linearisation(**{f: torch.cat([getattr(p, f) for p in parts]) for f in fields})


@dataclass(frozen=True)
class FGSMStep:
    """What FGSM's step did to the margins over ``n`` pairs (medians, in logits): the gap to
    the target, the predicted and the real rise, random sign steps of the same size (``draws``
    per pair), the same for the clean class; in how many pairs the step beat the random steps'
    spread (``towards``, ``away``) and how likely chance gives as many; the sign test of the
    prediction over the real rise, and the targets each promises to reach."""

    n: int
    draws: int
    gap: float
    predicted: float
    actual: float
    random: float
    random_sd: float
    clean_actual: float
    clean_random: float
    clean_random_sd: float
    towards: int
    away: int
    p_towards: float
    p_away: float
    over: SignTest
    reach_predicted: int
    reach_actual: int


def fgsm_step(lin: Linearisation, draws: int) -> FGSMStep:
    """FGSM's step against random sign steps of the same size and its own first-order prediction."""
    n = int(lin.margin.numel())
    towards = int((lin.actual > lin.random_mean + 2 * lin.random_sd).sum())
    away = int((lin.clean_actual < lin.clean_random_mean - 2 * lin.clean_random_sd).sum())
    return FGSMStep(
        n=n,
        draws=draws,
        gap=median(-lin.margin),
        predicted=median(lin.predicted),
        actual=median(lin.actual),
        random=median(lin.random_mean),
        random_sd=median(lin.random_sd),
        clean_actual=median(lin.clean_actual),
        clean_random=median(lin.clean_random_mean),
        clean_random_sd=median(lin.clean_random_sd),
        towards=towards,
        away=away,
        p_towards=binomial_tail(towards, n, BEYOND_2SD),
        p_away=binomial_tail(away, n, BEYOND_2SD),
        over=sign_test(lin.predicted.tolist(), lin.actual.tolist()),
        reach_predicted=int((lin.margin + lin.predicted > 0).sum()),
        reach_actual=int((lin.margin + lin.actual > 0).sum()),
    )


def record_fgsm_step(ex, step: FGSMStep) -> None:
    """Record what FGSM's step does to the margins, against random sign steps of the same
    size and against its own first-order prediction."""
    for key in ("gap", "predicted", "actual", "random", "random_sd", "clean_actual", "clean_random"):
        record(ex, f"fgsm_margin_{key}", getattr(step, key))
    n, towards, away = step.n, step.towards, step.away
    random = f"{step.draws} random sign steps of the same L-inf size per pair (mean ± sd)"
    ex.claim(
        "fgsm_step_towards_target",
        step.p_towards < LEVEL,
        statement="FGSM's signed-gradient step raises the target's logit margin far more than a random step",
        evidence=(
            f"median rise {step.actual:.3g} logits; beyond the random steps' mean + 2 sd in {towards} "
            f"of {n} pairs (random steps: median {step.random:.3g} ± {step.random_sd:.3g}; "
            f"p = {step.p_towards:.2g} that chance gives as many)"
        ),
        baseline=random + "; 2.3 % of a normal spread lies beyond mean + 2 sd",
    )
    ex.claim(
        "fgsm_step_away_from_clean",
        step.p_away < LEVEL,
        statement="the same step lowers the clean class's margin far more than a random step",
        evidence=(
            f"median change {step.clean_actual:.3g} logits; below the random steps' mean - 2 sd in "
            f"{away} of {n} pairs (random: median {step.clean_random:.3g} ± "
            f"{step.clean_random_sd:.3g}; p = {step.p_away:.2g})"
        ),
        baseline=random,
    )
    ex.claim(
        "linearisation_overestimates",
        step.over.holds,
        statement="the first-order (linear) prediction of the step's effect is larger than its real effect",
        evidence=(
            f"predicted rise of the target margin: median {step.predicted:.3g} logits, real "
            f"{step.actual:.3g}; " + step.over.text("the prediction was larger", "the real rise")
        ),
        baseline="an exactly linear model: prediction and result equal, pairs split either way (sign test)",
    )


@dataclass(frozen=True)
class PenaltyEffect:
    """What raising α from ``base`` to ``alpha`` does, pair by pair: ISTA's changed values
    fewer (``fewer``), and dropping more than Adam's (``more``); the median drops (shares of
    all values)."""

    base: float
    alpha: float
    fewer: SignTest
    more: SignTest
    drop_ista: float
    drop_adam: float


def penalty_effect(sweep_runs: dict[tuple[str, float], MethodRun], alphas: list[float]) -> PenaltyEffect:
    """What a larger penalty does: whether ISTA changes fewer values than at the assignment's
    alpha, and whether it loses more changed values than Adam does, pair by pair. Compared at
    the larger alpha that leaves the most pairs reached by both methods at both alphas."""
    keys = ("l1_adam", "l1_ista")

    def reached(top: float) -> torch.Tensor:
        ok = torch.ones(sweep_runs[keys[0], alphas[0]].n, dtype=torch.bool)
        for key in keys:
            ok &= sweep_runs[key, alphas[0]].successes() & sweep_runs[key, top].successes()
        return ok

    top = max(alphas[1:], key=lambda a: (int(reached(a).sum()), a))
    both = reached(top)
    size = float(sweep_runs[keys[0], alphas[0]].norms()["size"][0])
    drop = {
        key: ((sweep_runs[key, alphas[0]].norms()["l0"] - sweep_runs[key, top].norms()["l0"]) / size)[both]
        for key in keys
    }
    return PenaltyEffect(
        base=alphas[0],
        alpha=top,
        fewer=sign_test(drop["l1_ista"].tolist(), [0.0] * int(both.sum())),
        more=sign_test(drop["l1_ista"].tolist(), drop["l1_adam"].tolist()),
        drop_ista=median(drop["l1_ista"]),
        drop_adam=median(drop["l1_adam"]),
    )


def record_penalty_effect(ex, e: PenaltyEffect) -> None:
    top, base, more = e.alpha, e.base, e.more
    ex.claim(
        "ista_fewer_changes_with_larger_alpha",
        e.fewer.holds,
        statement=f"ISTA changes fewer values at α = {top:g} than at the assignment's α = {base:g}",
        evidence=e.fewer.text(f"fewer at α = {top:g}", f"more at α = {top:g}"),
        baseline="no effect of α: each pair a fair coin (exact sign test, one-sided 5 %)",
    )
    ex.claim(
        "penalty_sparsifies_ista_more_than_adam",
        more.holds,
        statement=f"raising α to {top:g} removes more changed values from ISTA's perturbation than from Adam's",
        evidence=(
            f"share of changed values dropped by a median {100 * e.drop_ista:.3g} points for ISTA "
            f"and {100 * e.drop_adam:.3g} for Adam; " + more.text("ISTA's drop larger", "Adam's")
            if more.n
            else f"no pair was reached by both methods at both α = {base:g} and α = {top:g}"
        ),
        baseline="the two alike: each pair a fair coin (exact sign test, one-sided 5 %)",
    )


@dataclass(frozen=True)
class PenaltyPrice:
    """ISTA at the largest α tried (``alpha``) against the assignment's (``base``): its
    success rate there, and the sign test of the pairs reached at one α only."""

    base: float
    alpha: float
    success: float
    test: SignTest


def penalty_price(sweep_runs: dict[tuple[str, float], MethodRun], alphas: list[float]) -> PenaltyPrice:
    """Whether the largest penalty tried costs ISTA successes: pair by pair, reached at the
    assignment's alpha but not at the largest one, against the other way round."""
    top = max(alphas[1:])
    base, large = sweep_runs["l1_ista", alphas[0]], sweep_runs["l1_ista", top]
    test = sign_test([float(v) for v in base.successes()], [float(v) for v in large.successes()])
    return PenaltyPrice(alphas[0], top, float(large.successes().float().mean()), test)


def record_penalty_price(ex, price: PenaltyPrice) -> None:
    top, base = price.alpha, price.base
    ex.claim(
        "penalty_costs_ista_success",
        price.test.holds,
        statement=f"at α = {top:g} ISTA reaches fewer targets than at the assignment's α = {base:g}",
        evidence=price.test.text(f"reached only at α = {base:g}", f"only at α = {top:g}"),
        baseline="no effect of α: each pair reached at one α only a fair coin (exact sign test, one-sided 5 %)",
    )


#: The smallest difference in the share of values changed that this lab calls a difference
#: (percentage points of all values, median over the pairs): below it, "sparser" is a
#: difference no eye sees, however consistent the sign test finds it.
SMALLEST_SPARSITY_GAIN = 0.01


def changed_values_test(more: MethodRun, fewer: MethodRun):
    """Sign test that ``fewer`` changes fewer values than ``more``, on the pairs both reached,
    and the effect size: the median over those pairs of the share of values ``fewer`` leaves
    unchanged that ``more`` changes (0 when no pair was reached by both)."""
    both = more.successes() & fewer.successes()
    a, b = more.norms()["l0"][both], fewer.norms()["l0"][both]
    size = float(more.norms()["size"][0])
    gap = ((a - b).float() / size) if int(both.sum()) else torch.zeros(0)
    return sign_test(a.tolist(), b.tolist()), (float(gap.median()) if len(gap) else 0.0)


#: The smallest difference in a perturbation's norm that this lab calls a difference, per norm
#: (median over the pairs of the other method's norm minus the smallest one): L2 at least 10 %
#: of the other's; L-inf at least one grey level. PGD's L-inf grows in whole steps of one level
#: and one level is the smallest change an 8-bit image shows, so an L-inf gap below it is where
#: the rounding falls, not a difference of size (it came out between 1 % and 12 % of the norm
#: over seeds 0 to 4, with the sign test deciding for some seeds only).
SMALLEST_NORM_GAIN = {"l2": 0.10, "linf": 1.0}
#: How each norm's effect and threshold read in a claim.
NORM_GAIN_UNIT = {"l2": "% of the other's", "linf": "grey level(s)"}


def norm_gain_text(norm: str, value: float) -> str:
    """An effect (or the threshold) of ``norm`` as its claim states it: ``3.2 %`` of the other's
    L2, ``0.6 grey level(s)`` of L-inf."""
    if norm == "l2":
        return f"{100 * value:.3g} {NORM_GAIN_UNIT[norm]}"
    return f"{value:.3g} {NORM_GAIN_UNIT[norm]}"


def least_pair_by_pair(runs: dict[str, MethodRun], keys, norm: str, among: torch.Tensor):
    """The method whose ``norm`` is smallest pair by pair on the pairs in ``among``: the one with
    the strongest sign tests against every other (its weakest test decides), those tests, and
    the effect against each other method: the median over the pairs of how much smaller its
    norm is (as a share of the other's for L2, in grey levels for L-inf; see
    :data:`SMALLEST_NORM_GAIN`)."""
    per_pair = {key: runs[key].norms()[norm][among].double() for key in keys}
    tests = {
        a: {b: sign_test(per_pair[b].tolist(), per_pair[a].tolist()) for b in keys if b != a} for a in keys
    }
    lowest = min(keys, key=lambda a: max(t.p for t in tests[a].values()))

    def gap(other: str) -> torch.Tensor:
        diff = per_pair[other] - per_pair[lowest]
        return diff / per_pair[other].clamp_min(1e-12) if norm == "l2" else diff

    effects = {b: median(gap(b)) for b in keys if b != lowest}
    return lowest, tests[lowest], effects


def record(ex, name: str, value: float) -> None:
    """A metric, left out when undefined (a median over no successes)."""
    if not (isinstance(value, float) and math.isnan(value)):
        ex.metric(name, value)
