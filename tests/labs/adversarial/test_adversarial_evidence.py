"""The measurements behind exercise 5's least-norm claims: the method with the smallest norm
pair by pair, its sign tests, and the effect the lab's smallest difference is compared with."""

from __future__ import annotations

import pytest
import torch
from labrunner.labs.adversarial.evidence import SMALLEST_NORM_GAIN, least_pair_by_pair, norm_gain_text
from labrunner.labs.adversarial.records import AttackExample, MethodRun

PAIRS = 8
SIZE = (3, 4, 4)


def uniform_run(key: str, levels: float) -> MethodRun:
    """``PAIRS`` successful examples whose perturbation adds ``levels`` grey levels to every value."""
    run = MethodRun(key, key)
    for i in range(PAIRS):
        original = torch.full(SIZE, 0.1 + 0.01 * i)
        adversarial = original + levels / 255
        run.examples.append(
            AttackExample(f"im{i}", original, 1, adversarial, adversarial, True, True, 0.9, 0.9, 1, 1, 0.9, 3)
        )
    return run


def test_the_least_norm_is_found_pair_by_pair_with_its_effect_in_the_norms_units():
    runs = {
        "pgd": uniform_run("pgd", 5.0),
        "l1_adam": uniform_run("l1_adam", 5.5),
        "l1_ista": uniform_run("l1_ista", 7.0),
    }
    among = torch.ones(PAIRS, dtype=torch.bool)

    lowest, tests, effects = least_pair_by_pair(runs, list(runs), "linf", among)
    assert lowest == "pgd"
    assert all(t.holds and t.wins == PAIRS for t in tests.values())  # every pair on PGD's side
    # L-inf in grey levels: half a level below Adam is below the lab's smallest difference.
    assert effects == pytest.approx({"l1_adam": 0.5, "l1_ista": 2.0}, abs=1e-4)
    assert min(effects.values()) < SMALLEST_NORM_GAIN["linf"] <= effects["l1_ista"]

    # L2 as a share of the other's norm: 0.5 / 5.5 and 2 / 7 whatever the image's size.
    lowest, _, effects = least_pair_by_pair(runs, list(runs), "l2", among)
    assert lowest == "pgd"
    assert effects == pytest.approx({"l1_adam": 0.5 / 5.5, "l1_ista": 2 / 7}, abs=1e-4)
    assert effects["l1_adam"] < SMALLEST_NORM_GAIN["l2"] <= effects["l1_ista"]
    assert norm_gain_text("l2", 2 / 7) == "28.6 % of the other's"
    assert norm_gain_text("linf", 1.0) == "1 grey level(s)"
