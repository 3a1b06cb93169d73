"""The records a lab produces, and their JSON form.

``result.json`` of one lab is ``LabResult.to_json()``; the report is rendered
from these files only, never from live objects. Each record type validates itself as it is
read back (a field at a time, naming the first one that is wrong), which is most of this
module's length.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..base.errors import UsageError
from ..base.names import RUN_FOLDER_NAMES

SCHEMA_VERSION = 2
#: The schema versions this labrunner reads: version 1 (before a check, claim, figure or
#: table could carry its own fidelity, and an exercise the assignment's points) reads as
#: version 2 with every part on its exercise's fidelity and no points declared.
READABLE_SCHEMAS = (1, 2)
#: A lab's status; "not run" marks a lab listed in a run without ever having run.
STATUSES = ("passed", "failed", "error", "interrupted", "not run")


def jsonable(value: Any) -> Any:
    """Convert numpy/torch scalars, tuples, paths and non-finite floats to JSON values."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    item = getattr(value, "item", None)  # numpy and torch scalars
    if callable(item) and getattr(value, "ndim", 0) == 0:
        return jsonable(item())
    tolist = getattr(value, "tolist", None)  # small arrays
    if callable(tolist):
        return jsonable(tolist())
    return str(value)


def number(value: Any) -> float | int:
    """A metric value as a plain Python number (raises TypeError otherwise)."""
    item = getattr(value, "item", None)
    if callable(item):
        value = item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"a metric must be a number, got {type(value).__name__}")
    return value


# --------------------------------------------------------------------------- reading back

#: The biggest run.json or result.json read back (a result with large tables is a few MB).
MAX_JSON_BYTES = 64 * 1024 * 1024
#: A lab's folder in a run folder: a lab name, never a path elsewhere, never an entry the
#: run folder holds itself.
RESERVED_FOLDERS = RUN_FOLDER_NAMES
#: One part of a path inside a lab's folder (figures/<name>.png): no '..', no hidden files.
_PATH_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class RunFileError(UsageError, ValueError):
    """A run.json or result.json that is not what labrunner writes.

    The message is one line naming the file and the field (``exercises[0].checks[1].passed:
    expected true or false, got a string``). Being a UsageError, the command line prints it
    and exits with status 2; being a ValueError, code that treats unreadable files alike
    (a cache entry that fails validation) catches it too.
    """


def short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: a message never prints a whole value."""
    if isinstance(value, (dict, list)):
        return f"{type(value).__name__} of {len(value)}"
    text = repr(value) if not isinstance(value, str) or len(value) <= limit else repr(value[:limit])
    return text if len(text) <= limit + 2 else text[:limit] + "…"


def _type_name(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false", int: "an integer"}
    if value is None:
        return "null"
    if isinstance(value, float):
        return "a number" if math.isfinite(value) else f"the number {value}"
    return names.get(type(value), type(value).__name__)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, bool, int, float))


_EXPECTED = {
    str: ("a string", lambda v: isinstance(v, str)),
    bool: ("true or false", lambda v: isinstance(v, bool)),
    int: ("an integer", _is_int),
    float: ("a finite number", _is_number),
    list: ("a list", lambda v: isinstance(v, list)),
    dict: ("an object", lambda v: isinstance(v, dict)),
}
_MISSING = object()


def _where(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def json_object(data: Any, where: str) -> dict[str, Any]:
    """``data`` if it is a JSON object, else a RunFileError naming ``where``."""
    if not isinstance(data, dict):
        raise RunFileError(f"{where or 'the file'}: expected an object, got {_type_name(data)}")
    return data


def field_of(
    data: dict[str, Any],
    key: str,
    where: str,
    kind: type,
    default: Any = _MISSING,
    *,
    optional: bool = False,
) -> Any:
    """``data[key]`` checked to be of ``kind`` (str, bool, int, float, list, dict); ``default``
    when absent (required when no default); ``optional`` also allows null."""
    if key not in data:
        if default is _MISSING:
            raise RunFileError(f"{_where(where, key)}: missing")
        return default
    value = data[key]
    if optional and value is None:
        return None
    expected, ok = _EXPECTED[kind]
    if not ok(value):
        raise RunFileError(f"{_where(where, key)}: expected {expected}, got {_type_name(value)}")
    return value


def check_lab_name(name: Any, where: str) -> str:
    """A lab name as a folder of the run: the lab contract's pattern, nothing else."""
    from ..base.names import NAME_PATTERN

    if not isinstance(name, str) or not NAME_PATTERN.match(name) or name in RESERVED_FOLDERS:
        raise RunFileError(f"{where}: invalid lab name {short(name)}")
    return name


def check_relative_path(path: Any, where: str) -> str:
    """A file inside a lab's folder, as a relative POSIX path without '..' or hidden parts."""
    if isinstance(path, str) and 0 < len(path) <= 1000:
        parts = path.split("/")
        if len(parts) <= 8 and all(_PATH_PART.match(p) for p in parts):
            return path
    raise RunFileError(f"{where}: unsafe path {short(path)} (expected a file inside the lab's folder)")


def read_json_file(path: Path, *, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """The JSON value in ``path``; a RunFileError (one line naming the file) when it cannot be
    read, is larger than ``max_bytes``, is not UTF-8 or not JSON."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise RunFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(raw) > max_bytes:
        raise RunFileError(f"{path}: larger than {max_bytes} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RunFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise RunFileError(f"{path}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:
        raise RunFileError(f"{path}: not valid JSON ({str(exc).splitlines()[0][:200]})") from None


T = TypeVar("T")


def load_record(path: Path, from_json: Callable[[Any], T]) -> T:
    """``from_json`` of the JSON in ``path``; a RunFileError names the file and the field."""
    data = read_json_file(path)
    try:
        return from_json(data)
    except RunFileError as exc:
        raise RunFileError(f"{path}: {exc}") from None


def check_schema(data: dict[str, Any], where: str = "", *, required: bool = True) -> int:
    """The file's schema version, which must be one this labrunner reads
    (:data:`READABLE_SCHEMAS`); a file without one (``required=False``) is version 1."""
    version = field_of(data, "schema", where, int, _MISSING if required else 1)
    if version > SCHEMA_VERSION:
        raise RunFileError(
            f"{_where(where, 'schema')}: version {version} was written by a newer labrunner "
            f"(this one reads version {SCHEMA_VERSION}); upgrade labrunner"
        )
    if version not in READABLE_SCHEMAS:
        raise RunFileError(
            f"{_where(where, 'schema')}: unknown version {version} "
            f"(expected one of {', '.join(map(str, READABLE_SCHEMAS))})"
        )
    return version


# --------------------------------------------------------------------------- the records

#: Whether a part of an exercise ran on the assignment's own material or on a stand-in.
FIDELITIES = ("assignment", "stand-in")


def _fidelity_fields(d: dict[str, Any], where: str) -> dict[str, Any]:
    """``fidelity`` (null or absent: the exercise's) and ``fidelity_reason`` of a check,
    claim, figure or table, read back."""
    fidelity = field_of(d, "fidelity", where, str, None, optional=True)
    if fidelity is not None and fidelity not in FIDELITIES:
        raise RunFileError(
            f"{_where(where, 'fidelity')}: expected one of {', '.join(FIDELITIES)} or null, got {short(fidelity)}"
        )
    return {"fidelity": fidelity, "fidelity_reason": field_of(d, "fidelity_reason", where, str, "")}


@dataclass
class Check:
    """One pass/fail check, with the points it is worth."""

    name: str
    passed: bool
    expected: Any = None
    actual: Any = None
    tolerance: Any = None
    points: float = 1.0
    message: str = ""
    #: Kept back from the student version (``labrunner assign``) and run again by the grader.
    hidden: bool = False
    #: ``"assignment"`` or ``"stand-in"`` (why in ``fidelity_reason``); None: the exercise's.
    fidelity: str | None = None
    fidelity_reason: str = ""

    @property
    def earned(self) -> float:
        return self.points if self.passed else 0.0

    @classmethod
    def from_json(cls, data: Any, where: str = "") -> Check:
        d = json_object(data, where)
        points = field_of(d, "points", where, float, 1.0)
        if points < 0:
            raise RunFileError(f"{_where(where, 'points')}: expected points >= 0, got {short(points)}")
        return cls(
            name=field_of(d, "name", where, str),
            passed=field_of(d, "passed", where, bool),
            expected=d.get("expected"),
            actual=d.get("actual"),
            tolerance=d.get("tolerance"),
            points=points,
            message=field_of(d, "message", where, str, ""),
            hidden=field_of(d, "hidden", where, bool, False),
            **_fidelity_fields(d, where),
        )


@dataclass
class Claim:
    """A conclusion an answer states, decided by a measurement shown in the report.

    ``holds`` is the outcome; ``statement`` says what is claimed when it holds;
    ``evidence`` (Markdown) gives the numbers that decided it, and ``baseline`` what they
    were compared with and its uncertainty (chance, the untrained model, a unigram model,
    random vectors, the spread over seeds). Answer templates branch on claims only.
    """

    name: str
    holds: bool
    statement: str = ""
    evidence: str = ""
    baseline: str = ""
    #: Kept back from the student version (``labrunner assign``) and run again by the grader.
    hidden: bool = False
    #: ``"assignment"`` or ``"stand-in"`` (why in ``fidelity_reason``); None: the exercise's.
    fidelity: str | None = None
    fidelity_reason: str = ""

    @classmethod
    def from_json(cls, data: Any, where: str = "") -> Claim:
        d = json_object(data, where)
        return cls(
            name=field_of(d, "name", where, str),
            holds=field_of(d, "holds", where, bool),
            **{k: field_of(d, k, where, str, "") for k in ("statement", "evidence", "baseline")},
            hidden=field_of(d, "hidden", where, bool, False),
            **_fidelity_fields(d, where),
        )


class _ReadableAsMapping(Mapping):
    """Lets a record be read like the dict it is in result.json (``record["kind"]``), as
    code written against the earlier dict records does."""

    def __getitem__(self, key: str) -> Any:
        if isinstance(key, str) and key in self._names():
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def _names(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self))  # type: ignore[arg-type]


@dataclass(eq=True)
class FigureRecord(_ReadableAsMapping):
    """A figure: a PNG inside the lab's folder (``figures/<name>.png``) and its caption."""

    path: str
    caption: str = ""
    #: ``"assignment"`` or ``"stand-in"`` (why in ``fidelity_reason``); None: the exercise's.
    fidelity: str | None = None
    fidelity_reason: str = ""
    kind: str = field(default="figure", init=False)

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "") -> FigureRecord:
        return cls(
            path=check_relative_path(field_of(data, "path", where, str), _where(where, "path")),
            caption=field_of(data, "caption", where, str, ""),
            **_fidelity_fields(data, where),
        )


@dataclass(eq=True)
class TableRecord(_ReadableAsMapping):
    """A table: column headings, rows of cells (numbers or Markdown text), a caption."""

    columns: list[Any]
    rows: list[list[Any]]
    caption: str = ""
    #: ``"assignment"`` or ``"stand-in"`` (why in ``fidelity_reason``); None: the exercise's.
    fidelity: str | None = None
    fidelity_reason: str = ""
    kind: str = field(default="table", init=False)

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "") -> TableRecord:
        columns = field_of(data, "columns", where, list)
        for i, column in enumerate(columns):
            if not _is_scalar(column):
                raise RunFileError(f"{_where(_where(where, 'columns'), i)}: expected a heading, got a list")
        rows = field_of(data, "rows", where, list)
        for i, row in enumerate(rows):
            if not isinstance(row, list):
                raise RunFileError(
                    f"{_where(_where(where, 'rows'), i)}: expected a list, got {_type_name(row)}"
                )
        return cls(
            columns=columns,
            rows=rows,
            caption=field_of(data, "caption", where, str, ""),
            **_fidelity_fields(data, where),
        )


@dataclass(eq=True)
class MarkdownRecord(_ReadableAsMapping):
    """A block of Markdown (with ``$math$``) between the other records."""

    text: str
    kind: str = field(default="markdown", init=False)

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "") -> MarkdownRecord:
        return cls(text=field_of(data, "text", where, str))


Record = FigureRecord | TableRecord | MarkdownRecord
RECORD_TYPES: dict[str, type[FigureRecord] | type[TableRecord] | type[MarkdownRecord]] = {
    "figure": FigureRecord,
    "table": TableRecord,
    "markdown": MarkdownRecord,
}


def record_from_json(data: Any, where: str = "") -> Record:
    """The typed record of one entry of an exercise's ``records``."""
    d = json_object(data, where)
    kind = d.get("kind")
    cls = RECORD_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        kinds = ", ".join(RECORD_TYPES)
        raise RunFileError(f"{_where(where, 'kind')}: unknown record kind {short(kind)} (expected {kinds})")
    return cls.from_json(d, where)


#: Who writes an exercise's answer: the lab (a template filled with measured values) or the
#: student (``answers/<lab>.md`` of an assigned lab, rendered when the report is).
ANSWER_AUTHORS = ("lab", "student")


@dataclass
class BorrowedClaim:
    """A claim of another exercise, on a stand-in, that an exercise's answer reads: the
    answer's conclusion leans on the stand-in even where the exercise's own parts do not."""

    claim: str
    exercise: str
    reason: str = ""

    @classmethod
    def from_json(cls, data: Any, where: str = "") -> BorrowedClaim:
        d = json_object(data, where)
        return cls(
            claim=field_of(d, "claim", where, str),
            exercise=field_of(d, "exercise", where, str),
            reason=field_of(d, "reason", where, str, ""),
        )


@dataclass(frozen=True)
class Part:
    """A check, claim, figure or table of an exercise, or its answer's borrowed stand-in
    claims, with the fidelity it has (its own, or else the exercise's)."""

    kind: str
    name: str
    fidelity: str
    reason: str = ""


@dataclass
class Exercise:
    """One exercise of a lab: question, answer, and records in the order they were made.

    ``records`` holds figures, tables and Markdown blocks (:class:`FigureRecord`,
    :class:`TableRecord`, :class:`MarkdownRecord` once read back; the recorder appends
    the same fields as dicts with a ``kind`` key, and either reads as a mapping).
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
    records: list[Any] = field(default_factory=list)
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

    def fidelity_of(self, part: Any) -> tuple[str, str]:
        """The fidelity of one of the exercise's checks, claims, figures or tables (a record or
        its dict) and why: its own when it has one, else the exercise's."""
        own = part.get("fidelity") if isinstance(part, Mapping) else getattr(part, "fidelity", None)
        if own is None:
            return self.fidelity, self.fidelity_reason
        reason = part.get("fidelity_reason", "") if isinstance(part, Mapping) else part.fidelity_reason
        return own, reason or ""

    def parts(self) -> list[Part]:
        """Every check, claim, figure and table with its fidelity, and each borrowed claim
        (always a stand-in): what :attr:`derived_fidelity` is derived from."""
        out = []
        for kind, items in (("check", self.checks), ("claim", self.claims)):
            out += [Part(kind, item.name, *self.fidelity_of(item)) for item in items]
        for record in self.records:
            kind = record.get("kind")
            if kind in ("figure", "table"):
                name = record.get("path", "") if kind == "figure" else record.get("caption", "")
                out.append(Part(kind, name, *self.fidelity_of(record)))
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
        fidelity = field_of(d, "fidelity", where, str, "assignment")
        if fidelity not in FIDELITIES:
            raise RunFileError(
                f"{_where(where, 'fidelity')}: expected one of {', '.join(FIDELITIES)}, got {short(fidelity)}"
            )
        points = field_of(d, "points", where, float, None, optional=True)
        if points is not None and points < 0:
            raise RunFileError(f"{_where(where, 'points')}: expected points >= 0, got {short(points)}")
        bonus = field_of(d, "bonus", where, bool, False)
        if bonus and points is None:
            raise RunFileError(f"{_where(where, 'bonus')}: a bonus needs the exercise's points")

        def items(key: str, read: Any) -> list[Any]:
            at = _where(where, key)
            return [read(item, _where(at, i)) for i, item in enumerate(field_of(d, key, where, list, []))]

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


def _answer_by_from_json(d: dict[str, Any], where: str) -> str:
    author = field_of(d, "answer_by", where, str, "lab")
    if author not in ANSWER_AUTHORS:
        raise RunFileError(
            f"{_where(where, 'answer_by')}: expected one of {', '.join(ANSWER_AUTHORS)}, got {short(author)}"
        )
    return author


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
    error: dict[str, Any] | None = None
    origin: dict[str, str] | None = None
    part: str = ""
    order: float | None = None
    schema: int = SCHEMA_VERSION

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
        status = field_of(d, "status", where, str, "passed")
        if status not in STATUSES:
            raise RunFileError(
                f"{_where(where, 'status')}: expected one of {', '.join(STATUSES)}, got {short(status)}"
            )
        duration = field_of(d, "duration_s", where, float, 0.0)
        seed = field_of(d, "seed", where, int, 0)
        notes = field_of(d, "notes", where, list, [])
        for i, note in enumerate(notes):
            if not isinstance(note, str):
                raise RunFileError(
                    f"{_where(_where(where, 'notes'), i)}: expected a string, got {_type_name(note)}"
                )
        exercises = field_of(d, "exercises", where, list, [])
        at = _where(where, "exercises")
        return cls(
            lab=check_lab_name(d.get("lab"), _where(where, "lab")),
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
            exercises=[Exercise.from_json(ex, _where(at, i)) for i, ex in enumerate(exercises)],
            error=_error_from_json(d, where),
            origin=_origin_from_json(d, where),
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
        raise RunFileError(f"{_where(where, 'order')}: expected a finite number or null, got {short(order)}")
    return order


def _error_from_json(d: dict[str, Any], where: str) -> dict[str, Any] | None:
    error = field_of(d, "error", where, dict, None, optional=True)
    if error is None:
        return None
    at = _where(where, "error")
    out = {key: field_of(error, key, at, str, "") for key in ("type", "message", "traceback")}
    for key, value in error.items():
        if key not in out:
            if not _is_scalar(value):
                raise RunFileError(f"{_where(at, key)}: expected a single value, got {_type_name(value)}")
            out[key] = value
    return out


def _origin_from_json(d: dict[str, Any], where: str) -> dict[str, str] | None:
    origin = field_of(d, "origin", where, dict, None, optional=True)
    if origin is None:
        return None
    at = _where(where, "origin")
    return {key: field_of(origin, key, at, str) for key in origin}


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes files private; outputs are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(jsonable(data), indent=2, ensure_ascii=False) + "\n")
