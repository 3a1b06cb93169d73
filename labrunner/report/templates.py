"""The Jinja2 environment the report's templates are rendered in: the user's template folder
over the built-in templates, and the filters (:mod:`.formatting`, :mod:`.mdmath`)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from ..base.errors import UsageError
from ..records.runfolder import run_date
from .formatting import (
    breakable,
    css_string,
    format_check_value,
    format_duration,
    format_points,
    format_value,
    is_nonfinite,
    md_block,
    md_cell,
    md_text,
    nonfinite_reason,
    slug,
)


def builtin_template_dir() -> Path:
    """The folder of labrunner's own templates (installed as labrunner.templates)."""
    import importlib

    return Path(importlib.import_module("labrunner.templates").__file__).parent  # type: ignore[arg-type]


def template_environment(template_dir: Path | None, *, html: bool) -> Any:
    """A Jinja2 environment: the user's folder first, then the built-in templates,
    which are also reachable as ``default/<name>`` for ``{% extends %}``.

    One environment per folder and mode is kept, so its compiled templates are reused by
    the next render; Jinja2 recompiles a template whose file changed."""
    if template_dir is not None:
        template_dir = Path(template_dir)
        if not template_dir.is_dir():
            raise UsageError(f"--template-dir {template_dir}: no such folder")
        return _cached_environment(str(template_dir.resolve()), html)
    return _cached_environment(None, html)


@functools.lru_cache(maxsize=16)
def _cached_environment(template_dir: str | None, html: bool) -> Any:
    import jinja2

    from . import mdmath

    builtin = jinja2.FileSystemLoader(str(builtin_template_dir()))
    loaders: list[Any] = []
    if template_dir is not None:
        loaders.append(jinja2.FileSystemLoader(template_dir))
    loaders += [jinja2.PrefixLoader({"default": builtin}), builtin]
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=html,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        markdown=mdmath.markdown_to_html,
        markdown_inline=mdmath.markdown_inline,
        value=format_value,
        check_value=format_check_value,
        nonfinite_reason=nonfinite_reason,
        css_string=css_string,
        breakable=breakable,
        duration=format_duration,
        day=run_date,
        points=format_points,
        slug=slug,
        md_text=md_text,
        md_cell=md_cell,
        md_block=md_block,
        tojson_pretty=lambda v: json.dumps(v, indent=2, ensure_ascii=False, default=str),
    )
    env.tests["nonfinite"] = is_nonfinite
    return env


def render_template(name: str, view: dict[str, Any], template_dir: Path | None, *, html: bool) -> str:
    import jinja2

    env = template_environment(template_dir, html=html)
    try:
        return env.get_template(name).render(**view)
    except jinja2.TemplateSyntaxError as exc:
        raise UsageError(f"template {exc.filename or exc.name}:{exc.lineno}: {exc.message}") from None
    except jinja2.TemplateNotFound as exc:
        raise UsageError(f"template {exc.name!r} not found") from None
    except jinja2.UndefinedError as exc:
        raise UsageError(f"template {name}: {exc.message}") from None
