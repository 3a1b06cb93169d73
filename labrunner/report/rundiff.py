"""``labrunner diff RUN_A RUN_B``: what changed between two runs, in the spirit of
``dvc exp diff``: each lab's settings (profile, seeds, device and its config), its metrics
and its claims, as Markdown tables or JSON.

Both runs are read through :func:`labrunner.records.runfolder.load_run` (the typed, validated
readers every command uses); nothing is written.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..base.errors import UsageError
from ..records.results import LabResult
from ..records.runfolder import RunData, load_run

#: Stands for a value one of the two runs does not have.
ABSENT: Any = type("Absent", (), {"__repr__": lambda self: "ABSENT"})()


@dataclass(frozen=True)
class Row:
    """One compared value: ``lab``, ``name`` (a setting, metric or claim), its value in
    run A and in run B (:data:`ABSENT` where that run does not have it)."""

    lab: str
    name: str
    a: Any
    b: Any

    @property
    def changed(self) -> bool:
        return self.a is ABSENT or self.b is ABSENT or not _same(self.a, self.b)

    @property
    def change(self) -> float | None:
        """B minus A, for two finite numbers; else None."""
        if _finite(self.a) and _finite(self.b):
            return self.b - self.a
        return None

    @property
    def relative(self) -> float | None:
        """(B - A) / |A|, for two finite numbers with A not zero; else None."""
        if self.change is None or self.a == 0:
            return None
        return self.change / abs(self.a)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"lab": self.lab, "name": self.name}
        for side in ("a", "b"):
            value = getattr(self, side)
            out[side] = None if value is ABSENT else value
        if self.a is ABSENT or self.b is ABSENT:
            out["only_in"] = "b" if self.a is ABSENT else "a"
        if self.change is not None:
            out["change"] = self.change
            out["relative"] = self.relative
        return out


@dataclass
class RunDiff:
    """The comparison of two runs; each list holds every row (``changed`` tells which
    differ). ``labs`` compares each lab's status and code hash."""

    a: RunData
    b: RunData
    labs: list[Row] = field(default_factory=list)
    settings: list[Row] = field(default_factory=list)
    metrics: list[Row] = field(default_factory=list)
    claims: list[Row] = field(default_factory=list)

    SECTIONS = ("labs", "settings", "metrics", "claims")

    def rows(self, section: str, *, everything: bool = False) -> list[Row]:
        return [row for row in getattr(self, section) if everything or row.changed]

    @property
    def identical(self) -> bool:
        return not any(self.rows(section) for section in self.SECTIONS)

    def to_json(self, *, everything: bool = False) -> dict[str, Any]:
        def run(data: RunData) -> dict[str, Any]:
            info = data.run_info
            return {
                "run_dir": str(data.run_dir),
                "status": info.status if info is not None else "",
                "started": info.started if info is not None else "",
            }

        return {
            "a": run(self.a),
            "b": run(self.b),
            **{
                section: [row.to_json() for row in self.rows(section, everything=everything)]
                for section in self.SECTIONS
            },
        }


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _settings(run: RunData, lab: LabResult) -> dict[str, Any]:
    p = run.provenance(lab)
    return {"profile": p.profile, "seeds": list(p.seeds), "device": p.device, **_flat(lab.config)}


def _claims(lab: LabResult) -> dict[str, bool]:
    names = [c.name for ex in lab.exercises for c in ex.claims]
    out = {}
    for ex in lab.exercises:
        for c in ex.claims:
            key = c.name if names.count(c.name) == 1 else f"{ex.title} / {c.name}"
            out[key] = c.holds
    return out


def _compare(lab: str, a: dict[str, Any] | None, b: dict[str, Any] | None) -> list[Row]:
    a, b = a or {}, b or {}
    names = list(a) + [name for name in b if name not in a]
    return [Row(lab, name, a.get(name, ABSENT), b.get(name, ABSENT)) for name in names]


def diff_runs(a: RunData, b: RunData) -> RunDiff:
    """Compare two loaded runs, lab by lab (labs in A's order, then those only in B)."""
    labs_a = {lab.lab: lab for lab in a.labs}
    labs_b = {lab.lab: lab for lab in b.labs}
    out = RunDiff(a, b)
    for name in list(labs_a) + [n for n in labs_b if n not in labs_a]:
        la, lb = labs_a.get(name), labs_b.get(name)
        ran_a = la is not None and la.status != "not run"
        ran_b = lb is not None and lb.status != "not run"
        out.labs.append(
            Row(
                name,
                "status",
                la.status if la is not None else ABSENT,
                lb.status if lb is not None else ABSENT,
            )
        )
        if ran_a or ran_b:
            code_a = (la.code_hash or "not recorded") if ran_a else ABSENT
            code_b = (lb.code_hash or "not recorded") if ran_b else ABSENT
            out.labs.append(Row(name, "code hash", code_a, code_b))
        out.settings += _compare(
            name, _settings(a, la) if ran_a else None, _settings(b, lb) if ran_b else None
        )
        out.metrics += _compare(name, la.metrics if ran_a else None, lb.metrics if ran_b else None)
        out.claims += _compare(name, _claims(la) if ran_a else None, _claims(lb) if ran_b else None)
    return out


#: A run folder's name (``20261202-184000``, ``20261202-184000-2``) or ``latest``.
_RUN_NAME = re.compile(r"^(\d{8}-\d{6}(-\d+)?|latest)$")


def resolve_run(text: str, out: Path) -> Path:
    """A RUN argument: a path to a run folder, or the name of one in ``out``
    (``20261202-184000``, ``latest``). Raises UsageError (one line) otherwise."""
    path = Path(text)
    if not path.exists() and not path.is_symlink() and _RUN_NAME.match(text) and (Path(out) / text).exists():
        path = Path(out) / text
    if not path.exists():
        raise UsageError(f"{text}: no such run folder")
    if not path.is_dir():
        raise UsageError(f"{text}: not a run folder (not a folder)")
    if not (path / "run.json").is_file():
        raise UsageError(f"{text}: not a run folder (no run.json)")
    return path


def load_pair(run_a: str, run_b: str, out: Path = Path("reports")) -> RunDiff:
    """Load and compare two runs named as on the command line."""
    return diff_runs(load_run(resolve_run(run_a, out)), load_run(resolve_run(run_b, out)))


# --------------------------------------------------------------------------- Markdown


def _cell(value: Any) -> str:
    from .formatting import format_value, md_text

    if value is ABSENT:
        return "—"
    if isinstance(value, str):
        return md_text(value)
    return md_text(format_value(value))


def _change(row: Row) -> str:
    from .formatting import format_value

    if row.change is None:
        return ""
    text = ("+" if row.change > 0 else "") + format_value(row.change)
    if row.relative is not None:
        text += f" ({row.relative * 100:+.1f} %)"
    return text


def format_markdown(diff: RunDiff, *, everything: bool = False) -> str:
    """The comparison as Markdown: one table per section (only what changed, unless
    ``everything``), or one line saying nothing changed."""
    lines = [
        f"# Run {diff.a.run_dir.name} → {diff.b.run_dir.name}",
        "",
        f"- A: `{diff.a.run_dir}`",
        f"- B: `{diff.b.run_dir}`",
        "",
    ]
    titles = {"labs": "Labs", "settings": "Settings", "metrics": "Metrics", "claims": "Claims"}
    if diff.identical and not everything:
        lines.append("No setting, metric or claim differs between the two runs.")
        return "\n".join(lines) + "\n"
    for section in diff.SECTIONS:
        rows = diff.rows(section, everything=everything)
        lines += [f"## {titles[section]}", ""]
        if not rows:
            lines += ["No change.", ""]
            continue
        numeric = section == "metrics"
        what = {"labs": "What", "settings": "Setting", "metrics": "Metric", "claims": "Claim"}[section]
        if numeric:
            lines += [f"| Lab | {what} | A | B | Change |", "| --- | --- | ---: | ---: | ---: |"]
        else:
            lines += [f"| Lab | {what} | A | B |", "| --- | --- | --- | --- |"]
        for row in rows:
            a, b = row.a, row.b
            if section == "claims":
                a = a if a is ABSENT else ("holds" if a else "does not hold")
                b = b if b is ABSENT else ("holds" if b else "does not hold")
            cells = [f"`{row.lab}`", _cell(row.name), _cell(a), _cell(b)] + (
                [_change(row)] if numeric else []
            )
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
