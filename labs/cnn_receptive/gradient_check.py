"""Exercise 3's exact part, measured then recorded: :func:`measure_gradient_check` compares
the computed boxes of both networks with the probe's gradient boxes and measures what a
naive gradient shows on the assignment's network, returning a :class:`GradientCheck` (no
context needed) whose properties are the conditions its checks and claims test;
:func:`record_gradient_check` records the tables, metrics, checks and claims. The
effective field, the exercise's other part, is :mod:`.erf` (measured) and
:mod:`.erf_record` (recorded)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .geometry import LayerField
from .networks import ASSIGNMENT_ANSWER, ASSIGNMENT_INPUT
from .tables import box_1based, pair
from .verify import average_pooling_coverage, gradient_boxes, naive_measurements, relu_dead_fraction

Row = dict[str, Any]


@dataclass(frozen=True)
class GradientCheck:
    """What Exercise 3's exact part measured: computed against gradient boxes (table rows and
    the layers that differ) of the assignment's network and AlexNet; the naive gradients
    (:func:`~.verify.naive_measurements`); the share of conv2's channels a ReLU silences; the
    pixels the gradient of pool1's centre unit reaches with average pooling, per random
    input; and the side of one conv1 unit's field."""

    rows_a: tuple[Row, ...]
    bad_a: tuple[str, ...]
    rows_x: tuple[Row, ...]
    bad_x: tuple[str, ...]
    naive: tuple[Row, ...]
    dead: float
    coverage: tuple[int, ...]
    conv1_rf: int

    @property
    def layers_verified(self) -> int:
        return len(self.rows_a) + len(self.rows_x)

    @property
    def boxes_match(self) -> bool:
        """Every computed centre box equals the probe's gradient box, in both networks."""
        return not self.bad_a and not self.bad_x

    @property
    def pool_naive(self) -> Row:
        """The naive gradient of pool1's centre unit (the network as built)."""
        return next(r for r in self.naive if r["layer"] == "pool1")

    @property
    def pool_count(self) -> int:
        return self.pool_naive["non-zero pixels"]

    @property
    def pool_area(self) -> int:
        return self.pool_naive["box area"]

    @property
    def probe_rows(self) -> list[Row]:
        return [r for r in self.naive if r["variant"].startswith("probe")]

    @property
    def probe_exact(self) -> bool:
        return all(r["equals computed"] == "yes" for r in self.probe_rows)

    @property
    def holes(self) -> int:
        """Random inputs on which average pooling's gradient misses part of pool1's field."""
        return sum(c < self.pool_area for c in self.coverage)

    @property
    def linear_rows(self) -> list[Row]:
        return [r for r in self.naive if r["variant"].startswith("average pooling, identity")]

    @property
    def linear_exact(self) -> bool:
        return all(r["equals computed"] == "yes" for r in self.linear_rows)


def box_matches(
    model: nn.Module, fields: Sequence[LayerField], size: Sequence[int]
) -> tuple[list[Row], list[str]]:
    """Computed vs measured (probe gradient) centre boxes: table rows and the mismatches."""
    layers = [f for f in fields if f.kind != "input"]
    measured = gradient_boxes(model, size, layers)
    rows, bad = [], []
    for f in layers:
        ok = measured[f.name] == f.centre_box_clipped
        rows.append({"layer": f.name, "r": pair(f.rf), "computed box": box_1based(f.centre_box_clipped),
                     "gradient box": box_1based(measured[f.name]), "equal": "yes" if ok else "NO"})  # fmt: skip
        if not ok:
            bad.append(f.name)
    return rows, bad


def measure_gradient_check(
    assignment: nn.Module,
    a_table: Sequence[LayerField],
    alexnet: nn.Module,
    x_table: Sequence[LayerField],
    generator: torch.Generator,
) -> GradientCheck:
    """The boxes of both networks against their probe's gradient, then (inputs from
    ``generator``, weights from the global torch RNG) the naive gradients, the ReLU's
    silenced channels and average pooling's coverage on the assignment's network."""
    rows_a, bad_a = box_matches(assignment, a_table, (ASSIGNMENT_INPUT, ASSIGNMENT_INPUT))
    rows_x, bad_x = box_matches(alexnet, x_table, x_table[0].size)
    for row, label in zip(rows_a, ASSIGNMENT_ANSWER, strict=False):
        row["layer"] = label
    naive = naive_measurements(list(a_table), generator)
    dead = relu_dead_fraction(generator)
    coverage = average_pooling_coverage(generator)
    return GradientCheck(tuple(rows_a), tuple(bad_a), tuple(rows_x), tuple(bad_x), tuple(naive), dead,
                         tuple(coverage), a_table[1].rf[0])  # fmt: skip


def record_gradient_check(ex: Any, m: GradientCheck) -> None:
    """Record Exercise 3's exact part: computed against gradient boxes, then the naive
    gradients and what the ReLU and max-pooling hide from them."""
    ex.table(list(m.rows_a), caption="The assignment's network: computed vs gradient (probe) box, 1-based.")
    ex.table(list(m.rows_x), caption="AlexNet: computed vs gradient (probe) box, 1-based.")
    ex.check_equal("assignment_computed_equals_gradient", list(m.bad_a), [], points=2)
    ex.check_equal("alexnet_computed_equals_gradient", list(m.bad_x), [], points=2)
    ex.metric("layers_verified_ex3", m.layers_verified)
    ex.claim(
        "computed_boxes_match_gradient",
        m.boxes_match,
        statement="Every computed centre box equals the bounding box of the probe's non-zero gradient.",
        evidence=f"{m.layers_verified} layers compared; mismatches: {', '.join(m.bad_a + m.bad_x) or 'none'}",
        baseline="the probe's gradient box, to the pixel",
    )
    ex.table(list(m.naive), caption="Back-propagating from the centre unit of channel 0, one random input.")
    ex.metric("relu_dead_fraction_conv2", m.dead)
    ex.claim(
        "relu_silences_conv2_units",
        m.dead > 0,
        statement="After its ReLU, the centre unit of some of conv2's channels has no gradient at all.",
        evidence=f"{100 * m.dead:.1f} % of the channels, for one random input",
        baseline="zero channels: a field the gradient would show whole (an exact count)",
    )
    ex.metric("naive_pool1_nonzero_pixels", m.pool_count)
    record_naive_pool(ex, m)
    record_average_pooling(ex, m)


def record_naive_pool(ex: Any, m: GradientCheck) -> None:
    """The claims on the naive gradient of pool1's centre unit and on the probe's (a claim
    and the check that reads its outcome)."""
    count, area, conv1_area = m.pool_count, m.pool_area, m.conv1_rf**2
    ex.claim(
        "naive_pool1_misses_field",
        count < area,
        statement="The naive gradient of pool1's centre unit misses part of its receptive field.",
        evidence=f"{count} non-zero pixels",
        baseline=f"the {area} pixels of the computed box",
    )
    ex.claim(
        "naive_pool1_one_conv1_field",
        count == conv1_area,
        statement="The naive gradient of pool1's centre unit covers exactly one conv1 unit's field.",
        evidence=f"{count} non-zero pixels",
        baseline=f"one conv1 field, {m.conv1_rf} x {m.conv1_rf} = {conv1_area} pixels",
    )
    exact = ex.claim(
        "probe_exact",
        m.probe_exact,
        statement="The probe's gradient reproduces the computed box of every layer, every pixel non-zero.",
        evidence="; ".join(f"{r['layer']}: {r['equals computed']}" for r in m.probe_rows),
        baseline="the computed boxes",
    )
    ex.check("probe_variant_exact", exact, expected=True, actual=exact)


def record_average_pooling(ex: Any, m: GradientCheck) -> None:
    """Exercise 3's average-pooling part: how much of pool1's field the gradient reaches over
    random inputs, and whether identity activations make every box whole."""
    area, coverage = m.pool_area, m.coverage
    ex.metric("avg_pool_inputs_with_holes", m.holes)
    ex.claim(
        "avg_pool_alone_leaves_holes",
        m.holes > 0,
        statement="Average pooling alone does not always give pool1's centre unit a gradient on its whole field.",
        evidence=f"over {len(coverage)} random inputs the gradient reached {min(coverage)} to {max(coverage)} "
        f"pixels; fewer than {area} in {m.holes} of them",
        baseline=f"the {area} pixels of the computed box",
    )
    ex.claim(
        "avg_pool_identity_exact",
        m.linear_exact,
        statement="With average pooling and identity activations every layer's gradient covers its whole box.",
        evidence="; ".join(f"{r['layer']}: {r['non-zero pixels']} of {r['box area']}" for r in m.linear_rows),
        baseline="the computed boxes",
    )


def answer_values(m: GradientCheck) -> dict[str, Any]:
    """The values of the exact part the answer template (A3) is filled with."""
    return dict(
        bad_a=list(m.bad_a),
        bad_x=list(m.bad_x),
        n_a=len(m.rows_a),
        n_x=len(m.rows_x),
        pool_naive=m.pool_naive,
        pool_area=m.pool_area,
        dead=m.dead,
        coverage=list(m.coverage),
        holes=m.holes,
    )
