"""What a lab has recorded so far while it runs: its :class:`~labrunner.records.results.LabResult`,
its claims by name (what answer templates branch on), its metrics and the files it wrote.
The context opens exercises through it and each exercise's recorder writes into it, so the
rules that hold across a lab (a claim, metric or file recorded once) are kept in one place.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from ..records.jsonfiles import short
from ..records.parts import FIDELITIES, BorrowedClaim, Claim
from ..records.results import Exercise, LabResult
from .stubs import note_opened

#: A file a lab writes into its folder: a plain name, no folders, no hidden file.
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def truth_value(value: Any, record: str, name: Any, field: str) -> bool:
    """``value`` as the outcome of a check or claim: a Python bool, or a numpy bool
    (``numpy.bool_``); anything else raises ``TypeError`` naming the ``record`` ("check",
    "claim"), its ``name`` and ``field``. ``bool(x)`` would record ``nan``, ``"False"`` and
    ``[False]`` as true."""
    if isinstance(value, bool):
        return value
    kind = type(value)
    if kind.__module__ == "numpy" and kind.__name__ in ("bool_", "bool"):
        return bool(value)
    raise TypeError(
        f"{record} {name!r}: {field} must be True or False (a bool or a numpy bool), "
        f"got {kind.__name__} {short(value)}"
    )


def part_fidelity(fidelity: str | None, reason: str, record: str, name: Any = None) -> dict[str, Any]:
    """The ``fidelity`` and ``fidelity_reason`` fields of a check, claim, figure or table
    (``record`` and ``name`` say which in the error): None leaves it to the exercise's
    fidelity; a stand-in needs the reason."""
    if fidelity is None and not reason.strip():
        return {}
    what = record if name is None else f"{record} {short(name)}"
    if fidelity is None:
        raise ValueError(f"{what}: a reason is given for a stand-in (fidelity='stand-in')")
    if fidelity not in FIDELITIES:
        raise ValueError(f"{what}: fidelity must be one of {', '.join(FIDELITIES)} or None, not {fidelity!r}")
    if fidelity == "stand-in" and not reason.strip():
        raise ValueError(f"{what}: a stand-in needs the reason")
    return {"fidelity": fidelity, "fidelity_reason": reason.strip()}


def new_exercise(
    title: str, question: str, *, fidelity: str, reason: str, points: float | None, bonus: bool
) -> Exercise:
    """An exercise as ``ctx.exercise(...)`` opens it, its arguments checked."""
    if fidelity not in FIDELITIES:
        raise ValueError(f"fidelity must be one of {', '.join(FIDELITIES)}, not {fidelity!r}")
    if fidelity == "stand-in" and not reason.strip():
        raise ValueError("a stand-in exercise needs the reason")
    if points is not None:
        if isinstance(points, bool) or not isinstance(points, (int, float)) or not math.isfinite(points):
            raise ValueError(f"exercise {title!r}: points must be a number, not {points!r}")
        if points < 0:
            raise ValueError(f"exercise {title!r}: points must be >= 0, not {points!r}")
    if not isinstance(bonus, bool):
        raise ValueError(f"exercise {title!r}: bonus must be True or False, not {bonus!r}")
    if bonus and points is None:
        raise ValueError(f"exercise {title!r}: a bonus needs its points (points=...)")
    return Exercise(
        title=title,
        question=question.strip(),
        fidelity=fidelity,
        fidelity_reason=reason.strip(),
        points=None if points is None else float(points),
        bonus=bonus,
    )


class Recording:
    """The records of one run of a lab: ``result`` (what is saved as result.json), ``claims``
    (every claim recorded so far that is not hidden, by name: what templates see), and the
    files written into ``out_dir``."""

    def __init__(self, result: LabResult, config: Any, out_dir: Path):
        self.result = result
        self.config = config
        self.out_dir = Path(out_dir)
        #: Every claim recorded so far in this lab, by name: what answer templates branch on.
        self.claims: dict[str, bool] = {}
        #: Each claim recorded so far (hidden ones too) and the exercise it belongs to.
        self._claim_owner: dict[str, tuple[Claim, Exercise]] = {}
        self._files: set[str] = set()

    def open_exercise(self, exercise: Exercise) -> Exercise:
        """Add ``exercise`` after the lab's others."""
        self.result.exercises.append(exercise)
        note_opened(exercise)
        return exercise

    def template_values(self, values: dict[str, Any]) -> dict[str, Any]:
        """What a template sees: ``claims``, ``cfg`` (the lab's config) and ``values``."""
        return {"claims": self.claims, "cfg": self.config, **values}

    def check_claim_name(self, name: Any) -> None:
        """A new claim's name: an identifier, not recorded before in the lab."""
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"claim name {name!r} must be an identifier")
        if name in self._claim_owner:
            raise ValueError(f"claim {name!r} recorded twice")

    def add_claim(self, claim: Claim, exercise: Exercise) -> None:
        """Record ``claim`` of ``exercise``; its name is unique in the lab."""
        self.check_claim_name(claim.name)
        exercise.claims.append(claim)
        self._claim_owner[claim.name] = (claim, exercise)
        if not claim.hidden:
            self.claims[claim.name] = claim.holds

    def borrow(self, exercise: Exercise, name: str) -> None:
        """Note that ``exercise``'s answer reads claim ``name``: when the claim belongs to
        another exercise and is on a stand-in, the answer leans on that stand-in."""
        claim, owner = self._claim_owner[name]
        if owner is exercise:
            return
        fidelity, reason = owner.fidelity_of(claim)
        if fidelity == "stand-in" and all(b.claim != name for b in exercise.borrowed):
            exercise.borrowed.append(BorrowedClaim(claim=name, exercise=owner.title, reason=reason))

    def add_metric(self, name: str, value: Any) -> None:
        """Put ``value`` into the lab's flat ``metrics``; a name is recorded once."""
        if not isinstance(name, str) or not name:
            raise ValueError("a metric needs a name")
        if name in self.result.metrics:
            raise ValueError(f"metric {name!r} recorded twice")
        self.result.metrics[name] = value

    def new_file(self, rel: str, name: str) -> Path:
        """The path of a new file ``rel`` in the lab's folder (its folder made), named
        ``name``: a plain file name, written once."""
        if not FILE_NAME.match(name):
            raise ValueError(f"invalid file name {name!r}: use letters, digits, '_', '-' and '.'")
        if rel in self._files:
            raise ValueError(f"file {rel!r} written twice")
        self._files.add(rel)
        path = self.out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return path
