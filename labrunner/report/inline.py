"""A run, a lab or an exercise as inline HTML for a notebook, with the report's own
templates and CSS.

Each is a self-contained document (figures embedded, math as MathML) shown in an
``<iframe srcdoc=...>``, so the report's styles cannot change the notebook's and the
notebook's cannot change the report's. The iframe grows to its content's height.
"""

from __future__ import annotations

import html
from typing import Any

from ..base.errors import UsageError

_FRAGMENT = """{% import "report_records.html.j2" as records with context %}<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="color-scheme" content="light">
<style>{% include "report.css" %}
body { margin: 0; } main.report { margin: 0; padding: 0.5rem 1rem; max-width: none; }</style>
</head><body><main class="report">
{% if exercise is not none %}{{ records.exercise(exercise, lab) }}{% else %}{{ records.lab_section(lab) }}{% endif %}
</main></body></html>
"""
#: Height until the document says how tall it is (a script the frame's onload runs).
_START_HEIGHT_PX = 480


def _frame(document: str, title: str) -> str:
    """``document`` in an iframe that fits its height to the content."""
    fit = "try{this.style.height=(this.contentDocument.documentElement.scrollHeight+8)+'px'}catch(e){}"
    return (
        f'<iframe class="labrunner-inline" title="{html.escape(title)}" '
        f'style="width:100%;height:{_START_HEIGHT_PX}px;border:1px solid #d0d7de;border-radius:6px" '
        f'onload="{html.escape(fit)}" srcdoc="{html.escape(document, quote=True)}"></iframe>'
    )


def _view(run: Any) -> dict[str, Any]:
    from .view import build_view

    return build_view(run)


def _lab(view: dict[str, Any], name: str) -> Any:
    for lab in view["labs"]:
        if lab.result.lab == name:
            return lab
    raise UsageError(f"lab {name!r} is not in this run")


def _render_fragment(view: dict[str, Any], lab: Any, exercise: Any = None) -> str:
    from .templates import template_environment

    env = template_environment(None, html=True)
    return env.from_string(_FRAGMENT).render(**view, lab=lab, exercise=exercise)


def run_html(run: Any) -> str:
    """The whole report of a loaded run folder, inline."""
    from .templates import render_template

    document = render_template("report.html.j2", _view(run), None, html=True)
    return _frame(document, f"labrunner report: {run.run_dir.name}")


def lab_html(run: Any, name: str) -> str:
    """One lab's section of the report, inline."""
    view = _view(run)
    return _frame(_render_fragment(view, _lab(view, name)), f"labrunner lab {name}")


def exercise_html(run: Any, name: str, index: int) -> str:
    """One exercise of a lab, inline."""
    view = _view(run)
    lab = _lab(view, name)
    return _frame(_render_fragment(view, lab, lab.exercises[index]), f"labrunner {name} exercise {index + 1}")
