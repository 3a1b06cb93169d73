"""The whole lab in the smoke profile, a check that fails when it should, and the
measurement helpers (probe vs naive gradient, effective-field statistics)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from labrunner.labs.cnn_receptive import ReceptiveFieldLab, experiment
from labrunner.labs.cnn_receptive.erf import (
    Spread,
    bootstrap_indices,
    centred_mass_width,
    flat_fit_r2,
    gaussian_fit,
    jackknife_indices,
    jackknife_se,
)
from labrunner.labs.cnn_receptive.networks import assignment_network, hub_weights
from labrunner.labs.cnn_receptive.receptive import receptive_fields, spatial_layers
from labrunner.labs.cnn_receptive.verify import naive_measurements

from labrunner.testing import assert_checks_pass, assert_metric


@pytest.mark.slow
def test_smoke_run_passes_with_the_assignment_values(run_lab):
    result = run_lab(ReceptiveFieldLab(), profile="smoke")
    assert_checks_pass(result)
    assert result.status == "passed"
    assert [assert_metric(result, f"assignment_{n}_rf") for n in ("conv1", "pool1", "conv2")] == [11, 19, 51]
    assert assert_metric(result, "alexnet_rf") == 195
    assert assert_metric(result, "rf_vgg16") == 212
    assert assert_metric(result, "rf_resnet18") == 435
    # max-pooling sends the gradient of pool1's centre unit to a single conv1 unit
    assert assert_metric(result, "naive_pool1_nonzero_pixels") < 19 * 19
    # each effective field is measured on an input that holds the whole theoretical box
    assert assert_metric(result, "erf_input_px_alexnet") == 256
    assert assert_metric(result, "erf_input_px_resnet18") == 464
    claims = {c.name: c for ex in result.exercises for c in ex.claims}
    assert claims["erf_smaller_than_box_resnet18"].holds and claims["erf_mass_inside_box"].holds
    assert claims["alexnet_border_sees_less"].holds and not claims["alexnet_rf_exceeds_image"].holds
    assert claims["matches_worked_answer"].holds
    assert all(c.evidence and c.baseline for c in claims.values())
    erf, boxes, more = result.exercises[2:]
    trained = hub_weights("alexnet") is not None and hub_weights("resnet18") is not None
    kinds = [ex.derived_fidelity for ex in result.exercises]
    if trained:
        assert kinds == ["assignment"] * 5
    else:
        # exercise 3's exact verification is the assignment's; its effective field is a stand-in,
        # and so are the answers of exercises 4 and 5 that read it
        assert kinds == ["assignment", "assignment", "partly stand-in", "partly stand-in", "partly stand-in"]
        part = {c.name: erf.fidelity_of(c)[0] for c in [*erf.checks, *erf.claims]}
        assert (
            part["assignment_computed_equals_gradient"]
            == part["computed_boxes_match_gradient"]
            == "assignment"
        )
        assert part["erf_mass_inside_box"] == "assignment"
        assert part["erf_smaller_than_box_alexnet"] == part["erf_share_alexnet_larger"] == "stand-in"
        figure = next(r for r in erf.records if r.kind == "figure")
        assert "random initialisations" in erf.fidelity_of(figure)[1] and "stand-in" in erf.answer
        assert [b.claim for b in boxes.borrowed] == ["erf_smaller_than_box_alexnet"]
        assert "erf_smaller_than_box_resnet18" in [b.claim for b in more.borrowed]
    assert "87.1 %" not in result.exercises[1].answer and "57.6 %" in result.exercises[1].answer
    titles = [ex.title for ex in result.exercises]
    assert len(titles) == 5 and titles[0].startswith("1.")
    figures = [r.path for ex in result.exercises for r in ex.records if r.kind == "figure"]
    assert figures == ["figures/effective_receptive_field.png", "figures/receptive_fields_grace_hopper.png"]
    assert "109..119" in result.exercises[0].answer and "89..139" in result.exercises[0].answer


@pytest.mark.slow
def test_a_wrong_worked_answer_fails_its_check(run_lab, monkeypatch):
    """Only exercise 1 runs (the others are stubbed out), against a deliberately wrong answer."""
    wrong = dict(experiment.ASSIGNMENT_ANSWER, conv2=(27, 8, 49, (90, 138)))
    monkeypatch.setattr(experiment, "ASSIGNMENT_ANSWER", wrong)
    for name in (
        "alexnet_table",
        "verify_and_measure_effective_field",
        "boxes_on_a_real_image",
        "more_networks",
    ):
        monkeypatch.setattr(experiment, name, lambda *args, **kwargs: None)
    result = run_lab(ReceptiveFieldLab(), profile="smoke")
    assert result.status == "failed"
    failed = {c.name: c for c in result.checks if not c.passed}
    assert set(failed) == {"conv2_n_j_r", "conv2_centre_box"}
    assert failed["conv2_centre_box"].actual == [89, 139]
    assert "differ from the worked answer" in result.exercises[0].answer
    assert not {c.name: c.holds for c in result.exercises[0].claims}["matches_worked_answer"]


@pytest.mark.slow
def test_naive_gradient_misses_part_of_the_field_and_the_probe_does_not():
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    table = spatial_layers(receptive_fields(assignment_network(), 227))
    rows = naive_measurements(table, gen)
    get = {(r["variant"], r["layer"]): r for r in rows}
    assert get[("as built (ReLU, max-pool)", "pool1")]["non-zero pixels"] == 121  # one conv1 unit
    assert all(r["equals computed"] == "yes" for r in rows if r["variant"].startswith("probe"))


def test_effective_field_statistics_on_a_gaussian():
    x = torch.arange(81, dtype=torch.float64)
    g = torch.exp(-0.5 * ((x - 40) / 6) ** 2)
    mean, std, r2 = gaussian_fit(g)
    assert abs(mean - 40) < 1e-9 and abs(std - 6) < 1e-6 and r2 > 0.999999
    # a 2-D Gaussian holds 95 % of its mass in a square of half-side ~2.24 sigma
    assert abs(centred_mass_width(g[:, None] * g[None, :], (40, 40)) - 2 * 2.236 * 6) < 0.3
    flat = torch.ones(81, dtype=torch.float64)
    assert gaussian_fit(flat)[2] < 0.9
    step = torch.zeros(81, dtype=torch.float64)
    step[10:51] = 1.0
    assert flat_fit_r2(step.numpy(), 10, 50) == 1.0 and flat_fit_r2(g.numpy(), 10, 70) < 0.5
    assert flat_fit_r2(flat.numpy(), 0, 80) == 1.0  # constant: a perfect fit, not NaN


def test_uniform_box_baseline_and_bootstrap_indices():
    box = torch.zeros(300, 300, dtype=torch.float64)
    box[10:205, 10:205] = 1.0  # r = 195, evenly used: 95 % of the mass in sqrt(0.95) r
    assert abs(centred_mass_width(box, (107, 107)) - 195 * 0.95**0.5) < 0.1
    assert centred_mass_width(box, (107, 107), 1.0) == 195
    idx = bootstrap_indices(4, 3, np.random.default_rng(0), resamples=50)
    assert idx.shape == (50, 12) and idx.min() >= 0 and idx.max() <= 11
    # the inputs drawn for a slot always belong to the initialisation drawn for it
    assert np.unique(idx.reshape(50, 4, 3) // 3, axis=2).shape[2] == 1


def test_the_interval_over_initialisations_covers_what_another_seed_measures():
    """Four initialisations per seed, each with its own offset (the between-seed spread),
    and inputs within each: the jackknife-t interval over the initialisations covers
    another seed's measurement about 95 % of the time; the two-stage bootstrap it
    replaces (percentiles over four initialisations) fell well short."""
    rng = np.random.default_rng(0)
    inits, inputs = 4, 4
    grid = np.arange(inits * inputs).reshape(inits, inputs)
    assert jackknife_indices(inits, inputs).tolist()[0] == grid[1:].ravel().tolist()

    def seed() -> np.ndarray:
        return (rng.normal(0, 1, (inits, 1)) + rng.normal(0, 0.3, (inits, inputs))).ravel()

    covered_t = covered_boot = 0
    trials = 300
    for _ in range(trials):
        x, other = seed(), seed().mean()
        reps = np.array([x[idx].mean() for idx in jackknife_indices(inits, inputs)])
        lo, hi = Spread(float(x.mean()), jackknife_se(reps), inits - 1).prediction
        covered_t += lo <= other <= hi
        boot = np.array([x[idx].mean() for idx in bootstrap_indices(inits, inputs, rng, 200)])
        b_lo, b_hi = np.percentile(boot, [2.5, 97.5])
        covered_boot += b_lo <= other <= b_hi
    assert covered_t / trials >= 0.93
    assert covered_boot / trials < 0.8


@pytest.mark.parametrize(
    "values, message",
    [
        ({"erf_samples": 1}, "erf_samples"),
        ({"erf_samples": 4, "erf_initialisations": 8}, "erf_samples"),
        ({"erf_initialisations": 0}, "erf_initialisations"),
        ({"alexnet_input": 64}, "alexnet_input"),
        ({"models": ()}, "models"),
    ],
)
def test_settings_the_lab_cannot_run_with_are_refused(values, message):
    from labrunner.base.errors import UsageError
    from labrunner.settings.labconfig import resolve_lab_config

    with pytest.raises(UsageError, match=message):
        resolve_lab_config(ReceptiveFieldLab(), "quick", [("--set", values)])
    for profile in ("smoke", "quick", "full"):
        resolve_lab_config(ReceptiveFieldLab(), profile, [])  # every profile is runnable
