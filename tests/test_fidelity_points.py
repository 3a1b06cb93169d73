"""Fidelity per check, claim, figure and table, the exercise's derived from them, and the
assignment's points per exercise: recorded, saved in result.json and read back."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

import pytest

import labrunner
from labrunner.records.results import SCHEMA_VERSION, Exercise, LabResult, RunFileError, write_json
from labrunner.records.runfolder import load_run, summarize
from labrunner.testing import run_lab_in

WHY = "no trained weights offline: random initialisations"


@dataclass(frozen=True)
class PartsConfig:
    trained: bool = False


class PartsLab(labrunner.Lab):
    """Exercise 1 is exact (assignment) but measures one thing on a stand-in; exercise 2
    reads that stand-in claim in its answer; exercise 3 is a stand-in with one part that is not;
    exercise 4 is the assignment's throughout and a bonus."""

    name = "parts_lab"
    title = "Parts"
    version = "1"
    Config = PartsConfig
    profiles = {"smoke": {}, "quick": {}, "full": {}}

    def run(self, ctx):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        mark = {} if ctx.config.trained else {"fidelity": "stand-in", "reason": WHY}
        with ctx.exercise("1. Exact, and an effective field", points=10) as ex:
            ex.check_equal("rf", 11, 11, points=2)
            ex.claim("exact_box", True, statement="the box is exact")
            ex.figure(plt.figure(), "erf", caption="the effective field", **mark)
            ex.table([[1, 2]], columns=["a", "b"], caption="ERF sizes", **mark)
            ex.claim("erf_smaller", True, statement="the effective field is smaller", **mark)
            ex.check_close("erf_mass", 1.0, 1.0, 1e-9, **mark)
            ex.answer("{% if claims.erf_smaller %}Smaller.{% endif %}")
        with ctx.exercise("2. Boxes on an image", points=7) as ex:
            ex.check_equal("boxes", 3, 3)
            ex.answer("Boxes{% if claims.erf_smaller %}, and the effective field is smaller{% endif %}.")
        with ctx.exercise(
            "3. On generated data", points=8, fidelity="stand-in", reason="generated data"
        ) as ex:
            ex.check("architecture", True, fidelity="assignment")
            ex.check("accuracy", False)
            ex.answer("{% if claims.exact_box %}Exact.{% endif %}")  # an assignment claim: no lean
        with ctx.exercise("4. A bonus", points=2, bonus=True) as ex:
            ex.check("bonus_check", True)


def _run(tmp_path, **cfg) -> LabResult:
    result = run_lab_in(PartsLab(), tmp_path / "run", **cfg)
    assert result.error is None, result.error
    return result


def test_each_part_carries_its_fidelity_and_the_exercise_derives_its_own(tmp_path):
    result = _run(tmp_path)
    one, two, three, four = result.exercises
    assert [one.fidelity_of(c) for c in one.checks] == [("assignment", ""), ("stand-in", WHY)]
    assert [one.fidelity_of(c)[0] for c in one.claims] == ["assignment", "stand-in"]
    assert [one.fidelity_of(r)[0] for r in one.records] == ["stand-in", "stand-in"]
    assert one.derived_fidelity == "partly stand-in" and one.stand_in_reasons() == [WHY]
    # exercise 2 has only assignment parts, but its answer reads exercise 1's stand-in claim
    assert two.fidelity == "assignment" and two.derived_fidelity == "partly stand-in"
    assert [(b.claim, b.exercise, b.reason) for b in two.borrowed] == [("erf_smaller", one.title, WHY)]
    # a stand-in exercise with one part on the assignment's material is partly a stand-in,
    # and reading an assignment claim borrows nothing
    assert three.derived_fidelity == "partly stand-in" and three.borrowed == []
    assert three.stand_in_reasons() == ["generated data"]
    assert four.derived_fidelity == "assignment"
    s = summarize(result)
    assert s.fidelity == "partly stand-in"
    assert [title for title, _ in s.stand_ins] == [one.title, two.title, three.title]
    # points split by each check's own fidelity: rf 2 + boxes 1 + architecture 1 + bonus 1
    assert (s.points_assignment, s.points_assignment_total) == (5.0, 5.0)
    assert (s.points_stand_in, s.points_stand_in_total) == (1.0, 2.0)


def test_with_the_real_material_nothing_is_a_stand_in(tmp_path):
    result = _run(tmp_path, trained=True)
    one, two, three, _ = result.exercises
    assert one.derived_fidelity == "assignment" and two.derived_fidelity == "assignment"
    assert two.borrowed == []
    assert three.derived_fidelity == "partly stand-in"


def test_fidelity_and_points_round_trip_through_result_json(tmp_path):
    result = _run(tmp_path)
    data = json.loads((tmp_path / "run" / "parts_lab" / "result.json").read_text())
    assert data["schema"] == SCHEMA_VERSION
    ex1 = data["exercises"][0]
    # a part on its exercise's fidelity says nothing; one with its own says it and why
    assert "fidelity" not in ex1["checks"][0]
    assert (ex1["checks"][1]["fidelity"], ex1["checks"][1]["fidelity_reason"]) == ("stand-in", WHY)
    assert [r.get("fidelity") for r in ex1["records"]] == ["stand-in", "stand-in"]
    assert data["exercises"][1]["borrowed"] == [
        {"claim": "erf_smaller", "exercise": ex1["title"], "reason": WHY}
    ]
    assert [(e["points"], e["bonus"]) for e in data["exercises"]] == [
        (10, False),
        (7, False),
        (8, False),
        (2, True),
    ]
    again = LabResult.load(tmp_path / "run" / "parts_lab" / "result.json")
    assert again.to_json() == result.to_json()
    assert [e.derived_fidelity for e in again.exercises] == [e.derived_fidelity for e in result.exercises]
    assert again.exercises[0].records[0].fidelity == "stand-in"
    assert again.exercises[0].claims[1].fidelity_reason == WHY
    s = summarize(again)
    assert (s.points_declared, s.assignment_points, s.assignment_bonus) == (True, 25.0, 2.0)


def test_a_version_1_result_reads_with_every_part_on_its_exercise(tmp_path):
    result = _run(tmp_path)
    old = result.to_json()
    old["schema"] = 1
    for ex in old["exercises"]:
        for key in ("borrowed", "points", "bonus"):
            ex.pop(key)
        for part in (*ex["checks"], *ex["claims"], *ex["records"]):
            part.pop("fidelity", None)
            part.pop("fidelity_reason", None)
    read = LabResult.from_json(old)
    assert [e.derived_fidelity for e in read.exercises] == [
        "assignment",
        "assignment",
        "stand-in",
        "assignment",
    ]
    assert [e.points for e in read.exercises] == [None] * 4
    assert not summarize(read).points_declared
    with pytest.raises(RunFileError, match="schema: unknown version 0"):
        LabResult.from_json({**old, "schema": 0})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda ex: ex["checks"][1].update(fidelity="proxy"), r"checks\[1\]\.fidelity: expected one of"),
        (lambda ex: ex["records"][0].update(fidelity=3), r"records\[0\]\.fidelity: expected a string"),
        (lambda ex: ex.update(points=-1), r"exercises\[0\]\.points: expected points >= 0"),
        (lambda ex: ex.update(points=None, bonus=True), r"exercises\[0\]\.bonus: a bonus needs"),
        (lambda ex: ex.update(borrowed=[{"claim": "x"}]), r"borrowed\[0\]\.exercise: missing"),
    ],
)
def test_bad_fidelity_or_points_name_the_field(tmp_path, change, message):
    data = _run(tmp_path).to_json()
    change(data["exercises"][0])
    with pytest.raises(RunFileError, match=message):
        LabResult.from_json(data)


def test_the_recorder_refuses_bad_marks(tmp_path):
    class Bad(PartsLab):
        name = "bad_marks"

        def run(self, ctx):
            kind = ctx.config.trained
            with ctx.exercise("1") as ex:
                if kind:
                    ex.claim("a", True, statement="a", fidelity="stand-in")
                else:
                    ex.check("b", True, reason="why, without saying stand-in")

    for trained, message in (
        (True, "claim 'a': a stand-in needs the reason"),
        (False, "check 'b': a reason"),
    ):
        result = run_lab_in(Bad(), tmp_path / str(trained), trained=trained)
        assert message in result.error.message

    class BadPoints(PartsLab):
        name = "bad_points"

        def run(self, ctx):
            ctx.exercise("1", bonus=True) if ctx.config.trained else ctx.exercise("1", points="ten")

    for trained, message in ((True, "a bonus needs its points"), (False, "points must be a number")):
        result = run_lab_in(BadPoints(), tmp_path / f"p{trained}", trained=trained)
        assert message in result.error.message


def test_stand_in_marks_the_parts_without_their_own(tmp_path):
    ex = Exercise(title="1")
    ex.checks = [labrunner.records.results.Check(name="own", passed=True, fidelity="assignment")]
    ex.checks.append(labrunner.records.results.Check(name="inherits", passed=True))
    assert ex.derived_fidelity == "assignment"
    ex.fidelity, ex.fidelity_reason = "stand-in", "generated data"
    assert ex.derived_fidelity == "partly stand-in"
    assert [ex.fidelity_of(c) for c in ex.checks] == [("assignment", ""), ("stand-in", "generated data")]
    assert Exercise(title="empty", fidelity="stand-in").derived_fidelity == "stand-in"


def test_a_run_folder_lists_partly_stand_in_exercises_for_submit(tmp_path):
    _run(tmp_path)
    write_json(tmp_path / "run" / "run.json", {"status": "finished", "labs": [{"lab": "parts_lab"}]})
    run = load_run(tmp_path / "run")
    assert [(lab, title) for lab, title, _ in run.stand_ins] == [
        ("parts_lab", "1. Exact, and an effective field"),
        ("parts_lab", "2. Boxes on an image"),
        ("parts_lab", "3. On generated data"),
    ]
    assert run.stand_ins[1][2] == WHY


# --------------------------------------------------------------------------- shown and graded


def _run_folder(tmp_path):
    result = _run(tmp_path)
    write_json(tmp_path / "run" / "run.json", {"status": "finished", "labs": [{"lab": "parts_lab"}]})
    return result, tmp_path / "run"


def test_the_report_shows_each_parts_fidelity_and_the_assignments_points(tmp_path):
    from labrunner.report.render import render_report

    _result, run_dir = _run_folder(tmp_path)
    render_report(run_dir, formats=["html", "md"])
    html = (run_dir / "report.html").read_text()
    md = (run_dir / "report.md").read_text()
    ex1 = html[html.index('id="lab-parts-lab-ex1"') : html.index('id="lab-parts-lab-ex2"')]
    # the exercise is partly a stand-in, and says which parts and why
    assert "partly stand-in</span>" in ex1 and "Partly a stand-in:" in ex1
    assert f"Figure 1, Table 1, claim <code>erf_smaller</code>, check <code>erf_mass</code>: {WHY}" in ex1
    # each stand-in part is marked where it is shown; the exact ones are not
    assert ex1.count('<span class="badge material-stand-in" title="' + WHY) == 4
    claims = ex1[ex1.index('<table class="claims">') :]
    exact_row = claims[
        claims.index("the box is exact") : claims.index("</tr>", claims.index("the box is exact"))
    ]
    assert "stand-in" not in exact_row
    ex2 = html[html.index('id="lab-parts-lab-ex2"') : html.index('id="lab-parts-lab-ex3"')]
    assert "the answer's use of claim <code>erf_smaller</code> (1. Exact, and an effective field)" in ex2
    # the assignment's points: per exercise, a bonus marked, beside the checks passed
    assert (
        '<span class="badge neutral assignment-points" title="the points the assignment gives this exercise">10 points</span>'
        in ex1
    )
    summary = html[html.index('id="summary"') : html.index('id="lab-parts-lab"')]
    assert "25 points + 2 bonus" in summary
    assert "bonus, 2 points" in summary and "Check points" in summary
    assert "# 1. Exact, and an effective field (10 points) — partly stand-in" in md.replace("###", "#")
    assert "### 4. A bonus (bonus, 2 points)" in md
    assert "| [4. A bonus](#lab-parts-lab-ex4) | bonus, 2 points | 1/1 | assignment |" in md
    assert f"> - Figure 1, Table 1, claim `erf_smaller`, check `erf_mass`: {WHY}" in md
    assert f"*Figure 1. (Stand-in: {WHY}.) the effective field*" in md
    assert "| erf_mass (stand-in) |" in md and "| rf |" in md
    assert "25 points + 2 bonus" in md


def test_a_lab_that_declares_no_points_shows_only_checks(tmp_path):
    from labrunner.report.grading import format_grades, grade
    from labrunner.report.render import render_report

    class NoPoints(PartsLab):
        name = "no_points"

        def run(self, ctx):
            with ctx.exercise("1. Sums") as ex:
                ex.check("sum", True)

    run_lab_in(NoPoints(), tmp_path / "run")
    write_json(tmp_path / "run" / "run.json", {"status": "finished", "labs": [{"lab": "no_points"}]})
    render_report(tmp_path / "run", formats=["html", "md"])
    html = (tmp_path / "run" / "report.html").read_text()
    assert "not given</span>" in html and "assignment-points" not in html
    assert "The assignment's points, exercise by exercise" not in html
    text = format_grades(grade(load_run(tmp_path / "run")))
    assert text.splitlines()[:2] == [
        "no_points  passed  1/1 checks  1/1 check points",
        "  * 1. Sums: 1/1 checks passed",
    ]


def test_check_shows_the_assignments_points_beside_the_checks_passed(tmp_path):
    from labrunner.report.grading import format_grades, grade

    _result, run_dir = _run_folder(tmp_path)
    grades = grade(load_run(run_dir))
    (lab,) = grades["labs"]
    assert (lab["assignment_points"], lab["assignment_bonus"]) == (25.0, 2.0)
    assert [(e["points"], e["bonus"], e["fidelity"]) for e in lab["exercises"]] == [
        (10.0, False, "partly stand-in"),
        (7.0, False, "partly stand-in"),
        (8.0, False, "partly stand-in"),
        (2.0, True, "assignment"),
    ]
    assert [c["fidelity"] for c in lab["checks"]][:2] == ["assignment", "stand-in"]
    lines = format_grades(grades).splitlines()
    assert lines[0] == (
        "parts_lab  failed  5/6 checks  6/7 check points (1/2 on stand-ins)  [partly stand-in]"
        "  [the assignment: 25 points + 2 bonus]"
    )
    assert "  * 1. Exact, and an effective field (10 points): 2/2 checks passed, partly stand-in" in lines
    assert "  * 3. On generated data (8 points): 1/2 checks passed, partly stand-in" in lines
    assert "  * 4. A bonus (bonus, 2 points): 1/1 checks passed" in lines
    assert "  PASS  1/1  erf_mass  (stand-in)  (expected 1 ±1e-09, actual 1)" in format_grades(
        grades, verbose=True
    )


def test_grading_scores_an_exercise_out_of_the_assignments_points(tmp_path):
    from labrunner.course.grade import GradeOptions
    from labrunner.course.gradeout import gradebook_csv
    from labrunner.course.graderecords import LabGrade, Submission
    from labrunner.course.gradescope import gradescope_results
    from labrunner.course.scoring import finish_record

    result, _run_dir = _run_folder(tmp_path)
    data = result.to_json()
    data["exercises"][2]["checks"][1]["points"] = 3.0  # accuracy weighs 3 of 4 check points
    record = Submission(student="ada", labs={"parts_lab": LabGrade(submitted=data)})
    record = finish_record(record, GradeOptions(out=tmp_path / "grading"))
    rows = {e.exercise[:1]: e for e in record.exercises}
    assert (rows["1"].earned, rows["1"].total) == (10.0, 10.0)
    assert (rows["3"].earned, rows["3"].total) == (2.0, 8.0)  # 1 of 4 check points: 8 * 1/4
    assert (rows["4"].earned, rows["4"].total, rows["4"].bonus) == (2.0, 2.0, True)
    assert record.score == 10 + 7 + 2 + 2 and record.max_score == 25.0  # the bonus adds to the score only
    header, possible, ada = csv.reader(io.StringIO(gradebook_csv([record])))
    assert header[4] == "parts_lab: 4. A bonus (bonus)"
    assert possible == ["Points Possible", "10", "7", "8", "2", "25", "", "", ""]
    assert ada[:8] == ["ada", "10", "7", "2", "2", "21", "25", "graded"]
    gs = gradescope_results(record).to_json()
    assert (gs["score"], gs["max_score"]) == (21.0, 25.0)
    accuracy = next(t for t in gs["tests"] if t["name"].endswith("accuracy"))
    assert (accuracy["score"], accuracy["max_score"]) == (0.0, 6.0)


def test_stand_in_parts_without_checks_claim_no_check_points(tmp_path):
    from labrunner.report.render import render_report

    class FigureOnly(PartsLab):
        name = "figure_only"

        def run(self, ctx):
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            with ctx.exercise("1. Exact, with a stand-in figure") as ex:
                ex.check("exact", True)
                ex.figure(plt.figure(), "erf", fidelity="stand-in", reason=WHY)

    run_lab_in(FigureOnly(), tmp_path / "run")
    write_json(tmp_path / "run" / "run.json", {"status": "finished", "labs": [{"lab": "figure_only"}]})
    render_report(tmp_path / "run", formats=["html", "md"])
    for name in ("report.html", "report.md"):
        text = (tmp_path / "run" / name).read_text()
        assert "1 of 1 labs ran some exercises on a stand-in" in text
        assert "0/0 more check points" not in text and "more check points" not in text
