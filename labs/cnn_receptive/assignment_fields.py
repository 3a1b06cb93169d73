"""Exercise 1, measured then recorded: :func:`measure_assignment_fields` computes the
receptive field of every layer of the assignment's network and returns an
:class:`AssignmentFields` (no context needed), whose properties are the conditions its
checks and claims test; :func:`record_assignment_fields` records the table, checks, metrics
and claims; :func:`answer_values` gives the answer its numbers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from .geometry import LayerField
from .networks import ASSIGNMENT_ANSWER, ASSIGNMENT_INPUT
from .receptive import receptive_fields, spatial_layers
from .tables import axis0, box_1based, field_rows

#: A layer of the worked answer: (n, j, r, centre box in 1-based input coordinates).
Worked = tuple[int, int, int, tuple[int, int]]


@dataclass(frozen=True)
class AssignmentFields:
    """What Exercise 1 measured: the spatial layers of the assignment's network (the input
    first), and the worked answer they are compared with, layer by layer in order."""

    table: tuple[LayerField, ...]
    expected: Mapping[str, Worked]

    @property
    def layers(self) -> tuple[LayerField, ...]:
        """The layers after the input (conv1, pool1, conv2)."""
        return self.table[1:]

    @property
    def size(self) -> int:
        return self.table[0].size[0]

    @property
    def computed(self) -> dict[str, dict[str, Any]]:
        """The first axis of each layer, by the worked answer's label (1-based boxes)."""
        return {label: axis0(f) for label, f in zip(self.expected, self.layers, strict=True)}

    @property
    def found(self) -> dict[str, Worked]:
        """(n, j, r, centre box) of each layer, as the worked answer writes them."""
        return {k: (c["n"], c["j"], c["r"], (c["lo"], c["hi"])) for k, c in self.computed.items()}

    @property
    def matches_worked_answer(self) -> bool:
        return self.found == dict(self.expected)

    @property
    def centres(self) -> list[float]:
        """The centre (0-based) of each layer's centre box along the first axis."""
        return [sum(b[0]) / 2 for b in (f.centre_box for f in self.layers)]

    @property
    def concentric(self) -> bool:
        """Nested boxes, one centre for every layer, and each box square about it."""
        layers = self.layers
        nested = all(
            big.centre_box[0][0] <= small.centre_box[0][0] and big.centre_box[0][1] >= small.centre_box[0][1]
            for small, big in zip(layers, layers[1:], strict=False)
        )
        same_centre = len(set(self.centres)) == 1
        return nested and same_centre and all(len({c for c in f.centre_box}) == 1 for f in layers)

    @property
    def inside_image(self) -> bool:
        """No centre box reaches into the padding."""
        return all(f.centre_box == f.centre_box_clipped for f in self.layers)


def measure_assignment_fields(
    network: nn.Module, expected: Mapping[str, Worked] = ASSIGNMENT_ANSWER, size: int = ASSIGNMENT_INPUT
) -> AssignmentFields:
    """The receptive fields of ``network`` (the assignment's) at input ``size``, its spatial
    layers only, with the worked answer ``expected`` they are to equal."""
    return AssignmentFields(tuple(spatial_layers(receptive_fields(network, size))), dict(expected))


def record_assignment_fields(ex: Any, m: AssignmentFields) -> None:
    """Record Exercise 1: the table, a check of each layer against the worked answer, the
    metrics, and the claims."""
    rows = field_rows(m.table)
    for row, label in zip(rows, ["input", *m.expected], strict=False):
        row["layer"] = label
    ex.table(rows, caption="Receptive fields at the centre unit; input 227 x 227, coordinates 1-based.")
    for f, (label, (n, j, r, box)) in zip(m.layers, m.expected.items(), strict=False):
        (lo, hi), _ = f.centre_box_clipped
        ex.check_equal(f"{label}_n_j_r", [f.size[0], f.jump[0], f.rf[0]], [n, j, r])
        ex.check_equal(f"{label}_centre_box", [lo + 1, hi + 1], list(box), points=2)
        ex.metric(f"assignment_{label}_rf", f.rf[0])
    ex.claim(
        "matches_worked_answer",
        m.matches_worked_answer,
        statement="The computed n, j, r and centre box of every layer equal the worked answer's.",
        evidence="; ".join(f"{k}: computed {v}" for k, v in m.found.items()),
        baseline="the worked answer (n, j, r, box): " + "; ".join(f"{k}: {v}" for k, v in m.expected.items()),
    )
    ex.claim(
        "assignment_boxes_concentric",
        m.concentric,
        statement="The centre units of all layers see nested boxes centred on the same pixel.",
        evidence="box centres (1-based): " + ", ".join(f"{c + 1:g}" for c in m.centres),
        baseline="exact geometry of the three layers",
    )
    ex.claim(
        "assignment_boxes_inside_image",
        m.inside_image,
        statement="No centre box reaches into the padding.",
        evidence="boxes (1-based): " + ", ".join(box_1based(f.centre_box) for f in m.layers),
        baseline=f"the image, pixels 1..{m.size}",
    )


def answer_values(m: AssignmentFields) -> dict[str, Any]:
    """The values the answer template (A1) is filled with."""
    computed = m.computed
    return dict(
        conv1=computed["conv1"],
        pool1=computed["pool1"],
        conv2=computed["conv2"],
        n_in=m.size,
        expected=m.expected,
        centre_pixel=m.centres[-1] + 1,
    )
