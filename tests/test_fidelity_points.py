"""Fidelity per check, claim, figure and table, the exercise's derived from them, and the
assignment's points per exercise: recorded, saved in result.json and read back."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

import labrunner
from labrunner.results import SCHEMA_VERSION, Exercise, LabResult, RunFileError, write_json
from labrunner.runfolder import load_run, summarize
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
        assert message in result.error["message"]

    class BadPoints(PartsLab):
        name = "bad_points"

        def run(self, ctx):
            ctx.exercise("1", bonus=True) if ctx.config.trained else ctx.exercise("1", points="ten")

    for trained, message in ((True, "a bonus needs its points"), (False, "points must be a number")):
        result = run_lab_in(BadPoints(), tmp_path / f"p{trained}", trained=trained)
        assert message in result.error["message"]


def test_stand_in_marks_the_parts_without_their_own(tmp_path):
    ex = Exercise(title="1")
    ex.checks = [labrunner.results.Check(name="own", passed=True, fidelity="assignment")]
    ex.checks.append(labrunner.results.Check(name="inherits", passed=True))
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
