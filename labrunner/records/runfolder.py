"""The loaded run: :func:`load_run` reads a run folder into a :class:`RunData`, what the
report, its templates and report-format plugins, ``check``, ``submit``, grading and notebooks
receive.

A run folder (``reports/<timestamp>/``) holds::

    run.json             RunInfo (labrunner.records.runinfo): settings, environment, one LabEntry per lab
    config.yaml          the resolved config of every lab (text, for people)
    <lab>/result.json    LabResult (labrunner.records.results): exercises, records, checks, claims
    <lab>/sweep.json     SweepSummary (labrunner.records.sweep), for a lab run once per seed
    <lab>/figures/*.png  the figures its records name
    report.html, report.md + figures/, report.pdf   rendered from the files above

:func:`load_run` validates each file (types, lab names, the schema version) and refuses
anything that would read outside the run folder (a lab folder, result or figure that is a
symbolic link or resolves elsewhere), so a bad file gives the same one-line
:class:`~labrunner.records.jsonfiles.RunFileError` (exit status 2) whichever command reads it.
Creating run folders, finding them, pointing ``latest``, pruning old runs and completing a
run with every installed lab live in :mod:`labrunner.records.folders`; what the report says
about each lab (summaries, provenance) in :mod:`labrunner.records.summary`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..base.errors import UsageError
from .answers import RUN_FILE, apply_answers, read_answer_file
from .files import inside_folder
from .jsonfiles import RunFileError, check_relative_path, read_json_file, short
from .parts import FigureRecord
from .results import LabResult
from .runinfo import JobRecord, JobsFile, LabEntry, RunInfo
from .summary import (
    Consistency,
    LabSummary,
    Provenance,
    format_seeds,
    provenance_of,
    run_date,
    run_totals,
    summarize,
)
from .sweep import SWEEP_FILE, SweepSummary, load_sweep

#: ``RunData`` and ``load_run`` are this module's own; the records it reads, ``inside_folder``
#: and the summaries are importable from here too, where they were defined before they had
#: modules of their own.
__all__ = [
    "Consistency",
    "FigureRecord",
    "JobRecord",
    "JobsFile",
    "LabEntry",
    "LabResult",
    "LabSummary",
    "Provenance",
    "RunData",
    "RunFileError",
    "RunInfo",
    "format_seeds",
    "inside_folder",
    "load_run",
    "provenance_of",
    "run_date",
    "run_totals",
    "summarize",
]


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
    sweeps: dict[str, SweepSummary] = field(default_factory=dict)
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
    info = read_json_file(run_json)
    if not isinstance(info, dict):
        raise RunFileError(f"{run_json}: expected a JSON object")
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
        result = _lab_result(run_dir, name, run_info)
        if result is None:
            missing.append(name)
            continue
        labs.append(result)
        if any(ex.answer_by == "student" for ex in result.exercises) or (run_dir / name / RUN_FILE).is_file():
            answers[name] = _student_answers(run_dir, result)
    return RunData(
        run_dir=run_dir,
        info=info,
        meta=report_meta(info, author),
        labs=labs,
        config_yaml=_config_yaml(run_dir),
        run_info=run_info,
        missing=missing,
        sweeps={lab.lab: sweep for lab in labs if (sweep := _sweep(run_dir, lab.lab)) is not None},
        answers=answers,
    )


def _lab_result(run_dir: Path, name: str, run_info: RunInfo) -> LabResult | None:
    """The saved result of lab ``name``, its figures checked to be inside the run folder; a
    result with status "not run" for a lab listed as never run, or whose job has not ended;
    None when its result.json is missing."""
    lab_dir = run_dir / name
    path = lab_dir / "result.json"
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
        return result
    entry = run_info.entry(name)
    if entry is not None and entry.status == "not run":
        return LabResult.new(name, entry.title or name).never_ran(entry.origin or {"kind": "not run"})
    if run_info.status == "submitted":  # its job has not ended: listed as still running
        return LabResult.new(name, name).never_ran({"kind": "still running", "run": run_dir.name})
    return None


def _sweep(run_dir: Path, lab: str) -> SweepSummary | None:
    """The lab's sweep.json, for a lab run once per seed."""
    if not (run_dir / lab / SWEEP_FILE).is_file():
        return None
    inside_folder(run_dir, f"{lab}/{SWEEP_FILE}")
    sweep = load_sweep(run_dir / lab)
    if sweep is not None and sweep.lab != lab:
        raise RunFileError(f"{run_dir / lab / SWEEP_FILE}: lab: {short(sweep.lab)} does not match its folder")
    return sweep


def _config_yaml(run_dir: Path) -> str:
    """The text of config.yaml ("" without one)."""
    path = run_dir / "config.yaml"
    if not (path.exists() or path.is_symlink()):
        return ""
    inside_folder(run_dir, "config.yaml")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RunFileError(f"{path}: cannot be read ({exc})") from None


def _student_answers(run_dir: Path, result: LabResult) -> dict[str, Any]:
    """Render the student's answers of ``result`` from ``<lab>/answers.md`` of the run."""
    path = run_dir / result.lab / RUN_FILE
    text = None
    if path.exists() or path.is_symlink():
        inside_folder(run_dir, f"{result.lab}/{RUN_FILE}")
        text = read_answer_file(path)
    return apply_answers(result, text)


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
