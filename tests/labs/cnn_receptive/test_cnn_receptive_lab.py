"""The whole lab in the smoke profile, a check that fails when it should, and the
measurement helpers (probe vs naive gradient, effective-field statistics)."""

from __future__ import annotations

import torch
from labrunner.labs.cnn_receptive import ReceptiveFieldLab, experiment
from labrunner.labs.cnn_receptive.networks import assignment_network
from labrunner.labs.cnn_receptive.receptive import receptive_fields, spatial_layers
from labrunner.labs.cnn_receptive.verify import centred_mass_width, gaussian_fit, naive_measurements

from labrunner.testing import assert_checks_pass, assert_metric


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
    assert_metric(result, "erf_ratio_resnet18", at_most=0.5)
    titles = [ex.title for ex in result.exercises]
    assert len(titles) == 5 and titles[0].startswith("1.")
    figures = [r["path"] for ex in result.exercises for r in ex.records if r["kind"] == "figure"]
    assert figures == ["figures/effective_receptive_field.png", "figures/receptive_fields_grace_hopper.png"]
    assert "109..119" in result.exercises[0].answer and "89..139" in result.exercises[0].answer


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
    assert centred_mass_width(g[:, None] * g[None, :], (40, 40)) == 27
    flat = torch.ones(81, dtype=torch.float64)
    assert gaussian_fit(flat)[2] < 0.9
