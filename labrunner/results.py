"""The records a lab produces, and their JSON form.

``result.json`` of one lab is ``LabResult.to_json()``; the report is rendered
from these files only, never from live objects.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
STATUSES = ("passed", "failed", "error", "interrupted")


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

    @property
    def earned(self) -> float:
        return self.points if self.passed else 0.0


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


FIDELITIES = ("assignment", "stand-in")


@dataclass
class Exercise:
    """One exercise of a lab: question, answer, and records in the order they were made.

    ``records`` holds figures, tables and Markdown blocks as dicts with a ``kind``
    key ("figure": path, caption; "table": columns, rows, caption; "markdown": text).
    ``fidelity`` is ``"assignment"`` when the exercise ran on the assignment's own material,
    ``"stand-in"`` otherwise, with the reason in ``fidelity_reason``.
    """

    title: str
    question: str = ""
    answer: str = ""
    records: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    fidelity: str = "assignment"
    fidelity_reason: str = ""


@dataclass
class LabResult:
    """Everything one lab produced in one run; saved as ``<lab>/result.json``."""

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
    notes: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    exercises: list[Exercise] = field(default_factory=list)
    error: dict[str, str] | None = None
    schema: int = SCHEMA_VERSION

    @property
    def checks(self) -> list[Check]:
        return [c for ex in self.exercises for c in ex.checks]

    def to_json(self) -> dict[str, Any]:
        return jsonable(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabResult:
        data = dict(data)
        exercises = []
        for ex in data.pop("exercises", []):
            ex = dict(ex)
            ex["checks"] = [Check(**c) for c in ex.get("checks", [])]
            ex["claims"] = [Claim(**c) for c in ex.get("claims", [])]
            exercises.append(Exercise(**ex))
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(exercises=exercises, **{k: v for k, v in data.items() if k in known})

    def save(self, path: Path) -> None:
        write_json(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> LabResult:
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))


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
