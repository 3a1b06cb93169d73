"""The run folder: its files as typed records, read back with validation, and its place
among the other runs (the validation of every field of run.json is most of its length).

A run folder (``reports/<timestamp>/``) holds::

    run.json             RunInfo: settings, environment, one LabEntry per lab, status
    config.yaml          the resolved config of every lab (text, for people)
    <lab>/result.json    LabResult (labrunner.records.results): exercises, records, checks, claims
    <lab>/figures/*.png  the figures its records name
    report.html, report.md + figures/, report.pdf   rendered from the files above

Every reader (the report, ``check``, ``submit``, grading, notebooks) loads a run through
:func:`load_run`, which validates each file (types, lab names, the schema version) and
refuses anything that would read outside the run folder (a lab folder, result or figure
that is a symbolic link or resolves elsewhere), so a bad file gives the same one-line
:class:`~labrunner.records.results.RunFileError` (exit status 2) whichever command reads it.
Creating run folders, finding them, pointing ``latest``, pruning old runs and completing
a run with every installed lab live in :mod:`labrunner.records.folders`.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..base.errors import UsageError
from .jsonfiles import (
    SCHEMA_VERSION,
    RunFileError,
    check_lab_name,
    check_relative_path,
    check_schema,
    field_of,
    json_object,
    jsonable,
    load_record,
    read_json_file,
    short,
    write_json,
)
from .parts import Check, Claim, FigureRecord, MarkdownRecord, Record, TableRecord
from .results import STATUSES, Exercise, LabResult

__all__ = [
    "SCHEMA_VERSION",
    "Check",
    "Claim",
    "Exercise",
    "FigureRecord",
    "LabEntry",
    "LabResult",
    "Consistency",
    "LabSummary",
    "MarkdownRecord",
    "Provenance",
    "Record",
    "RunData",
    "RunFileError",
    "RunInfo",
    "TableRecord",
    "load_run",
    "summarize",
]

#: ``submitted``: ``run --detach`` submitted the labs as jobs that have not all ended yet.
RUN_STATUSES = ("running", "finished", "interrupted", "submitted")
#: Fields of run.json's ``settings`` whose type every reader relies on (others pass through).
_SETTINGS_FIELDS: dict[str, tuple[type, bool]] = {
    "profile": (str, False),
    "device": (str, False),
    "device_requested": (str, False),
    "seed": (int, False),
    "deterministic": (bool, False),
    "threads": (int, True),
    "config_file": (str, True),
    "report": (dict, False),
    "labs": (list, False),
}
_ENVIRONMENT_STRINGS = ("labrunner", "python", "torch", "torchvision", "platform", "cpu", "gpu")


# --------------------------------------------------------------------------- run.json


@dataclass
class LabEntry:
    """One lab in run.json: how it ended in this run, or where its result came from.

    ``origin`` is None for a lab that ran (or was taken from the cache for its current
    settings) in this run; for a lab shown from elsewhere it is the result's ``origin``
    (``{"kind": "cache" | "earlier run", "run": ..., "finished": ...}``), and for a lab
    never run ``{"kind": "not run"}`` with status ``"not run"``.
    """

    lab: str
    status: str
    duration_s: float = 0.0
    cached: bool = False
    title: str = ""
    origin: dict[str, str] | None = None

    @classmethod
    def from_json(cls, data: Any, where: str) -> LabEntry:
        d = json_object(data, where)
        status = field_of(d, "status", where, str, "passed")
        if status not in STATUSES:
            raise RunFileError(f"{where}.status: expected one of {', '.join(STATUSES)}, got {short(status)}")
        origin = field_of(d, "origin", where, dict, None, optional=True)
        if origin is not None:
            origin = {key: field_of(origin, key, f"{where}.origin", str) for key in origin}
        return cls(
            lab=check_lab_name(d.get("lab"), f"{where}.lab"),
            status=status,
            duration_s=field_of(d, "duration_s", where, float, 0.0),
            cached=field_of(d, "cached", where, bool, False),
            title=field_of(d, "title", where, str, ""),
            origin=origin,
        )


@dataclass
class RunInfo:
    """run.json: the run's status and times, its settings and environment, one
    :class:`LabEntry` per lab, and every selected lab's resolved config.

    ``settings`` and ``environment`` stay mappings (plugins and executors add keys), but
    the keys every reader uses are type-checked on reading; keys this version does not
    know are kept in ``extra`` and written back unchanged.
    """

    status: str = "running"
    started: str = ""
    finished: str | None = None
    labrunner: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    labs: list[LabEntry] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def selected(self) -> list[str]:
        """The labs this run was asked to run, in order."""
        return list(self.settings.get("labs") or [])

    def entry(self, lab: str) -> LabEntry | None:
        return next((e for e in self.labs if e.lab == lab), None)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        return jsonable({**extra, **data})

    @classmethod
    def from_json(cls, data: Any, where: str = "") -> RunInfo:
        """Read run.json back, checking types, lab names and the schema version (run
        folders written before run.json carried one are read as version 1)."""
        d = json_object(data, where)
        check_schema(d, where, required=False)  # an older version reads as this one
        status = field_of(d, "status", where, str)
        if status not in RUN_STATUSES:
            raise RunFileError(f"status: expected one of {', '.join(RUN_STATUSES)}, got {short(status)}")
        entries = field_of(d, "labs", where, list, [])
        config = field_of(d, "config", where, dict, {})
        for name in config:
            field_of(config, name, "config", dict)
        known = {
            "schema",
            "status",
            "started",
            "finished",
            "labrunner",
            "settings",
            "environment",
            "labs",
            "config",
        }
        return cls(
            status=status,
            started=field_of(d, "started", where, str, ""),
            finished=field_of(d, "finished", where, str, None, optional=True),
            labrunner=field_of(d, "labrunner", where, str, ""),
            settings=_settings_from_json(field_of(d, "settings", where, dict, {})),
            environment=_environment_from_json(field_of(d, "environment", where, dict, {})),
            labs=[LabEntry.from_json(e, f"labs[{i}]") for i, e in enumerate(entries)],
            config=config,
            extra={k: v for k, v in d.items() if k not in known},
        )

    def save(self, path: Path) -> None:
        write_json(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> RunInfo:
        """Read ``path``; raises RunFileError (one line naming the file and the field)."""
        return load_record(path, cls.from_json)


def _settings_from_json(settings: dict[str, Any]) -> dict[str, Any]:
    for key, (kind, optional) in _SETTINGS_FIELDS.items():
        field_of(settings, key, "settings", kind, None, optional=optional)
    for i, name in enumerate(settings.get("labs") or []):
        check_lab_name(name, f"settings.labs[{i}]")
    if isinstance(settings.get("seed"), int) and settings["seed"] < 0:
        raise RunFileError(f"settings.seed: expected a seed >= 0, got {short(settings['seed'])}")
    return settings


def _environment_from_json(env: dict[str, Any]) -> dict[str, Any]:
    for key in _ENVIRONMENT_STRINGS:
        field_of(env, key, "environment", str, None, optional=True)
    for key in ("cpu_count", "torch_threads"):
        field_of(env, key, "environment", int, None, optional=True)
    git = field_of(env, "git", "environment", dict, None, optional=True)
    if git:
        field_of(git, "commit", "environment.git", str, "")
        field_of(git, "dirty", "environment.git", bool, False)
    return env


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


# --------------------------------------------------------------------------- jobs.json

#: A SLURM job id: digits, and ``_N`` for an element of an array job.
_JOB_ID = re.compile(r"^[0-9]{1,20}(?:_[0-9]{1,10})?$")


@dataclass
class JobRecord:
    """One job a detached run submitted (``run --detach``), as jobs.json lists it.

    Every field that becomes a path or a command argument is checked on reading: the lab
    name, the seed, ``out_dir`` (exactly the folder this lab and seed write into:
    ``<lab>``, or ``<lab>/seeds/<seed>`` in a sweep), the cache key (hex digits), the job id and
    submitit's folder (inside the run folder)."""

    lab: str
    seed: int
    out_dir: str
    cache_key: str
    executor: str = "slurm"
    job_id: str = ""
    folder: str = ""
    cancelled: bool = False

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if not self.folder:
            data.pop("folder")
        if not self.cancelled:
            data.pop("cancelled")
        return data

    @classmethod
    def from_json(cls, data: Any, where: str, run_dir: Path) -> JobRecord:
        from .cache import check_cache_key

        d = json_object(data, where)
        lab = check_lab_name(d.get("lab"), f"{where}.lab")
        seed = field_of(d, "seed", where, int)
        if seed < 0:
            raise RunFileError(f"{where}.seed: expected a seed >= 0, got {short(seed)}")
        out_dir = field_of(d, "out_dir", where, str)
        if out_dir not in (lab, f"{lab}/seeds/{seed}"):
            raise RunFileError(
                f"{where}.out_dir: expected {lab!r} or '{lab}/seeds/{seed}' for lab {lab} seed {seed}, "
                f"got {short(out_dir)}"
            )
        job_id = field_of(d, "job_id", where, str, "")
        if job_id and not _JOB_ID.match(job_id):
            raise RunFileError(f"{where}.job_id: not a job id: {short(job_id)}")
        folder = field_of(d, "folder", where, str, "")
        if folder:
            root = Path(os.path.realpath(run_dir))
            resolved = Path(os.path.realpath(Path(run_dir) / folder))
            if resolved != root and root not in resolved.parents:
                raise RunFileError(f"{where}.folder: {short(folder)} is not inside the run folder")
        return cls(
            lab=lab,
            seed=seed,
            out_dir=out_dir,
            cache_key=check_cache_key(d.get("cache_key"), f"{where}.cache_key"),
            executor=field_of(d, "executor", where, str, "slurm"),
            job_id=job_id,
            folder=folder,
            cancelled=field_of(d, "cancelled", where, bool, False),
        )


@dataclass
class JobsFile:
    """jobs.json of a detached run: the jobs submitted and the seeds of the run."""

    jobs: list[JobRecord] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"jobs": [job.to_json() for job in self.jobs], "seeds": list(self.seeds)}

    def save(self, run_dir: Path) -> None:
        """Write ``run_dir``/jobs.json (atomically)."""
        write_json(Path(run_dir) / "jobs.json", self.to_json())

    @classmethod
    def from_json(cls, data: Any, run_dir: Path, labs: list[str]) -> JobsFile:
        """Read jobs.json back; each job must be of a lab the run selected (``labs``)."""
        d = json_object(data, "")
        seeds = field_of(d, "seeds", "", list, [])
        for i, seed in enumerate(seeds):
            if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
                raise RunFileError(f"seeds[{i}]: expected a seed >= 0, got {short(seed)}")
        jobs = [
            JobRecord.from_json(job, f"jobs[{i}]", run_dir)
            for i, job in enumerate(field_of(d, "jobs", "", list))
        ]
        for i, job in enumerate(jobs):
            if job.lab not in labs:
                raise RunFileError(f"jobs[{i}].lab: {job.lab!r} is not a lab of this run")
            if seeds and job.seed not in seeds:
                raise RunFileError(f"jobs[{i}].seed: {job.seed} is not a seed of this run")
        return cls(jobs=jobs, seeds=seeds)

    @classmethod
    def load(cls, run_dir: Path, labs: list[str]) -> JobsFile:
        """``run_dir``/jobs.json; raises RunFileError (one line naming the file and field)."""
        path = inside_folder(run_dir, "jobs.json")
        return load_record(path, lambda data: cls.from_json(data, run_dir, labs))


# --------------------------------------------------------------------------- the loaded run


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


@dataclass
class RunData:
    """A run as loaded from its folder; what templates and report-format plugins receive.

    - ``info``: run.json as a dict; ``settings`` and ``environment`` are parts of it
      (``run_info`` is the same file as a :class:`RunInfo`).
    - ``meta``: the title block (title, course, author, student_id, institution, date).
    - ``labs``: each lab's :class:`~labrunner.records.results.LabResult`, in run order; a lab
      listed as never run is a result with status ``"not run"`` and no exercises.
    - ``config_yaml``: the text of config.yaml (the resolved config of every lab).
    - ``missing``: labs run.json lists whose result.json is absent.
    - ``sweeps``: lab name -> its :class:`~labrunner.records.sweep.SweepSummary`, for each lab run
      once per seed (``--seeds``); the lab's own result is its first seed's.
    """

    run_dir: Path
    info: dict[str, Any]
    meta: dict[str, str]
    labs: list[LabResult] = field(default_factory=list)
    config_yaml: str = ""
    run_info: RunInfo | None = None
    missing: list[str] = field(default_factory=list)
    sweeps: dict[str, Any] = field(default_factory=dict)
    #: lab -> exercise title -> :class:`~labrunner.records.answers.AnswerCheck`, for the exercises
    #: whose answer is the student's (already rendered into their ``answer``).
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def settings(self) -> dict[str, Any]:
        return self.info.get("settings", {}) or {}

    @property
    def environment(self) -> dict[str, Any]:
        return self.info.get("environment", {}) or {}

    def figure_path(self, lab: LabResult, record: FigureRecord) -> Path:
        """The PNG file of a figure record of ``lab`` (always inside the lab's folder)."""
        rel = check_relative_path(record.path, f"{lab.lab}/result.json: figure path")
        return self.run_dir / lab.lab / rel

    def summaries(self) -> list[LabSummary]:
        return [summarize(lab) for lab in self.labs]

    def totals(self) -> dict[str, Any]:
        """:func:`run_totals` of this run's labs."""
        return run_totals(self.summaries())

    @property
    def all_passed(self) -> bool:
        """True when every lab passed (an errored, interrupted or never run lab does not),
        and every seed of a seed sweep did (see :attr:`failed_seeds`)."""
        return bool(self.labs) and all(lab.status == "passed" for lab in self.labs) and not self.failed_seeds

    @property
    def failed_seeds(self) -> dict[str, dict[int, str]]:
        """Lab -> {seed: status} of each seed of a sweep that did not pass: its status
        ("failed", "error", "interrupted"), or "no result" for a seed of the run
        (``settings.seeds``) that the lab's sweep.json does not list."""
        wanted = [s for s in self.settings.get("seeds") or [] if isinstance(s, int)]
        found: dict[str, dict[int, str]] = {}
        for lab, sweep in self.sweeps.items():
            if sweep is None:
                continue
            bad = dict(sweep.failed_seeds)
            bad.update({seed: "no result" for seed in wanted if seed not in sweep.seeds})
            if bad:
                found[lab] = dict(sorted(bad.items()))
        return found

    @property
    def incomplete(self) -> str:
        """What makes the run incomplete ("" when it is complete): run.json not finished,
        or labs it lists without a result."""
        problems = []
        if self.run_info is not None and self.run_info.status != "finished":
            problems.append(f"run.json says the run is {self.run_info.status}, not finished")
        if self.missing:
            names = ", ".join(self.missing)
            problems.append(f"no result for lab{'s' if len(self.missing) > 1 else ''} {names}")
        return "; ".join(problems)

    @property
    def not_run(self) -> list[str]:
        """Installed labs listed as never run."""
        return [lab.lab for lab in self.labs if lab.status == "not run"]

    def provenance(self, lab: LabResult) -> Provenance:
        """The :class:`Provenance` of one of this run's labs."""
        sweep = self.sweeps.get(lab.lab)
        return provenance_of(lab, self.run_dir, list(sweep.seeds) if sweep is not None else None)

    @property
    def consistency(self) -> Consistency:
        """Whether the labs with a result (not those never run) share a profile and seeds."""
        return Consistency(tuple(self.provenance(lab) for lab in self.labs if lab.status != "not run"))

    @property
    def stand_ins(self) -> list[tuple[str, str, str]]:
        """(lab, exercise title, reasons) of every exercise that ran wholly or partly on a
        stand-in (a check, claim, figure or table of it, or a claim its answer reads)."""
        return [
            (lab.lab, ex.title, "; ".join(ex.stand_in_reasons()))
            for lab in self.labs
            for ex in lab.exercises
            if ex.derived_fidelity != "assignment"
        ]


def load_run(run_dir: Path, *, author: str | None = None) -> RunData:
    """Load a run folder; raises UsageError (a RunFileError for a bad file) when it is not
    one, a file is unreadable or invalid, or a path would lead outside the folder."""
    run_dir = Path(run_dir)
    run_json = run_dir / "run.json"
    if not run_json.is_file():
        raise UsageError(f"{run_dir} is not a run folder (no run.json)")
    inside_folder(run_dir, "run.json")
    info = read_json(run_json)
    try:
        run_info = RunInfo.from_json(info)
    except RunFileError as exc:
        raise RunFileError(f"{run_json}: {exc}") from None
    names = [entry.lab for entry in run_info.labs]
    names += [n for n in run_info.selected if n not in names]  # interrupted runs
    labs = []
    missing = []
    answers: dict[str, dict[str, Any]] = {}
    for name in names:
        lab_dir = run_dir / name
        path = lab_dir / "result.json"
        entry = run_info.entry(name)
        if lab_dir.exists() or lab_dir.is_symlink():
            inside_folder(run_dir, name)
        if path.exists() or path.is_symlink():
            inside_folder(run_dir, f"{name}/result.json")
            result = LabResult.load(path)
            if result.lab != name:
                raise RunFileError(f"{path}: lab: {short(result.lab)} does not match its folder {name!r}")
            for ex in result.exercises:
                for record in ex.records:
                    if isinstance(record, FigureRecord):
                        inside_folder(run_dir, f"{name}/{record.path}")
            if (
                any(ex.answer_by == "student" for ex in result.exercises)
                or (lab_dir / "answers.md").is_file()
            ):
                answers[name] = _student_answers(run_dir, result)
            labs.append(result)
        elif entry is not None and entry.status == "not run":
            origin = entry.origin or {"kind": "not run"}
            labs.append(LabResult.new(name, entry.title or name).never_ran(origin))
        elif run_info.status == "submitted":  # its job has not ended: listed as still running
            origin = {"kind": "still running", "run": run_dir.name}
            labs.append(LabResult.new(name, name).never_ran(origin))
        else:
            missing.append(name)
    sweeps = {}
    for result in labs:
        if (run_dir / result.lab / "sweep.json").is_file():
            from .sweep import load_sweep

            inside_folder(run_dir, f"{result.lab}/sweep.json")
            sweep = load_sweep(run_dir / result.lab)
            if sweep is not None and sweep.lab != result.lab:
                raise RunFileError(
                    f"{run_dir / result.lab / 'sweep.json'}: lab: {short(sweep.lab)} does not match its folder"
                )
            sweeps[result.lab] = sweep
    config_path = run_dir / "config.yaml"
    config_yaml = ""
    if config_path.exists() or config_path.is_symlink():
        inside_folder(run_dir, "config.yaml")
        try:
            config_yaml = config_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RunFileError(f"{config_path}: cannot be read ({exc})") from None
    return RunData(
        run_dir=run_dir,
        info=info,
        meta=report_meta(info, author),
        labs=labs,
        config_yaml=config_yaml,
        run_info=run_info,
        missing=missing,
        sweeps=sweeps,
        answers=answers,
    )


def _student_answers(run_dir: Path, result: LabResult) -> dict[str, Any]:
    """Render the student's answers of ``result`` from ``<lab>/answers.md`` of the run."""
    from .answers import RUN_FILE, apply_answers, read_answer_file

    path = run_dir / result.lab / RUN_FILE
    text = None
    if path.exists() or path.is_symlink():
        inside_folder(run_dir, f"{result.lab}/{RUN_FILE}")
        text = read_answer_file(path)
    return apply_answers(result, text)


def inside_folder(run_dir: Path, rel: str) -> Path:
    """``run_dir / rel``, refused when it or a folder on the way from the run folder is a
    symbolic link, or when it resolves outside the run folder."""
    path = Path(run_dir)
    for part in Path(rel).parts:
        path = path / part
        if path.is_symlink():
            raise RunFileError(f"{path}: a symbolic link; a run folder holds its own files only")
    root = Path(os.path.realpath(run_dir))
    resolved = Path(os.path.realpath(path))
    if root not in resolved.parents:
        raise RunFileError(f"{path}: resolves outside the run folder")
    return path


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a run-folder file, or a one-line RunFileError."""
    if not Path(path).is_file():
        raise UsageError(f"{Path(path).parent} is not a run folder (no {Path(path).name})")
    data = read_json_file(path)
    if not isinstance(data, dict):
        raise RunFileError(f"{path}: expected a JSON object")
    return data


def report_meta(info: dict[str, Any], author: str | None) -> dict[str, str]:
    report = dict((info.get("settings", {}) or {}).get("report", {}) or {})
    if author:
        report["author"] = author
    meta = {
        key: str(report.get(key) or "") for key in ("title", "course", "author", "student_id", "institution")
    }
    meta["title"] = meta["title"] or "Lab report"
    meta["date"] = run_date(info.get("finished") or info.get("started"))
    return meta


def run_date(stamp: Any) -> str:
    """The run's date, e.g. '29 November 2026' (the report's date is the run's, so
    re-rendering gives the same file)."""
    try:
        day = dt.datetime.fromisoformat(str(stamp))
    except (TypeError, ValueError):
        return ""
    return f"{day.day} {day:%B %Y}"
