"""Answers the student writes: parsed from answers/<lab>.md, rendered from the run in a
sandbox, and checked against the exercise's own measurements."""

from __future__ import annotations

import pytest

from labrunner.records.answers import (
    apply_answers,
    check_answer,
    parse_answers,
    render_answer,
    unmatched_numbers,
    written_numbers,
)
from labrunner.records.results import Check, Claim, Exercise, FigureRecord, LabResult, TableRecord


def make_lab() -> LabResult:
    ex = Exercise(
        title="1. Accuracy",
        question="What share of the 20 test images is right?",
        metrics={"accuracy": 0.953125, "errors": 3},
        checks=[Check("accuracy_high", True, expected="≥ 0.9", actual=0.953125)],
        claims=[
            Claim("beats_chance", True, evidence="95.3 % against 10 %"),
            Claim("secret", True, hidden=True),
        ],
        records=[
            FigureRecord(path="figures/curve.png", caption="The learning curve."),
            TableRecord(columns=["epoch", "loss"], rows=[[1, 2.3456], [2, 0.00123]]),
        ],
        answer_by="student",
    )
    return LabResult(
        lab="demo",
        title="Demo",
        version="1",
        metrics={"accuracy": 0.953125, "errors": 3},
        config={"epochs": 12, "lr": 0.003},
        exercises=[ex, Exercise(title="2. Other")],
    )


def test_parse_answers_takes_sections_without_questions_and_comments():
    text = (
        "# Answers: Demo\n\n<!-- help -->\n\n## 1. Accuracy\n\n> What share...\n> more\n\n"
        "It is {{ metrics.accuracy | pct }}.\n<!-- your answer -->\n\n## 2. Other\n\n> Q\n\n<!-- your answer -->\n"
    )
    assert parse_answers(text) == {"1. Accuracy": "It is {{ metrics.accuracy | pct }}.", "2. Other": ""}


def test_an_answer_renders_with_the_runs_metrics_claims_and_figures():
    lab = make_lab()
    check = render_answer(
        "Accuracy {{ metrics.accuracy | pct }}, {{ metrics['errors'] }} errors; "
        "{% if claims.beats_chance %}above chance{% endif %}; see {{ figures.curve }}.",
        lab,
        "1. Accuracy",
    )
    assert check.problems == []
    assert check.rendered == (
        "Accuracy 95.3 %, 3 errors; above chance; see *Figure “curve”* (The learning curve)."
    )


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        (
            "{{ metrics.acuracy }}",
            "{{ metrics.acuracy }}: this run recorded no metric 'acuracy' (did you mean 'accuracy'?)",
        ),
        ("{{ claims.secret }}", "{{ claims.secret }}: this run recorded no claim 'secret'"),
        ("{{ figures.nope }}", "{{ figures.nope }}: this run recorded no figure 'nope'"),
        ("{{ nothing }}", "the answer does not render (UndefinedError: 'nothing' is undefined)"),
        ("{% if %}", "the answer is not a valid template (TemplateSyntaxError:"),
        ("{{ ''.__class__.__mro__ }}", "the answer does not render (SecurityError:"),
    ],
)
def test_a_bad_reference_is_a_problem_not_a_crash(source, problem):
    check = render_answer(source, make_lab(), "1. Accuracy")
    assert check.problems[0].startswith(problem)
    assert check.rendered == source  # shown as written


def test_rendering_escapes_values():
    lab = make_lab()
    lab.metrics["label"] = "<script>"  # type: ignore[assignment]
    assert render_answer("{{ metrics.label }}", lab, "x").rendered == "&lt;script&gt;"


def test_written_numbers_keep_their_rounding():
    found = {
        n.text: (n.value, n.half_ulp, n.percent) for n in written_numbers("0.95, 95.3 %, 1,234 and 3.1e-05")
    }
    assert found["0.95"] == (0.95, pytest.approx(0.005), False)
    assert found["95.3 %"] == (95.3, pytest.approx(0.05), True)
    assert found["1,234"] == (1234, 0.5, False)
    assert found["3.1e-05"][1] == pytest.approx(0.5e-6)
    # numbers inside names, template tags and code are not written numbers
    assert written_numbers("conv1, ResNet-18, float64, `x = 12`, {{ metrics.x | fmt(3) }}") == []


def test_numbers_match_a_measurement_of_the_exercise_within_their_rounding():
    lab = make_lab()
    ex = lab.exercises[0]
    good = "0.95, 0.953, 95.3 %, 95 %, 2.35, 0.0012, epochs 12, lr 0.003, 3 errors of 20 images"
    assert unmatched_numbers(good, ex, lab) == []
    assert unmatched_numbers("0.96 and 0.9532 and 17.5", ex, lab) == ["0.96", "0.9532", "17.5"]


def test_check_answer_flags_no_answer():
    lab = make_lab()
    assert check_answer("   ", lab.exercises[0], lab).problems == ["no answer"]
    assert check_answer(None, lab.exercises[0], lab).problems == ["no answer"]


def test_apply_answers_fills_in_each_student_answer():
    lab = make_lab()
    checks = apply_answers(lab, "## 1. Accuracy\n\n> Q\n\nIt is {{ metrics.accuracy | fmt(2) }}.\n")
    assert list(checks) == ["1. Accuracy"]
    assert lab.exercises[0].answer == "It is 0.95."
    assert checks["1. Accuracy"].problems == []
    lab = make_lab()
    assert apply_answers(lab, None)["1. Accuracy"].problems == ["no answer (no answers/demo.md in the run)"]
