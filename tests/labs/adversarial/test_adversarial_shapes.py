"""The offline stand-in: generated shapes, a training loop that reports every batch, one stand-in
per seed (its data, weights and the shapes attacked), and its verified store in the lab's cache."""

from __future__ import annotations

import os

import pytest
import torch
from labrunner.labs.adversarial import AdversarialConfig, shapes
from labrunner.labs.adversarial.model import stand_in_settings

from labrunner.records.files import MANIFEST, manifest_problem
from labrunner.testing import one_torch_thread  # noqa: F401  (fixture)

#: Two batches of one epoch: seconds of training become milliseconds.
TINY = {"train_size": 24, "test_size": 60, "epochs": 1, "batch_size": 16}


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.slow  # a few seconds on a busy machine
@pytest.mark.usefixtures("one_torch_thread")
def test_training_reports_progress_per_batch():
    settings = shapes.TrainSettings(train_size=40, test_size=10, epochs=2, batch_size=16)
    calls = []
    shapes.train_shapes_cnn(settings, progress=lambda epoch, loss: calls.append((epoch, loss)))
    assert shapes.train_steps(settings) == 6 == len(calls)  # 3 batches (16, 16, 8) per epoch
    assert [epoch for epoch, _ in calls] == [0, 0, 0, 1, 1, 1]
    assert all(loss > 0 for _, loss in calls)


def test_generated_shapes_are_balanced_and_on_the_8bit_grid():
    images, labels = shapes.generate_shapes(12, size=16, seed=3)
    assert images.shape == (12, 16, 16, 3) and images.dtype.name == "uint8"
    assert sorted(labels.tolist()) == sorted(list(range(6)) * 2)


@pytest.mark.usefixtures("one_torch_thread")
def test_the_seed_changes_the_stand_in_and_the_attacked_shapes_and_the_same_seed_repeats_them():
    seed0, seed1 = (shapes.TrainSettings(**TINY, seed=s) for s in (0, 1))
    first, again, other = (shapes.train_shapes_cnn(s) for s in (seed0, seed0, seed1))
    assert same_weights(first, again)
    assert not same_weights(first, other)
    # The held-out set and the shape attacked per class follow the seed too.
    attacked = [shapes.attacked_shapes(s) for s in (seed0, seed0, seed1)]
    assert [name for name, _ in attacked[0]] == list(shapes.CLASSES)
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(attacked[0], attacked[1], strict=True))
    assert not any(torch.equal(a, b) for (_, a), (_, b) in zip(attacked[0], attacked[2], strict=True))
    assert (shapes.held_out_set(seed0)[0] != shapes.held_out_set(seed1)[0]).any()


def test_the_lab_trains_its_stand_in_with_the_run_seed_and_only_the_stand_in_settings():
    cfg = AdversarialConfig()
    assert stand_in_settings(cfg, 3).seed == 3
    assert stand_in_settings(cfg, 3).key() != stand_in_settings(cfg, 4).key()
    # Attack settings do not touch the stand-in: a rerun with another alpha reuses it.
    attack_only = AdversarialConfig(alpha=0.5, max_iter=7, precision="bf16", fallback_all_pairs=True)
    assert stand_in_settings(attack_only, 3).key() == stand_in_settings(cfg, 3).key()
    assert stand_in_settings(AdversarialConfig(fallback_epochs=2), 3).key() != stand_in_settings(cfg, 3).key()


@pytest.mark.usefixtures("one_torch_thread")
def test_a_stored_stand_in_is_reused_verified_and_a_tampered_one_is_trained_again(tmp_path):
    settings = shapes.TrainSettings(**TINY, seed=5)
    warnings: list[str] = []
    model, cached = shapes.load_or_train(settings, tmp_path, warn=warnings.append)
    folder = shapes.stored_model_dir(settings, tmp_path)
    assert not cached and manifest_problem(folder, MANIFEST) == ""
    weights = folder / shapes.WEIGHTS_FILE
    stamp = weights.stat().st_mtime_ns
    assert not os.access(weights, os.W_OK) or os.geteuid() == 0  # stored read-only

    reused, cached = shapes.load_or_train(settings, tmp_path, warn=warnings.append)
    assert cached and same_weights(reused, model) and weights.stat().st_mtime_ns == stamp

    # Valid weights of another stand-in written over the stored ones: torch.load would take
    # them; the manifest does not, so they are discarded and the stand-in is trained again.
    impostor = shapes.train_shapes_cnn(shapes.TrainSettings(**TINY, seed=6))
    os.chmod(weights, 0o644)
    torch.save(impostor.state_dict(), weights)
    retrained, cached = shapes.load_or_train(settings, tmp_path, warn=warnings.append)
    assert not cached and same_weights(retrained, model) and not same_weights(retrained, impostor)
    assert len(warnings) == 1 and "no longer matches its sha256" in warnings[0]
    assert manifest_problem(folder, MANIFEST) == ""

    # A whole stored folder of other settings moved under this key: its own manifest holds,
    # the settings it records do not.
    other = shapes.TrainSettings(**TINY, seed=6)
    shapes.load_or_train(other, tmp_path)
    shapes.discard(folder)
    os.replace(shapes.stored_model_dir(other, tmp_path), folder)
    again, cached = shapes.load_or_train(settings, tmp_path, warn=warnings.append)
    assert not cached and same_weights(again, model)
    assert len(warnings) == 2 and "records other settings" in warnings[1]
