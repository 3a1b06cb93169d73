"""Exercise 4, measured then recorded: :func:`measure_image_boxes` places the centre boxes of
every layer of both networks (and the box of AlexNet's last corner unit) on the photo and
returns an :class:`ImageBoxes` (no context needed); :func:`record_image_boxes` draws the
figure; :func:`answer_values` gives the answer its numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from . import text
from .geometry import LayerField
from .networks import load_grace_hopper
from .tables import axis0, span

Box = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Panel:
    """One network on the photo: its label, the photo at its input size, and the centre box
    (0-based, padding included) of each of its layers."""

    label: str
    image: np.ndarray
    layers: tuple[LayerField, ...]
    corner: Box | None = None  # the last layer's corner unit's box, where it is drawn

    @property
    def size(self) -> int:
        return self.image.shape[0]


@dataclass(frozen=True)
class ImageBoxes:
    """What Exercise 4 shows: the assignment's network and AlexNet on the photo."""

    assignment: Panel
    alexnet: Panel


def measure_image_boxes(a_table: Sequence[LayerField], x_table: Sequence[LayerField]) -> ImageBoxes:
    """The photo at each network's input size with the layers of its table (input first);
    for AlexNet also the corner unit of its last layer, part of whose box is padding."""
    a_size, x_size = a_table[0].size[0], x_table[0].size[0]
    return ImageBoxes(
        Panel("assignment network", load_grace_hopper(a_size), tuple(a_table[1:])),
        Panel("AlexNet", load_grace_hopper(x_size), tuple(x_table[1:]), x_table[-1].unit_box((0, 0))),
    )


def record_image_boxes(ex: Any, m: ImageBoxes) -> None:
    """Record Exercise 4: the figure of both networks' boxes on the photo."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.6))
    for ax, panel in zip(axes, (m.assignment, m.alexnet), strict=True):
        draw_panel(ax, panel)
    fig.tight_layout()
    ex.figure(fig, "receptive_fields_grace_hopper", caption=text.FIG_CAPTION)


def draw_panel(ax: Any, panel: Panel) -> None:
    """The photo, each layer's centre box in its colour, the corner unit's box dashed red."""
    from matplotlib.patches import Rectangle

    colours = plt.get_cmap("viridis")
    size, layers = panel.size, panel.layers
    ax.imshow(panel.image, extent=(-0.5, size - 0.5, size - 0.5, -0.5))
    for i, f in enumerate(layers):
        (r0, r1), (c0, c1) = f.centre_box
        ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, fill=False, lw=1.6,
                               ec=colours(i / max(len(layers) - 1, 1)), label=f"{f.name}: r = {f.rf[0]}"))  # fmt: skip
    if panel.corner is not None:  # the corner unit of the last layer: part of its box is padding
        (r0, r1), (c0, c1) = panel.corner
        ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, fill=False, lw=1.6, ls="--",
                               ec="red", label=f"{layers[-1].name}, corner unit"))  # fmt: skip
    # room around the image for the padding the boxes reach into
    lo = min(-0.5 - 0.1 * size, *(p.get_x() - 4 for p in ax.patches))
    hi = max(size - 0.5 + 0.1 * size, *(p.get_x() + p.get_width() + 4 for p in ax.patches))
    ax.set_xlim(lo, hi)
    ax.set_ylim(hi, lo)
    ax.set_title(f"{panel.label}, input {size} x {size}", fontsize=11)
    # below the axes: inside, any corner covers the photo or a box
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncols=3, fontsize=7, frameon=False)


def answer_values(m: ImageBoxes, erf: dict[str, Any]) -> dict[str, Any]:
    """The values the answer template (A4) is filled with; ``erf`` is AlexNet's effective
    field (its statistics from exercise 3)."""
    final = m.alexnet.layers[-1]
    return dict(
        a_table=[axis0(f) | {"name": f.name} for f in m.assignment.layers],
        x_final=axis0(final),
        size=m.alexnet.size,
        centre_px=span(final.centre_box_clipped),
        erf=erf,
    )
