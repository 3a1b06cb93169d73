"""Markdown with LaTeX math, to HTML that works offline.

Markdown is parsed by markdown-it-py (CommonMark, plus tables and strikethrough);
``$...$`` and ``$$...$$`` are converted to MathML by latex2mathml, which browsers
render natively: no script, no font, no network. Raw HTML in the Markdown is
escaped, so text written by a lab can never inject markup. A formula that
latex2mathml cannot convert is shown as its LaTeX source in a ``<code>`` element.
"""

from __future__ import annotations

import functools
import html
import re
from typing import Any

from markupsafe import Markup

#: latex2mathml leaves a command it does not know as an identifier such as
#: ``<mi>\foo</mi>``; that is an unconverted formula, not maths.
_UNKNOWN_COMMAND = re.compile(r"<m[io][^>]*>\\[A-Za-z]+")
#: Image sources the report may load: embedded data only (no network).
_SAFE_IMAGE = re.compile(r"^data:image/(png|jpeg|gif|webp);base64,", re.I)

_MATHML_NS = "http://www.w3.org/1998/Math/MathML"
_MATHML_TAGS = frozenset(
    [
        "math",
        "mrow",
        "mi",
        "mn",
        "mo",
        "mtext",
        "ms",
        "mspace",
        "mfrac",
        "msqrt",
        "mroot",
        "mstyle",
        "merror",
        "mpadded",
        "mphantom",
        "mfenced",
        "menclose",
        "msub",
        "msup",
        "msubsup",
        "munder",
        "mover",
        "munderover",
        "mmultiscripts",
        "mprescripts",
        "none",
        "mtable",
        "mtr",
        "mtd",
        "mlabeledtr",
        "semantics",
        "annotation",
    ]
)
_MATHML_ATTRIBUTES = frozenset(
    [
        "display",
        "stretchy",
        "mathvariant",
        "fence",
        "separator",
        "lspace",
        "rspace",
        "columnalign",
        "rowalign",
        "rowspacing",
        "columnspacing",
        "accent",
        "accentunder",
        "movablelimits",
        "largeop",
        "symmetric",
        "minsize",
        "maxsize",
        "width",
        "height",
        "depth",
        "linethickness",
        "scriptlevel",
        "displaystyle",
        "form",
        "notation",
        "open",
        "close",
        "separators",
        "columnlines",
        "rowlines",
        "frame",
        "align",
        "bevelled",
    ]
)


@functools.lru_cache(maxsize=4096)
def latex_to_mathml(latex: str, display: bool = False) -> str:
    """MathML for ``latex`` (a ``<math>`` element), or a ``<code class="math-error">``
    element holding the escaped LaTeX source when it cannot be converted."""
    from latex2mathml.converter import convert

    source = latex.strip()
    try:
        mathml = convert(source, display="block" if display else "inline")
    except Exception:  # latex2mathml raises many types on malformed input
        mathml = ""
    mathml = _sanitized(mathml) if mathml and not _UNKNOWN_COMMAND.search(mathml) else ""
    mathml = _joined_thousands(mathml)
    if not mathml:
        delim = "$$" if display else "$"
        cls = "math-error display" if display else "math-error"
        return (
            f'<code class="{cls}" title="formula not converted">{html.escape(delim + source + delim)}</code>'
        )
    return mathml


def _sanitized(mathml: str) -> str:
    """``mathml`` re-serialized with only MathML elements and presentation attributes,
    or "" when it holds anything else.

    latex2mathml copies ``\\text{...}`` verbatim and turns ``\\href`` into an attribute,
    so its output is parsed and checked rather than trusted.
    """
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(mathml)
    except ET.ParseError:
        return ""
    for element in root.iter():
        namespace, _, tag = element.tag.rpartition("}")
        if namespace != "{" + _MATHML_NS or tag not in _MATHML_TAGS:
            return ""
        for name in list(element.attrib):
            if name not in _MATHML_ATTRIBUTES:
                del element.attrib[name]
    ET.register_namespace("", _MATHML_NS)
    return ET.tostring(root, encoding="unicode", short_empty_elements=False)


#: ``100{,}000`` as latex2mathml writes it: two numbers around a braced comma.
_BRACED_THOUSANDS = re.compile(
    r"<mn>([0-9][0-9,]*)</mn><mrow><mo>,</mo></mrow><mn>([0-9]{3}(?:\.[0-9]+)?)</mn>"
)


def _joined_thousands(mathml: str) -> str:
    """``100{,}000`` as one number, ``<mn>100,000</mn>``: browsers space an ``<mo>,</mo>``
    as punctuation even inside braces (``100, 000``), unlike TeX."""
    joined = None
    while joined != mathml:
        joined, mathml = mathml, _BRACED_THOUSANDS.sub(r"<mn>\1,\2</mn>", mathml)
    return mathml


#: Relations a long displayed formula may break before (at the top level only).
_BREAK_BEFORE = re.compile(
    r"=|<|>|\\(?:approx|leq?|geq?|neq?|equiv|sim|simeq|propto|to|Rightarrow|iff|quad|qquad)(?![A-Za-z])"
)
#: A displayed formula shorter than this stays one piece.
_BREAK_MIN_CHARS = 40


def split_display(latex: str) -> list[str]:
    """``latex`` cut before each top-level relation (``=``, ``\\le``, ``\\approx``, ...,
    ``\\quad``): the pieces a long displayed formula may wrap between on a narrow page.

    Only the top level is cut: never inside braces, ``\\left ... \\right`` or an
    environment, so each piece is a formula of its own. A short formula is one piece.
    """
    source = latex.strip()
    if len(source) < _BREAK_MIN_CHARS:
        return [source]
    pieces: list[str] = []
    depth = 0
    start = 0
    i = 0
    while i < len(source):
        char = source[i]
        if char == "\\":
            word = re.match(r"\\([A-Za-z]+|.)", source[i:])
            name = word.group(1) if word else ""
            if name in ("left", "begin"):
                depth += 1
            elif name in ("right", "end"):
                depth -= 1
            elif depth == 0 and i > start and _BREAK_BEFORE.match(source, i):
                pieces.append(source[start:i])
                start = i
            i += 1 + len(name)
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif (
            depth == 0
            and char in "=<>"
            and source[start:i].strip()
            and not (char == "=" and source[i - 1] in "<>!")  # <=, >=, != stay whole
        ):
            pieces.append(source[start:i])
            start = i
        i += 1
    pieces.append(source[start:])
    pieces = [piece.strip() for piece in pieces if piece.strip()]
    return pieces if depth == 0 and pieces else [source]


#: A piece that starts a new equation of a displayed line (``a = b, \qquad c = d``).
_EQUATION_GAP = re.compile(r"^\\q?quad(?![A-Za-z])\s*")


def _display_math(latex: str) -> str:
    """A displayed formula: one ``<math>``, or, when long, its pieces (each a ``<math>``) in
    a ``<span class="math-pieces">`` that wraps instead of overflowing. The pieces are grouped
    by equation (a ``\\quad`` or ``\\qquad`` starts one), each group a ``<span class="math-eq">``:
    a line breaks between equations first, and inside one only when it alone is too wide."""
    pieces = split_display(latex)
    if len(pieces) > 1:
        equations: list[list[str]] = []
        for piece in pieces:
            if not equations or _EQUATION_GAP.match(piece):
                equations.append([])
            equations[-1].append(_EQUATION_GAP.sub("", piece) or piece)
        rendered = [[latex_to_mathml(piece, True) for piece in eq] for eq in equations]
        if not any("math-error" in r for eq in rendered for r in eq):
            groups = ('<span class="math-eq">' + "".join(eq) + "</span>" for eq in rendered)
            return '<span class="math-pieces">' + "".join(groups) + "</span>"
    return latex_to_mathml(latex, True)


def _render_math(content: str, options: dict[str, Any]) -> str:
    if options.get("display_mode"):
        return _display_math(content)
    return latex_to_mathml(content, False)


def _render_image(self: Any, tokens: list, idx: int, options: Any, env: Any) -> str:
    """Embedded images are kept; a remote one becomes a link, so the report loads nothing."""
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = self.renderInlineAsText(token.children or [], options, env)
    if _SAFE_IMAGE.match(src):
        return f'<img src="{html.escape(src)}" alt="{html.escape(alt)}">'
    return f'<a href="{html.escape(src)}">{html.escape(alt or src)}</a>'


@functools.lru_cache(maxsize=1)
def _parser() -> Any:
    from markdown_it import MarkdownIt
    from mdit_py_plugins.dollarmath import dollarmath_plugin

    md = MarkdownIt("commonmark", {"html": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    # allow_digits=False: "costs $5 and $6" is money, not maths.
    dollarmath_plugin(md, allow_digits=False, double_inline=True, renderer=_render_math)
    md.add_render_rule("image", _render_image)
    return md


@functools.lru_cache(maxsize=8192)
def _render_cached(text: str, inline: bool) -> str:
    md = _parser()
    return md.renderInline(text) if inline else md.render(text)


def markdown_to_html(text: Any) -> Markup:
    """Block HTML for a Markdown text with math; safe to insert into a page."""
    if text is None or text == "":
        return Markup("")
    return Markup(_render_cached(str(text), False))


def markdown_inline(text: Any) -> Markup:
    """Inline HTML (no paragraph) for a short text: a caption, a table cell, a title."""
    if text is None or text == "":
        return Markup("")
    return Markup(_render_cached(str(text), True))
