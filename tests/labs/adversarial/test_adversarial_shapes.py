"""The offline stand-in: generated shapes, and a training loop that reports every batch."""

from __future__ import annotations

import pytest
from labrunner.labs.adversarial import shapes

from labrunner.testing import one_torch_thread  # noqa: F401  (fixture)


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
