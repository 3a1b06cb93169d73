"""The attacks and the measures of a perturbation, on tiny models and images."""

from __future__ import annotations

import math

import pytest
import torch
from labrunner.labs.adversarial.attacks import (
    PixelClassifier,
    fgsm_attack,
    l1_adam_attack,
    l1_ista_attack,
    median,
    perturbation_norms,
    pgd_attack,
    png_bytes,
    png_round_trip,
    predict,
    psnr,
    read_png,
    soft_threshold,
    to_uint8,
)
from torch import nn


def tiny_model(classes: int = 4, size: int = 6, seed: int = 0) -> nn.Module:
    """A linear classifier of (3, size, size) images in [0, 1], frozen, in eval mode."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * size * size, classes))
    model = PixelClassifier(net, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def tiny_image(size: int = 6, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, size, size), generator=gen).float() / 255


def other_targets(model, image, n=3):
    clean = int(predict(model, image[None]).argmax())
    return torch.tensor([c for c in range(4) if c != clean][:n])


def test_pixel_classifier_normalises_inside():
    net = nn.Identity()
    model = PixelClassifier(net, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    x = torch.full((1, 3, 2, 2), 0.75)
    assert torch.allclose(model(x), torch.ones(1, 3, 2, 2))


def test_soft_threshold_sets_small_entries_exactly_to_zero():
    z = torch.tensor([-2.0, -0.5, 0.0, 0.3, 1.5])
    out = soft_threshold(z, 0.5)
    assert out.tolist() == [-1.5, 0.0, 0.0, 0.0, 1.0]
    assert (out == 0).sum() == 3


def test_perturbation_norms_in_255_units():
    orig = torch.zeros(1, 3, 2, 2)
    adv = orig.clone()
    adv[0, 0, 0, 0] = 3 / 255
    adv[0, 1, 1, 1] = -4 / 255
    n = perturbation_norms(orig, adv)
    assert n["l0"].item() == 2
    assert n["l1"].item() == pytest.approx(7)
    assert n["l2"].item() == pytest.approx(5)
    assert n["linf"].item() == pytest.approx(4)


def test_psnr_of_a_known_error_and_of_no_change():
    orig = torch.zeros(1, 3, 4, 4)
    assert psnr(orig, orig + 0.1).item() == pytest.approx(20.0)
    assert math.isinf(psnr(orig, orig).item())


def test_to_uint8_rounds_rather_than_truncates():
    x = torch.tensor([0.0, 0.4999 / 255, 0.5001 / 255, 254.6 / 255, 1.0]).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    assert to_uint8(x)[0, 0, :, 0].tolist() == [0, 0, 1, 255, 255]


def test_png_round_trip_moves_values_by_at_most_half_a_level(tmp_path):
    x = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    back = png_round_trip(x, paths)
    assert back.shape == x.shape
    assert (back - x).abs().max() <= 0.5 / 255 + 1e-6
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)
    assert torch.equal(read_png(paths[0]), back[0])
    on_grid = torch.round(x * 255) / 255  # 8-bit images survive exactly
    assert torch.equal(png_round_trip(on_grid), on_grid)
    assert torch.equal(read_png(png_bytes(on_grid[1])), on_grid[1])


def test_median_even_odd_and_empty():
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median(torch.tensor([1, 2, 3, 4])) == 2.5
    assert math.isnan(median([]))


def test_l1_adam_attack_reaches_targets_and_keeps_valid_pixels():
    model, x = tiny_model(), tiny_image()
    targets = other_targets(model, x)
    res = l1_adam_attack(model, x, targets, alpha=0.001, lr=0.05, max_iter=200)
    assert res.success.all()
    assert res.adversarial.min() >= 0 and res.adversarial.max() <= 1
    preds = predict(model, res.adversarial).argmax(1)
    assert torch.equal(preds, targets)
    assert (res.iterations >= 1).all() and (res.iterations < 200).all()


def test_l1_adam_attack_equals_torch_adam_on_the_assignment_loss():
    """Before success, the attack is exactly torch.optim.Adam on alpha*||x'-x||_1 + CE, clamped."""
    model, x = tiny_model(), tiny_image()
    target = other_targets(model, x, 1)
    steps, alpha, lr = 3, 0.01, 1e-3  # small lr: no success within 3 steps
    res = l1_adam_attack(model, x, target, alpha=alpha, lr=lr, max_iter=steps)
    assert not res.success.any()
    xp = x[None].clone().requires_grad_(True)
    opt = torch.optim.Adam([xp], lr=lr)
    for _ in range(steps):
        loss = alpha * (xp - x).abs().sum() + nn.functional.cross_entropy(model(xp), target, reduction="sum")
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            xp.clamp_(0, 1)
    assert torch.allclose(res.adversarial, xp.detach(), atol=1e-7)


def test_targets_batched_equal_one_at_a_time():
    model, x = tiny_model(), tiny_image()
    targets = other_targets(model, x)
    batched = l1_adam_attack(model, x, targets, lr=0.05, max_iter=200)
    for j, t in enumerate(targets):
        single = l1_adam_attack(model, x, t.view(1), lr=0.05, max_iter=200)
        assert single.iterations[0] == batched.iterations[j]
        assert torch.allclose(single.adversarial[0], batched.adversarial[j], atol=1e-6)


def test_ista_attack_gives_exact_zeros_where_adam_does_not():
    model, x = tiny_model(), tiny_image()
    targets = other_targets(model, x)
    kw = {"alpha": 0.2, "lr": 0.02, "max_iter": 300}
    ista = l1_ista_attack(model, x, targets, **kw)
    adam = l1_adam_attack(model, x, targets, **kw)
    assert ista.success.all() and adam.success.all()
    l0_ista = perturbation_norms(x, ista.adversarial)["l0"]
    l0_adam = perturbation_norms(x, adam.adversarial)["l0"]
    assert (l0_ista < 0.5 * x.numel()).all()  # most values exactly unchanged
    assert (l0_adam > 0.95 * x.numel()).all()  # the subgradient leaves almost none at zero


def test_fgsm_is_one_step_within_eps():
    model, x = tiny_model(), tiny_image()
    targets = other_targets(model, x)
    res = fgsm_attack(model, x, targets, eps=8 / 255)
    linf = perturbation_norms(x, res.adversarial)["linf"]
    assert (linf <= 8 + 1e-4).all()
    assert (res.iterations <= 1).all()
    assert res.adversarial.min() >= 0 and res.adversarial.max() <= 1


def test_pgd_stays_in_the_ball_and_succeeds_with_a_large_enough_eps():
    model, x = tiny_model(), tiny_image()
    targets = other_targets(model, x)
    res = pgd_attack(model, x, targets, eps=64 / 255, step=2 / 255, max_iter=100)
    assert (perturbation_norms(x, res.adversarial)["linf"] <= 64 + 1e-4).all()
    assert res.success.all()
    small = pgd_attack(model, x, targets, eps=0.0, step=2 / 255, max_iter=5)
    assert torch.equal(small.adversarial, x.expand_as(small.adversarial))
    assert not small.success.any()


def test_already_target_counts_as_zero_iterations():
    model, x = tiny_model(), tiny_image()
    clean = predict(model, x[None]).argmax(1)
    res = l1_adam_attack(model, x, clean, max_iter=10)
    assert res.success.all() and res.iterations.tolist() == [0]
    assert torch.equal(res.adversarial[0], x)
