"""The parts of an exercise in result.json: checks, claims, figures, tables and Markdown
blocks, and the stand-in claims an answer borrows.

Each record type refuses a bad value where it is made (``ValueError`` naming the field: a
figure whose path leads outside the lab's folder, a check without a name) and validates
itself a field at a time as it is read back (a
:class:`~labrunner.records.jsonfiles.RunFileError` naming the first field that is wrong),
so what the recorder writes is what a reader accepts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .jsonfiles import (
    RunFileError,
    check_relative_path,
    field_of,
    is_scalar,
    json_object,
    short,
    type_name,
    where_of,
)

#: Whether a part of an exercise ran on the assignment's own material or on a stand-in.
FIDELITIES = ("assignment", "stand-in")


def check_fidelity(fidelity: Any, where: str) -> None:
    """A part's own fidelity: None (the exercise's) or one of :data:`FIDELITIES`."""
    if fidelity is not None and fidelity not in FIDELITIES:
        raise ValueError(
            f"{where}: fidelity must be one of {', '.join(FIDELITIES)} or None, not {short(fidelity)}"
        )


def fidelity_fields(d: dict[str, Any], where: str) -> dict[str, Any]:
    """``fidelity`` (null or absent: the exercise's) and ``fidelity_reason`` of a check,
    claim, figure or table, read back."""
    fidelity = field_of(d, "fidelity", where, str, None, optional=True)
    if fidelity is not None and fidelity not in FIDELITIES:
        raise RunFileError(
            f"{where_of(where, 'fidelity')}: expected one of {', '.join(FIDELITIES)} or null, got {short(fidelity)}"
        )
    return {"fidelity": fidelity, "fidelity_reason": field_of(d, "fidelity_reason", where, str, "")}


def check_name(name: Any, what: str) -> None:
    """The name of a check or claim: a non-empty string."""
    if not isinstance(name, str):  # its repr() is not called: it may raise
        raise ValueError(f"{what}: the name must be a non-empty string, not {type(name).__name__}")
    if not name.strip():
        raise ValueError(f"{what}: the name must be a non-empty string, not {name!r}")


def check_truth(value: Any, what: str) -> None:
    """The outcome of a check or claim as stored: True or False."""
    if not isinstance(value, bool):
        raise ValueError(f"{what}: the outcome must be True or False, not {type(value).__name__}")


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

    def __post_init__(self) -> None:
        check_name(self.name, "check")
        what = f"check {self.name!r}"
        check_truth(self.passed, what)
        points = self.points
        if (
            isinstance(points, bool)
            or not isinstance(points, (int, float))
            or not math.isfinite(points)
            or points < 0
        ):
            raise ValueError(f"{what}: points must be a number >= 0, not {short(points)}")
        check_fidelity(self.fidelity, what)

    @property
    def earned(self) -> float:
        return self.points if self.passed else 0.0

    @classmethod
    def from_json(cls, data: Any, where: str = "") -> Check:
        d = json_object(data, where)
        points = field_of(d, "points", where, float, 1.0)
        if points < 0:
            raise RunFileError(f"{where_of(where, 'points')}: expected points >= 0, got {short(points)}")
        return cls(
            name=field_of(d, "name", where, str),
            passed=field_of(d, "passed", where, bool),
            expected=d.get("expected"),
            actual=d.get("actual"),
            tolerance=d.get("tolerance"),
            points=points,
            message=field_of(d, "message", where, str, ""),
            hidden=field_of(d, "hidden", where, bool, False),
            **fidelity_fields(d, where),
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

    def __post_init__(self) -> None:
        check_name(self.name, "claim")
        check_truth(self.holds, f"claim {self.name!r}")
        check_fidelity(self.fidelity, f"claim {self.name!r}")

    @classmethod
    def from_json(cls, data: Any, where: str = "") -> Claim:
        d = json_object(data, where)
        return cls(
            name=field_of(d, "name", where, str),
            holds=field_of(d, "holds", where, bool),
            **{k: field_of(d, k, where, str, "") for k in ("statement", "evidence", "baseline")},
            hidden=field_of(d, "hidden", where, bool, False),
            **fidelity_fields(d, where),
        )


@dataclass(eq=True)
class FigureRecord:
    """A figure: a PNG inside the lab's folder (``figures/<name>.png``) and its caption."""

    path: str
    caption: str = ""
    #: ``"assignment"`` or ``"stand-in"`` (why in ``fidelity_reason``); None: the exercise's.
    fidelity: str | None = None
    fidelity_reason: str = ""
    kind: str = field(default="figure", init=False)

    def __post_init__(self) -> None:
        check_relative_path(self.path, "figure path")  # never a file outside the lab's folder
        if not isinstance(self.caption, str):
            raise ValueError(f"figure {self.path!r}: the caption must be text, not {type_name(self.caption)}")
        check_fidelity(self.fidelity, f"figure {self.path!r}")

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "") -> FigureRecord:
        return cls(
            path=check_relative_path(field_of(data, "path", where, str), where_of(where, "path")),
            caption=field_of(data, "caption", where, str, ""),
            **fidelity_fields(data, where),
        )


@dataclass(eq=True)
class TableRecord:
    """A table: column headings, rows of cells (numbers or Markdown text), a caption."""

    columns: list[Any]
    rows: list[list[Any]]
    caption: str = ""
    #: ``"assignment"`` or ``"stand-in"`` (why in ``fidelity_reason``); None: the exercise's.
    fidelity: str | None = None
    fidelity_reason: str = ""
    kind: str = field(default="table", init=False)

    def __post_init__(self) -> None:
        what = f"table {self.caption!r}" if self.caption else "table"
        if not isinstance(self.columns, list) or not all(is_scalar(c) for c in self.columns):
            raise ValueError(f"{what}: the columns must be a list of headings, not {short(self.columns)}")
        if not isinstance(self.rows, list) or not all(isinstance(row, list) for row in self.rows):
            raise ValueError(f"{what}: the rows must be a list of lists of cells")
        if not isinstance(self.caption, str):
            raise ValueError(f"{what}: the caption must be text, not {type_name(self.caption)}")
        check_fidelity(self.fidelity, what)

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "") -> TableRecord:
        columns = field_of(data, "columns", where, list)
        for i, column in enumerate(columns):
            if not is_scalar(column):
                raise RunFileError(
                    f"{where_of(where_of(where, 'columns'), i)}: expected a heading, got a list"
                )
        rows = field_of(data, "rows", where, list)
        for i, row in enumerate(rows):
            if not isinstance(row, list):
                raise RunFileError(
                    f"{where_of(where_of(where, 'rows'), i)}: expected a list, got {type_name(row)}"
                )
        return cls(
            columns=columns,
            rows=rows,
            caption=field_of(data, "caption", where, str, ""),
            **fidelity_fields(data, where),
        )


@dataclass(eq=True)
class MarkdownRecord:
    """A block of Markdown (with ``$math$``) between the other records."""

    text: str
    kind: str = field(default="markdown", init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise ValueError(f"a Markdown block must be text, not {type_name(self.text)}")

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
        raise RunFileError(f"{where_of(where, 'kind')}: unknown record kind {short(kind)} (expected {kinds})")
    return cls.from_json(d, where)


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
