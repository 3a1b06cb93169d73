"""What the exercises share: the attack methods by key, the attack plan (which images, which
targets), running one method on the whole plan, and the helpers of their tables and claims."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from labrunner import quiet_progress
from labrunner.stats import rate_text

from . import text
from .attacks import AttackResult, PixelClassifier, png_bytes
from .images import LabImage
from .model import Model
from .records import MethodRun

METHODS = {
    "fgsm": "Targeted FGSM",
    "pgd": "I-FGSM / PGD (L-inf)",
    "l1_adam": "Assignment: Adam on L1 + CE",
    "l1_ista": "EAD-style: ISTA on L1 + CE",
}
SAFE = re.compile(r"[^A-Za-z0-9_.-]+")

#: ``attack(net, image, targets) -> AttackResult``
Attack = Callable[[PixelClassifier, torch.Tensor, torch.Tensor], AttackResult]


@dataclass(frozen=True)
class PlannedAttack:
    """One image to attack, the class the model gives it, and its random target classes."""

    image: LabImage
    clean: int
    targets: torch.Tensor


def plan_attacks(
    cfg: Any, model: Model, images: list[LabImage], top_i: torch.Tensor, rng: np.random.Generator
) -> list[PlannedAttack]:
    """Choose the images to attack and their random targets (never the clean class), drawn
    from ``rng`` (the run's). The stand-in attacks only the generated shapes: it knows nothing
    about photos."""
    cats = model.categories
    pool = [i for i, im in enumerate(images) if not model.is_stand_in or im.source == "generated"]
    every = model.is_stand_in and cfg.fallback_all_pairs
    n_images = len(pool) if every else min(cfg.attack_images, len(pool))
    chosen = sorted(rng.choice(pool, size=n_images, replace=False).tolist())
    plan = []
    for i in chosen:
        clean = int(top_i[i, 0])
        others = [c for c in range(len(cats)) if c != clean]
        n_t = len(others) if every else min(cfg.targets_per_image, len(others))
        targets = torch.tensor(rng.choice(others, size=n_t, replace=False).tolist())
        plan.append(PlannedAttack(images[i], clean, targets))
    return plan


def run_method(
    net: PixelClassifier,
    plan: list[PlannedAttack],
    key: str,
    attack: Attack,
    device: Any,
    progress: Callable[..., Iterable[Any]] = quiet_progress,
) -> MethodRun:
    """Run ``attack(net, image, targets)`` on every planned image, all its targets in one batch."""
    out = MethodRun(key, METHODS[key])
    for item in progress(plan, desc=METHODS[key]):
        x = item.image.pixels.to(device)
        out.add(item.image.name, x, item.targets, attack(net, x, item.targets.to(device)), net)
    return out


def l1_attack(cfg: Any, model: Model, method: Callable[..., AttackResult], alpha: float) -> Attack:
    """``method`` (Adam or ISTA on the L1 objective) with the assignment's ``alpha`` and
    learning rate, meant in the normalised space the network sees (see ``normalised_to_pixel``)."""
    std = model.pre.std
    return lambda m, x, t: method(m, x, t, alpha=alpha, lr=cfg.lr, max_iter=cfg.max_iter, std=std)


def save_adversarials(ctx: Any, run: MethodRun) -> None:
    """Each adversarial image of ``run`` as the 8-bit PNG file its round trip classified."""
    for e in run.examples:
        ctx.file(SAFE.sub("_", f"adversarial-{e.image}-to-{e.target}.png")).write_bytes(
            png_bytes(e.adversarial)
        )


def reached_claim(ex: Any, run: MethodRun) -> None:
    """The exact count the answers branch on: whether ``run`` reached any target at all."""
    n_ok = int(run.successes().sum())
    ex.claim(
        f"reaches_target_{run.key}",
        n_ok > 0,
        statement=f"{run.label} reaches at least one of the {run.n} targets",
        evidence=f"{rate_text(n_ok, run.n)} reached",
        baseline="an exact count",
    )


def cells(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Table rows with undefined numbers (a median over no successes) shown as a dash and why."""
    return [
        {k: text.NO_SUCCESS if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
        for row in rows
    ]
