"""No verdict in prose that is not a recorded claim: every condition in every lab's answer
templates reads only claims, the config, the run's settings or the loop."""

from __future__ import annotations

import importlib

import pytest

from labrunner.commands import scaffold
from labrunner.testing import answer_templates, assert_answers_branch_on_claims, unrecorded_conditions

LABS = ("adversarial", "attention", "cnn_receptive", "rnn_lm")


@pytest.mark.parametrize("lab", LABS)
def test_every_condition_of_a_lab_template_is_a_claim_or_a_setting(lab):
    module = importlib.import_module(f"labrunner.labs.{lab}.text")
    assert answer_templates(module), f"{lab} has no answer templates to check"
    assert_answers_branch_on_claims(module)


def test_the_checker_finds_a_verdict_on_a_number():
    assert unrecorded_conditions("{% if claims.a and not claims['b' ~ x] %}x{% endif %}") == []
    assert unrecorded_conditions("{% if cfg.epochs == 1 or setting.cuda %}x{% endif %}") == []
    assert unrecorded_conditions("{% for m in ['a', 'b'] %}{% if m == 'a' %}{% endif %}{% endfor %}") == []
    assert (
        unrecorded_conditions(
            "{% set k = [claims.a, claims.b] | select | list | length %}{% if k == 2 %}{% endif %}"
        )
        == []
    )
    # the Q2.4 defect: a verdict from a number
    bad = unrecorded_conditions("A\n{% if r.free.reached %}measurably below{% endif %}")
    assert len(bad) == 1 and bad[0].startswith("line 2:") and "reads r" in bad[0]
    assert unrecorded_conditions("{{ 'lower' if gap < 0 else 'higher' }}")  # inline too
    assert unrecorded_conditions("{% for row in rows %}{% if row.ok %}{% endif %}{% endfor %}")
    assert unrecorded_conditions("{% set k = n_ok %}{% if k %}{% endif %}")  # through a set
    assert unrecorded_conditions("{% if claims.a %}{% elif n > 2 %}{% endif %}")  # elif too
    assert unrecorded_conditions("{% for s in rows if s.ok %}{% endfor %}")  # a loop's filter too
    assert not unrecorded_conditions("{% for s in rows if setting.trained[s.name] %}{% endfor %}")
    assert unrecorded_conditions("{% macro v(x) %}{% if x == x %}{% endif %}{% endmacro %}")


def test_the_scaffold_answer_branches_on_its_claim(tmp_path):
    import ast

    package = scaffold.create_lab_package("my_lab", tmp_path)
    source = (package / "labrunner_my_lab" / "__init__.py").read_text(encoding="utf-8")
    constants = {
        node.targets[0].id: node.value.value
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    }
    assert "{% if claims.within_3_se %}" in constants["ANSWER"]
    assert unrecorded_conditions(constants["ANSWER"]) == []


def test_numbers_inside_math_keep_their_thousands_together():
    from labrunner.authoring.context import render_markdown

    out = render_markdown(
        "With $n = {{ n | fmt }}$ samples ({{ n | fmt }} in all), $$x = {{ n | fmt }}$$", n=100_000
    )
    assert out == "With $n = 100{,}000$ samples (100,000 in all), $$x = 100{,}000$$"
    assert render_markdown("$(16, 128, 512)$ and $f(1,2)$") == "$(16, 128, 512)$ and $f(1,2)$"


def test_the_scaffold_names_the_class_once_and_keeps_paragraphs_apart():
    assert scaffold.class_name("my_lab") == "MyLab" and scaffold.class_name("optics") == "OpticsLab"
    template = (scaffold.template_dir() / "lab.py.j2").read_text(encoding="utf-8")
    assert "endif +" in template.split('"""')[-2]  # the answer's last tag keeps its newline
