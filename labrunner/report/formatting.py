"""How the report shows values: numbers, durations, points, non-finite values, anchors, and
text made safe for Markdown and CSS (the templates' filters)."""

from __future__ import annotations

import math
import re
from typing import Any


def format_value(value: Any) -> str:
    """A number or value as shown in tables, metrics and checks: 4 significant digits,
    scientific notation for very small or large magnitudes, '—' for nothing."""
    if value is None or is_nonfinite(value):
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value == 0:
            return "0"
        magnitude = abs(value)
        if magnitude < 1e-3 or magnitude >= 1e6:
            return f"{value:.3e}"
        if magnitude >= 1e4:
            return f"{value:.0f}"
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {format_value(v)}" for k, v in value.items()) + "}"
    return str(value)


#: How result.json stores non-finite floats (see results.jsonable), and what each means.
_NONFINITE = {
    "nan": "not a number: the measurement is undefined (for example a mean over no cases)",
    "inf": "infinite",
    "-inf": "minus infinity",
}


def is_nonfinite(value: Any) -> bool:
    """True for nan and ±inf, as floats or as the strings result.json stores them as."""
    if isinstance(value, float):
        return not math.isfinite(value)
    return isinstance(value, str) and value in _NONFINITE


def nonfinite_reason(value: Any) -> str:
    """Why a value is shown as '—': 'not a number: ...', 'infinite', ...; '' otherwise."""
    if isinstance(value, float) and not math.isfinite(value):
        value = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return _NONFINITE.get(value, "") if isinstance(value, str) else ""


def format_check_value(value: Any) -> str:
    """An expected or actual value of a check: an empty list or mapping is 'none' (a check
    comparing the items that differ expects none of them), the rest as :func:`format_value`."""
    if isinstance(value, (list, tuple, dict)) and not value:
        return "none"
    return format_value(value)


def format_duration(seconds: Any) -> str:
    """'0.42 s', '12.3 s', '4 min 05 s', '1 h 02 min'."""
    try:
        s = float(seconds)
    except (TypeError, ValueError):
        return "—"
    if s < 10:
        return f"{s:.2f} s"
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def format_points(points: float) -> str:
    return f"{points:g}"


def slug(text: str) -> str:
    """An HTML id / anchor fragment from a name."""
    out = "".join(c.lower() if c.isalnum() else "-" for c in str(text))
    return "-".join(part for part in out.split("-") if part) or "section"


def md_text(value: Any) -> str:
    """Plain text made safe for Markdown: no HTML tags, no table breaks."""
    text = format_value(value) if not isinstance(value, str) else value
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("|", "\\|")
        .replace("\r", " ")
        .replace("\n", " ")
    )


_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")


def md_cell(value: Any) -> str:
    """A table cell of a lab (may hold inline Markdown/math) for a Markdown table;
    anything that would open an HTML tag is escaped; nan and ±inf are "—"."""
    if isinstance(value, str) and not is_nonfinite(value):
        text = _TAG_START.sub("&lt;", value)
        return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")
    return format_value(value).replace("|", "\\|")


#: What Markdown shows literally (code fences, code spans) and math ($$...$$, $...$).
_MD_LITERAL = re.compile(r"(```.*?```|~~~.*?~~~|`[^`\n]*`|\$\$.*?\$\$|\$[^$\n]*\$)", re.S)


def md_block(value: Any) -> str:
    """Lab text (Markdown with math) for report.md with raw HTML escaped, as report.html
    escapes it: a ``<`` that would open a tag becomes ``&lt;``, inside math ``\\lt`` (the
    same symbol); code spans and fenced code stay as written (Markdown shows them literally)."""
    parts = _MD_LITERAL.split(str(value))
    out = []
    for i, part in enumerate(parts):
        if i % 2 == 0:
            out.append(_TAG_START.sub("&lt;", part))
        elif part.startswith("$"):
            out.append(_TAG_START.sub(r"\\lt ", part))
        else:
            out.append(part)
    return "".join(out)


def breakable(name: Any) -> Any:
    """An identifier for HTML that may wrap after each ``_`` and ``.`` (``<wbr>``), not
    inside a word: long metric and setting names in narrow columns."""
    from markupsafe import Markup, escape

    text = str(escape(str(name)))
    return Markup(re.sub(r"([_.])(?=.)", r"\1<wbr>", text))


def css_string(text: Any) -> Any:
    """``text`` as a quoted CSS string for ``content:`` (in a ``<style>`` element): every
    character but letters, digits and spaces is a CSS escape, so nothing can end the
    string or the element."""
    from markupsafe import Markup

    out = "".join(c if c.isascii() and (c.isalnum() or c == " ") else f"\\{ord(c):x} " for c in str(text))
    return Markup(f'"{out}"')
