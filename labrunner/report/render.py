"""The report: a run folder's saved files rendered as HTML, Markdown and PDF.

Everything here reads the files a run wrote (``run.json``, ``config.yaml``,
``<lab>/result.json``, ``<lab>/figures/*.png``), never live objects, and never
imports torch: ``labrunner report`` re-renders a run anywhere. The renderer knows
nothing about particular labs; it renders records (Markdown with math, figures,
tables, metrics, checks, errors) through the Jinja2 templates in ``templates/``,
any of which a user can override with ``--template-dir``.

It stays one module (about 700 lines) because it is one job: building the view the templates
read (numbering, order, measurements, fidelity) and the template environment they are
rendered in; loading the run is :mod:`.runfolder`, printing to PDF :mod:`.pdf`.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..base.errors import UsageError

# The run folder's model and loading live in runfolder.py; imported here for the renderer
# and for code that imports them from this module.
from ..records.files import copy_file
from ..records.results import Check, Exercise, LabResult, check_relative_path, write_atomic
from ..records.runfolder import (
    LabSummary,
    Provenance,
    RunData,
    inside_folder,
    load_run,
    run_date,
    run_totals,
    summarize,
)
from .pdf import PDF_HELP, find_pdf_engine, render_pdf  # noqa: F401  (report --pdf, and its callers)

#: Formats rendered by labrunner itself; others come from plugins.
BUILTIN_FORMATS = {
    "html": "report.html: one self-contained file (figures embedded, math as MathML)",
    "md": "report.md + figures/: Markdown for GitHub, math left as $...$",
    "pdf": "report.pdf: the HTML printed by headless Chromium (when installed)",
}

#: Folded on screen (a ``<details>`` under the exercise) and printed in the appendix at the
#: end instead of in the exercise: a data table with more rows than this, a claims table
#: with more claims than this. Short ones stay where they are.
FOLD_TABLE_ROWS = 10
FOLD_CLAIMS = 3

# --------------------------------------------------------------------------- the loaded run


# --------------------------------------------------------------------------- formatting


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


# --------------------------------------------------------------------------- the view


@dataclass
class FigureView:
    number: int
    caption: str
    path: Path  # the PNG in the run folder
    md_path: str  # relative path used by report.md (figures/<lab>/<name>.png)
    alt: str
    #: Why the figure is on a stand-in, when it is one in an exercise otherwise (partly) on
    #: the assignment's material; "" otherwise.
    stand_in: str = ""

    @property
    def exists(self) -> bool:
        return self.path.is_file()

    def data_uri(self) -> str:
        return _data_uri(self.path)

    @property
    def width_px(self) -> int | None:
        """The width the figure was drawn for, in CSS pixels (its pixel width at 96 dpi
        from the PNG's own resolution), or None when the file says nothing usable."""
        return _png_css_width(self.path)


def _data_uri(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    mime = "image/jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else "image/png"
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def _png_css_width(path: Path) -> int | None:
    """Pixel width x 96 / dpi of a PNG, read from its IHDR and pHYs chunks (matplotlib
    writes both); the pixel width itself when there is no pHYs chunk."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return None
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    width = int.from_bytes(head[16:20], "big")
    at = head.find(b"pHYs")
    if at >= 0 and len(head) >= at + 13 and head[at + 12] == 1:  # unit: metre
        per_metre = int.from_bytes(head[at + 4 : at + 8], "big")
        dpi = per_metre * 0.0254
        if 30 <= dpi <= 1200:
            return max(1, round(width * 96 / dpi))
    return width or None


@dataclass
class Fidelity:
    """Whether a lab answered the assignment or a stand-in, and the points of each.

    ``kind`` is ``"assignment"`` (every exercise on the assignment's material),
    ``"stand-in"`` (every exercise on a stand-in) or ``"partly stand-in"``;
    ``stand_ins`` lists (exercise title, reason) of the exercises on a stand-in.
    """

    kind: str
    points_assignment: float
    points_assignment_total: float
    points_stand_in: float
    points_stand_in_total: float
    stand_ins: list[tuple[str, str]] = field(default_factory=list)

    @property
    def has_stand_in(self) -> bool:
        return self.kind != "assignment"


def lab_fidelity(summary: LabSummary) -> Fidelity:
    """The :class:`Fidelity` of a lab, from its summary (points split by fidelity)."""
    return Fidelity(
        kind=summary.fidelity,
        points_assignment=summary.points_assignment,
        points_assignment_total=summary.points_assignment_total,
        points_stand_in=summary.points_stand_in,
        points_stand_in_total=summary.points_stand_in_total,
        stand_ins=list(summary.stand_ins),
    )


@dataclass
class LabView:
    """One lab as the templates see it.

    ``part`` is where the lab belongs in the assignment ("Problem 1", or ""), ``fidelity``
    its :class:`Fidelity`, ``provenance`` what it ran with and where it comes from (None
    for a lab not run); ``measurements`` is the "All measurements" appendix: (group
    title, anchor, {metric: value}) for each exercise with metrics, then the lab's own.
    """

    result: LabResult
    summary: LabSummary
    anchor: str
    exercises: list[dict[str, Any]]
    other_metrics: dict[str, Any]
    part: str = ""
    fidelity: Fidelity | None = None
    measurements: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    provenance: Provenance | None = None

    @property
    def assignment_points(self) -> str:
        """The points the assignment gives the lab ("25 points + 3 bonus"), "" when undeclared."""
        return assignment_points(self.summary)

    @property
    def measurement_count(self) -> int:
        return sum(len(values) for _title, _anchor, values in self.measurements)

    @property
    def heading(self) -> str:
        """The part label and the title, without repeating a part the title starts with."""
        title = self.result.title
        if not self.part or title.lower().startswith(self.part.lower()):
            return title
        return f"{self.part} · {title}"


def used_metrics(ex: Any) -> dict[str, Any]:
    """The metrics of an exercise that its claims and checks use, in recorded order.

    No record says which numbers an answer uses, so the rule is: a metric is used when a
    claim (name, statement, evidence, baseline) or a check (name, message) names it, or
    when it is the number a check compared (its actual or expected value). The others go
    to the lab's "All measurements" appendix.
    """
    text = " ".join(
        [f"{c.name} {c.statement} {c.evidence} {c.baseline}" for c in ex.claims]
        + [f"{c.name} {c.message}" for c in ex.checks]
    )
    compared = [
        v
        for c in ex.checks
        for v in (c.actual, c.expected)
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    ]
    used = {}
    for name, value in ex.metrics.items():
        named = re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", text) is not None
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if named or (is_number and any(value == v for v in compared)):
            used[name] = value
    return used


def lab_order(run: RunData, labs: Sequence[LabResult], plugins: Any = None) -> list[tuple[LabResult, str]]:
    """The labs in the report's order, each with its part label.

    The config file's ``report.order`` (a list of lab names) comes first; then each lab's
    own ``order`` (saved in its result, or declared by the installed lab); then run order.
    """
    wanted = run.settings.get("report", {}) or {}
    wanted = wanted.get("order") if isinstance(wanted, dict) else None
    wanted = [w for w in wanted if isinstance(w, str)] if isinstance(wanted, list) else []
    installed = getattr(plugins, "labs", None) or {}

    def declared(lab: LabResult, attr: str) -> Any:
        value = getattr(lab, attr, None)
        if value in (None, "") and lab.lab in installed:
            value = getattr(installed[lab.lab], attr, None)
        return value

    keyed = []
    for index, lab in enumerate(labs):
        order = declared(lab, "order")
        if isinstance(order, bool) or not isinstance(order, (int, float)):
            order = math.inf
        position = wanted.index(lab.lab) if lab.lab in wanted else len(wanted)
        part = declared(lab, "part")
        keyed.append(((position, order, index), lab, part if isinstance(part, str) else ""))
    keyed.sort(key=lambda item: item[0])
    return [(lab, part) for _key, lab, part in keyed]


class StandInParts:
    """The parts of an exercise that is partly a stand-in which are on the stand-in, by
    reason (``by_reason``: reason -> ["Figure 3", "claim `x`", ...]), as the view marks them."""

    def __init__(self, ex: Exercise):
        self.exercise = ex
        self.material = ex.derived_fidelity
        self.by_reason: dict[str, list[str]] = {}
        if self.material == "partly stand-in":
            for b in ex.borrowed:
                label = f"the answer's use of claim `{b.claim}` ({b.exercise})"
                self.by_reason.setdefault(b.reason, []).append(label)

    def mark(self, part: Any, label: str) -> str:
        """Why ``part`` is on a stand-in when its exercise is only partly one (noted under
        ``label``), else ""."""
        fidelity, reason = self.exercise.fidelity_of(part)
        if self.material != "partly stand-in" or fidelity != "stand-in":
            return ""
        self.by_reason.setdefault(reason, []).append(label)
        return reason or "a stand-in"


def points_label(ex: Exercise) -> str:
    """What the assignment gives an exercise: ``"10 points"``, ``"bonus, 2 points"``, or ""
    when it declares none."""
    if ex.points is None:
        return ""
    text = f"{ex.points:g} point{'' if ex.points == 1 else 's'}"
    return f"bonus, {text}" if ex.bonus else text


def assignment_points(summary: LabSummary) -> str:
    """A lab's points in the assignment: ``"25 points + 3 bonus"``, or "" when none are declared."""
    if not summary.points_declared:
        return ""
    text = f"{summary.assignment_points:g} point{'' if summary.assignment_points == 1 else 's'}"
    return f"{text} + {summary.assignment_bonus:g} bonus" if summary.assignment_bonus else text


def build_view(run: RunData, plugins: Any = None) -> dict[str, Any]:
    """Everything the templates use, from a loaded run (``plugins``, when given, supplies
    the part and order of installed labs whose results do not record them)."""
    figure_no = 0
    table_no = 0
    labs: list[LabView] = []
    for lab, part in lab_order(run, run.labs, plugins):
        anchor = "lab-" + slug(lab.lab)
        exercises = []
        measurements: list[tuple[str, str, dict[str, Any]]] = []
        shown_metrics: set[str] = set()
        for i, ex in enumerate(lab.exercises, 1):
            records = []
            parts = StandInParts(ex)
            part_stand_in = parts.mark
            for record in ex.records:
                kind = record.get("kind")
                if kind == "figure":
                    figure_no += 1
                    path = run.figure_path(lab, record)
                    records.append(
                        {
                            "kind": "figure",
                            "figure": FigureView(
                                number=figure_no,
                                caption=str(record.get("caption") or ""),
                                path=path,
                                md_path=f"figures/{lab.lab}/{path.name}",
                                alt=str(record.get("caption") or path.stem),
                                stand_in=part_stand_in(record, f"Figure {figure_no}"),
                            ),
                        }
                    )
                elif kind == "table":
                    table_no += 1
                    reasons = [nonfinite_reason(c) for row in record.get("rows") or [] for c in row]
                    records.append(
                        {
                            **record,
                            "number": table_no,
                            "stand_in": part_stand_in(record, f"Table {table_no}"),
                            "numeric": _numeric_columns(record),
                            "nonfinite_reasons": list(dict.fromkeys(r for r in reasons if r)),
                            "folded": len(record.get("rows") or []) > FOLD_TABLE_ROWS,
                        }
                    )
                elif kind == "markdown":
                    records.append(record)
            claims_stand_in = {c.name: part_stand_in(c, f"claim `{c.name}`") for c in ex.claims}
            checks_stand_in = {c.name: part_stand_in(c, f"check `{c.name}`") for c in ex.checks}
            shown_metrics.update(ex.metrics)
            ex_anchor = f"{anchor}-ex{i}"
            if ex.metrics:
                measurements.append((ex.title, ex_anchor, dict(ex.metrics)))
            exercises.append(
                {
                    "exercise": ex,
                    "anchor": ex_anchor,
                    "records": records,
                    "checks_passed": sum(c.passed for c in ex.checks),
                    "fidelity": parts.material,
                    "stand_in_reasons": ex.stand_in_reasons(),
                    "stand_in_parts": list(parts.by_reason.items()),
                    "claims_stand_in": claims_stand_in,
                    "checks_stand_in": checks_stand_in,
                    "points_label": points_label(ex),
                    "metrics": used_metrics(ex),
                    "claims_folded": len(ex.claims) > FOLD_CLAIMS,
                    "more_metrics": len(ex.metrics) - len(used_metrics(ex)),
                }
            )
        other = {k: v for k, v in lab.metrics.items() if k not in shown_metrics}
        if other:
            measurements.append(("Other measurements of the lab", anchor, other))
        summary = summarize(lab)
        provenance = run.provenance(lab) if lab.status != "not run" else None
        labs.append(
            LabView(
                lab, summary, anchor, exercises, other, part, lab_fidelity(summary), measurements, provenance
            )
        )
    totals = run_totals([view.summary for view in labs])
    env = run.environment
    git = env.get("git") or {}
    settings = run.settings
    consistency = run.consistency
    if consistency.labs:  # what the labs ran with, each named where they differ
        ran_with = [
            ("Profile", consistency.by_lab("profile")),
            (
                "Seed" if all(len(p.seeds) == 1 for p in consistency.labs) else "Seeds",
                consistency.by_lab("seeds"),
            ),
            ("Device", consistency.by_lab("device")),
        ]
    else:
        ran_with = [
            ("Profile", settings.get("profile")),
            ("Seed", settings.get("seed")),
            ("Device", settings.get("device")),
        ]
    environment_rows = [
        ("labrunner", env.get("labrunner") or run.info.get("labrunner")),
        ("Python", env.get("python")),
        ("PyTorch", env.get("torch")),
        ("torchvision", env.get("torchvision")),
        ("Platform", env.get("platform")),
        ("CPU", _cpu(env)),
        ("GPU", env.get("gpu") or "none"),
        *ran_with,
        ("Deterministic (this run)", settings.get("deterministic")),
        (
            "Git commit",
            (git.get("commit", "") + (" (uncommitted changes)" if git.get("dirty") else "")) or None,
        ),
        ("Config file", settings.get("config_file") or None),
        ("Started", run.info.get("started")),
        ("Finished", run.info.get("finished")),
    ]
    return {
        "run": run,
        "meta": run.meta,
        "labs": labs,
        "totals": totals,
        "consistency": consistency,
        "all_passed": run.all_passed,
        "environment_rows": [(k, v) for k, v in environment_rows if v not in (None, "")],
        "config_yaml": run.config_yaml or _config_yaml(run.info.get("config", {})),
        "config_labs": [(view, _flat_config(view.result.config)) for view in labs if view.result.config],
        "run_status": run.info.get("status", ""),
    }


def _flat_config(config: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """A lab's resolved config as (key, value) rows; nested mappings become dotted keys."""
    rows: list[tuple[str, Any]] = []
    for key, value in config.items():
        if isinstance(value, dict) and value:
            rows += _flat_config(value, f"{prefix}{key}.")
        else:
            rows.append((f"{prefix}{key}", value))
    return rows


def _numeric_columns(table: dict[str, Any]) -> list[bool]:
    """For each column, whether every cell is a number (right-aligned, header too)."""
    columns = table.get("columns") or []
    rows = table.get("rows") or []
    return [
        bool(rows)
        and all(
            i < len(row) and isinstance(row[i], (int, float)) and not isinstance(row[i], bool) for row in rows
        )
        for i in range(len(columns))
    ]


def _cpu(env: dict[str, Any]) -> str | None:
    cpu = env.get("cpu")
    if cpu and env.get("cpu_count"):
        threads = f", {env['torch_threads']} torch threads" if env.get("torch_threads") else ""
        return f"{cpu} ({env['cpu_count']} cores{threads})"
    return cpu


def _config_yaml(config: dict[str, Any]) -> str:
    if not config:
        return ""
    import yaml

    return yaml.safe_dump({"labs": config}, sort_keys=False)


def check_status(check: Check) -> str:
    return "pass" if check.passed else "fail"


# --------------------------------------------------------------------------- templates


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


# --------------------------------------------------------------------------- formats


def _write(path: Path, text: str) -> None:
    write_atomic(path, text)
    try:  # a temporary file is private (0600); a report is meant to be shared
        os.chmod(path, 0o644)
    except OSError:
        pass


def render_html(run: RunData, out_dir: Path, template_dir: Path | None = None, plugins: Any = None) -> Path:
    """Write ``report.html``: one self-contained file (figures as data URIs, CSS inline)."""
    view = build_view(run, plugins)
    path = Path(out_dir) / "report.html"
    _write(path, render_template("report.html.j2", view, template_dir, html=True))
    return path


#: In a run folder: the figures the Markdown report wrote there (JSON), so that rendering
#: again replaces or removes those and never a file someone else put in ``figures/``.
RENDERED_FILES = ".report-files.json"


def render_markdown(
    run: RunData, out_dir: Path, template_dir: Path | None = None, plugins: Any = None
) -> Path:
    """Write ``report.md`` and give it copies of its figures in ``figures/<lab>/``.

    Only files this renderer wrote (listed in :data:`RENDERED_FILES`) are replaced or
    removed: a file a user added to ``figures/`` stays, and a figure path taken by a file
    of someone else's is left as it is, with a warning."""
    out_dir = Path(out_dir)
    view = build_view(run, plugins)
    wanted: dict[str, Path] = {}
    for lab in view["labs"]:
        for ex in lab.exercises:
            for record in ex["records"]:
                if record["kind"] == "figure" and record["figure"].path.is_file():
                    wanted[record["figure"].md_path] = record["figure"].path
    owned = rendered_files(out_dir)
    for rel in sorted(owned - set(wanted)):  # figures of an earlier render that are gone now
        inside_folder(out_dir, rel).unlink(missing_ok=True)
        _remove_empty_folders(out_dir, rel)
    written = []
    for rel, source in wanted.items():
        target = inside_folder(out_dir, rel)
        if rel not in owned and (target.exists() or target.is_symlink()) and not _same_file(source, target):
            print(
                f"labrunner: warning: {target} was not written by labrunner; left as it is "
                "(report.md shows it in place of the lab's figure)",
                file=sys.stderr,
            )
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        copy_file(source, target)
        written.append(rel)
    write_atomic(out_dir / RENDERED_FILES, json.dumps({"files": sorted(written)}, indent=1) + "\n")
    path = out_dir / "report.md"
    _write(path, render_template("report.md.j2", view, template_dir, html=False))
    return path


def rendered_files(out_dir: Path) -> set[str]:
    """The figures an earlier Markdown render wrote into ``out_dir`` (none when the record
    is missing or not what labrunner writes: then nothing is removed)."""
    path = Path(out_dir) / RENDERED_FILES
    if path.is_symlink() or not path.is_file():
        return set()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = data["files"] if isinstance(data, dict) else None
    except (OSError, ValueError, KeyError):
        return set()
    owned = set()
    for rel in files if isinstance(files, list) else []:
        try:
            check_relative_path(rel, str(path))
        except UsageError:
            continue
        if rel.startswith("figures/") and rel.count("/") == 2:
            owned.add(rel)
    return owned


def _same_file(a: Path, b: Path) -> bool:
    try:
        return b.is_file() and not b.is_symlink() and a.read_bytes() == b.read_bytes()
    except OSError:
        return False


def _remove_empty_folders(out_dir: Path, rel: str) -> None:
    folder = (Path(out_dir) / rel).parent
    while folder != Path(out_dir) and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def available_formats(plugins: Any = None) -> dict[str, str]:
    """Format name -> description, built-in first, then those plugins registered."""
    formats = dict(BUILTIN_FORMATS)
    if plugins is not None:
        for name, (_render, description) in plugins.report_formats().items():
            formats.setdefault(name, description)
    return formats


def render_report(
    run_dir: Path,
    *,
    template_dir: Path | None = None,
    author: str | None = None,
    formats: Sequence[str] = ("html", "md"),
    plugins: Any = None,
) -> list[Path]:
    """Render the report of a run folder from its saved files; returns the files written.

    Built-in formats: ``html``, ``md``, ``pdf`` (needs the HTML, which is then also
    written). Other names are looked up among the formats plugins register. The PDF
    is made last, so when no PDF engine is installed the UsageError raised comes after
    the HTML and Markdown are written.
    """
    run_dir = Path(run_dir)
    wanted = list(dict.fromkeys(formats))
    plugin_formats = plugins.report_formats() if plugins is not None else {}
    for name in wanted:
        if name not in BUILTIN_FORMATS and name not in plugin_formats:
            known = ", ".join([*BUILTIN_FORMATS, *[n for n in plugin_formats if n not in BUILTIN_FORMATS]])
            raise UsageError(f"unknown report format {name!r}; available: {known}")
    run = load_run(run_dir, author=author)
    written: list[Path] = []
    if "html" in wanted or "pdf" in wanted:
        written.append(render_html(run, run_dir, template_dir, plugins))
    if "md" in wanted:
        written.append(render_markdown(run, run_dir, template_dir, plugins))
    for name in wanted:
        if name not in BUILTIN_FORMATS:
            render, _description = plugin_formats[name]
            try:
                written.append(Path(render(run, run_dir)))
            except UsageError:
                raise
            except Exception as exc:  # third-party code: one line naming the format, not a traceback
                raise UsageError(f"report format {name!r} failed: {type(exc).__name__}: {exc}") from exc
    if "pdf" in wanted:
        try:
            written.append(render_pdf(run_dir / "report.html", run_dir / "report.pdf"))
        except UsageError as exc:
            done = ", ".join(str(p) for p in written)
            raise UsageError(f"{exc} (written: {done})") from None
    return written
