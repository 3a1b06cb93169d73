"""The run folder: its files as typed records, read back with validation, and its place
among the other runs.

A run folder (``reports/<timestamp>/``) holds::

    run.json             RunInfo: settings, environment, one LabEntry per lab, status
    config.yaml          the resolved config of every lab (text, for people)
    <lab>/result.json    LabResult (labrunner.results): exercises, records, checks, claims
    <lab>/figures/*.png  the figures its records name
    report.html, report.md + figures/, report.pdf   rendered from the files above

Every reader (the report, ``check``, ``submit``, grading, notebooks) loads a run through
:func:`load_run`, which validates each file (types, lab names, the schema version) and
refuses anything that would read outside the run folder (a lab folder, result or figure
that is a symbolic link or resolves elsewhere), so a bad file gives the same one-line
:class:`~labrunner.results.RunFileError` (exit status 2) whichever command reads it.
Creating run folders, finding them and pointing ``latest`` live here too.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import UsageError
from .results import (
    SCHEMA_VERSION,
    STATUSES,
    Check,
    Claim,
    Exercise,
    FigureRecord,
    LabResult,
    MarkdownRecord,
    Record,
    RunFileError,
    TableRecord,
    check_lab_name,
    check_relative_path,
    check_schema,
    field_of,
    json_object,
    jsonable,
    read_json_file,
    short,
    write_atomic,
    write_json,
)

__all__ = [
    "SCHEMA_VERSION",
    "Check",
    "Claim",
    "Exercise",
    "FigureRecord",
    "LabEntry",
    "LabResult",
    "LabSummary",
    "MarkdownRecord",
    "Record",
    "RunData",
    "RunFileError",
    "RunInfo",
    "TableRecord",
    "find_run_dir",
    "load_run",
    "new_run_dir",
    "point_latest",
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
        schema = check_schema(d, where, required=False)
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
            schema=schema,
            extra={k: v for k, v in d.items() if k not in known},
        )

    def save(self, path: Path) -> None:
        write_json(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> RunInfo:
        """Read ``path``; raises RunFileError (one line naming the file and the field)."""
        data = read_json_file(path)
        try:
            return cls.from_json(data)
        except RunFileError as exc:
            raise RunFileError(f"{path}: {exc}") from None


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


# --------------------------------------------------------------------------- the loaded run


@dataclass
class LabSummary:
    """One row of the report's summary table (and of ``labrunner check``).

    Points are also split by fidelity: ``points_assignment`` / ``points_assignment_total``
    come from exercises on the assignment's own material, ``points_stand_in`` /
    ``points_stand_in_total`` from exercises on a stand-in (``stand_ins`` names those,
    with the reason). ``fidelity`` is ``"assignment"``, ``"stand-in"`` or ``"partly
    stand-in"``. ``origin`` says where the result comes from: ``"this run"``, ``"cache"``
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
        kind = "stand-in" if ex.fidelity == "stand-in" else "assignment"
        earned[kind] += sum(c.earned for c in ex.checks)
        total[kind] += sum(c.points for c in ex.checks)
    stand_ins = [(ex.title, ex.fidelity_reason) for ex in lab.exercises if ex.fidelity == "stand-in"]
    if not stand_ins:
        fidelity = "assignment"
    elif len(stand_ins) == len(lab.exercises):
        fidelity = "stand-in"
    else:
        fidelity = "partly stand-in"
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
        origin=where,
        origin_run=origin.get("run", ""),
        date=_date(lab.finished or lab.started),
        profile=lab.profile,
        seed=lab.seed,
        device=lab.device,
    )


def run_totals(summaries: list[LabSummary]) -> dict[str, Any]:
    """The whole run's counts: checks and points, points on the assignment's material
    and on stand-ins, labs passed, on a stand-in, shown from elsewhere and not run."""
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
    }


@dataclass
class RunData:
    """A run as loaded from its folder; what templates and report-format plugins receive.

    - ``info``: run.json as a dict; ``settings`` and ``environment`` are parts of it
      (``run_info`` is the same file as a :class:`RunInfo`).
    - ``meta``: the title block (title, course, author, student_id, institution, date).
    - ``labs``: each lab's :class:`~labrunner.results.LabResult`, in run order; a lab
      listed as never run is a result with status ``"not run"`` and no exercises.
    - ``config_yaml``: the text of config.yaml (the resolved config of every lab).
    - ``missing``: labs run.json lists whose result.json is absent.
    - ``sweeps``: lab name -> its :class:`~labrunner.sweep.SweepSummary`, for each lab run
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

    @property
    def settings(self) -> dict[str, Any]:
        return self.info.get("settings", {}) or {}

    @property
    def environment(self) -> dict[str, Any]:
        return self.info.get("environment", {}) or {}

    def figure_path(self, lab: LabResult, record: Any) -> Path:
        """The PNG file of a figure record of ``lab`` (always inside the lab's folder)."""
        rel = check_relative_path(record.get("path"), f"{lab.lab}/result.json: figure path")
        return self.run_dir / lab.lab / rel

    def summaries(self) -> list[LabSummary]:
        return [summarize(lab) for lab in self.labs]

    def totals(self) -> dict[str, Any]:
        """:func:`run_totals` of this run's labs."""
        return run_totals(self.summaries())

    @property
    def all_passed(self) -> bool:
        """True when every lab passed (an errored, interrupted or never run lab does not)."""
        return bool(self.labs) and all(lab.status == "passed" for lab in self.labs)

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

    @property
    def stand_ins(self) -> list[tuple[str, str, str]]:
        """(lab, exercise title, reason) of every exercise that ran on a stand-in."""
        return [
            (lab.lab, ex.title, ex.fidelity_reason)
            for lab in self.labs
            for ex in lab.exercises
            if ex.fidelity == "stand-in"
        ]


def load_run(run_dir: Path, *, author: str | None = None) -> RunData:
    """Load a run folder; raises UsageError (a RunFileError for a bad file) when it is not
    one, a file is unreadable or invalid, or a path would lead outside the folder."""
    run_dir = Path(run_dir)
    run_json = run_dir / "run.json"
    if not run_json.is_file():
        raise UsageError(f"{run_dir} is not a run folder (no run.json)")
    _inside(run_dir, "run.json")
    info = _read_json(run_json)
    try:
        run_info = RunInfo.from_json(info)
    except RunFileError as exc:
        raise RunFileError(f"{run_json}: {exc}") from None
    names = [entry.lab for entry in run_info.labs]
    names += [n for n in run_info.selected if n not in names]  # interrupted runs
    labs = []
    missing = []
    for name in names:
        lab_dir = run_dir / name
        path = lab_dir / "result.json"
        entry = run_info.entry(name)
        if lab_dir.exists() or lab_dir.is_symlink():
            _inside(run_dir, name)
        if path.exists() or path.is_symlink():
            _inside(run_dir, f"{name}/result.json")
            result = LabResult.load(path)
            if result.lab != name:
                raise RunFileError(f"{path}: lab: {short(result.lab)} does not match its folder {name!r}")
            for ex in result.exercises:
                for record in ex.records:
                    if isinstance(record, FigureRecord):
                        _inside(run_dir, f"{name}/{record.path}")
            labs.append(result)
        elif entry is not None and entry.status == "not run":
            origin = entry.origin or {"kind": "not run"}
            labs.append(
                LabResult(lab=name, title=entry.title or name, version="", status="not run", origin=origin)
            )
        elif run_info.status == "submitted":  # its job has not ended: listed as still running
            origin = {"kind": "still running", "run": run_dir.name}
            labs.append(LabResult(lab=name, title=name, version="", status="not run", origin=origin))
        else:
            missing.append(name)
    sweeps = {}
    for result in labs:
        if (run_dir / result.lab / "sweep.json").is_file():
            from .sweep import load_sweep

            _inside(run_dir, f"{result.lab}/sweep.json")
            try:
                sweeps[result.lab] = load_sweep(run_dir / result.lab)
            except (KeyError, TypeError, ValueError) as exc:
                raise RunFileError(f"{run_dir / result.lab / 'sweep.json'}: invalid ({exc})") from None
    config_path = run_dir / "config.yaml"
    config_yaml = ""
    if config_path.exists() or config_path.is_symlink():
        _inside(run_dir, "config.yaml")
        try:
            config_yaml = config_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RunFileError(f"{config_path}: cannot be read ({exc})") from None
    return RunData(
        run_dir=run_dir,
        info=info,
        meta=_meta(info, author),
        labs=labs,
        config_yaml=config_yaml,
        run_info=run_info,
        missing=missing,
        sweeps=sweeps,
    )


def _inside(run_dir: Path, rel: str) -> Path:
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


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a run-folder file, or a one-line RunFileError."""
    if not Path(path).is_file():
        raise UsageError(f"{Path(path).parent} is not a run folder (no {Path(path).name})")
    data = read_json_file(path)
    if not isinstance(data, dict):
        raise RunFileError(f"{path}: expected a JSON object")
    return data


def _meta(info: dict[str, Any], author: str | None) -> dict[str, str]:
    report = dict((info.get("settings", {}) or {}).get("report", {}) or {})
    if author:
        report["author"] = author
    meta = {
        key: str(report.get(key) or "") for key in ("title", "course", "author", "student_id", "institution")
    }
    meta["title"] = meta["title"] or "Lab report"
    meta["date"] = _date(info.get("finished") or info.get("started"))
    return meta


def _date(stamp: Any) -> str:
    """The run's date, e.g. '29 November 2026' (the report's date is the run's, so
    re-rendering gives the same file)."""
    try:
        day = dt.datetime.fromisoformat(str(stamp))
    except (TypeError, ValueError):
        return ""
    return f"{day.day} {day:%B %Y}"


# --------------------------------------------------------------------------- run folders


def new_run_dir(out: Path) -> Path:
    """``out/<timestamp>``, made unique, and ``out/latest`` pointing at it."""
    out = Path(out)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = out / stamp
    n = 1
    while True:
        try:
            run_dir.mkdir(parents=True)
            break
        except FileExistsError:  # another run started in the same second
            n += 1
            run_dir = out / f"{stamp}-{n}"
    point_latest(out, run_dir)
    return run_dir


def point_latest(out: Path, run_dir: Path) -> None:
    """Point ``out/latest`` at ``run_dir`` (a relative symlink, replaced atomically; where
    symlinks are not available, the text file ``out/LATEST`` names the run)."""
    out = Path(out)
    latest = out / "latest"
    tmp = out / f".latest.{os.getpid()}.{os.urandom(4).hex()}"  # two runs never share it
    try:
        tmp.symlink_to(Path(run_dir).name, target_is_directory=True)
        os.replace(tmp, latest)
    except OSError:  # no symlinks (some Windows setups): a text file names the run
        tmp.unlink(missing_ok=True)
        write_atomic(out / "LATEST", Path(run_dir).name + "\n")


def latest_run_dir(out: Path) -> Path | None:
    """The run folder ``out/latest`` (or ``out/LATEST``) names, or None."""
    out = Path(out)
    latest = out / "latest"
    if latest.is_symlink() or latest.exists():
        target = Path(os.path.realpath(latest))
        return target if target.is_dir() else None
    if (out / "LATEST").is_file():
        name = (out / "LATEST").read_text(encoding="utf-8").strip()
        if name and "/" not in name and "\\" not in name and name not in (".", ".."):
            return out / name
    return None


def find_run_dir(path: Path | None, out: Path = Path("reports")) -> Path:
    """The run folder named, or the latest one under ``out``; raises UsageError."""
    if path is None:
        path = latest_run_dir(out)
        if path is None:
            raise UsageError(f"no runs found in {out}/ (run 'labrunner run' first, or give RUN_DIR)")
    path = Path(path)
    if not (path / "run.json").is_file():
        raise UsageError(f"{path} is not a run folder (no run.json)")
    return path


#: A run folder's name: the time it started, and a counter when two started in one second.
RUN_NAME = re.compile(r"^(\d{8}-\d{6})(?:-(\d+))?$")


def run_folders(out: Path) -> list[Path]:
    """The run folders directly in ``out`` (named by their start time, holding a
    run.json, not links), newest first."""
    out = Path(out)
    if not out.is_dir():
        return []
    found = []
    for child in out.iterdir():
        match = RUN_NAME.match(child.name)
        if match and not child.is_symlink() and child.is_dir() and (child / "run.json").is_file():
            found.append(((match.group(1), int(match.group(2) or 1)), child))
    return [path for _key, path in sorted(found, reverse=True)]


def clean_runs(out: Path, *, keep: int, dry_run: bool = False) -> list[Path]:
    """Remove all but the newest ``keep`` run folders of ``out``; returns those removed.

    The folder ``latest`` points to is always kept, and only run folders directly in
    ``out`` are candidates (see :func:`run_folders`): nothing else is touched.
    """
    if keep < 1:
        raise UsageError(f"--keep must be at least 1, got {keep}")
    out = Path(out)
    latest = latest_run_dir(out)
    latest_real = Path(os.path.realpath(latest)) if latest is not None else None
    root = Path(os.path.realpath(out))
    removed = []
    for path in run_folders(out)[keep:]:
        real = Path(os.path.realpath(path))
        if real == latest_real or real.parent != root:
            continue
        if not dry_run:
            shutil.rmtree(path)
        removed.append(path)
    return removed


# --------------------------------------------------------------------------- a complete run


def link_tree(src: Path, dst: Path, *, skip: frozenset[str] = frozenset()) -> int:
    """Give ``dst`` the files of ``src`` without copying their bytes: each file is a hard
    link (a copy only where linking fails, e.g. across file systems). Links, hidden files
    and the top-level names in ``skip`` are left out. Returns how many files were copied
    rather than linked."""
    src, dst = Path(src), Path(dst)
    copied = 0
    for dirpath, dirnames, filenames in os.walk(src):  # does not follow links
        here = Path(dirpath)
        rel = here.relative_to(src)
        dirnames[:] = [
            d
            for d in dirnames
            if not d.startswith(".") and not (here / d).is_symlink() and not (rel == Path(".") and d in skip)
        ]
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in filenames:
            source = here / name
            if name.startswith(".") or source.is_symlink() or (rel == Path(".") and name in skip):
                continue
            copied += link_file(source, dst / rel / name)
    return copied


def link_file(source: Path, target: Path) -> bool:
    """Make ``target`` a hard link to ``source`` (replacing it), or a copy where linking
    fails (another file system, no hard links); returns True when it copied. Files of a
    run folder are only ever replaced whole (written to a temporary file and renamed),
    never rewritten in place, so sharing them is safe."""
    target = Path(target)
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
        return True
    return False


def _earlier_result(out: Path, run_dir: Path, lab: str) -> tuple[Path, LabResult] | None:
    """The newest result of ``lab`` in the run folders of ``out`` before ``run_dir``
    (a finished lab: passed, failed or error), or None."""
    current = Path(os.path.realpath(run_dir))
    for folder in run_folders(out):
        if Path(os.path.realpath(folder)) == current:
            continue
        lab_dir = folder / lab
        try:
            if lab_dir.is_symlink() or not (lab_dir / "result.json").is_file():
                continue
            result = LabResult.load(lab_dir / "result.json")
            for ex in result.exercises:
                for record in ex.records:
                    if isinstance(record, FigureRecord):
                        _inside(folder, f"{lab}/{record.path}")
        except UsageError:  # an unreadable result elsewhere is skipped, not fatal
            continue
        if result.lab == lab and result.status in ("passed", "failed", "error"):
            return lab_dir, result
    return None


def complete_run(
    run_dir: Path,
    installed: dict[str, str],
    *,
    cached: Callable[[str], Path | None] | None = None,
    out: Path | None = None,
) -> list[LabEntry]:
    """Give a run folder every installed lab, so its report is a complete submission.

    ``installed`` maps each installed lab's name to its title. A lab that neither ran
    nor is listed in this run is taken from its latest matching result: ``cached(name)``
    (the cache entry for its current resolved config, seed and device, a folder holding
    result.json and figures), else the newest earlier run folder of ``out`` (default: the
    run folder's parent) holding that lab; its files are hard-linked, not copied, and its
    result records its ``origin`` (where, and when it ran). A lab found nowhere is listed
    with status "not run". run.json is updated atomically; returns the entries added.
    """
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir.parent
    info = RunInfo.load(run_dir / "run.json")
    listed = {entry.lab for entry in info.labs} | set(info.selected)
    added = []
    for name, title in installed.items():
        if name in listed:
            continue
        check_lab_name(name, "installed lab")
        found, kind = _cached_result(cached, name), "cache"
        if found is None:
            found, kind = _earlier_result(out, run_dir, name), "earlier run"
        if found is None:
            entry = LabEntry(lab=name, status="not run", title=title, origin={"kind": "not run"})
        else:
            src_dir, result = found
            run_name = src_dir.parent.name if kind == "earlier run" else ""
            origin = dict(result.origin or {"kind": kind, "run": run_name, "finished": result.finished})
            result.cached = result.cached or kind == "cache"
            lab_dir = run_dir / name
            if lab_dir.exists():
                shutil.rmtree(lab_dir)
            link_tree(src_dir, lab_dir, skip=frozenset({"result.json"}))
            result.origin = origin
            result.save(lab_dir / "result.json")
            entry = LabEntry(
                lab=name,
                status=result.status,
                duration_s=result.duration_s,
                cached=result.cached,
                title=result.title,
                origin=origin,
            )
        info.labs.append(entry)
        added.append(entry)
    if added:
        info.save(run_dir / "run.json")
    return added


def _cached_result(cached: Callable[[str], Path | None] | None, name: str) -> tuple[Path, LabResult] | None:
    if cached is None:
        return None
    folder = cached(name)
    if folder is None or not (Path(folder) / "result.json").is_file():
        return None
    try:
        result = LabResult.load(Path(folder) / "result.json")
    except UsageError:
        return None
    if result.lab != name or result.status not in ("passed", "failed"):
        return None
    return Path(folder), result
