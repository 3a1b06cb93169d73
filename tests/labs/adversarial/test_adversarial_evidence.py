"""The measurements behind exercise 5's least-norm claims: the method with the smallest norm
pair by pair, its sign tests, and the effect the lab's smallest difference is compared with."""

from __future__ import annotations

import pytest
import torch
from labrunner.labs.adversarial.evidence import SMALLEST_NORM_GAIN, least_pair_by_pair, norm_gain_text

PAIRS = 8  # the examples of a uniform_run (conftest)


def test_the_least_norm_is_found_pair_by_pair_with_its_effect_in_the_norms_units(uniform_run):
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
