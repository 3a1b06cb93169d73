"""The lab, exercise by exercise: choose the model, classify, attack, compare, answer.

Each exercise function opens its exercise, measures (a function of the exercise's module that
needs no context and returns a frozen dataclass), records what it measured with the same
module, and answers; it returns what later exercises use. The maths is in :mod:`.attacks`, the
measurements behind the claims in :mod:`.evidence`, the per-example records in :mod:`.records`,
the attack plan and the methods in :mod:`.methods`, the model choice in :mod:`.model` (AlexNet
in :mod:`.alexnet`, the stand-in in :mod:`.shapes`), the images in :mod:`.images` and the
figures in :mod:`.figures`.
"""

from __future__ import annotations

from typing import Any

import torch

from labrunner import exercise_function

from . import baselines, classification, smallest, sparsity, targeted, text
from .images import LabImage
from .methods import PlannedAttack, plan_attacks
from .model import Model, choose_model, model_note
from .records import MethodRun


def run_experiment(ctx) -> None:
    """The lab: the model first (and the note saying which), then the five exercises."""
    model = choose_model(ctx)
    ctx.note(text.MODEL_NOTE, **model_note(model), seed=ctx.seed)
    model.net.precision = ctx.config.precision
    net = model.net.to(ctx.device).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    images, top_classes = implement_alexnet_and_classify(ctx, model, net)
    plan = plan_attacks(ctx.config, model, images, top_classes, ctx.rng)
    adam = targeted_adversarial_examples(ctx, model, net, plan)
    runs, summaries = compare_with_standard_attacks(ctx, model, net, plan, adam)
    sparser = sparse_perturbations(ctx, model, net, plan, runs, summaries)
    smallest_visible_change(ctx, model, runs, summaries, sparser)


def fidelity(model: Model) -> dict[str, str]:
    """The ``ctx.exercise`` arguments saying whether the exercise ran on AlexNet or the stand-in."""
    if not model.is_stand_in:
        return {}
    return {
        "fidelity": "stand-in",
        # the reason in full is the lab's note, said once; each exercise points to it
        "reason": "the offline stand-in CNN on generated shapes, not AlexNet on photos (the lab's note says why)",
    }


def implement_alexnet_and_classify(ctx, model: Model, net) -> tuple[list[LabImage], torch.Tensor]:
    """Exercise 1: check the written-out AlexNet, classify every image; returns the images
    and their top-k class indices (also when a stub stopped the exercise: not decorated with
    ``exercise_function``, it goes on after its with block)."""
    cfg = ctx.config
    with ctx.exercise("1. AlexNet, written out, and top-5 classification", text.Q1, **fidelity(model)) as ex:
        # Classified first: the attacks need the images and their classes even when the
        # written-out AlexNet is a stub (the student version runs on the stand-in).
        classified = classification.classify_images(
            cfg, model, net, ctx.device, ctx.seed, ctx.cache_dir / "images"
        )
        written_out = classification.compare_alexnet(model.state_dict, ctx.seed)
        classification.record_classification(ex, classified, written_out, model, cfg, ctx.seed)
        # STUDENT ANSWER
        ex.answer(text.A1, **classification.answer_values(classified, written_out, model))
    return classified.images, classified.top_i


@exercise_function
def targeted_adversarial_examples(ctx, model: Model, net, plan: list[PlannedAttack]) -> MethodRun:
    """Exercise 2: the assignment's method, verified after the 8-bit round trip and against
    the same perturbations shuffled over the image."""
    title = "2. Targeted adversarial examples: Adam on an L1 penalty"
    with ctx.exercise(title, text.Q2, **fidelity(model)) as ex:
        measured = targeted.measure_targeted(ctx.config, model, net, plan, ctx.device, ctx.seed, ctx.progress)
        targeted.record_targeted(ctx, ex, measured, model.categories)
        # STUDENT ANSWER
        ex.answer(text.A2, **targeted.answer_values(measured, ctx.config, model.categories))
    return measured.adam


@exercise_function(values=2)
def compare_with_standard_attacks(
    ctx, model: Model, net, plan: list[PlannedAttack], adam: MethodRun
) -> tuple[dict[str, MethodRun], dict[str, dict[str, float]]]:
    """Exercise 3: FGSM, PGD and the ISTA variant on the same pairs; one table of all four,
    and what FGSM's step does against its linear approximation and random steps."""
    cfg = ctx.config
    with ctx.exercise("3. Baselines: FGSM and PGD against the L1 methods", text.Q3, **fidelity(model)) as ex:
        measured = baselines.measure_baselines(
            cfg, model, net, plan, adam, ctx.device, ctx.seed, ctx.progress
        )
        baselines.record_baselines(ex, measured, cfg, model.categories)
        # STUDENT ANSWER
        ex.answer(text.A3, **baselines.answer_values(measured, cfg))
    return measured.runs, measured.summaries


@exercise_function
def sparse_perturbations(
    ctx,
    model: Model,
    net,
    plan: list[PlannedAttack],
    runs: dict[str, MethodRun],
    summaries: dict[str, dict[str, float]],
) -> dict[str, Any]:
    """Exercise 4: Adam against ISTA on the L1 objective, at the assignment's alpha and larger ones;
    returns the alphas at which ISTA changes fewer values than Adam beyond chance, and not."""
    title = "4. Sparsity: subgradient (Adam) against soft-thresholding (ISTA)"
    with ctx.exercise(title, text.Q4, **fidelity(model)) as ex:
        measured = sparsity.measure_sparsity(ctx.config, model, net, plan, runs, ctx.device, ctx.progress)
        sparsity.record_sparsity(ex, measured)
        # STUDENT ANSWER
        ex.answer(text.A4, **sparsity.answer_values(measured, summaries))
    return measured.sparser


def smallest_visible_change(
    ctx, model: Model, runs: dict[str, MethodRun], summaries: dict[str, dict[str, float]], sparser
) -> None:
    """Exercise 5: the answer, with the fair comparison on the pairs every iterative method reached."""
    with ctx.exercise("5. What the numbers show", text.Q5, **fidelity(model)) as ex:
        measured = smallest.measure_common_pairs(runs)
        smallest.record_common_pairs(ex, measured)
        # STUDENT ANSWER
        ex.answer(text.A5, **smallest.answer_values(measured, summaries, sparser))
