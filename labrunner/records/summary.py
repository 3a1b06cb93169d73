"""What the report and ``labrunner check`` say about a loaded run's labs: each lab's
:class:`LabSummary` (checks, points, fidelity, where the result comes from) and the run's
totals, each lab's :class:`Provenance` (profile, seeds, settings changed, code hash) and
whether the labs ran alike (:class:`Consistency`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .jsonfiles import jsonable
from .results import LabResult

# --------------------------------------------------------------------------- provenance


@dataclass(frozen=True)
class Provenance:
    """What one lab's result in a run ran with, and where it comes from.

    ``seeds`` are the seeds it ran with (several for a seed sweep); ``changed`` the settings
    that differ from the profile's (``{"epochs": 4}``; None when the result predates this
    record); ``code_hash`` the hash of the lab's source files; ``date`` when it finished
    (ISO 8601); ``run`` the run folder it ran in; ``origin`` is ``"this run"``, ``"cache"``
    (reused from the cache for the same settings) or ``"earlier run"`` (carried over).
    """

    lab: str
    profile: str
    seeds: tuple[int, ...]
    device: str
    changed: dict[str, Any] | None
    code_hash: str
    date: str
    run: str
    origin: str

    @property
    def seeds_text(self) -> str:
        """'seed 0', 'seeds 0-4', 'seeds 0, 2, 5'."""
        return ("seed " if len(self.seeds) == 1 else "seeds ") + format_seeds(self.seeds)

    @property
    def changed_text(self) -> str:
        """'epochs = 4, lr = 0.1', 'none', or 'not recorded' (a result saved before this record)."""
        if self.changed is None:
            return "not recorded"
        if not self.changed:
            return "none"
        import json

        return ", ".join(f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in self.changed.items())

    def to_json(self) -> dict[str, Any]:
        return jsonable(asdict(self))


def format_seeds(seeds: tuple[int, ...] | list[int]) -> str:
    """Seeds as text: '0', '0, 2, 5', '0-4' (a run of three or more as a range)."""
    parts: list[str] = []
    values = list(seeds)
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{values[i]}-{values[j]}")
            i = j + 1
        else:
            parts.append(str(values[i]))
            i += 1
    return ", ".join(parts)


def provenance_of(lab: LabResult, run_dir: Path, seeds: list[int] | None = None) -> Provenance:
    """The :class:`Provenance` of a lab's result saved in ``run_dir`` (``seeds``: those of
    its seed sweep, when it was one)."""
    origin = lab.origin or {}
    kind = origin.get("kind") or ("cache" if lab.cached else "this run")
    ran_in = lab.run or origin.get("run", "") or (Path(run_dir).name if kind == "this run" else "")
    return Provenance(
        lab=lab.lab,
        profile=lab.profile,
        seeds=tuple(seeds) if seeds else (lab.seed,),
        device=lab.device,
        changed=dict(lab.changed) if lab.changed is not None else None,
        code_hash=lab.code_hash,
        date=lab.finished or lab.started,
        run=ran_in,
        origin=kind,
    )


@dataclass(frozen=True)
class Consistency:
    """Whether the labs of a run ran with one profile and one set of seeds.

    ``groups`` lists each (profile, seeds) and the labs that ran with it, in run order;
    the run is ``mixed`` when there is more than one. ``profile`` and ``seeds`` are the
    shared values (None where the labs differ), ``device`` likewise.
    """

    labs: tuple[Provenance, ...]

    @property
    def groups(self) -> list[tuple[str, tuple[int, ...], list[str]]]:
        found: dict[tuple[str, tuple[int, ...]], list[str]] = {}
        for p in self.labs:
            found.setdefault((p.profile, p.seeds), []).append(p.lab)
        return [(profile, seeds, labs) for (profile, seeds), labs in found.items()]

    @property
    def mixed(self) -> bool:
        return len(self.groups) > 1

    @property
    def profile(self) -> str | None:
        profiles = {p.profile for p in self.labs}
        return profiles.pop() if len(profiles) == 1 else None

    @property
    def seeds(self) -> tuple[int, ...] | None:
        seeds = {p.seeds for p in self.labs}
        return seeds.pop() if len(seeds) == 1 else None

    @property
    def device(self) -> str | None:
        devices = {p.device for p in self.labs}
        return devices.pop() if len(devices) == 1 else None

    def describe(self) -> str:
        """One line: each profile and seeds with its labs ('quick profile, seed 0:
        cnn_receptive, rnn_lm; smoke profile, seed 0: attention')."""
        return "; ".join(
            f"{profile or 'unknown'} profile, {'seed' if len(seeds) == 1 else 'seeds'} {format_seeds(seeds)}: "
            + ", ".join(labs)
            for profile, seeds, labs in self.groups
        )

    def by_lab(self, attr: str) -> str:
        """A setting over the labs: its one value, or each value with its labs
        ('quick (cnn_receptive, rnn_lm); smoke (attention)')."""
        found: dict[str, list[str]] = {}
        for p in self.labs:
            value = getattr(p, attr)
            text = format_seeds(value) if attr == "seeds" else str(value)
            found.setdefault(text, []).append(p.lab)
        if len(found) == 1:
            return next(iter(found))
        return "; ".join(f"{value} ({', '.join(labs)})" for value, labs in found.items())


# --------------------------------------------------------------------------- summaries


@dataclass
class LabSummary:
    """One row of the report's summary table (and of ``labrunner check``).

    ``points`` / ``points_total`` are the checks' own points (their weights), not the
    assignment's. They are also split by fidelity: ``points_assignment`` /
    ``points_assignment_total`` come from checks on the assignment's own material,
    ``points_stand_in`` / ``points_stand_in_total`` from checks on a stand-in; ``stand_ins``
    names the exercises wholly or partly on a stand-in, with the reasons. ``fidelity`` is
    ``"assignment"``, ``"stand-in"`` or ``"partly stand-in"``, derived from the exercises'.
    ``assignment_points`` and ``assignment_bonus`` add up the points the assignment gives the
    exercises that declare them (the bonus parts apart); ``points_declared`` says whether any
    exercise does. ``origin`` says where the result comes from: ``"this run"``, ``"cache"``
    or ``"earlier run"`` (then ``origin_run`` names that run folder), or ``"not run"``;
    ``date``, ``profile``, ``seed`` and ``device`` are the settings it ran with.
    """

    lab: str
    title: str
    status: str
    checks_passed: int
    checks_total: int
    points: float
    points_total: float
    duration_s: float
    cached: bool
    points_assignment: float = 0.0
    points_assignment_total: float = 0.0
    points_stand_in: float = 0.0
    points_stand_in_total: float = 0.0
    fidelity: str = "assignment"
    stand_ins: list[tuple[str, str]] = field(default_factory=list)
    points_declared: bool = False
    assignment_points: float = 0.0
    assignment_bonus: float = 0.0
    origin: str = "this run"
    origin_run: str = ""
    date: str = ""
    profile: str = ""
    seed: int = 0
    device: str = ""


def summarize(lab: LabResult) -> LabSummary:
    """Status, checks passed / total and points earned / total of one lab, also split
    into the assignment's material and stand-ins, and where the result comes from."""
    checks = lab.checks
    earned = {"assignment": 0.0, "stand-in": 0.0}
    total = {"assignment": 0.0, "stand-in": 0.0}
    for ex in lab.exercises:
        for c in ex.checks:
            kind, _reason = ex.fidelity_of(c)
            earned[kind] += c.earned
            total[kind] += c.points
    kinds = [ex.derived_fidelity for ex in lab.exercises]
    stand_ins = [
        (ex.title, "; ".join(ex.stand_in_reasons()))
        for ex, kind in zip(lab.exercises, kinds, strict=True)
        if kind != "assignment"
    ]
    if not stand_ins:
        fidelity = "assignment"
    elif all(kind == "stand-in" for kind in kinds):
        fidelity = "stand-in"
    else:
        fidelity = "partly stand-in"
    declared = [ex for ex in lab.exercises if ex.points is not None]
    origin = lab.origin or {}
    where = "not run" if lab.status == "not run" else origin.get("kind") or "this run"
    return LabSummary(
        lab=lab.lab,
        title=lab.title,
        status=lab.status,
        checks_passed=sum(c.passed for c in checks),
        checks_total=len(checks),
        points=sum(c.earned for c in checks),
        points_total=sum(c.points for c in checks),
        duration_s=lab.duration_s,
        cached=lab.cached,
        points_assignment=earned["assignment"],
        points_assignment_total=total["assignment"],
        points_stand_in=earned["stand-in"],
        points_stand_in_total=total["stand-in"],
        fidelity=fidelity,
        stand_ins=stand_ins,
        points_declared=bool(declared),
        assignment_points=sum(ex.points for ex in declared if not ex.bonus),
        assignment_bonus=sum(ex.points for ex in declared if ex.bonus),
        origin=where,
        origin_run=origin.get("run", ""),
        date=run_date(lab.finished or lab.started),
        profile=lab.profile,
        seed=lab.seed,
        device=lab.device,
    )


def run_totals(summaries: list[LabSummary]) -> dict[str, Any]:
    """The whole run's counts: checks and their points, those on the assignment's material
    and on stand-ins, labs passed, on a stand-in, shown from elsewhere and not run, and the
    assignment's points (and bonus) of the labs that declare them."""
    return {
        "checks_passed": sum(s.checks_passed for s in summaries),
        "checks_total": sum(s.checks_total for s in summaries),
        "points": sum(s.points for s in summaries),
        "points_total": sum(s.points_total for s in summaries),
        "points_assignment": sum(s.points_assignment for s in summaries),
        "points_assignment_total": sum(s.points_assignment_total for s in summaries),
        "points_stand_in": sum(s.points_stand_in for s in summaries),
        "points_stand_in_total": sum(s.points_stand_in_total for s in summaries),
        "duration_s": sum(s.duration_s for s in summaries),
        "labs_total": len(summaries),
        "labs_passed": sum(s.status == "passed" for s in summaries),
        "labs_stand_in": sum(s.fidelity != "assignment" for s in summaries),
        "labs_not_run": sum(s.status == "not run" for s in summaries),
        "labs_from_elsewhere": sum(s.origin in ("cache", "earlier run") for s in summaries),
        "labs_with_points": sum(s.points_declared for s in summaries),
        "assignment_points": sum(s.assignment_points for s in summaries),
        "assignment_bonus": sum(s.assignment_bonus for s in summaries),
    }


def run_date(stamp: Any) -> str:
    """The run's date, e.g. '29 November 2026' (the report's date is the run's, so
    re-rendering gives the same file)."""
    try:
        day = dt.datetime.fromisoformat(str(stamp))
    except (TypeError, ValueError):
        return ""
    return f"{day.day} {day:%B %Y}"
