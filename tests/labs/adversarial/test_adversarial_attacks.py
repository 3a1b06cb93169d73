"""The attacks and the measures of a perturbation, on tiny models and images."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import adam_reference
from labrunner.labs.adversarial.attacks import (
    PixelClassifier,
    fgsm_attack,
    fgsm_linearisation,
    l1_adam_attack,
    l1_ista_attack,
    margin,
    median,
    normalised_to_pixel,
    perturbation_norms,
    pgd_attack,
    png_bytes,
    png_round_trip,
    predict,
    psnr,
    read_png,
    shuffled_success,
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

    def loss(xp):
        return alpha * (xp - x).abs().sum() + nn.functional.cross_entropy(model(xp), target, reduction="sum")

    xp = adam_reference(x[None], loss, lr=lr, steps=steps, project=lambda xp: xp.clamp_(0, 1))
    assert torch.allclose(res.adversarial, xp, atol=1e-7)


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


MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


def normalised_model(classes: int = 4, size: int = 6, seed: int = 0):
    """A linear classifier ``net`` of normalised images, and the same as a pixel classifier."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * size * size, classes))
    model = PixelClassifier(net, MEAN, STD).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return net, model


def test_pixel_space_alpha_and_lr_are_the_normalised_ones_divided_and_multiplied_by_std():
    alpha, lr, eps = normalised_to_pixel(0.001, 0.01, STD, torch.zeros(3, 1, 1))
    assert torch.allclose(alpha.flatten(), torch.tensor([0.005, 0.004, 0.001 / 0.3]))
    assert torch.allclose(lr.flatten(), torch.tensor([0.002, 0.0025, 0.003]))
    assert torch.allclose(eps.flatten(), 1e-8 / torch.tensor(STD))
    assert normalised_to_pixel(0.001, 0.01, None, torch.zeros(1)) == (0.001, 0.01, 1e-8)


def test_l1_adam_with_std_is_torch_adam_on_the_normalised_image():
    """The assignment's loss alpha*||u'-u||_1 + CE over u = (x - mean) / std, with torch.optim.Adam,
    gives the same iterates as the pixel-space attack given std (boxes matched)."""
    net, model = normalised_model()
    x = tiny_image()
    target = other_targets(model, x, 1)
    alpha, lr, steps = 0.05, 1e-3, 4
    res = l1_adam_attack(model, x, target, alpha=alpha, lr=lr, max_iter=steps, std=STD)
    assert not res.success.any()
    m, s = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    u0 = (x - m) / s

    def loss(u):
        return alpha * (u - u0).abs().sum() + nn.functional.cross_entropy(net(u), target, reduction="sum")

    def box(u):  # the valid-pixel box [0, 1], in normalised units
        u.copy_(torch.maximum(torch.minimum(u, (1 - m) / s), -m / s))

    u = adam_reference(u0[None], loss, lr=lr, steps=steps, project=box)
    assert torch.allclose(res.adversarial, u * s + m, atol=1e-6)
    # Without std the same numbers would be a different (pixel-space) method.
    plain = l1_adam_attack(model, x, target, alpha=alpha, lr=lr, max_iter=steps)
    assert not torch.allclose(plain.adversarial, res.adversarial, atol=1e-6)


def test_l1_ista_with_std_soft_thresholds_in_the_normalised_space():
    """One ISTA step from x: with std, exactly ISTA on u (Adam's first step has m/sqrt(v) = sign)."""
    net, model = normalised_model()
    x = tiny_image()
    target = other_targets(model, x, 1)
    alpha, lr = 0.5, 0.02
    res = l1_ista_attack(model, x, target, alpha=alpha, lr=lr, max_iter=1, std=STD)
    m, s = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    u0 = ((x - m) / s)[None].requires_grad_(True)
    (g,) = torch.autograd.grad(nn.functional.cross_entropy(net(u0), target, reduction="sum"), u0)
    denom = g.abs() + 1e-8  # sqrt(v_hat) after one step
    z = -lr * g / denom
    delta_u = soft_threshold(z, lr * alpha / denom)
    expected = (x + delta_u[0] * s).clamp(0, 1)
    assert torch.allclose(res.adversarial[0], expected, atol=1e-6)


def test_margin_is_positive_exactly_for_the_predicted_class():
    logits = torch.tensor([[1.0, 3.0, 2.0], [0.0, -1.0, 5.0]])
    assert margin(logits, torch.tensor([1, 1])).tolist() == [1.0, -6.0]


def test_fgsm_linearisation_is_exact_for_a_linear_model_and_beats_random_steps():
    """For a linear model the first-order prediction is the real change, unless another class
    overtakes the runner-up, which can only make the real margin smaller; the FGSM step raises
    the target margin far more than random sign steps of the same size."""
    model, x = tiny_model(), tiny_image()
    targets = other_targets(model, x)
    clean = int(predict(model, x[None]).argmax())
    gen = torch.Generator().manual_seed(0)
    lin = fgsm_linearisation(model, x, targets, clean, eps=4 / 255, draws=30, generator=gen)
    assert (lin.actual <= lin.predicted + 1e-4).all()
    assert torch.isclose(lin.actual, lin.predicted, atol=1e-4).any()
    assert (lin.actual > lin.random_mean + 2 * lin.random_sd).all()
    assert (
        lin.clean_actual.shape == lin.clean_random_mean.shape == (3,)
    )  # towards t need not be away from clean
    step = fgsm_attack(model, x, targets, eps=4 / 255)
    reached = margin(model(step.adversarial), targets) > 0
    assert torch.equal(reached, lin.margin + lin.actual > 0)  # the same step as the attack


def test_shuffled_perturbation_keeps_nothing_but_the_values():
    model, x = tiny_model(), tiny_image()
    targets = other_targets(model, x, 1)
    res = l1_adam_attack(model, x, targets, lr=0.05, max_iter=200)
    assert res.success.all()
    gen = torch.Generator().manual_seed(0)
    clean = int(predict(model, x[None]).argmax())
    assert shuffled_success(model, x, x, clean, gen)  # no perturbation: the clean class stays
    outcomes = {shuffled_success(model, x, res.adversarial[0], int(targets[0]), gen) for _ in range(5)}
    assert outcomes <= {True, False}


def test_bf16_autocast_runs_the_forward_pass_in_bf16_and_keeps_the_gradient_fp32():
    seen: list[torch.dtype] = []
    model = tiny_model()
    model.model[1].register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    image = tiny_image()
    targets = other_targets(model, image)
    full = fgsm_attack(model, image, targets, eps=8.0)
    model.precision = "bf16"
    half = fgsm_attack(model, image, targets, eps=8.0)
    assert torch.bfloat16 in seen and torch.float32 in seen
    assert model(image[None]).dtype == torch.float32  # logits and loss stay fp32
    # one signed step: bf16 rounding may flip the sign of a few near-zero gradient entries only
    agree = (half.adversarial == full.adversarial).float().mean()
    assert agree > 0.9, agree


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16"):
        PixelClassifier(nn.Identity(), (0.5,), (0.25,), precision="fp8")
