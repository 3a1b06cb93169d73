"""Exercise 3, measured then recorded: :func:`measure_baselines` runs FGSM, PGD and the ISTA
variant on the pairs Adam attacked and measures FGSM's step against its linearisation and
random steps, returning a :class:`Baselines`; :func:`record_baselines` records one table of
all four methods, the figure, metrics and claims, and :func:`answer_values` gives the answer
its numbers."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from labrunner import quiet_progress
from labrunner.stats import SignTest, sign_test

from . import figures, text
from .attacks import PixelClassifier, fgsm_attack, l1_ista_attack, pgd_attack
from .evidence import FGSMStep, fgsm_linearisation_all, fgsm_step, record, record_fgsm_step
from .methods import METHODS, PlannedAttack, cells, l1_attack, reached_claim, run_method
from .model import Model
from .records import MethodRun

#: The summary statistics recorded as metrics, by their names there.
METRIC_NAMES = {
    "success": "success_rate",
    "rt_success": "roundtrip_success_rate",
    **{stat: f"median_{stat}" for stat in ("iterations", "l0", "l0_8bit", "l1", "l2", "linf", "psnr")},
    # A single timing is no comparison of speed: it goes to the measurements, marked as one reading.
    "ms_per_example": "ms_per_example_one_reading",
}


@dataclass(frozen=True)
class Baselines:
    """The four methods on the same pairs (``runs``: FGSM, PGD, Adam, ISTA, in the table's
    order), each one's :meth:`~.records.MethodRun.summary`, and FGSM's step against its
    linearisation and random steps."""

    runs: dict[str, MethodRun]
    summaries: dict[str, dict[str, float]]
    step: FGSMStep

    @property
    def pgd_vs_fgsm(self) -> SignTest:
        """Pair by pair: PGD reached the target and FGSM not, against the other way round."""
        ok = {key: [float(e.success) for e in self.runs[key].examples] for key in ("pgd", "fgsm")}
        return sign_test(ok["pgd"], ok["fgsm"])

    def largest_linf(self, key: str) -> float:
        """The largest L-inf norm of ``key``'s perturbations, in 1/255 units."""
        return max(float(v) for v in self.runs[key].norms()["linf"])


def measure_baselines(
    cfg: Any,
    model: Model,
    net: PixelClassifier,
    plan: list[PlannedAttack],
    adam: MethodRun,
    device: Any,
    seed: int,
    progress: Callable[..., Iterable[Any]] = quiet_progress,
) -> Baselines:
    """Q3's measurements, on the pairs of ``plan`` that Adam's ``adam`` attacked."""

    def run(key: str, attack: Any) -> MethodRun:
        return run_method(net, plan, key, attack, device, progress)

    runs = {
        "fgsm": run("fgsm", lambda m, x, t: fgsm_attack(m, x, t, eps=cfg.fgsm_eps / 255)),
        "pgd": run(
            "pgd",
            lambda m, x, t: pgd_attack(
                m, x, t, eps=cfg.pgd_eps / 255, step=cfg.pgd_step / 255, max_iter=cfg.max_iter
            ),
        ),
        "l1_adam": adam,
        "l1_ista": run("l1_ista", l1_attack(cfg, model, l1_ista_attack, cfg.alpha)),
    }
    lin = fgsm_linearisation_all(cfg, net, plan, device, seed)
    summaries = {key: r.summary() for key, r in runs.items()}
    return Baselines(runs, summaries, fgsm_step(lin, cfg.random_draws))


def record_baselines(ex: Any, m: Baselines, cfg: Any, cats: list[str]) -> None:
    """The table of the four methods (and their metrics), the figure, the checks of the L-inf
    radii, and the claims."""
    rows = []
    summaries = m.summaries
    for key, r in m.runs.items():
        stats = summaries[key]
        rows.append(
            {
                "method": r.label,
                "success": stats["success"],
                "success after PNG": stats["rt_success"],
                "median iterations": stats["iterations"],
                "L0 (% of values)": 100 * stats["l0_pct"],
                "L0 after PNG (%)": 100 * stats["l0_8bit_pct"],
                "L1": stats["l1"],
                "L2": stats["l2"],
                "L-inf": stats["linf"],
                "PSNR (dB)": stats["psnr"],
            }
        )
        for stat, name in METRIC_NAMES.items():
            if key == "l1_adam" and stat in ("success", "rt_success", "iterations"):
                continue  # recorded in exercise 2
            record(ex, f"{key}_{name}", stats[stat])
    n = m.runs["l1_adam"].n
    ex.table(
        cells(rows),
        caption=text.TABLE_CAPTION.format(n=n, fgsm=cfg.fgsm_eps, pgd=cfg.pgd_eps, step=cfg.pgd_step),
    )
    ex.figure(figures.method_figure(m.runs, cats, 0), "methods_compared", caption=text.METHODS_CAPTION)
    ex.check_at_most("fgsm_within_eps", m.largest_linf("fgsm"), cfg.fgsm_eps + 1e-3)
    ex.check_at_most("pgd_within_eps", m.largest_linf("pgd"), cfg.pgd_eps + 1e-3)
    for key in ("fgsm", "pgd", "l1_ista"):
        reached_claim(ex, m.runs[key])
    test = m.pgd_vs_fgsm
    ex.claim(
        "pgd_beats_fgsm",
        test.holds,
        statement="iterating the signed step (PGD) reaches more targets than one step (FGSM)",
        evidence=test.text("only PGD reached the target", "only FGSM"),
        baseline="the two alike: each pair where they differ a fair coin (exact sign test, one-sided 5 %)",
    )
    record_fgsm_step(ex, m.step)


def answer_values(m: Baselines, cfg: Any) -> dict[str, Any]:
    """The values the answer template (A3) is filled with."""
    return dict(
        m=m.summaries, labels=METHODS, cfg=cfg, n=m.runs["l1_adam"].n, step=m.step, test=m.pgd_vs_fgsm
    )
