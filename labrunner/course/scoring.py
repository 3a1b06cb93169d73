"""Scoring a submission: each exercise's points from its checks (or the assignment's points
they share), and the differences between a re-executed result and the submitted one.

With a re-execution, a lab's points are those of its re-executed checks (the hidden ones
included), so an edited result cannot earn points; without one, the submitted checks'.
An exercise that declares the assignment's points is scored out of them (its checks share
them by their own points); a bonus exercise adds to the score and not to the maximum.
A lab whose re-execution fails (an error, a limit, the time-out) earns nothing and is that
student's grading error, with the reason.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from .gradeoptions import GradeOptions
from .graderecords import (
    CheckScore,
    Difference,
    ExerciseScore,
    ExerciseTotal,
    LabGrade,
    RerunSpec,
    Submission,
)

# --------------------------------------------------------------------------- comparing


def _tolerance(check: dict[str, Any]) -> float | None:
    """A check's declared absolute tolerance (``±0.01``, or a number), or None."""
    tol = check.get("tolerance")
    if isinstance(tol, (int, float)) and not isinstance(tol, bool):
        return abs(float(tol))
    if isinstance(tol, str):
        match = re.fullmatch(r"\s*±?\s*([0-9.eE+-]+)\s*", tol)
        if match:
            try:
                return abs(float(match.group(1)))
            except ValueError:
                return None
    return None


def _close(a: Any, b: Any, rtol: float, atol: float) -> bool:
    if (
        isinstance(a, bool)
        or isinstance(b, bool)
        or not isinstance(a, (int, float))
        or not isinstance(b, (int, float))
    ):
        return a == b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= atol + rtol * abs(b)


def compare(submitted: dict[str, Any], rerun: dict[str, Any], rtol: float, atol: float) -> list[Difference]:
    """Where a re-executed result differs from the submitted one (both a LabResult's JSON):
    every metric (within ``rtol``/``atol``), every claim's outcome, and every visible check's
    outcome and actual value (within the check's declared tolerance, else ``rtol``/``atol``)."""
    return (
        _metric_differences(submitted, rerun, rtol, atol)
        + _claim_differences(submitted, rerun)
        + _check_differences(submitted, rerun, rtol, atol)
    )


def _metric_differences(
    submitted: dict[str, Any], rerun: dict[str, Any], rtol: float, atol: float
) -> list[Difference]:
    diffs = []
    sm, rm = submitted.get("metrics", {}), rerun.get("metrics", {})
    for name in list(sm) + [n for n in rm if n not in sm]:
        a, b = sm.get(name), rm.get(name)
        if name not in sm or name not in rm or not _close(a, b, rtol, atol):
            diffs.append(Difference("metric", name, a, b, f"rtol {rtol:g}"))
    return diffs


def _visible(result: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """The visible claims or checks of a result, by ``exercise title / name``."""
    return {
        f"{ex['title']} / {item['name']}": item
        for ex in result.get("exercises", [])
        for item in ex.get(kind, [])
        if not item.get("hidden")
    }


def _claim_differences(submitted: dict[str, Any], rerun: dict[str, Any]) -> list[Difference]:
    diffs = []
    sc, rc = _visible(submitted, "claims"), _visible(rerun, "claims")
    for name in list(sc) + [n for n in rc if n not in sc]:
        a, b = sc.get(name, {}).get("holds"), rc.get(name, {}).get("holds")
        if a != b:
            diffs.append(Difference("claim", name, a, b, "same outcome"))
    return diffs


def _check_differences(
    submitted: dict[str, Any], rerun: dict[str, Any], rtol: float, atol: float
) -> list[Difference]:
    diffs = []
    sk, rk = _visible(submitted, "checks"), _visible(rerun, "checks")
    for name in list(sk) + [n for n in rk if n not in sk]:
        a, b = sk.get(name), rk.get(name)
        if a is None or b is None or a.get("passed") != b.get("passed"):
            diffs.append(Difference("check", name, _outcome(a), _outcome(b), "same outcome"))
            continue
        tol = _tolerance(a)
        same = (
            abs(float(a["actual"]) - float(b["actual"])) <= tol
            if tol is not None and _numeric(a.get("actual")) and _numeric(b.get("actual"))
            else _close(a.get("actual"), b.get("actual"), rtol, atol)
        )
        if not same:
            shown = f"±{tol:g}" if tol is not None else f"rtol {rtol:g}"
            diffs.append(Difference("check value", name, a.get("actual"), b.get("actual"), shown))
    return diffs


def _outcome(check: dict[str, Any] | None) -> str | None:
    return None if check is None else ("passed" if check["passed"] else "failed")


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def comparable(submitted: dict[str, Any], spec: RerunSpec) -> str:
    """ "" when a re-execution with ``spec`` should reproduce ``submitted``, else why not."""
    if spec.profile != submitted.get("profile"):
        return (
            f"submitted at profile {submitted.get('profile')!r}, re-executed at {spec.profile!r}: "
            "measurements are not compared (the re-executed checks score the code)"
        )
    return ""


# --------------------------------------------------------------------------- scoring


def score_lab(result: dict[str, Any]) -> list[ExerciseScore]:
    """Each exercise of a result (a LabResult's JSON) with its score.

    An exercise that declares the assignment's points (``points``) is scored out of them:
    its checks share them in proportion to their own points, so ``earned`` is the declared
    points times the share of its check points earned (0 when it has no checks), and each
    check's ``earned`` / ``points`` are its part of them. Otherwise the check points are the
    score. A bonus exercise's ``total`` counts towards no maximum (see :func:`finish_record`).
    """
    rows = []
    for ex in result.get("exercises", []):
        checks = [_check_score(c) for c in ex.get("checks", [])]
        declared = ex.get("points")
        weight = sum(c.points for c in checks)
        if isinstance(declared, (int, float)) and not isinstance(declared, bool):
            scale = float(declared) / weight if weight else 0.0
            checks = [
                dataclasses.replace(c, earned=c.earned * scale, points=c.points * scale) for c in checks
            ]
            total = float(declared)
        else:
            total = weight
        rows.append(
            ExerciseScore(
                exercise=ex.get("title", ""),
                earned=sum(c.earned for c in checks),
                total=total,
                bonus=bool(ex.get("bonus", False)) and declared is not None,
                scored_by="assignment" if declared is not None else "checks",
                checks=tuple(checks),
                not_implemented=ex.get("not_implemented", ""),
            )
        )
    return rows


def _check_score(check: dict[str, Any]) -> CheckScore:
    points = float(check.get("points", 1.0))
    return CheckScore(
        name=check.get("name", ""),
        passed=bool(check.get("passed")),
        earned=points if check.get("passed") else 0.0,
        points=points,
        hidden=bool(check.get("hidden", False)),
        expected=check.get("expected"),
        actual=check.get("actual"),
        tolerance=check.get("tolerance"),
        message=check.get("message", ""),
    )


def finish_record(record: Submission, opts: GradeOptions) -> Submission:
    """A read (and possibly re-executed) submission scored: per lab the exercises with points
    (from the re-executed result when there is one), reproduction differences, errors; and
    the total and status (``graded``, ``flagged``, ``error``, ``invalid``)."""
    if record.status == "invalid":
        return dataclasses.replace(record, score=0.0, max_score=0.0, exercises=(), errors=())
    exercises: list[ExerciseTotal] = []
    errors: list[str] = []
    labs: dict[str, LabGrade] = {}
    for lab, entry in record.labs.items():
        labs[lab] = scored = _score_entry(entry, opts)
        if entry.rerun is not None and entry.rerun.status != "done":
            errors.append(f"{lab}: {entry.rerun.reason}")
        exercises += [
            ExerciseTotal(lab, row.exercise, row.earned, row.total, row.bonus)
            for row in scored.exercises or ()
        ]
    flagged = bool(record.flags) or any(entry.differences for entry in labs.values())
    return dataclasses.replace(
        record,
        labs=labs,
        exercises=tuple(exercises),
        score=sum(e.earned for e in exercises),
        max_score=sum(e.total for e in exercises if not e.bonus),  # a bonus adds to the score only
        errors=tuple(errors),
        status="error" if errors else "flagged" if flagged else "graded",
    )


def _score_entry(entry: LabGrade, opts: GradeOptions) -> LabGrade:
    """One lab scored: from its re-execution when that is done (and compared with the
    submitted result when it ran at the same profile), nothing when it failed, else from
    the submitted result."""
    rerun = entry.rerun
    if rerun is not None and rerun.status == "done":
        assert rerun.result is not None and rerun.spec is not None
        why = comparable(entry.submitted, rerun.spec)
        differences = compare(entry.submitted, rerun.result, opts.rtol, opts.atol) if not why else []
        return dataclasses.replace(
            entry,
            scored_from="re-executed",
            compared=not why,
            not_compared=why,
            differences=tuple(differences),
            exercises=tuple(score_lab(rerun.result)),
        )
    if rerun is not None:
        nothing = tuple(row.earning_nothing() for row in score_lab(entry.submitted))
        return dataclasses.replace(entry, scored_from="nothing: the re-execution failed", exercises=nothing)
    return dataclasses.replace(entry, scored_from="submitted", exercises=tuple(score_lab(entry.submitted)))
