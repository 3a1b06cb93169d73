"""The filters of answer and report templates: ``fmt``, ``sci``, ``pct`` and ``plural``."""

from __future__ import annotations

import math
from typing import Any


def fmt(value: Any, digits: int = 3, nan: str = "nan") -> str:
    """``{{ x | fmt }}``, ``{{ x | fmt(5) }}``: a number with ``digits`` significant digits
    (default 3), in plain notation for ordinary magnitudes; ``{{ x | fmt(nan="—") }}`` writes
    an undefined value (a median over nothing) as the text given instead of ``nan``.

    Integers get thousands separators (``61,100,840``); floats of magnitude below 1e-3 or
    from 1e12 up are written in scientific notation with ``digits`` significant digits
    (``3.14e-05``); floats from ``10**digits`` up are rounded to an integer with separators
    (``12,346``); ``0.0`` is ``0``; NaN and infinities are written ``nan``, ``inf``, ``-inf``.
    numpy and torch scalars are converted first."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        value = getattr(value, "item", lambda: value)()
    if isinstance(value, int):
        return f"{value:,}"
    if math.isnan(value):
        return nan
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e12):
        return f"{value:.{max(digits - 1, 0)}e}"
    if abs(value) >= 10**digits:
        return f"{value:,.0f}"
    return f"{value:#.{digits}g}".rstrip(".") if value != 0 else "0"


def sci(value: Any, digits: int = 2) -> str:
    """``{{ x | sci }}``, ``{{ x | sci(3) }}``: scientific notation with ``digits`` digits after
    the point (default 2), for errors such as ``3.10e-16``; ``0`` is ``0.00e+00``."""
    return f"{float(value):.{digits}e}"


def pct(value: Any, digits: int = 1) -> str:
    """``{{ x | pct }}``, ``{{ x | pct(0) }}``: a fraction as a percentage with ``digits``
    decimals (default 1) and a space before the sign: ``0.953`` gives ``95.3 %``."""
    return f"{100 * float(value):.{digits}f} %"


def plural(count: Any, noun: str, plural: str = "") -> str:
    """``{{ n | plural("seed") }}``: the count and the noun, ``1 seed`` or ``3 seeds``
    (``plural`` for an irregular form: ``{{ n | plural("index", "indices") }}``), so that no
    template needs a condition to agree a noun with a number."""
    return f"{fmt(count)} {noun if count == 1 else (plural or noun + 's')}"


#: The filters answer templates can use, besides Jinja2's own (``round``, ``join``, ...).
FILTERS = {"fmt": fmt, "sci": sci, "pct": pct, "plural": plural}
