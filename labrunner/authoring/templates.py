"""Answer templates: Jinja2 Markdown filled with measured values (answers, notes,
Markdown blocks)."""

from __future__ import annotations

import re
from typing import Any

from ..base.filters import FILTERS

_ENV = None


def render_markdown(template: str, **values: Any) -> str:
    """Fill a Jinja2 Markdown template with measured values; returns the text, stripped.

    Undefined names are an error, so a typo cannot silently drop a number. Inside math
    (``$...$``) a thousands separator is written ``{,}`` so TeX does not space it. Filters: ``fmt``
    (significant digits), ``sci``, ``pct`` (see :data:`FILTERS`). The environment has
    ``trim_blocks`` and ``lstrip_blocks`` on: a line holding only a ``{% ... %}`` tag leaves no
    empty line, and the newline right after any block tag is removed, so a blank line after
    ``{% endif %}`` or ``{% endfor %}`` does not separate paragraphs. Write ``{% endif +%}``
    (a ``+`` before ``%}``) to keep the newline, or leave two blank lines. No autoescaping:
    the text is Markdown, escaped when it becomes HTML.
    """
    global _ENV
    if _ENV is None:
        import jinja2

        _ENV = jinja2.Environment(
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # Markdown, escaped when it becomes HTML
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        _ENV.filters.update(FILTERS)
    return _group_digits_in_math(_ENV.from_string(template).render(**values).strip())


_MATH = re.compile(r"\$\$.+?\$\$|\$[^$\n]+\$", re.S)
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def _group_digits_in_math(text: str) -> str:
    """Inside ``$...$`` and ``$$...$$``, a thousands separator becomes ``{,}``: TeX sets a bare
    comma in math as punctuation with a space after it (``100, 000``)."""
    return _MATH.sub(lambda m: _THOUSANDS.sub("{,}", m.group(0)), text)
