"""The exercises' measurements without a context, on a tiny linear classifier of 8 x 8
images: each returns a frozen dataclass whose numbers and conditions a test reads directly."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from labrunner.labs.adversarial import AdversarialConfig
from labrunner.labs.adversarial.attacks import PixelClassifier, predict
from labrunner.labs.adversarial.baselines import measure_baselines
from labrunner.labs.adversarial.images import LabImage, Preprocess
from labrunner.labs.adversarial.methods import plan_attacks
from labrunner.labs.adversarial.model import Model
from labrunner.labs.adversarial.smallest import measure_common_pairs
from labrunner.labs.adversarial.sparsity import measure_sparsity
from labrunner.labs.adversarial.targeted import measure_targeted

from labrunner.testing import torch_threads

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
CFG = AdversarialConfig(max_iter=40, fallback_all_pairs=True, sparsity_alphas=(0.1,), random_draws=4)


@pytest.fixture(scope="module")
def tiny():
    """A linear classifier of three classes on 8 x 8 images, two images, and the attack plan."""
    with torch_threads(1):
        gen = torch.Generator().manual_seed(0)
        layer = torch.nn.Linear(3 * 8 * 8, 3)
        with torch.no_grad():
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen))
            layer.bias.zero_()
        net = PixelClassifier(torch.nn.Sequential(torch.nn.Flatten(), layer), MEAN, STD).eval()
        for p in net.parameters():
            p.requires_grad_(False)
        model = Model(net, "fallback", ["a", "b", "c"], Preprocess(8, 8, MEAN, STD))
        images = [
            LabImage(f"im{i}", "generated", torch.randint(0, 256, (3, 8, 8), generator=gen) / 255.0)
            for i in range(2)
        ]
        top_i = predict(net, torch.stack([im.pixels for im in images])).topk(1, dim=1).indices
        plan = plan_attacks(CFG, model, images, top_i, np.random.default_rng(0))
        yield model, net, plan


def test_the_plan_attacks_every_shape_towards_every_other_class(tiny):
    model, net, plan = tiny
    assert [item.image.name for item in plan] == ["im0", "im1"]
    for item in plan:
        assert sorted(item.targets.tolist() + [item.clean]) == [0, 1, 2]


def test_targeted_reaches_its_targets_with_valid_8_bit_images(tiny):
    model, net, plan = tiny
    with torch_threads(1):
        m = measure_targeted(CFG, model, net, plan, "cpu", seed=0)
    assert m.adam.n == 4 and m.need == 4
    assert m.n_ok == 4 and m.n_rt <= m.n_ok and 0 <= m.n_shuffled <= 4
    assert m.valid_pixels and m.round_trip_change * 255 <= 0.5 + 1e-6
    assert m.clean_of == {item.image.name: item.clean for item in plan}
    assert len(m.alpha_px) == len(m.lr_px) == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.n_shuffled = 0  # type: ignore[misc]


@pytest.mark.slow  # four methods and a sweep of two alphas (about two seconds)
def test_baselines_and_sparsity_on_the_same_pairs(tiny):
    model, net, plan = tiny
    with torch_threads(1):
        adam = measure_targeted(CFG, model, net, plan, "cpu", seed=0).adam
        b = measure_baselines(CFG, model, net, plan, adam, "cpu", seed=0)
        s = measure_sparsity(CFG, model, net, plan, b.runs, "cpu")
    assert list(b.runs) == ["fgsm", "pgd", "l1_adam", "l1_ista"] and b.runs["l1_adam"] is adam
    assert b.largest_linf("fgsm") <= CFG.fgsm_eps + 1e-3 and b.largest_linf("pgd") <= CFG.pgd_eps + 1e-3
    assert b.step.n == 4 and b.step.draws == CFG.random_draws
    assert b.pgd_vs_fgsm.wins + b.pgd_vs_fgsm.losses + b.pgd_vs_fgsm.ties == 4
    assert s.alphas == [CFG.alpha, 0.1] and [p["claim"] for p in s.pairs] == [
        "ista_sparser",
        "ista_sparser_alpha_1",
    ]
    assert s.runs["l1_ista", CFG.alpha] is b.runs["l1_ista"]
    assert sorted(s.sparser["at"] + s.sparser["not_at"]) == sorted(s.alphas)
    assert s.larger is not None and s.larger.alpha == 0.1 and s.price is not None and s.price.alpha == 0.1


def test_common_pairs_name_the_least_method_once_for_both_norms(uniform_run):
    runs = {
        "pgd": uniform_run("pgd", 5.0),
        "l1_adam": uniform_run("l1_adam", 7.0),
        "l1_ista": uniform_run("l1_ista", 8.0),
    }
    m = measure_common_pairs(runs)
    assert m.n == m.n_common == 8
    assert {k: v.method for k, v in m.least.items()} == {"l2": "pgd", "linf": "pgd"}
    assert m.least["l2"].clear and m.least["linf"].clear and m.same_method
    # half a grey level below Adam: the same order, but no clear L-inf difference
    runs["l1_adam"] = uniform_run("l1_adam", 5.5)
    m = measure_common_pairs(runs)
    assert not m.least["linf"].clear and not m.same_method


def test_without_a_common_pair_nothing_is_least(uniform_run):
    runs = {
        "pgd": uniform_run("pgd", 5.0),
        "l1_adam": uniform_run("l1_adam", 7.0),
        "l1_ista": uniform_run("l1_ista", 8.0),
    }
    for e in runs["pgd"].examples:
        e.success = False
    m = measure_common_pairs(runs)
    assert m.n_common == 0 and m.least == {} and not m.same_method
