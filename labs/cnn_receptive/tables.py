"""Formatting the calculator's fields for the report's tables (coordinates 1-based)."""

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
