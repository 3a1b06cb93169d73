"""``labrunner check``: every lab's checks with points and a total, for graders.

Works from the saved results only (like the report): it never runs a lab.
"""

from __future__ import annotations

from typing import Any

from .report import format_value
from .runfolder import RunData, summarize


def grade(run: RunData) -> dict[str, Any]:
    """The checks of a run as a JSON-ready dict: per lab (status, checks with points,
    totals) and for the whole run; ``passed`` is True only when every lab passed."""
    labs = []
    for lab in run.labs:
        s = summarize(lab)
        labs.append(
            {
                "lab": lab.lab,
                "title": lab.title,
                "status": lab.status,
                "checks_passed": s.checks_passed,
                "checks_total": s.checks_total,
                "points": s.points,
                "points_total": s.points_total,
                "error": lab.error,
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
                    }
                    for ex in lab.exercises
                    for c in ex.checks
                ],
            }
        )
    return {
        "run_dir": str(run.run_dir),
        "passed": run.all_passed,
        "labs_passed": sum(lab["status"] == "passed" for lab in labs),
        "labs_total": len(labs),
        "checks_passed": sum(lab["checks_passed"] for lab in labs),
        "checks_total": sum(lab["checks_total"] for lab in labs),
        "points": sum(lab["points"] for lab in labs),
        "points_total": sum(lab["points_total"] for lab in labs),
        "labs": labs,
    }


def format_grades(grades: dict[str, Any], *, verbose: bool = False) -> str:
    """The grades as text: one block per lab, a line per check, and the total."""
    lines: list[str] = []
    for lab in grades["labs"]:
        lines.append(
            f"{lab['lab']}  {lab['status']}  {lab['checks_passed']}/{lab['checks_total']} checks  "
            f"{lab['points']:g}/{lab['points_total']:g} points"
        )
        for c in lab["checks"]:
            mark = "PASS" if c["passed"] else "FAIL"
            line = f"  {mark}  {c['points']:g}/{c['points_total']:g}  {c['name']}"
            if not c["passed"] or verbose:
                line += f"  (expected {format_value(c['expected'])}"
                if c["tolerance"] is not None:
                    line += f" {format_value(c['tolerance'])}"
                line += f", actual {format_value(c['actual'])})"
                if c["message"]:
                    line += f": {c['message']}"
            lines.append(line)
        if lab["error"]:
            lines.append(f"  ERROR  {lab['error'].get('type', '')}: {lab['error'].get('message', '')}")
    verdict = "all labs passed" if grades["passed"] else "NOT all labs passed"
    lines.append(
        f"total: {grades['checks_passed']}/{grades['checks_total']} checks, "
        f"{grades['points']:g}/{grades['points_total']:g} points, "
        f"{grades['labs_passed']}/{grades['labs_total']} labs passed ({verdict})"
    )
    return "\n".join(lines)
