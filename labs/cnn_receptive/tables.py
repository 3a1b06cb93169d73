"""Formatting the calculator's fields for the report's tables and answers (coordinates
1-based)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .geometry import LayerField


def pair(values: Sequence[Any]) -> str:
    """``55`` when every axis agrees, else ``55 x 54``."""
    values = list(values)
    if all(v == values[0] for v in values):
        v = values[0]
        return f"{v:g}" if isinstance(v, float) else str(v)
    return " x ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def box_1based(box: Sequence[tuple[int, int]] | None) -> str:
    """``109..119`` (both axes equal) or ``109..119 x 100..110``, 1-based; ``-`` for none."""
    if box is None:
        return "-"
    parts = [f"{lo + 1}..{hi + 1}" for lo, hi in box]
    return parts[0] if all(p == parts[0] for p in parts) else " x ".join(parts)


def field_rows(fields: Sequence[LayerField], names: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Table rows (layer, n, j, r, start, centre unit, boxes), coordinates 1-based."""
    rows = []
    for f in fields:
        rows.append(
            {
                "layer": "input" if f.kind == "input" else (names or {}).get(f.name, f.name),
                "operation": f.op,
                "n": pair(f.size),
                "j": pair(f.jump),
                "r": pair(f.rf),
                "start": pair([s + 1 for s in f.start]),
                "centre unit": pair([c + 1 for c in f.centre_unit]),
                "centre box (padded)": box_1based(f.centre_box),
                "centre box (image)": box_1based(f.centre_box_clipped),
            }
        )
    return rows


def axis0(f: LayerField) -> dict[str, Any]:
    """The first axis of a layer as plain numbers for an answer template (1-based boxes)."""
    a = f.axes[0]
    lo, hi = a.box(a.centre)
    start = int(a.start + 1) if float(a.start).is_integer() else a.start + 1
    return {
        "n": a.size,
        "j": a.jump,
        "r": a.rf,
        "start": start,
        "centre": a.centre + 1,
        "lo": lo + 1,
        "hi": hi + 1,
    }


def span(box: Sequence[tuple[int, int]] | None) -> int:
    """Pixels covered along the first axis by a 0-based box (0 for none)."""
    return 0 if box is None else box[0][1] - box[0][0] + 1
