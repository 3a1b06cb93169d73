"""Exercise 2, measured then recorded: :func:`measure_targeted` runs the assignment's method
(Adam on the L1-penalised loss) on every planned pair, through the 8-bit round trip and
against the same perturbations shuffled over the image, and returns a :class:`Targeted`;
:func:`record_targeted` records it and :func:`answer_values` gives the answer its numbers."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

from labrunner import quiet_progress
from labrunner.stats import rate_text, rates_apart

from . import figures, text
from .attacks import PixelClassifier, l1_adam_attack, normalised_to_pixel, shuffled_success
from .evidence import record
from .figures import short
from .methods import PlannedAttack, l1_attack, reached_claim, run_method, save_adversarials
from .model import Model
from .records import MethodRun


@dataclass(frozen=True)
class Targeted:
    """Adam's attack on every planned pair and its :meth:`~.records.MethodRun.summary`, the
    clean class of each image, the largest change of a pixel value by the PNG round trip
    (0-1), how many targets the same perturbations reach shuffled over the image, and the
    assignment's alpha and lr in pixel space."""

    adam: MethodRun
    summary: dict[str, float]
    clean_of: dict[str, int]
    round_trip_change: float
    n_shuffled: int
    valid_pixels: bool
    std: list[float]
    alpha_px: list[float]
    lr_px: list[float]

    @property
    def n_ok(self) -> int:
        return sum(e.success for e in self.adam.examples)

    @property
    def n_rt(self) -> int:
        return sum(e.rt_success for e in self.adam.examples)

    @property
    def need(self) -> int:
        """Targets the check asks for: five in six."""
        return math.ceil(5 * self.adam.n / 6)


def measure_targeted(
    cfg: Any,
    model: Model,
    net: PixelClassifier,
    plan: list[PlannedAttack],
    device: Any,
    seed: int,
    progress: Callable[..., Iterable[Any]] = quiet_progress,
) -> Targeted:
    """Q2's measurements; the shuffles are drawn from a generator seeded with ``seed + 2``."""
    # One untimed step first, so the first timed method does not pay for warming up the kernels.
    first = plan[0]
    l1_adam_attack(net, first.image.pixels.to(device), first.targets[:1].to(device), max_iter=1)
    adam = run_method(
        net, plan, "l1_adam", l1_attack(cfg, model, l1_adam_attack, cfg.alpha), device, progress
    )
    rt_err = max(float((e.adversarial - e.round_trip).abs().max()) for e in adam.examples)
    valid = all(float(e.adversarial.min()) >= 0 and float(e.adversarial.max()) <= 1 for e in adam.examples)
    # Baseline: the same perturbation values in a random arrangement (same L0, L1, L2, L-inf).
    gen = torch.Generator().manual_seed(seed + 2)
    n_shuffled = sum(
        shuffled_success(net, e.original.to(device), e.adversarial.to(device), e.target, gen)
        for e in adam.examples
    )
    alpha_px, lr_px, _ = normalised_to_pixel(cfg.alpha, cfg.lr, model.pre.std, torch.zeros(3, 1, 1))
    return Targeted(
        adam,
        adam.summary(),
        {item.image.name: item.clean for item in plan},
        rt_err,
        n_shuffled,
        valid,
        [float(v) for v in model.pre.std],
        [float(v) for v in alpha_px.flatten()],
        [float(v) for v in lr_px.flatten()],
    )


def record_targeted(ctx: Any, ex: Any, m: Targeted, cats: list[str]) -> None:
    """The adversarial images as PNG files of the run, the table of every pair, the figure,
    metrics, checks and claims."""
    save_adversarials(ctx, m.adam)
    adam, norms = m.adam, m.adam.norms()
    rows = [
        {
            "image": e.image,
            "clean class": short(cats[m.clean_of[e.image]]),
            "target": short(cats[e.target]),
            "success": e.success,
            "iterations": e.iterations,
            "p(target)": e.p_target,
            "success after PNG": e.rt_success,
            "p(target) after PNG": e.rt_p_target,
            "L1 (0-255)": float(norms["l1"][j]),
            "L-inf (0-255)": float(norms["linf"][j]),
        }
        for j, e in enumerate(adam.examples)
    ]
    ex.table(rows, caption="Every (image, target) pair; the PNG columns classify the saved 8-bit file.")
    ex.figure(figures.grid_figure(adam, cats), "l1_adam_examples", caption=text.GRID_CAPTION)
    stats = m.summary
    record(ex, "l1_adam_success_rate", stats["success"])
    record(ex, "l1_adam_roundtrip_success_rate", stats["rt_success"])
    record(ex, "l1_adam_median_iterations", stats["iterations"])
    ex.metric("png_round_trip_max_change", m.round_trip_change * 255)
    ex.check_at_least("l1_adam_targets_reached", m.n_ok, m.need, points=2)
    reached_claim(ex, adam)
    ex.claim(
        "png_undoes_some_successes",
        m.n_rt < m.n_ok,
        statement="saving as an 8-bit PNG undoes some of the successes",
        evidence=f"{m.n_ok} targets reached, {m.n_rt} still reached by the saved files",
        baseline="the same images before saving (an exact count)",
    )
    ex.check_at_most("png_round_trip_within_half_level", m.round_trip_change * 255, 0.5 + 1e-3)
    ex.check("adversarials_are_valid_pixels", m.valid_pixels)
    ex.metric("l1_adam_shuffled_success_rate", m.n_shuffled / adam.n)
    ex.claim(
        "adam_direction_matters",
        rates_apart(m.n_ok, adam.n, m.n_shuffled, adam.n),
        statement="the targets are reached by the direction of the perturbation, not by its size",
        evidence=(
            f"Adam's perturbations reached {rate_text(m.n_ok, adam.n)}; the same values shuffled "
            f"over the image reached {rate_text(m.n_shuffled, adam.n)}"
        ),
        baseline="the same perturbations with their values in random positions (equal norms), 95 % Wilson intervals",
    )


def answer_values(m: Targeted, cfg: Any, cats: list[str]) -> dict[str, Any]:
    """The values the answer template (A2) is filled with."""
    return dict(
        s=m.summary,
        n=m.adam.n,
        n_ok=m.n_ok,
        n_rt=m.n_rt,
        n_shuffled=m.n_shuffled,
        cfg=cfg,
        std=m.std,
        alpha_px=m.alpha_px,
        lr_px=m.lr_px,
        lost=[
            {"image": e.image, "target": short(cats[e.target]), "p": e.p_target, "p_rt": e.rt_p_target}
            for e in m.adam.examples
            if e.success and not e.rt_success
        ],
    )
