"""The whole lab: offline on the stand-in CNN, and on AlexNet with generated weights placed in the
torch hub cache, with an image served by a local HTTP server (nothing touches the network)."""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from labrunner.labs.adversarial import AdversarialLab, images

from labrunner.testing import assert_checks_pass, assert_metric, run_lab_in, serve_folder

TINY = {"attack_images": 1, "targets_per_image": 1, "max_iter": 5, "sparsity_alphas": ()}


@pytest.fixture
def run_adv(tmp_path, monkeypatch, adversarial_cache):
    """Run the lab (smoke profile plus overrides) with the session's shared cache."""
    monkeypatch.setenv("LABRUNNER_CACHE_DIR", str(adversarial_cache))

    def run(seed: int = 0, **overrides):
        return run_lab_in(AdversarialLab(), tmp_path / "run", profile="smoke", seed=seed, **overrides)

    return run


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    """An empty, private torch hub cache."""
    home = tmp_path / "torch"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


@pytest.fixture
def png_server(tmp_path):
    """Serve a generated PNG on 127.0.0.1; yields (url, list of requested paths)."""
    from PIL import Image

    root = tmp_path / "served"
    root.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)).save(root / "noise.png")
    with serve_folder(root) as (url, requests):
        yield f"{url}/noise.png", requests


def assert_math_converts(result) -> None:
    """Every formula in the notes, questions and answers becomes MathML in the report."""
    from labrunner.report.mdmath import markdown_to_html

    texts = list(result.notes) + [t for ex in result.exercises for t in (ex.question, ex.answer)]
    for text in texts:
        html = str(markdown_to_html(text))
        assert "math-error" not in html, html[html.index("math-error") - 20 :][:300]
        assert not re.search(r"\bnan\b", text)  # no undefined number reaches the prose


@pytest.mark.slow
def test_offline_fallback_passes_says_so_and_caches_the_cnn(
    smoke_run, run_adv, torch_home, adversarial_cache
):
    result = smoke_run.result
    assert_checks_pass(result)
    assert result.status == "passed"
    first = result.notes[0]
    assert first.startswith("**Model: not AlexNet, but an offline stand-in**")
    assert "alexnet-owt-7be5be79.pth" in first
    assert all(ex.fidelity == "stand-in" for ex in result.exercises)
    # the written-out AlexNet is the assignment's architecture, whatever weights stand in
    assert [ex.derived_fidelity for ex in result.exercises] == ["partly stand-in"] + ["stand-in"] * 4
    assert_metric(result, "fallback_test_accuracy", at_least=0.95)
    assert_metric(result, "alexnet_parameters", at_least=61_100_840, at_most=61_100_840)
    assert_metric(result, "l1_adam_success_rate", at_least=5 / 6)
    for method in ("fgsm", "pgd", "l1_ista"):
        assert_metric(result, f"{method}_success_rate", at_least=0, at_most=1)
        assert_metric(result, f"{method}_roundtrip_success_rate", at_least=0, at_most=1)
    assert_metric(result, "l1_adam_roundtrip_success_rate", at_least=0, at_most=1)
    assert_metric(result, "png_round_trip_max_change", at_most=0.5 + 1e-3)
    # The FGSM step measured against its linearisation and against random steps.
    assert result.metrics["fgsm_margin_predicted"] > result.metrics["fgsm_margin_random"]
    claims = {c.name: c for ex in result.exercises for c in ex.claims}
    assert claims["fgsm_step_towards_target"].holds
    assert "random sign steps" in claims["fgsm_step_towards_target"].baseline
    titles = [ex.title for ex in result.exercises]
    assert len(titles) == 5 and titles[1].startswith("2.")
    assert all(ex.answer for ex in result.exercises)
    assert_math_converts(result)
    # The assignment's six examples were written as PNG files (and classified again from them).
    pngs = list((smoke_run.out / "adversarial").glob("adversarial-*.png"))
    assert len(pngs) == 6 and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)

    # A second run with other attack settings loads the trained CNN from the cache instead of
    # training it again.
    models = list(adversarial_cache.rglob("shapes_cnn-*/weights.pt"))
    assert len(models) == 1
    stamp = models[0].stat().st_mtime_ns
    second = run_adv(**TINY)
    assert "loaded from the cache" in second.notes[0]
    assert models[0].stat().st_mtime_ns == stamp
    assert second.metrics["fallback_test_accuracy"] == result.metrics["fallback_test_accuracy"]
    assert second.metrics["top1_probability_first_image"] == result.metrics["top1_probability_first_image"]

    # Another seed trains its own stand-in, tests it on its own held-out shapes, and attacks
    # other shapes: a seed sweep replicates the lab instead of repeating it.
    third = run_adv(**TINY, seed=1)
    assert "trained in this run" in third.notes[0] and "seed (1)" in third.notes[0]
    assert len(list(adversarial_cache.rglob("shapes_cnn-*/weights.pt"))) == 2
    assert third.metrics["top1_probability_first_image"] != result.metrics["top1_probability_first_image"]
    assert third.metrics["fallback_test_accuracy"] >= 0.95


def save_generated_alexnet(checkpoints: Path) -> Path:
    """A random AlexNet state dict named as torchvision names weights: alexnet-owt-<sha256[:8]>.pth."""
    import torchvision

    torch.manual_seed(123)
    buf = io.BytesIO()
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), buf)
    data = buf.getvalue()
    checkpoints.mkdir(parents=True, exist_ok=True)
    path = checkpoints / f"alexnet-owt-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    path.write_bytes(data)
    return path


@pytest.mark.slow
def test_weights_in_the_hub_cache_mean_alexnet(run_lab, torch_home, png_server):
    url, requests = png_server
    path = save_generated_alexnet(torch_home / "hub" / "checkpoints")
    # A broken download under the official name is skipped in favour of the valid file.
    (path.parent / "alexnet-owt-7be5be79.pth").write_bytes(b"truncated")
    result = run_lab(
        AdversarialLab(),
        profile="smoke",
        images=[url],
        attack_images=1,
        targets_per_image=1,
        max_iter=2,
        sparsity_alphas=[],
    )
    assert result.error is None, result.error
    assert result.notes[0].startswith("**Model: AlexNet**")
    assert f"`{path.name}` (hub cache, sha256 prefix checked)" in result.notes[0]
    assert str(path.parent) not in result.notes[0]  # no local folder in the report
    assert "torchvision's ImageNet weights" not in result.notes[0]  # only the official file is that
    assert "fallback_test_accuracy" not in result.metrics
    checks = {c.name: c for c in result.checks}
    assert checks["own_alexnet_equals_torchvision"].passed
    assert result.metrics["alexnet_max_abs_diff_vs_torchvision"] == 0.0
    assert checks["alexnet_parameter_count"].passed
    table = next(r for r in result.exercises[0].records if r.kind == "table")
    assert table.columns == ["image", "top-1", "top-2", "top-3", "top-4", "top-5"]
    assert len(table.rows) == 1 and table.rows[0][0] == "noise"  # the served image
    assert requests == ["/noise.png"]


@pytest.mark.slow
def test_hub_file_with_the_wrong_hash_is_not_used(run_adv, torch_home):
    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "alexnet-owt-7be5be79.pth").write_bytes(b"truncated download")
    result = run_adv(**TINY)
    assert result.notes[0].startswith("**Model: not AlexNet")
    assert "does not start with 7be5be79" in result.notes[0]


@pytest.mark.slow
def test_a_bad_weights_path_is_an_error_not_a_silent_fallback(run_lab, tmp_path):
    bad = tmp_path / "mine.pth"
    torch.save({"w": torch.zeros(1)}, bad)
    result = run_lab(AdversarialLab(), profile="smoke", weights=str(bad))
    assert result.status == "error"
    assert "not an AlexNet state dict" in result.error.message


def test_url_images_are_fetched_once(png_server, tmp_path):
    url, requests = png_server
    pre = images.Preprocess(resize=36, crop=32, mean=(0.5,) * 3, std=(0.25,) * 3)
    for _ in range(2):
        (im,) = images.load_images([url], pre, tmp_path / "cache")
    assert requests == ["/noise.png"]
    assert im.pixels.shape == (3, 32, 32)
    assert torch.equal(im.pixels, (im.pixels * 255).round() / 255)  # on the 8-bit grid


def test_default_images_without_scikit_image(monkeypatch):
    monkeypatch.setattr(images, "skimage_available", lambda: False)
    assert images.default_sources() == ["matplotlib:grace_hopper.jpg"]
    monkeypatch.undo()
    if images.skimage_available():
        assert images.default_sources()[1:] == [f"skimage:{n}" for n in images.SKIMAGE_PHOTOS]


def test_unreadable_sources_raise_data_errors(tmp_path):
    from labrunner.data import DataError

    with pytest.raises(DataError, match="scikit-image photos are"):
        images.read_source("skimage:moon", tmp_path)
    with pytest.raises(DataError, match="cannot read image"):
        images.read_source(str(tmp_path / "missing.jpg"), tmp_path)


@pytest.mark.slow
def test_no_success_at_all_is_reported_not_crashed(run_adv, torch_home):
    """With zero iterations nothing reaches a target: the lab fails its check, writes every
    answer (medians over no successes are undefined), and raises nothing."""
    result = run_adv(attack_images=1, targets_per_image=2, max_iter=0, sparsity_alphas=(0.1,))
    assert result.error is None, result.error
    assert result.status == "failed"
    failed = [c.name for c in result.checks if not c.passed]
    assert failed == ["l1_adam_targets_reached"]
    assert result.metrics["l1_adam_success_rate"] == 0
    assert result.metrics["pairs_reached_by_all_iterative_methods"] == 0
    assert all(ex.answer for ex in result.exercises)
    assert "cannot be compared fairly" in result.exercises[4].answer
    assert_math_converts(result)


def test_url_reachable_against_a_local_server(png_server):
    from labrunner.labs.adversarial.alexnet import url_reachable

    url, _ = png_server
    assert url_reachable(url, timeout=2.0)
    assert not url_reachable(url.replace("noise.png", "missing.png"), timeout=2.0)


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("random_draws", 1, "adversarial.random_draws must be >= 2"),
        ("attack_images", 0, "adversarial.attack_images must be >= 1"),
        ("lr", 0.0, "adversarial.lr must be > 0"),
        ("sparsity_alphas", (0.1, -1.0), "adversarial.sparsity_alphas"),
    ],
)
def test_settings_the_lab_cannot_run_with_are_refused_in_one_line(setting, value, message):
    from labrunner.base.errors import UsageError
    from labrunner.settings.labconfig import resolve_lab_config

    with pytest.raises(UsageError, match=re.escape(message)) as info:
        resolve_lab_config(AdversarialLab(), "smoke", [("test overrides", {setting: value})])
    assert "\n" not in str(info.value)
    resolve_lab_config(AdversarialLab(), "smoke", [("test overrides", {"random_draws": 2})])
