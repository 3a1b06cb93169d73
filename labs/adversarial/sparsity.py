"""Exercise 4, measured then recorded: :func:`measure_sparsity` runs Adam and ISTA on the L1
objective at the assignment's α and larger ones and tests, per α, whether ISTA changes fewer
values than Adam, returning a :class:`Sparsity`; :func:`record_sparsity` records the table,
figure, metrics and claims, and :func:`answer_values` gives the answer its numbers."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from labrunner import quiet_progress

from . import figures, text
from .attacks import PixelClassifier, l1_adam_attack, l1_ista_attack
from .evidence import (
    SMALLEST_SPARSITY_GAIN,
    PenaltyEffect,
    PenaltyPrice,
    changed_values_test,
    penalty_effect,
    penalty_price,
    record,
    record_penalty_effect,
    record_penalty_price,
)
from .methods import METHODS, PlannedAttack, cells, l1_attack, run_method
from .model import Model
from .records import MethodRun

ATTACKS = {"l1_adam": l1_adam_attack, "l1_ista": l1_ista_attack}


@dataclass(frozen=True)
class Sparsity:
    """Adam and ISTA at each α (``alphas``, the assignment's first): one summary row per
    method and α (``sweep``), the runs, and per α the comparison ``pairs`` (dicts the answer
    reads: ``alpha``, the two rows, the claim's ``name``, the sign ``test`` and the ``gap``,
    and whether ISTA is ``sparser``: the claim's condition); with more than one α, what the
    largest penalty does (``larger``, ``price``)."""

    base: float
    alphas: list[float]
    sweep: list[dict[str, Any]]
    runs: dict[tuple[str, float], MethodRun]
    pairs: list[dict[str, Any]]
    larger: PenaltyEffect | None
    price: PenaltyPrice | None

    @property
    def sparser(self) -> dict[str, Any]:
        """The α at which ISTA is sparser and not; ``widest``: the pair quoted for the widest
        gap, the largest α at which ISTA is sparser (the largest α stands in otherwise, so
        that the template renders whatever the claims are)."""
        pairs = self.pairs
        return {
            "at": [p["alpha"] for p in pairs if p["sparser"]],
            "not_at": [p["alpha"] for p in pairs if not p["sparser"]],
            "widest": next((p for p in reversed(pairs) if p["sparser"]), pairs[-1] if pairs else None),
        }


def measure_sparsity(
    cfg: Any,
    model: Model,
    net: PixelClassifier,
    plan: list[PlannedAttack],
    runs: dict[str, MethodRun],
    device: Any,
    progress: Callable[..., Iterable[Any]] = quiet_progress,
) -> Sparsity:
    """Q4's measurements; ``runs`` has both methods at the assignment's α already."""
    sweep = []
    sweep_runs: dict[tuple[str, float], MethodRun] = {}
    alphas = list(dict.fromkeys((cfg.alpha, *cfg.sparsity_alphas)))
    for alpha in alphas:
        for key, attack in ATTACKS.items():
            if alpha == cfg.alpha:
                r = runs[key]
            else:
                r = run_method(net, plan, key, l1_attack(cfg, model, attack, alpha), device, progress)
            sweep_runs[key, alpha] = r
            sweep.append({"method": key, "alpha": alpha, "tiny": r.tiny_fraction(), **r.summary()})
    pairs = []
    for i, alpha in enumerate(alphas):
        adam_row, ista_row = (
            next(r for r in sweep if r["alpha"] == alpha and r["method"] == k) for k in ATTACKS
        )
        test, gap = changed_values_test(sweep_runs["l1_adam", alpha], sweep_runs["l1_ista", alpha])
        pairs.append(
            {
                "alpha": alpha,
                "adam": adam_row,
                "ista": ista_row,
                "claim": "ista_sparser" if i == 0 else f"ista_sparser_alpha_{i}",
                "test": test,
                "gap": gap,
                "sparser": test.holds and gap >= SMALLEST_SPARSITY_GAIN,
            }
        )
    more = len(alphas) > 1
    return Sparsity(
        cfg.alpha,
        alphas,
        sweep,
        sweep_runs,
        pairs,
        penalty_effect(sweep_runs, alphas) if more else None,
        penalty_price(sweep_runs, alphas) if more else None,
    )


def record_sparsity(ex: Any, m: Sparsity) -> None:
    """The table of both methods at every α, the figure, metrics, and the claims."""
    ex.table(
        cells(
            [
                {
                    "method": METHODS[row["method"]],
                    "alpha": row["alpha"],
                    "success": row["success"],
                    "success after PNG": row["rt_success"],
                    "changed values (%)": 100 * row["l0_pct"],
                    "changed after PNG (%)": 100 * row["l0_8bit_pct"],
                    "0 < |δ| < 0.5 level (%)": 100 * row["tiny"],
                    "median L1": row["l1"],
                    "median L2": row["l2"],
                    "median iterations": row["iterations"],
                }
                for row in m.sweep
            ]
        ),
        caption=(
            "α in the normalised space of the assignment. Medians over successful examples; "
            "0.5 level = half an 8-bit step, lost by rounding."
        ),
    )
    ex.figure(
        figures.sparsity_figure(m.runs, m.base, m.alphas[-1] if len(m.alphas) > 1 else m.base),
        "sparsity",
        caption=text.SPARSITY_CAPTION,
    )
    for row in m.sweep:
        prefix = row["method"] if row["alpha"] == m.base else f"{row['method']}_alpha_{row['alpha']:g}"
        record(ex, f"{prefix}_changed_fraction", row["l0_pct"])
        record(ex, f"{prefix}_tiny_fraction", row["tiny"])
        if row["alpha"] != m.base:
            record(ex, f"{prefix}_success_rate", row["success"])
    record_sparser(ex, m)
    if m.larger is not None:
        record_penalty_effect(ex, m.larger)
    if m.price is not None:
        record_penalty_price(ex, m.price)


def record_sparser(ex: Any, m: Sparsity) -> None:
    """Per α, whether ISTA changes fewer values than Adam; then at every, some and another α."""
    gain = f"{100 * SMALLEST_SPARSITY_GAIN:g}"
    for p in m.pairs:
        ex.claim(
            p["claim"],
            p["sparser"],
            statement=f"at α = {p['alpha']:g}, ISTA changes fewer values than Adam on the same pairs, by at least "
            f"{gain} percentage point(s)",
            evidence=f"effect: ISTA leaves a median {100 * p['gap']:.2f} points more of the values unchanged; "
            + p["test"].text("ISTA changed fewer values", "Adam"),
            baseline="the two alike: each pair both reached a fair coin (exact sign test, one-sided 5 %); the "
            f"lab's smallest difference in the share of values changed: {gain} point(s)",
        )
    sparser = m.sparser
    each = "; ".join(f"α = {p['alpha']:g}: {'yes' if p['sparser'] else 'no'}" for p in m.pairs)
    for name, holds, which in (
        ("ista_sparser_at_every_alpha", not sparser["not_at"], "at every α tried"),
        ("ista_sparser_at_some_alpha", bool(sparser["at"]), "at some α tried"),
        (
            "ista_sparser_at_other_alpha",
            any(a != m.base for a in sparser["at"]),
            "at an α other than the assignment's",
        ),
    ):
        ex.claim(
            name,
            holds,
            statement=f"ISTA changes fewer values than Adam {which}",
            evidence=f"the claims per α (sign test each): {each}",
            baseline="the per-α claims above",
        )


def answer_values(m: Sparsity, summaries: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The values the answer template (A4) is filled with."""
    return dict(
        a=summaries["l1_adam"],
        b=summaries["l1_ista"],
        tiny={row["method"]: row["tiny"] for row in m.sweep if row["alpha"] == m.base},
        pairs=m.pairs,
        sparser=m.sparser,
        larger=m.larger,
        price=m.price,
        smallest=SMALLEST_SPARSITY_GAIN,
        setting={"alpha_sweep": len(m.alphas) > 1},
    )
