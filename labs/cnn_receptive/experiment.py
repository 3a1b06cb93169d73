"""The lab's exercises, one function each, named after the assignment's question: each opens
its exercise, measures (a function of the exercise's module that needs no context and
returns a frozen dataclass), records what it measured with the same module, and answers
(here, inside the exercise, so that ``labrunner assign`` finds the marked answer). It returns
what later exercises use. No maths here.

The modules of the exercises: :mod:`.assignment_fields` (1), :mod:`.alexnet_fields` (2),
:mod:`.gradient_check` with :mod:`.erf` and :mod:`.erf_record` (3), :mod:`.image_boxes` (4)
and :mod:`.zoo` (5). The calculator is :mod:`.receptive`, the gradient measurements
:mod:`.verify`, the networks and images :mod:`.networks`, the answers' text :mod:`.text`.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from labrunner import LabContext, exercise_function

from . import (
    ReceptiveConfig,
    alexnet_fields,
    assignment_fields,
    erf_record,
    gradient_check,
    image_boxes,
    text,
    zoo,
)
from .erf import RESAMPLES, measure_effective_fields
from .geometry import LayerField
from .networks import ASSIGNMENT_ANSWER, assignment_network, build_model


def run_experiment(ctx: LabContext[ReceptiveConfig]) -> None:
    """The lab: the two networks, then the five exercises."""
    assignment = assignment_network()
    alexnet = build_model("alexnet", meta=True)

    a_table = receptive_field_of_each_layer(ctx, assignment)
    x_table = alexnet_table(ctx, alexnet)
    erf = verify_and_measure_effective_field(ctx, assignment, a_table, alexnet, x_table)
    boxes_on_a_real_image(ctx, a_table, x_table, erf)
    more_networks(ctx)


@exercise_function
def receptive_field_of_each_layer(
    ctx: LabContext[ReceptiveConfig], assignment: nn.Module
) -> tuple[LayerField, ...]:
    """Exercise 1; returns the table of the assignment's network (its spatial layers)."""
    with ctx.exercise("1. The assignment's network", question=text.Q1) as ex:
        measured = assignment_fields.measure_assignment_fields(assignment, ASSIGNMENT_ANSWER)
        assignment_fields.record_assignment_fields(ex, measured)
        # STUDENT ANSWER
        ex.answer(text.A1, **assignment_fields.answer_values(measured))
    return measured.table


@exercise_function
def alexnet_table(ctx: LabContext[ReceptiveConfig], alexnet: nn.Module) -> tuple[LayerField, ...]:
    """Exercise 2; returns AlexNet's table, up to its last feature layer."""
    with ctx.exercise("2. torchvision's AlexNet", question=text.Q2) as ex:
        measured = alexnet_fields.measure_alexnet_fields(alexnet, ctx.config.alexnet_input)
        alexnet_fields.record_alexnet_fields(ex, measured)
        # STUDENT ANSWER
        ex.answer(text.A2, **alexnet_fields.answer_values(measured))
    return measured.table


@exercise_function
def verify_and_measure_effective_field(
    ctx: LabContext[ReceptiveConfig],
    assignment: nn.Module,
    a_table: tuple[LayerField, ...],
    alexnet: nn.Module,
    x_table: tuple[LayerField, ...],
) -> tuple[dict[str, Any], ...]:
    """Exercise 3; returns the statistics of the effective fields (AlexNet first)."""
    cfg = ctx.config
    with ctx.exercise("3. Empirical verification, and the effective receptive field", question=text.Q3) as ex:
        gen = ctx.torch_generator(offset=3)
        exact = gradient_check.measure_gradient_check(assignment, a_table, alexnet, x_table, gen)
        erf = measure_effective_fields(cfg.erf_samples, cfg.erf_initialisations, gen, ctx.seed, ctx.progress)
        gradient_check.record_gradient_check(ex, exact)
        erf_record.record_effective_fields(ex, erf)
        trained = {s["network"]: s["trained"] for s in erf.stats}
        # STUDENT ANSWER
        ex.answer(text.A3, **gradient_check.answer_values(exact), stats=list(erf.stats), diff=erf.share_difference,
                  setting={"trained": trained, "all_trained": all(trained.values())}, resamples=RESAMPLES)  # fmt: skip
    return erf.stats


def boxes_on_a_real_image(
    ctx: LabContext[ReceptiveConfig],
    a_table: tuple[LayerField, ...],
    x_table: tuple[LayerField, ...],
    erf: tuple[dict[str, Any], ...],
) -> None:
    """Exercise 4: the boxes of both networks on a photo."""
    with ctx.exercise("4. The fields on a real image", question=text.Q4) as ex:
        measured = image_boxes.measure_image_boxes(a_table, x_table)
        image_boxes.record_image_boxes(ex, measured)
        # STUDENT ANSWER
        ex.answer(text.A4, **image_boxes.answer_values(measured, erf[0]))


def more_networks(ctx: LabContext[ReceptiveConfig]) -> None:
    """Exercise 5: the final field of more networks, each checked against its gradient."""
    cfg = ctx.config
    with ctx.exercise("5. More networks", question=text.Q5) as ex:
        measured = zoo.measure_zoo(cfg.models, cfg.verify_all_layers, cfg.all_models, ctx.progress)
        zoo.record_zoo(ex, measured)
        # STUDENT ANSWER
        ex.answer(text.A5, **zoo.answer_values(measured))
