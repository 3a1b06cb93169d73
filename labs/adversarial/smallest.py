"""Exercise 5, measured then recorded: :func:`measure_common_pairs` compares the iterative
methods on the pairs all of them reached (each method's own successes favour the pairs that
are easy for it) and returns a :class:`CommonPairs`; :func:`record_common_pairs` records the
table and claims, and :func:`answer_values` gives the answer its numbers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from labrunner.stats import SignTest

from .evidence import SMALLEST_NORM_GAIN, least_pair_by_pair, norm_gain_text, record
from .methods import METHODS, cells
from .records import MethodRun

#: The methods compared: the iterative ones.
ITERATIVE = ("pgd", "l1_adam", "l1_ista")


@dataclass(frozen=True)
class Least:
    """The method with the smallest norm pair by pair, its sign test against each other
    method, and the effect against each (see :func:`least_pair_by_pair`)."""

    norm: str
    method: str
    tests: dict[str, SignTest]
    effects: dict[str, float]

    @property
    def clear(self) -> bool:
        """Smaller than every other method beyond chance, by at least the lab's smallest gain."""
        return (
            all(t.holds for t in self.tests.values())
            and min(self.effects.values()) >= SMALLEST_NORM_GAIN[self.norm]
        )


@dataclass(frozen=True)
class CommonPairs:
    """``n_common`` of the ``n`` pairs reached by every iterative method, each method's
    summary over them, and per norm (L2, L-inf) the least one (none without a common pair)."""

    n: int
    n_common: int
    on_common: dict[str, dict[str, float]]
    least: dict[str, Least]

    @property
    def same_method(self) -> bool:
        """One method clearly gives both the smallest L2 and the smallest L-inf change."""
        l2, linf = self.least.get("l2"), self.least.get("linf")
        return bool(l2 and linf and l2.clear and linf.clear and l2.method == linf.method)


def measure_common_pairs(runs: dict[str, MethodRun]) -> CommonPairs:
    """Q5's measurements, on the runs of Exercise 3."""
    n = runs["l1_adam"].n
    common = torch.ones(n, dtype=torch.bool)
    for key in ITERATIVE:
        common &= runs[key].successes()
    n_common = int(common.sum())
    on_common = {key: runs[key].summary(common) for key in ITERATIVE}
    least = {}
    if n_common:
        for norm in ("l2", "linf"):
            least[norm] = Least(norm, *least_pair_by_pair(runs, ITERATIVE, norm, common))
    return CommonPairs(n, n_common, on_common, least)


def record_common_pairs(ex: Any, m: CommonPairs) -> None:
    """Metrics of the common pairs, the table, and the claims on the least norms."""
    ex.metric("pairs_reached_by_all_iterative_methods", m.n_common)
    rows = []
    for key in ITERATIVE:
        c = m.on_common[key]
        rows.append(
            {
                "method": METHODS[key],
                "changed values (%)": 100 * c["l0_pct"],
                "L1": c["l1"],
                "L2": c["l2"],
                "L-inf": c["linf"],
                "PSNR (dB)": c["psnr"],
            }
        )
        record(ex, f"{key}_common_median_l2", c["l2"])
        record(ex, f"{key}_common_median_linf", c["linf"])
    ex.claim(
        "iterative_methods_share_pairs",
        m.n_common > 0,
        statement="PGD and both L1 methods reach some (image, target) pair in common",
        evidence=f"{m.n_common} of {m.n} pairs",
        baseline="an exact count",
    )
    if m.n_common:
        ex.table(
            cells(rows), caption=f"Medians over the {m.n_common} pairs that PGD and both L1 methods reached."
        )
    for least in m.least.values():
        record_least(ex, least)
    ex.claim(
        "least_l2_and_linf_same_method",
        m.same_method,
        statement="one method gives both the smallest L2 and the smallest L-inf change, pair by pair",
        evidence=", ".join(f"least {k}: {METHODS[v.method]}" for k, v in m.least.items())
        or "no pair in common",
        baseline="the two least-norm claims above",
    )


def record_least(ex: Any, least: Least) -> None:
    norm, lowest = least.norm, least.method
    smallest = norm_gain_text(norm, SMALLEST_NORM_GAIN[norm])
    ex.claim(
        f"least_{norm}_is_clear",
        least.clear,
        statement=f"{METHODS[lowest]} gives a smaller {norm} than each other method, pair by pair, "
        f"by at least {smallest}",
        evidence="effect: "
        + ", ".join(
            f"a median {norm_gain_text(norm, e)} below {METHODS[k]}" for k, e in least.effects.items()
        )
        + "; "
        + "; ".join(t.text(f"{METHODS[k]} larger", METHODS[lowest]) for k, t in least.tests.items()),
        baseline="methods alike: each common pair a fair coin (exact sign test per other method, "
        f"one-sided 5 %); the lab's smallest difference in {norm}: {smallest}",
    )


def answer_values(m: CommonPairs, summaries: dict[str, dict[str, float]], sparser: Any) -> dict[str, Any]:
    """The values the answer template (A5) is filled with."""
    return dict(
        m=summaries,
        c=m.on_common,
        n=m.n,
        n_common=m.n_common,
        best_l2=m.least["l2"].method if "l2" in m.least else None,
        best_linf=m.least["linf"].method if "linf" in m.least else None,
        smallest_norm=SMALLEST_NORM_GAIN,
        sparser=sparser,
        labels=METHODS,
    )
