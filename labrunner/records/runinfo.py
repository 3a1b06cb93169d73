"""The run folder's own files as typed records: run.json (:class:`RunInfo`, one
:class:`LabEntry` per lab) and jobs.json of a detached run (:class:`JobsFile`, one
:class:`JobRecord` per job), each read back with every field checked (most of this module's
length) and written through ``to_json``.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .files import inside_folder
from .jsonfiles import (
    SCHEMA_VERSION,
    RunFileError,
    check_lab_name,
    check_schema,
    choice_of,
    field_of,
    json_object,
    jsonable,
    load_record,
    seeds_of,
    short,
    write_json,
)
from .results import origin_from_json, status_from_json

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
        status = status_from_json(d, where)
        origin = origin_from_json(d, where)
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
        status = choice_of(d, "status", where, RUN_STATUSES)
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
        """Write run.json, refused (a RunFileError naming the field) unless every reader
        would accept it."""
        data = self.to_json()
        RunInfo.from_json(data)
        write_json(path, data)

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
        seeds = seeds_of(d, "", [])
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
