"""``labrunner check``: every lab's checks with points and a total, for graders.

Works from the saved results only (like the report): it never runs a lab. A run that is
not finished, or that lists a lab without a result, is incomplete and never passes.
"""

from __future__ import annotations

from typing import Any

from ..records.results import Exercise
from ..records.runfolder import RunData, run_totals, summarize
from .formatting import format_value
from .view import lab_order, points_label


def grade(run: RunData, plugins: Any = None) -> dict[str, Any]:
    """The checks of a run as a JSON-ready dict: per lab (status, checks with points,
    totals, points on the assignment's material and on stand-ins, where the result comes
    from, each exercise with the points the assignment gives it (``points``: null when it
    gives none, ``bonus``), its checks passed and its fidelity) and for the whole run; ``passed`` is True only when the run is complete and
    every lab passed (in a seed sweep, every seed: ``failed_seeds`` names those that did
    not); ``incomplete`` says what is missing ("" when nothing is); ``mixed`` is
    True when the labs differ in profile or seeds (``mixed_labs`` says which ran with what),
    else ``profile`` and ``seeds`` are the ones they share; each lab has its ``provenance``."""
    labs = []
    summaries = []
    consistency = run.consistency
    failed = run.failed_seeds
    for lab, _part in lab_order(run, run.labs, plugins):  # the report's order
        s = summarize(lab)
        summaries.append(s)
        labs.append(_lab_json(run, lab, s, failed))
    totals = run_totals(summaries)
    incomplete = run.incomplete
    answer_problems = sum(len(a["problems"]) for lab in labs for a in lab["answers"])
    return {
        "run_dir": str(run.run_dir),
        "passed": run.all_passed and not incomplete and not answer_problems,
        "answer_problems": answer_problems,
        "complete": not incomplete,
        "incomplete": incomplete,
        "missing": list(run.missing),
        "not_run": run.not_run,
        "mixed": consistency.mixed,
        "mixed_labs": consistency.describe() if consistency.mixed else "",
        "profile": consistency.profile,
        "seeds": list(consistency.seeds) if consistency.seeds is not None else None,
        **{key: totals[key] for key in ("labs_passed", "labs_total", "checks_passed", "checks_total")},
        **{
            key: totals[key]
            for key in (
                "points",
                "points_total",
                "points_assignment",
                "points_assignment_total",
                "points_stand_in",
                "points_stand_in_total",
                "labs_stand_in",
                "labs_not_run",
                "labs_with_points",
                "assignment_points",
                "assignment_bonus",
            )
        },
        "labs": labs,
    }


def format_grades(grades: dict[str, Any], *, verbose: bool = False) -> str:
    """The grades as text: one block per lab, a line per exercise (the points the assignment
    gives it, when it gives any, beside its checks passed) followed by a line per check, and
    the total. Check points (the checks' own weights) are named as such, those on stand-ins
    apart from those on the assignment's material."""
    lines: list[str] = []
    for lab in grades["labs"]:
        line = (
            f"{lab['lab']}  {lab['status']}  {lab['checks_passed']}/{lab['checks_total']} checks  "
            f"{lab['points']:g}/{lab['points_total']:g} check points"
        )
        if lab["points_stand_in_total"]:
            line += f" ({lab['points_stand_in']:g}/{lab['points_stand_in_total']:g} on stand-ins)"
        if lab["fidelity"] != "assignment" and lab["status"] != "not run":
            line += f"  [{lab['fidelity']}]"
        if lab["points_declared"]:
            line += f"  [the assignment: {_assignment_points(lab)}]"
        if lab["origin"] in ("cache", "earlier run"):
            line += f"  [from {lab['origin_run'] or lab['origin']}, {lab['date']}]"
        lines.append(line)
        checks_of: dict[str, list[dict[str, Any]]] = {}
        for c in lab["checks"]:
            checks_of.setdefault(c["exercise"], []).append(c)
        for ex in lab["exercises"]:
            lines.append(_exercise_line(ex))
            lines += [_check_line(c, verbose) for c in checks_of.get(ex["exercise"], [])]
        for item in lab["not_implemented"]:
            lines.append(f"  TODO  {item['exercise']}: {item['message']}")
        for item in lab["answers"]:
            for problem in item["problems"]:
                lines.append(f"  ANSWER  {item['exercise']}: {problem}")
        if lab["error"]:
            lines.append(f"  ERROR  {lab['error'].get('type', '')}: {lab['error'].get('message', '')}")
        for seed, status in lab.get("failed_seeds", {}).items():
            lines.append(f"  SEED {seed}  {status}: the sweep's tables lack this seed's measurements")
    verdict = "all labs passed" if grades["passed"] else "NOT all labs passed"
    total = (
        f"total: {grades['checks_passed']}/{grades['checks_total']} checks, "
        f"{grades['points']:g}/{grades['points_total']:g} check points"
    )
    if grades["points_stand_in_total"]:
        total += (
            f" ({grades['points_assignment']:g}/{grades['points_assignment_total']:g} on the assignment's "
            f"material, {grades['points_stand_in']:g}/{grades['points_stand_in_total']:g} on stand-ins)"
        )
    if grades["answer_problems"]:
        total = f"{grades['answer_problems']} answer problem{'s' if grades['answer_problems'] > 1 else ''}; {total}"
    lines.append(f"{total}, {grades['labs_passed']}/{grades['labs_total']} labs passed ({verdict})")
    if grades["mixed"]:
        lines.append(f"mixed run: labs differ in profile or seed: {grades['mixed_labs']}")
    return "\n".join(lines)


def _assignment_points(lab: dict[str, Any]) -> str:
    points, bonus = lab["assignment_points"], lab["assignment_bonus"]
    text = f"{points:g} point{'' if points == 1 else 's'}"
    return f"{text} + {bonus:g} bonus" if bonus else text


def _exercise_line(ex: dict[str, Any]) -> str:
    """``  * Q2.4 Teacher forcing (bonus, 2 points): 5/5 checks passed``, with its fidelity
    when not the assignment's."""
    label = points_label(Exercise(title=ex["exercise"], points=ex["points"], bonus=ex["bonus"]))
    line = f"  * {ex['exercise']}{f' ({label})' if label else ''}: "
    line += f"{ex['checks_passed']}/{ex['checks_total']} checks passed"
    return line + (f", {ex['fidelity']}" if ex["fidelity"] != "assignment" else "")


def _check_line(c: dict[str, Any], verbose: bool) -> str:
    mark = "PASS" if c["passed"] else "FAIL"
    line = f"  {mark}  {c['points']:g}/{c['points_total']:g}  {c['name']}"
    if c["hidden"]:
        line += "  (hidden)"
    if c["fidelity"] != "assignment":
        line += "  (stand-in)"
    if not c["passed"] or verbose:
        line += f"  (expected {format_value(c['expected'])}"
        if c["tolerance"] is not None:
            line += f" {format_value(c['tolerance'])}"
        line += f", actual {format_value(c['actual'])})"
        if c["message"]:
            line += f": {c['message']}"
    return line


def _lab_json(run: RunData, lab: Any, s: Any, failed: dict[str, Any]) -> dict[str, Any]:
    """One lab's entry of :func:`grade`, from its summary ``s``; ``failed``: the failed seeds."""
    return {
        "lab": lab.lab,
        "title": lab.title,
        "status": lab.status,
        "checks_passed": s.checks_passed,
        "checks_total": s.checks_total,
        "points": s.points,
        "points_total": s.points_total,
        "points_assignment": s.points_assignment,
        "points_assignment_total": s.points_assignment_total,
        "points_stand_in": s.points_stand_in,
        "points_stand_in_total": s.points_stand_in_total,
        "fidelity": s.fidelity,
        "stand_ins": [{"exercise": title, "reason": reason} for title, reason in s.stand_ins],
        "points_declared": s.points_declared,
        "assignment_points": s.assignment_points,
        "assignment_bonus": s.assignment_bonus,
        "exercises": [
            {
                "exercise": ex.title,
                "points": ex.points,
                "bonus": ex.bonus,
                "checks_passed": sum(c.passed for c in ex.checks),
                "checks_total": len(ex.checks),
                "fidelity": ex.derived_fidelity,
            }
            for ex in lab.exercises
        ],
        "failed_seeds": {str(seed): status for seed, status in failed.get(lab.lab, {}).items()},
        "origin": s.origin,
        "origin_run": s.origin_run,
        "date": s.date,
        "provenance": run.provenance(lab).to_json() if lab.status != "not run" else None,
        "error": None if lab.error is None else lab.error.to_json(),
        "not_implemented": [
            {"exercise": ex.title, "message": ex.not_implemented}
            for ex in lab.exercises
            if ex.not_implemented
        ],
        "answers": [
            {"exercise": title, "problems": check.problems}
            for title, check in run.answers.get(lab.lab, {}).items()
        ],
        "checks": [
            {
                "exercise": ex.title,
                "name": c.name,
                "passed": c.passed,
                "points": c.earned,
                "points_total": c.points,
                "expected": c.expected,
                "actual": c.actual,
                "tolerance": c.tolerance,
                "message": c.message,
                "fidelity": ex.fidelity_of(c)[0],
                "hidden": c.hidden,
            }
            for ex in lab.exercises
            for c in ex.checks
        ],
    }
