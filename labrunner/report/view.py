"""The view the report's templates read, built from a loaded run: the labs in the report's
order with their part labels, each exercise's records numbered (figures, tables), which
parts are on a stand-in, the measurements its answers use and the appendix of the others,
the points, and the environment the run had."""

from __future__ import annotations

import base64
import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..records.results import Exercise, LabResult
from ..records.runfolder import LabSummary, Provenance, RunData, run_totals, summarize
from .formatting import nonfinite_reason, slug

#: Folded on screen (a ``<details>`` under the exercise) and printed in the appendix at the
#: end instead of in the exercise: a data table with more rows than this, a claims table
#: with more claims than this. Short ones stay where they are.
FOLD_TABLE_ROWS = 10


FOLD_CLAIMS = 3


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


# --------------------------------------------------------------------------- the whole view


def build_view(run: RunData, plugins: Any = None) -> dict[str, Any]:
    """Everything the templates use, from a loaded run (``plugins``, when given, supplies
    the part and order of installed labs whose results do not record them)."""
    numbers = _Numbers()
    labs = [_lab_view(run, lab, part, numbers) for lab, part in lab_order(run, run.labs, plugins)]
    return {
        "run": run,
        "meta": run.meta,
        "labs": labs,
        "totals": run_totals([view.summary for view in labs]),
        "consistency": run.consistency,
        "all_passed": run.all_passed,
        "environment_rows": _environment_rows(run),
        "config_yaml": run.config_yaml or _config_yaml(run.info.get("config", {})),
        "config_labs": [(view, _flat_config(view.result.config)) for view in labs if view.result.config],
        "run_status": run.info.get("status", ""),
    }


@dataclass
class _Numbers:
    """The last figure and table numbers given: they run on through the whole report."""

    figures: int = 0
    tables: int = 0


# --------------------------------------------------------------------------- per lab


def _lab_view(run: RunData, lab: LabResult, part: str, numbers: _Numbers) -> LabView:
    """One lab: its exercises, the measurements appendix, its summary and provenance."""
    anchor = "lab-" + slug(lab.lab)
    exercises = []
    measurements: list[tuple[str, str, dict[str, Any]]] = []
    shown_metrics: set[str] = set()
    for i, ex in enumerate(lab.exercises, 1):
        ex_anchor = f"{anchor}-ex{i}"
        exercises.append(_exercise_view(run, lab, ex, ex_anchor, numbers))
        shown_metrics.update(ex.metrics)
        if ex.metrics:
            measurements.append((ex.title, ex_anchor, dict(ex.metrics)))
    other = {k: v for k, v in lab.metrics.items() if k not in shown_metrics}
    if other:
        measurements.append(("Other measurements of the lab", anchor, other))
    summary = summarize(lab)
    provenance = run.provenance(lab) if lab.status != "not run" else None
    return LabView(
        lab, summary, anchor, exercises, other, part, lab_fidelity(summary), measurements, provenance
    )


# --------------------------------------------------------------------------- per exercise


def _exercise_view(
    run: RunData, lab: LabResult, ex: Exercise, anchor: str, numbers: _Numbers
) -> dict[str, Any]:
    """One exercise as the templates see it (the parts on a stand-in are marked in the
    order the report shows them: records, claims, checks)."""
    parts = StandInParts(ex)
    records = _record_views(run, lab, ex, parts, numbers)
    claims_stand_in = {c.name: parts.mark(c, f"claim `{c.name}`") for c in ex.claims}
    checks_stand_in = {c.name: parts.mark(c, f"check `{c.name}`") for c in ex.checks}
    used = used_metrics(ex)
    return {
        "exercise": ex,
        "anchor": anchor,
        "records": records,
        "checks_passed": sum(c.passed for c in ex.checks),
        "fidelity": parts.material,
        "stand_in_reasons": ex.stand_in_reasons(),
        "stand_in_parts": list(parts.by_reason.items()),
        "claims_stand_in": claims_stand_in,
        "checks_stand_in": checks_stand_in,
        "points_label": points_label(ex),
        "metrics": used,
        "claims_folded": len(ex.claims) > FOLD_CLAIMS,
        "more_metrics": len(ex.metrics) - len(used),
    }


def _record_views(
    run: RunData, lab: LabResult, ex: Exercise, parts: StandInParts, numbers: _Numbers
) -> list[dict[str, Any]]:
    """The figures (numbered, with their file), tables (numbered, columns aligned, long ones
    folded) and Markdown of an exercise, in recorded order."""
    records: list[dict[str, Any]] = []
    for record in ex.records:
        kind = record.kind
        if kind == "figure":
            numbers.figures += 1
            path = run.figure_path(lab, record)
            figure = FigureView(
                number=numbers.figures,
                caption=record.caption,
                path=path,
                md_path=f"figures/{lab.lab}/{path.name}",
                alt=record.caption or path.stem,
                stand_in=parts.mark(record, f"Figure {numbers.figures}"),
            )
            records.append({"kind": "figure", "figure": figure})
        elif kind == "table":
            numbers.tables += 1
            reasons = [nonfinite_reason(c) for row in record.rows for c in row]
            records.append(
                {
                    **dataclasses.asdict(record),
                    "number": numbers.tables,
                    "stand_in": parts.mark(record, f"Table {numbers.tables}"),
                    "numeric": _numeric_columns(record.columns, record.rows),
                    "nonfinite_reasons": list(dict.fromkeys(r for r in reasons if r)),
                    "folded": len(record.rows) > FOLD_TABLE_ROWS,
                }
            )
        elif kind == "markdown":
            records.append(dataclasses.asdict(record))
    return records


# --------------------------------------------------------------------------- summary tables


def _environment_rows(run: RunData) -> list[tuple[str, Any]]:
    """What the run ran on and with (the labs' profile, seeds and device, each named where
    they differ), without the rows it does not know."""
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
    rows = [
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
    return [(k, v) for k, v in rows if v not in (None, "")]


def _flat_config(config: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """A lab's resolved config as (key, value) rows; nested mappings become dotted keys."""
    rows: list[tuple[str, Any]] = []
    for key, value in config.items():
        if isinstance(value, dict) and value:
            rows += _flat_config(value, f"{prefix}{key}.")
        else:
            rows.append((f"{prefix}{key}", value))
    return rows


def _numeric_columns(columns: list[Any], rows: list[list[Any]]) -> list[bool]:
    """For each column, whether every cell is a number (right-aligned, header too)."""
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
