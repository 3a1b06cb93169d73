"""Gradescope's ``results.json`` of one submission, as typed records: a test per check
(visible checks ``visible``, hidden ones ``after_published``), per re-execution (``hidden``:
for the instructor) and the grading's own lines in ``output``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from .graderecords import LabGrade, Submission

Visibility = Literal["visible", "hidden", "after_due_date", "after_published"]


@dataclass(frozen=True)
class GradescopeTest:
    """One test of Gradescope's results: a check of a lab, or a lab's re-execution."""

    name: str
    score: float
    max_score: float
    status: Literal["passed", "failed"]
    output: str
    visibility: Visibility

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class GradescopeResults:
    """Gradescope's results.json: the score out of ``max_score``, the grading's lines, the tests."""

    score: float
    max_score: float
    output: str
    tests: tuple[GradescopeTest, ...]
    visibility: Visibility = "visible"
    stdout_visibility: Visibility = "hidden"

    def to_json(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "max_score": self.max_score,
            "output": self.output,
            "visibility": self.visibility,
            "stdout_visibility": self.stdout_visibility,
            "tests": [t.to_json() for t in self.tests],
        }


def gradescope_results(record: Submission) -> GradescopeResults:
    """The results of one scored submission: a test per check and per re-execution, and the
    isolation, errors and flags as its output."""
    tests: list[GradescopeTest] = []
    for lab, entry in record.labs.items():
        tests += _check_tests(lab, entry)
        if entry.rerun is not None:
            reproduced = entry.rerun.status == "done" and not entry.differences
            tests.append(
                GradescopeTest(
                    name=f"{lab} · re-execution",
                    score=0,
                    max_score=0,
                    status="passed" if reproduced else "failed",
                    output=reproduction_text(entry),
                    visibility="hidden",
                )
            )
    lines = [f"isolation: {record.isolation or ''}"]
    if record.isolation_warning:
        lines.append(f"WARNING: {record.isolation_warning}")
    if record.error:
        lines.append(f"error: {record.error}")
    lines += [f"grading error: {e}" for e in record.errors or ()]
    lines += [f"flag: {f}" for f in record.flags]
    return GradescopeResults(
        score=record.score if record.score is not None else 0.0,
        max_score=record.max_score if record.max_score is not None else 0.0,
        output="\n".join(lines),
        tests=tuple(tests),
    )


def _check_tests(lab: str, entry: LabGrade) -> list[GradescopeTest]:
    tests = []
    for row in entry.exercises or ():
        for c in row.checks:
            out = f"expected {show(c.expected)}"
            if c.tolerance is not None:
                out += f" {show(c.tolerance)}"
            out += f", actual {show(c.actual)}"
            if c.message:
                out += f": {c.message}"
            if row.not_implemented:
                out += f" ({row.not_implemented})"
            tests.append(
                GradescopeTest(
                    name=f"{lab} · {row.exercise} · {c.name}",
                    score=c.earned,
                    max_score=c.points,
                    status="passed" if c.passed else "failed",
                    output=out,
                    visibility="after_published" if c.hidden else "visible",
                )
            )
    return tests


def reproduction_text(entry: LabGrade) -> str:
    """The re-execution of one lab in words: failed (why), not compared (why), reproduced,
    or each difference with the numbers on both sides."""
    rerun = entry.rerun
    if rerun is None or rerun.status != "done" or rerun.spec is None:
        return f"re-execution failed: {rerun.reason if rerun else ''}"
    where = f" (re-executed in {rerun.elapsed_s or 0:.1f} s at profile {rerun.spec.profile})"
    if entry.not_compared:
        return entry.not_compared + where
    diffs = entry.differences or ()
    if not diffs:
        return "reproduced: every metric, claim and check matches" + where
    lines = [f"NOT REPRODUCED: {len(diffs)} difference(s){where}"]
    for d in diffs:
        lines.append(
            f"  {d.kind} {d.name}: submitted {show(d.submitted)}, re-executed {show(d.rerun)} "
            f"(tolerance {d.tolerance})"
        )
    return "\n".join(lines)


def show(value: Any) -> str:
    """A value in a line of text: floats to 6 significant digits, nothing as '—'."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if value is None:
        return "—"
    return str(value)
