"""The records of a grading: what ``labrunner grade`` knows about each submission, each lab of
it, its re-execution and its scores. Each is a frozen dataclass with ``to_json`` (the shape of
``grading.json`` and of the state files a grading resumes from) and ``from_json``, which
validates what it reads back (a state file, a SLURM job's reply) and raises
:class:`~labrunner.records.results.RunFileError` naming the field. A lab's submitted and
re-executed results stay the JSON of a :class:`~labrunner.records.results.LabResult`, checked
by ``LabResult.from_json`` when read back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args

from ..records.jsonfiles import RunFileError, field_of, json_object
from ..records.results import LabResult

#: What became of a submission: read from its zip (not scored yet), not a valid submission,
#: scored cleanly, scored with something to look at, or a lab that could not be graded.
Status = Literal["read", "invalid", "graded", "flagged", "error"]
STATUSES: tuple[str, ...] = get_args(Status)
RerunStatus = Literal["done", "error"]

T = TypeVar("T")


def _list_of(data: dict[str, Any], key: str, where: str, item: Callable[[Any, str], T]) -> tuple[T, ...]:
    return tuple(item(x, f"{where}.{key}[{i}]") for i, x in enumerate(field_of(data, key, where, list)))


def _strings(data: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    def one(value: Any, at: str) -> str:
        if not isinstance(value, str):
            raise RunFileError(f"{at}: expected a string")
        return value

    return _list_of(data, key, where, one)


def _without_absent(data: dict[str, Any], optional: tuple[str, ...]) -> dict[str, Any]:
    """``data`` without the optional keys whose value is None (absent in the file)."""
    return {k: v for k, v in data.items() if not (k in optional and v is None)}


def _checked_result(data: Any, where: str) -> dict[str, Any]:
    """A lab result's JSON, read back as a LabResult to check it (kept as JSON)."""
    LabResult.from_json(json_object(data, where), where)
    return data


# --------------------------------------------------------------------------- scores


@dataclass(frozen=True)
class CheckScore:
    """One check of a scored exercise: its outcome, the points it earned of those it could,
    and the numbers it compared."""

    name: str
    passed: bool
    earned: float
    points: float
    hidden: bool = False
    expected: Any = None
    actual: Any = None
    tolerance: Any = None
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any, where: str = "check") -> CheckScore:
        d = json_object(data, where)
        return cls(
            name=field_of(d, "name", where, str),
            passed=field_of(d, "passed", where, bool),
            earned=field_of(d, "earned", where, float),
            points=field_of(d, "points", where, float),
            hidden=field_of(d, "hidden", where, bool),
            expected=d.get("expected"),
            actual=d.get("actual"),
            tolerance=d.get("tolerance"),
            message=field_of(d, "message", where, str),
        )


@dataclass(frozen=True)
class ExerciseScore:
    """One exercise of a lab with its score: ``total`` is the assignment's points when the
    exercise declares them (``scored_by`` ``"assignment"``), else its check points
    (``"checks"``); a ``bonus`` exercise's total counts towards no maximum."""

    exercise: str
    earned: float
    total: float
    bonus: bool
    scored_by: Literal["assignment", "checks"]
    checks: tuple[CheckScore, ...] = ()
    not_implemented: str = ""

    def earning_nothing(self) -> ExerciseScore:
        """The same exercise with no point earned and no check passed (a failed re-execution)."""
        checks = tuple(dataclasses.replace(c, earned=0.0, passed=False) for c in self.checks)
        return dataclasses.replace(self, earned=0.0, checks=checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "exercise": self.exercise,
            "earned": self.earned,
            "total": self.total,
            "bonus": self.bonus,
            "scored_by": self.scored_by,
            "checks": [c.to_json() for c in self.checks],
            "not_implemented": self.not_implemented,
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "exercise") -> ExerciseScore:
        d = json_object(data, where)
        scored_by = field_of(d, "scored_by", where, str)
        if scored_by not in ("assignment", "checks"):
            raise RunFileError(f"{where}.scored_by: 'assignment' or 'checks', not {scored_by!r}")
        return cls(
            exercise=field_of(d, "exercise", where, str),
            earned=field_of(d, "earned", where, float),
            total=field_of(d, "total", where, float),
            bonus=field_of(d, "bonus", where, bool),
            scored_by=scored_by,
            checks=_list_of(d, "checks", where, CheckScore.from_json),
            not_implemented=field_of(d, "not_implemented", where, str),
        )


@dataclass(frozen=True)
class ExerciseTotal:
    """One exercise's cell of the gradebook: its lab and title, the points earned and its
    maximum (a bonus exercise's maximum counts towards no total)."""

    lab: str
    exercise: str
    earned: float
    total: float
    bonus: bool

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any, where: str = "exercise") -> ExerciseTotal:
        d = json_object(data, where)
        return cls(
            lab=field_of(d, "lab", where, str),
            exercise=field_of(d, "exercise", where, str),
            earned=field_of(d, "earned", where, float),
            total=field_of(d, "total", where, float),
            bonus=field_of(d, "bonus", where, bool),
        )


@dataclass(frozen=True)
class Difference:
    """Where a re-executed result differs from the submitted one: ``kind`` is ``metric``,
    ``claim``, ``check`` or ``check value``; both sides and the tolerance it was held to."""

    kind: str
    name: str
    submitted: Any
    rerun: Any
    tolerance: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any, where: str = "difference") -> Difference:
        d = json_object(data, where)
        for key in ("submitted", "rerun"):
            if key not in d:
                raise RunFileError(f"{where}.{key}: missing")
        return cls(
            kind=field_of(d, "kind", where, str),
            name=field_of(d, "name", where, str),
            submitted=d["submitted"],
            rerun=d["rerun"],
            tolerance=field_of(d, "tolerance", where, str),
        )


# --------------------------------------------------------------------------- re-execution


@dataclass(frozen=True)
class RerunSpec:
    """What a re-execution runs: the lab, the plugin package that registers it, the profile,
    seed, config and threads; ``transplanted`` is "yes" when the instructor's hidden checks
    were put into the student's code. ``spec.json`` in the code folder is :meth:`job_json`."""

    lab: str
    plugin: str
    profile: str
    seed: Any
    config: dict[str, Any]
    threads: int
    transplanted: str = ""

    def job_json(self) -> dict[str, Any]:
        """What the re-execution in the sandbox reads (:mod:`.rerun`)."""
        data = self.to_json()
        del data["transplanted"]
        return data

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any, where: str = "spec") -> RerunSpec:
        d = json_object(data, where)
        return cls(
            lab=field_of(d, "lab", where, str),
            plugin=field_of(d, "plugin", where, str),
            profile=field_of(d, "profile", where, str),
            seed=d.get("seed", 0),
            config=field_of(d, "config", where, dict),
            threads=field_of(d, "threads", where, int),
            transplanted=field_of(d, "transplanted", where, str, ""),
        )


@dataclass(frozen=True)
class Rerun:
    """How the re-execution of one lab of a submission went: ``status`` ``"done"`` (with the
    re-executed ``result``, a LabResult's JSON) or ``"error"`` with its ``reason``; how long
    it took, the end of its output, the spec it ran, and where (a SLURM job's node)."""

    status: RerunStatus
    reason: str
    elapsed_s: float | None = None
    output: str | None = None
    spec: RerunSpec | None = None
    result: dict[str, Any] | None = None
    where: str | None = None
    isolation_warning: str | None = None

    OPTIONAL = ("elapsed_s", "output", "spec", "result", "where", "isolation_warning")

    @classmethod
    def failed(cls, reason: str) -> Rerun:
        return cls(status="error", reason=reason)

    def to_json(self) -> dict[str, Any]:
        data = {
            "status": self.status,
            "reason": self.reason,
            "elapsed_s": self.elapsed_s,
            "output": self.output,
            "spec": self.spec.to_json() if self.spec is not None else None,
            "result": self.result,
            "where": self.where,
            "isolation_warning": self.isolation_warning,
        }
        return _without_absent(data, self.OPTIONAL)

    @classmethod
    def from_json(cls, data: Any, where: str = "rerun") -> Rerun:
        d = json_object(data, where)
        status = field_of(d, "status", where, str)
        if status not in ("done", "error"):
            raise RunFileError(f"{where}.status: 'done' or 'error', not {status!r}")
        spec, result = d.get("spec"), d.get("result")
        if status == "done" and (spec is None or result is None):
            raise RunFileError(f"{where}: a re-execution that is done has its spec and result")
        return cls(
            status=status,
            reason=field_of(d, "reason", where, str),
            elapsed_s=field_of(d, "elapsed_s", where, float, None),
            output=field_of(d, "output", where, str, None),
            spec=RerunSpec.from_json(spec, f"{where}.spec") if spec is not None else None,
            result=_checked_result(result, f"{where}.result") if result is not None else None,
            where=field_of(d, "where", where, str, None),
            isolation_warning=field_of(d, "isolation_warning", where, str, None),
        )


# --------------------------------------------------------------------------- a lab, a submission


@dataclass(frozen=True)
class LabGrade:
    """One lab of a submission: its submitted result (a LabResult's JSON) and the code's
    description from the zip; its re-execution; once scored, where the points came from
    (``scored_from``), whether the re-execution was compared with the submitted result (and
    why not), the differences, and the exercises with their scores."""

    submitted: dict[str, Any]
    code: dict[str, Any] = field(default_factory=dict)
    rerun: Rerun | None = None
    scored_from: str | None = None
    compared: bool | None = None
    not_compared: str | None = None
    differences: tuple[Difference, ...] | None = None
    exercises: tuple[ExerciseScore, ...] | None = None

    OPTIONAL = ("rerun", "scored_from", "compared", "not_compared", "differences", "exercises")

    def to_json(self) -> dict[str, Any]:
        data = {
            "submitted": self.submitted,
            "code": self.code,
            "rerun": self.rerun.to_json() if self.rerun is not None else None,
            "scored_from": self.scored_from,
            "compared": self.compared,
            "not_compared": self.not_compared,
            "differences": [d.to_json() for d in self.differences] if self.differences is not None else None,
            "exercises": [e.to_json() for e in self.exercises] if self.exercises is not None else None,
        }
        return _without_absent(data, self.OPTIONAL)

    @classmethod
    def from_json(cls, data: Any, where: str = "lab") -> LabGrade:
        d = json_object(data, where)
        rerun = d.get("rerun")
        return cls(
            submitted=_checked_result(d.get("submitted"), f"{where}.submitted"),
            code=field_of(d, "code", where, dict),
            rerun=Rerun.from_json(rerun, f"{where}.rerun") if rerun is not None else None,
            scored_from=field_of(d, "scored_from", where, str, None),
            compared=field_of(d, "compared", where, bool, None),
            not_compared=field_of(d, "not_compared", where, str, None),
            differences=_list_of(d, "differences", where, Difference.from_json)
            if "differences" in d
            else None,
            exercises=_list_of(d, "exercises", where, ExerciseScore.from_json) if "exercises" in d else None,
        )


@dataclass(frozen=True)
class Submission:
    """One submission zip: where it is, its sha256, the student (safe for file names) and
    where that name came from, its status (``STATUSES``), the error that makes it invalid,
    the flags for the instructor and its labs; what was read from the run (the number of
    files verified, the author, the folder it was extracted to, the run's settings); once
    scored, the score, the maximum, each exercise's cell of the gradebook and the grading
    errors; the isolation its labs were re-executed in."""

    zip: str = ""
    zip_name: str = ""
    zip_sha256: str = ""
    student: str = "student"
    identity_from: str = "file name"
    status: Status = "read"
    error: str = ""
    flags: tuple[str, ...] = ()
    labs: Mapping[str, LabGrade] = field(default_factory=dict)
    files: int | None = None
    author: str | None = None
    folder: str | None = None
    settings: dict[str, Any] | None = None
    exercises: tuple[ExerciseTotal, ...] | None = None
    score: float | None = None
    max_score: float | None = None
    errors: tuple[str, ...] | None = None
    isolation: str | None = None
    isolation_warning: str | None = None

    OPTIONAL = (
        "files",
        "author",
        "folder",
        "settings",
        "exercises",
        "score",
        "max_score",
        "errors",
        "isolation",
        "isolation_warning",
    )

    @property
    def scored(self) -> bool:
        return self.score is not None

    def invalid(self, error: str) -> Submission:
        return dataclasses.replace(self, status="invalid", error=error)

    def with_lab(self, lab: str, grade: LabGrade) -> Submission:
        return dataclasses.replace(self, labs={**self.labs, lab: grade})

    def flagged(self, note: str) -> Submission:
        """With one more flag (once); a clean grade becomes ``flagged``."""
        if note in self.flags:
            return self
        status = "flagged" if self.status == "graded" else self.status
        return dataclasses.replace(self, flags=(*self.flags, note), status=status)

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["flags"] = list(self.flags)
        data["labs"] = {lab: grade.to_json() for lab, grade in self.labs.items()}
        if self.exercises is not None:
            data["exercises"] = [e.to_json() for e in self.exercises]
        if self.errors is not None:
            data["errors"] = list(self.errors)
        return _without_absent(data, self.OPTIONAL)

    @classmethod
    def from_json(cls, data: Any, where: str = "submission") -> Submission:
        d = json_object(data, where)
        status = field_of(d, "status", where, str)
        if status not in STATUSES:
            raise RunFileError(f"{where}.status: one of {', '.join(STATUSES)}, not {status!r}")
        labs = field_of(d, "labs", where, dict)
        return cls(
            zip=field_of(d, "zip", where, str),
            zip_name=field_of(d, "zip_name", where, str),
            zip_sha256=field_of(d, "zip_sha256", where, str),
            student=field_of(d, "student", where, str),
            identity_from=field_of(d, "identity_from", where, str),
            status=status,
            error=field_of(d, "error", where, str),
            flags=_strings(d, "flags", where),
            labs={lab: LabGrade.from_json(v, f"{where}.labs.{lab}") for lab, v in labs.items()},
            files=field_of(d, "files", where, int, None),
            author=field_of(d, "author", where, str, None),
            folder=field_of(d, "folder", where, str, None),
            settings=field_of(d, "settings", where, dict, None),
            score=field_of(d, "score", where, float, None),
            max_score=field_of(d, "max_score", where, float, None),
            exercises=_list_of(d, "exercises", where, ExerciseTotal.from_json) if "exercises" in d else None,
            errors=_strings(d, "errors", where) if "errors" in d else None,
            isolation=field_of(d, "isolation", where, str, None),
            isolation_warning=field_of(d, "isolation_warning", where, str, None),
        )
