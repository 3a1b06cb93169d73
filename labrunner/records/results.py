"""The records a lab produces, and their JSON form.

``result.json`` of one lab is ``LabResult.to_json()``; the report is rendered from these
files only, never from live objects. An :class:`Exercise` holds the parts of :mod:`.parts`
(checks, claims, figures, tables, Markdown blocks); a lab that raised has a :class:`LabError`.
Every record refuses a bad value where it is made and validates itself as it is read back
(:mod:`.jsonfiles`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..base.errors import describe_exception
from .jsonfiles import (
    SCHEMA_VERSION,
    RunFileError,
    check_lab_name,
    check_schema,
    choice_of,
    field_of,
    is_scalar,
    json_object,
    jsonable,
    load_record,
    short,
    type_name,
    where_of,
    write_atomic,
    write_json,
)
from .parts import (
    FIDELITIES,
    BorrowedClaim,
    Check,
    Claim,
    FigureRecord,
    MarkdownRecord,
    Part,
    Record,
    TableRecord,
    record_from_json,
)

#: Also importable from here, where they were defined before the record types had modules
#: of their own.
__all__ = [
    "ANSWER_AUTHORS",
    "FIDELITIES",
    "SCHEMA_VERSION",
    "STATUSES",
    "BorrowedClaim",
    "Check",
    "Claim",
    "Exercise",
    "FigureRecord",
    "LabError",
    "LabResult",
    "MarkdownRecord",
    "Part",
    "Record",
    "RunFileError",
    "TableRecord",
    "check_lab_name",
    "jsonable",
    "load_record",
    "short",
    "write_atomic",
    "write_json",
]

#: A lab's status; "not run" marks a lab listed in a run without ever having run.
STATUSES = ("passed", "failed", "error", "interrupted", "not run")
#: Who writes an exercise's answer: the lab (a template filled with measured values) or the
#: student (``answers/<lab>.md`` of an assigned lab, rendered when the report is).
ANSWER_AUTHORS = ("lab", "student")


@dataclass
class Exercise:
    """One exercise of a lab: question, answer, and records in the order they were made.

    ``records`` holds figures, tables and Markdown blocks (:class:`FigureRecord`,
    :class:`TableRecord`, :class:`MarkdownRecord`; each has a ``kind``).
    ``fidelity`` is ``"assignment"`` when the exercise ran on the assignment's own material,
    ``"stand-in"`` otherwise, with the reason in ``fidelity_reason``; it is the default of
    its checks, claims, figures and tables, each of which may carry its own (see
    :attr:`derived_fidelity` for the exercise's as a whole). ``borrowed`` lists the claims of
    other exercises, on a stand-in, that its answer reads (:class:`BorrowedClaim`).
    ``points`` is what the assignment gives the exercise (None: not declared; these are not
    the checks' points), ``bonus`` whether those points are a bonus.
    ``not_implemented`` is set when a stub of a solution region ended the exercise
    ("not implemented yet: self-attention (attention.py, line 42)"); the exercise fails.
    ``answer_by`` is ``"student"`` when the student writes the answer (an assigned lab).
    """

    title: str
    question: str = ""
    answer: str = ""
    records: list[Record] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    fidelity: str = "assignment"
    fidelity_reason: str = ""
    borrowed: list[BorrowedClaim] = field(default_factory=list)
    points: float | None = None
    bonus: bool = False
    not_implemented: str = ""
    answer_by: str = "lab"

    def fidelity_of(self, part: Check | Claim | FigureRecord | TableRecord) -> tuple[str, str]:
        """The fidelity of one of the exercise's checks, claims, figures or tables and why:
        its own when it has one, else the exercise's."""
        if part.fidelity is None:
            return self.fidelity, self.fidelity_reason
        return part.fidelity, part.fidelity_reason or ""

    def parts(self) -> list[Part]:
        """Every check, claim, figure and table with its fidelity, and each borrowed claim
        (always a stand-in): what :attr:`derived_fidelity` is derived from."""
        out = []
        for kind, items in (("check", self.checks), ("claim", self.claims)):
            out += [Part(kind, item.name, *self.fidelity_of(item)) for item in items]
        for record in self.records:
            if isinstance(record, FigureRecord):
                out.append(Part("figure", record.path, *self.fidelity_of(record)))
            elif isinstance(record, TableRecord):
                out.append(Part("table", record.caption, *self.fidelity_of(record)))
        out += [Part("borrowed claim", b.claim, "stand-in", b.reason) for b in self.borrowed]
        return out

    @property
    def derived_fidelity(self) -> str:
        """``"assignment"`` when every part of the exercise is on the assignment's material,
        ``"stand-in"`` when every part is on a stand-in, else ``"partly stand-in"``; an
        exercise without parts has its own ``fidelity``."""
        kinds = {p.fidelity for p in self.parts()}
        if not kinds:
            return self.fidelity
        return kinds.pop() if len(kinds) == 1 else "partly stand-in"

    def stand_in_reasons(self) -> list[str]:
        """Why the parts on a stand-in are (each reason once, in order of first use)."""
        reasons = [p.reason for p in self.parts() if p.fidelity == "stand-in"]
        if not reasons and self.fidelity == "stand-in":
            reasons = [self.fidelity_reason]
        return list(dict.fromkeys(r for r in reasons if r))

    @classmethod
    def from_json(cls, data: Any, where: str = "") -> Exercise:
        d = json_object(data, where)
        fidelity = choice_of(d, "fidelity", where, FIDELITIES, "assignment")
        points = field_of(d, "points", where, float, None, optional=True)
        if points is not None and points < 0:
            raise RunFileError(f"{where_of(where, 'points')}: expected points >= 0, got {short(points)}")
        bonus = field_of(d, "bonus", where, bool, False)
        if bonus and points is None:
            raise RunFileError(f"{where_of(where, 'bonus')}: a bonus needs the exercise's points")

        def items(key: str, read: Any) -> list[Any]:
            at = where_of(where, key)
            return [
                read_part(read, item, where_of(at, i))
                for i, item in enumerate(field_of(d, key, where, list, []))
            ]

        return cls(
            title=field_of(d, "title", where, str),
            question=field_of(d, "question", where, str, ""),
            answer=field_of(d, "answer", where, str, ""),
            records=items("records", record_from_json),
            metrics=field_of(d, "metrics", where, dict, {}),
            checks=items("checks", Check.from_json),
            claims=items("claims", Claim.from_json),
            fidelity=fidelity,
            fidelity_reason=field_of(d, "fidelity_reason", where, str, ""),
            borrowed=items("borrowed", BorrowedClaim.from_json),
            points=points,
            bonus=bonus,
            not_implemented=field_of(d, "not_implemented", where, str, ""),
            answer_by=_answer_by_from_json(d, where),
        )


def read_part(read: Any, data: Any, where: str) -> Any:
    """``read(data, where)``; a value the record type refuses (its ``ValueError``) is a
    RunFileError naming ``where``, as a wrong field is."""
    try:
        return read(data, where)
    except RunFileError:
        raise
    except ValueError as exc:
        raise RunFileError(f"{where}: {exc}") from None


def _answer_by_from_json(d: dict[str, Any], where: str) -> str:
    return choice_of(d, "answer_by", where, ANSWER_AUTHORS, "lab")


#: The fields of an error saved in result.json; others (``signal``, ``exit_code``, a SLURM
#: job's ``job_id`` and ``state``) are its ``details``.
ERROR_FIELDS = ("type", "message", "traceback")


@dataclass(frozen=True)
class LabError:
    """What ended a lab that did not finish: ``type`` (the exception's class name, or what
    stopped it: ``Timeout``, ``WorkerKilled``, ``SlurmJobFailed``, ``KeyboardInterrupt``), a
    one-line ``message`` and the ``traceback`` (may be empty). ``details`` holds single
    values that say more (``{"signal": "SIGKILL"}``, ``{"exit_code": 3}``); in result.json
    they sit beside the three fields. A record without a type or a message is refused.
    """

    type: str
    message: str
    traceback: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.type, str) or not self.type.strip():
            raise ValueError(f"an error record needs the type of the error, not {short(self.type)}")
        if not isinstance(self.message, str) or not self.message.strip():
            raise ValueError(f"error {self.type}: an error record needs a message, not {short(self.message)}")
        if not isinstance(self.traceback, str):
            raise ValueError(
                f"error {self.type}: the traceback must be text, not {type_name(self.traceback)}"
            )
        for key, value in self.details.items():
            if not isinstance(key, str) or key in ERROR_FIELDS or not is_scalar(value):
                raise ValueError(
                    f"error {self.type}: detail {short(key)} must be a new name with a single value"
                )

    @classmethod
    def from_exception(cls, exc: BaseException, traceback: str = "", **details: Any) -> LabError:
        """The error of ``exc``: its class name and its message on one line, whatever
        ``str(exc)`` does (one raised without a message says so)."""
        described = describe_exception(exc)
        message = described.partition(": ")[2] if ": " in described else ""
        return cls(type(exc).__name__, message or "raised without a message", traceback, details)

    @classmethod
    def interrupted(cls) -> LabError:
        """The error of a lab stopped by Ctrl-C (or SIGTERM)."""
        return cls("KeyboardInterrupt", "interrupted by the user")

    def with_message(self, message: str) -> LabError:
        """The same error with another message."""
        return dataclasses.replace(self, message=message)

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return jsonable(
            {**self.details, "type": self.type, "message": self.message, "traceback": self.traceback}
        )

    @classmethod
    def from_json(cls, data: Any, where: str = "error") -> LabError:
        """Read an error back. A type or message left empty by an earlier labrunner (an
        exception raised without a message) reads as ``Error`` or "raised without a message"."""
        d = json_object(data, where)
        details = {}
        for key, value in d.items():
            if key not in ERROR_FIELDS:
                if not is_scalar(value):
                    raise RunFileError(
                        f"{where_of(where, key)}: expected a single value, got {type_name(value)}"
                    )
                details[key] = value
        return cls(
            type=field_of(d, "type", where, str, "").strip() or "Error",
            message=field_of(d, "message", where, str, "").strip() or "raised without a message",
            traceback=field_of(d, "traceback", where, str, ""),
            details=details,
        )


#: What :meth:`LabResult.new` takes as a result's provenance.
PROVENANCE = ("profile", "seed", "device", "cache_key", "config", "changed", "code_hash", "run")


@dataclass
class LabResult:
    """Everything one lab produced in one run; saved as ``<lab>/result.json``.

    ``origin`` says where a result shown in a run came from when the lab did not run in it:
    ``{"kind": "cache" | "earlier run", "run": <run folder name>, "finished": <when>}``.
    Its provenance, saved as it ran: ``profile``, ``seed``, ``device``, ``changed`` (the
    settings that differ from the profile's, ``{"epochs": 4}``; None in results saved before
    labrunner recorded it), ``code_hash`` (the hash of the lab's source files) and ``run``
    (the name of the run folder it ran in).
    ``part`` and ``order`` are the lab's place in the assignment (``Lab.part``, ``Lab.order``),
    saved so that a report rendered later keeps the assignment's order.
    """

    lab: str
    title: str
    version: str
    status: str = "passed"
    duration_s: float = 0.0
    started: str = ""
    finished: str = ""
    profile: str = ""
    seed: int = 0
    device: str = "cpu"
    cache_key: str = ""
    cached: bool = False
    config: dict[str, Any] = field(default_factory=dict)
    changed: dict[str, Any] | None = None
    code_hash: str = ""
    run: str = ""
    notes: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    exercises: list[Exercise] = field(default_factory=list)
    error: LabError | None = None
    origin: dict[str, str] | None = None
    part: str = ""
    order: float | None = None
    schema: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        check_lab_name(self.lab, "lab")
        if self.status not in STATUSES:
            raise ValueError(
                f"lab {self.lab}: status must be one of {', '.join(STATUSES)}, not {short(self.status)}"
            )
        if self.error is not None and not isinstance(self.error, LabError):
            raise ValueError(f"lab {self.lab}: the error must be a LabError, not {type_name(self.error)}")

    @classmethod
    def new(
        cls,
        lab: str,
        title: str,
        version: str = "",
        *,
        part: str = "",
        order: float | None = None,
        started: str = "",
        **provenance: Any,
    ) -> LabResult:
        """The result of a lab about to run, or of one that will not (then :meth:`stop` or
        :meth:`never_ran` it): the lab's name, title and version, its place in the assignment
        (``part``, ``order``), when it started, and what it runs with (``provenance``: any of
        ``profile``, ``seed``, ``device``, ``cache_key``, ``config``, ``changed``, ``code_hash``,
        ``run``). Every result labrunner makes starts here; the lab's records,
        its status and its duration are filled in as it runs."""
        unknown = sorted(set(provenance) - set(PROVENANCE))
        if unknown:
            raise TypeError(f"LabResult.new(): unknown provenance {', '.join(unknown)}")
        return cls(
            lab=lab, title=title, version=version, part=part, order=order, started=started, **provenance
        )

    def stop(self, error: LabError) -> LabResult:
        """End the result with ``error``: status ``interrupted`` for Ctrl-C, else ``error``."""
        self.error = error
        self.status = "interrupted" if error.type == "KeyboardInterrupt" else "error"
        return self

    def never_ran(self, origin: dict[str, str]) -> LabResult:
        """Mark a lab listed in a run without a result of its own: status ``not run``, and
        ``origin`` says why (``{"kind": "not run"}``, ``{"kind": "still running", ...}``)."""
        self.status = "not run"
        self.origin = dict(origin)
        return self

    @property
    def checks(self) -> list[Check]:
        return [c for ex in self.exercises for c in ex.checks]

    def took(self) -> str:
        """``in 12.3 s``, or for a result reused from the cache ``(cached; ran in 1106.3 s on
        2026-12-02)``: a cached lab did not just run for that long."""
        if self.cached:
            when = f" on {self.finished[:10]}" if self.finished else ""
            return f"(cached; ran in {self.duration_s:.1f} s{when})"
        return f"in {self.duration_s:.1f} s"

    def to_json(self) -> dict[str, Any]:
        data = jsonable(dataclasses.asdict(self))
        data["error"] = None if self.error is None else self.error.to_json()
        for ex in data["exercises"]:
            for part in (*ex["checks"], *ex["claims"], *ex["records"]):
                if part.get("fidelity", "") is None:  # the exercise's: said once, by the exercise
                    part.pop("fidelity")
                    part.pop("fidelity_reason", None)
        return data

    @classmethod
    def from_json(cls, data: Any, where: str = "") -> LabResult:
        """Read a result back, checking every field's type, the lab name and the schema
        version; raises RunFileError naming the first field that is wrong."""
        d = json_object(data, where)
        check_schema(d, where)
        status = status_from_json(d, where)
        duration = field_of(d, "duration_s", where, float, 0.0)
        seed = field_of(d, "seed", where, int, 0)
        notes = field_of(d, "notes", where, list, [])
        for i, note in enumerate(notes):
            if not isinstance(note, str):
                raise RunFileError(
                    f"{where_of(where_of(where, 'notes'), i)}: expected a string, got {type_name(note)}"
                )
        exercises = field_of(d, "exercises", where, list, [])
        at = where_of(where, "exercises")
        return cls(
            lab=check_lab_name(d.get("lab"), where_of(where, "lab")),
            title=field_of(d, "title", where, str),
            version=field_of(d, "version", where, str),
            status=status,
            duration_s=duration,
            seed=seed,
            cached=field_of(d, "cached", where, bool, False),
            config=field_of(d, "config", where, dict, {}),
            changed=field_of(d, "changed", where, dict, None, optional=True),
            notes=notes,
            metrics=field_of(d, "metrics", where, dict, {}),
            exercises=[Exercise.from_json(ex, where_of(at, i)) for i, ex in enumerate(exercises)],
            error=_error_from_json(d, where),
            origin=origin_from_json(d, where),
            order=_order_from_json(d, where),
            **{
                k: field_of(d, k, where, str, "")
                for k in ("started", "finished", "profile", "cache_key", "part", "code_hash", "run")
            },
            device=field_of(d, "device", where, str, "cpu"),
        )

    def save(self, path: Path) -> None:
        write_json(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> LabResult:
        """Read ``path``; raises RunFileError (one line naming the file and field)."""
        return load_record(path, cls.from_json)


def _order_from_json(d: dict[str, Any], where: str) -> float | None:
    order = d.get("order")
    if order is None:
        return None
    if isinstance(order, bool) or not isinstance(order, (int, float)) or not math.isfinite(order):
        raise RunFileError(
            f"{where_of(where, 'order')}: expected a finite number or null, got {short(order)}"
        )
    return order


def status_from_json(d: dict[str, Any], where: str) -> str:
    """A lab's ``status`` (absent: ``"passed"``), one of :data:`STATUSES`."""
    return choice_of(d, "status", where, STATUSES, "passed")


def origin_from_json(d: dict[str, Any], where: str) -> dict[str, str] | None:
    """Where a lab's result comes from (``origin``: null or an object of strings)."""
    origin = field_of(d, "origin", where, dict, None, optional=True)
    if origin is None:
        return None
    at = where_of(where, "origin")
    return {key: field_of(origin, key, at, str) for key in origin}


def _error_from_json(d: dict[str, Any], where: str) -> LabError | None:
    error = field_of(d, "error", where, dict, None, optional=True)
    return None if error is None else LabError.from_json(error, where_of(where, "error"))
