"""Claims: answers branch on recorded conclusions; exercises record their fidelity."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

import labrunner
from labrunner.records.results import LabResult, write_json
from labrunner.report.render import render_report
from labrunner.testing import run_lab_in


@dataclass(frozen=True)
class ClaimConfig:
    value: float = 1.0
    baseline: float = 2.0


class ClaimLab(labrunner.Lab):
    name = "claim_lab"
    title = "Claims"
    version = "1"
    Config = ClaimConfig
    profiles = {"smoke": {}, "quick": {}, "full": {}}

    def run(self, ctx):
        cfg = ctx.config
        with ctx.exercise("Q1", "Is the value below the baseline?") as ex:
            ex.claim(
                "below_baseline",
                cfg.value < cfg.baseline,
                statement="the value is below the baseline",
                evidence=f"value {cfg.value}, baseline {cfg.baseline}",
                baseline="the baseline, exact",
            )
            ex.answer("The value is {% if claims.below_baseline %}below{% else %}not below{% endif %} it.")
        with ctx.exercise("Q2", "Does Q1 still hold?", fidelity="stand-in", reason="generated data") as ex:
            ex.answer("{% if claims.below_baseline %}Yes, as Q1 found.{% else %}No.{% endif %}")


@pytest.mark.parametrize(("value", "word", "second"), [(1.0, "below", "Yes"), (3.0, "not below", "No")])
def test_answers_follow_the_recorded_claim_on_both_sides(tmp_path, value, word, second):
    result = run_lab_in(ClaimLab(), tmp_path, value=value)
    assert result.error is None, result.error
    q1, q2 = result.exercises
    assert q1.answer == f"The value is {word} it."
    assert q2.answer.startswith(second)
    assert [c.name for c in q1.claims] == ["below_baseline"]
    assert q1.claims[0].holds is (value < 2.0)
    assert q1.fidelity == "assignment" and q2.fidelity == "stand-in"
    assert q2.fidelity_reason == "generated data"
    again = LabResult.from_json(result.to_json())
    assert again.exercises[0].claims == q1.claims
    assert again.exercises[1].fidelity == "stand-in"


def test_claims_and_stand_ins_appear_in_the_report(tmp_path):
    result = run_lab_in(ClaimLab(), tmp_path / "run")
    write_json(tmp_path / "run" / "run.json", {"status": "finished", "labs": [{"lab": "claim_lab"}]})
    paths = render_report(tmp_path / "run", formats=["html", "md"])
    html = (tmp_path / "run" / "report.html").read_text()
    md = (tmp_path / "run" / "report.md").read_text()
    assert result.exercises[0].claims[0].holds
    for text in (html, md):
        assert "the value is below the baseline" in text
        assert "value 1.0, baseline 2.0" in text
        assert "Stand-in" in text and "generated data" in text
    assert paths


def test_a_claim_needs_an_identifier_and_is_recorded_once(tmp_path):
    class Twice(ClaimLab):
        name = "twice"

        def run(self, ctx):
            with ctx.exercise("Q1") as ex:
                ex.claim("a", True, statement="a")
                ex.claim("a", False, statement="a again")

    result = run_lab_in(Twice(), tmp_path)
    assert result.status == "error" and "recorded twice" in result.error.message

    class BadName(ClaimLab):
        name = "bad_name"

        def run(self, ctx):
            with ctx.exercise("Q1") as ex:
                ex.claim("not an identifier", True, statement="x")

    result = run_lab_in(BadName(), tmp_path)
    assert result.status == "error" and "identifier" in result.error.message


def test_an_undefined_claim_in_a_template_is_an_error(tmp_path):
    class Typo(ClaimLab):
        name = "typo"

        def run(self, ctx):
            with ctx.exercise("Q1") as ex:
                ex.answer("{% if claims.never_recorded %}x{% endif %}")

    result = run_lab_in(Typo(), tmp_path)
    assert result.status == "error" and "never_recorded" in result.error.message
