"""Fixtures shared by the adversarial lab's tests: one lab cache for the whole session, so
the offline stand-in CNN is trained once, and one smoke run whose answer templates and
values the template tests render again with every claim flipped."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def uniform_run() -> Callable[[str, float], Any]:
    """``uniform_run(key, levels)``: a method's run of 8 successful examples (3 x 4 x 4
    images) whose perturbation adds ``levels`` grey levels to every value."""
    import torch
    from labrunner.labs.adversarial.records import AttackExample, MethodRun

    def make(key: str, levels: float) -> MethodRun:
        run = MethodRun(key, key)
        for i in range(8):
            original = torch.full((3, 4, 4), 0.1 + 0.01 * i)
            adversarial = original + levels / 255
            run.examples.append(
                AttackExample(
                    f"im{i}", original, 1, adversarial, adversarial, True, True, 0.9, 0.9, 1, 1, 0.9, 3
                )
            )
        return run

    return make


@pytest.fixture(scope="session")
def adversarial_cache(tmp_path_factory) -> Path:
    """A lab cache shared by every test of this lab (the stand-in CNN is trained once)."""
    return tmp_path_factory.mktemp("adversarial-cache")


@dataclass
class Rendered:
    """One ``ex.answer`` call of a run: the template, its values, the claims it saw."""

    exercise: str
    template: str
    values: dict[str, Any]
    claims: dict[str, bool]
    text: str


@dataclass
class SmokeRun:
    result: Any
    out: Path
    answers: list[Rendered] = field(default_factory=list)


@pytest.fixture(scope="session")
def smoke_run(adversarial_cache, tmp_path_factory) -> SmokeRun:
    """The lab's smoke profile, offline (no weights: the stand-in), run once per session;
    every answer template is kept with the values and claims it was rendered with."""
    from labrunner.labs.adversarial import AdversarialLab

    from labrunner.authoring.context import ExerciseRecorder
    from labrunner.testing import run_lab_in

    out = tmp_path_factory.mktemp("adversarial-smoke")
    answers: list[Rendered] = []
    original = ExerciseRecorder.answer

    def keep(self, template: str, **values: Any) -> str:
        text = original(self, template, **values)
        shown = {"cfg": self._lab.config, **values}  # as the recorder passes it
        answers.append(Rendered(self.exercise.title, template, shown, dict(self._lab.claims), text))
        return text

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABRUNNER_CACHE_DIR", str(adversarial_cache))
        mp.setenv("TORCH_HOME", str(out / "torch"))  # an empty hub cache: the stand-in
        mp.setattr(ExerciseRecorder, "answer", keep)
        result = run_lab_in(AdversarialLab(), out / "run", profile="smoke")
    return SmokeRun(result, out / "run", answers)
