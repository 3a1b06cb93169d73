"""Exercise 2, measured then recorded: :func:`measure_alexnet_fields` computes AlexNet's
receptive fields up to its last feature layer and returns an :class:`AlexNetFields` (no
context needed), whose properties are the conditions its checks and claims test;
:func:`record_alexnet_fields` records the table, metrics, check and claims;
:func:`answer_values` gives the answer its numbers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from .geometry import LayerField
from .networks import ASSIGNMENT_ANSWER, ASSIGNMENT_INPUT, PUBLISHED_RF
from .receptive import feature_output, fraction_fully_inside, receptive_fields, spatial_layers
from .tables import axis0, box_1based, field_rows, pair, span

Box = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class AlexNetFields:
    """What Exercise 2 measured: AlexNet's spatial layers up to its last feature layer (the
    input first), and the share of that layer's units whose whole box lies in the image."""

    table: tuple[LayerField, ...]
    inside: float

    @property
    def final(self) -> LayerField:
        return self.table[-1]

    @property
    def size(self) -> int:
        return self.table[0].size[0]

    @property
    def published(self) -> int:
        return PUBLISHED_RF["alexnet"]

    @property
    def map_sizes(self) -> list[int]:
        """n of the first three layers, to compare with the assignment's network."""
        return [f.size[0] for f in self.table[1:4]]

    @property
    def assignment_sizes(self) -> list[int]:
        return [n for n, _, _, _ in ASSIGNMENT_ANSWER.values()]

    @property
    def maps_match_assignment(self) -> bool:
        return self.map_sizes == self.assignment_sizes

    @property
    def rf_matches_published(self) -> bool:
        return self.final.rf[0] == self.published

    @property
    def rf_exceeds_image(self) -> bool:
        return self.final.rf[0] > self.size

    @property
    def centre(self) -> Box | None:
        """The image part of the last layer's centre unit's box."""
        return self.final.centre_box_clipped

    @property
    def border(self) -> Box | None:
        """The image part of the last layer's corner unit's box."""
        return self.final.border_box_clipped

    @property
    def corner_box(self) -> Box:
        """The whole box of the last layer's corner unit, padding included."""
        return self.final.unit_box((0,) * len(self.final.size))

    @property
    def units(self) -> int:
        return self.final.size[0] * self.final.size[1]

    @property
    def units_inside(self) -> int:
        return round(self.inside * self.units)


def measure_alexnet_fields(alexnet: nn.Module, input_size: int) -> AlexNetFields:
    """AlexNet's receptive fields at ``input_size``, up to its last feature layer."""
    fields = receptive_fields(alexnet, input_size)
    final = feature_output(fields)
    table = tuple(f for f in spatial_layers(fields) if fields.index(f) <= fields.index(final))
    return AlexNetFields(table, fraction_fully_inside(final))


def record_alexnet_fields(ex: Any, m: AlexNetFields) -> None:
    """Record Exercise 2: the table, the final field (a claim, and the check that reads its
    outcome), and the claims on the maps and the boxes."""
    final, size = m.final, m.size
    ex.table(
        field_rows(m.table),
        caption=f"AlexNet (torchvision), input {pair(m.table[0].size)}; coordinates 1-based.",
    )
    ex.metric("alexnet_rf", final.rf[0])
    ex.claim(
        "alexnet_maps_match_assignment",
        m.maps_match_assignment,
        statement="AlexNet's first three layers have the map sizes of the assignment's network.",
        evidence=f"AlexNet at {size} pixels: n = {', '.join(map(str, m.map_sizes))}",
        baseline=f"the assignment's network at {ASSIGNMENT_INPUT} pixels: n = "
        + ", ".join(map(str, m.assignment_sizes)),
    )
    published = ex.claim(
        "alexnet_rf_matches_published",
        m.rf_matches_published,
        statement="AlexNet's final receptive field equals the published value.",
        evidence=f"computed r = {final.rf[0]}",
        baseline=f"r = {m.published} (Araujo et al., Distill 2019)",
    )
    ex.check("alexnet_final_rf", published, expected=m.published, actual=final.rf[0], points=2)
    ex.claim(
        "alexnet_rf_exceeds_image",
        m.rf_exceeds_image,
        statement=f"AlexNet's final receptive field is wider than the {size}-pixel image.",
        evidence=f"r = {final.rf[0]}",
        baseline=f"the image width, {size} pixels",
    )
    record_boxes(ex, m)


def record_boxes(ex: Any, m: AlexNetFields) -> None:
    """Exercise 2's claims on the last layer's boxes: clipped by the padding at the centre and
    at the border, what a border unit sees, and the units wholly inside the image."""
    final, size, centre, border = m.final, m.size, m.centre, m.border
    image = f"the image, pixels 1..{size}"
    ex.claim(
        "alexnet_centre_box_clipped",
        final.centre_box != centre,
        statement="The box of the last layer's centre unit reaches into the zero padding.",
        evidence=f"box {box_1based(final.centre_box)}, of which {box_1based(centre)} is image",
        baseline=image,
    )
    ex.claim(
        "alexnet_border_box_clipped",
        m.corner_box != border,
        statement="The box of the last layer's corner unit reaches into the zero padding.",
        evidence=f"box {box_1based(m.corner_box)}, of which {box_1based(border)} is image",
        baseline=image,
    )
    ex.claim(
        "alexnet_border_sees_less",
        span(border) < span(centre),
        statement="A unit at the border of the last layer's map sees fewer image pixels than the centre unit.",
        evidence=f"corner unit: {span(border)} pixels per axis; centre unit: {span(centre)}",
        baseline="the centre unit of the same layer (exact)",
    )
    ex.metric("alexnet_centre_unit_image_share", span(centre) / size)
    ex.metric("alexnet_border_unit_image_share", span(border) / size)
    ex.metric("alexnet_units_fully_inside_share", m.inside)
    ex.claim(
        "alexnet_some_units_wholly_inside",
        m.units_inside > 0,
        statement="Some units of the last layer have their whole box inside the image.",
        evidence=f"{m.units_inside} of the {m.units} units",
        baseline=f"the image's pixels 1..{size} (exact geometry)",
    )


def answer_values(m: AlexNetFields) -> dict[str, Any]:
    """The values the answer template (A2) is filled with."""
    final = m.final
    return dict(
        rows=[axis0(f) | {"name": f.name, "op": f.op} for f in m.table[1:]],
        final=axis0(final),
        final_name=final.name,
        size=m.size,
        published=m.published,
        setting={"even_map": final.size[0] % 2 == 0},
        centre_box=box_1based(m.centre),
        centre_px=span(m.centre),
        border_box=box_1based(m.border),
        border_px=span(m.border),
        units=m.units,
        units_inside=m.units_inside,
    )
