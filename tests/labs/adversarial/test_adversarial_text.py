"""Every answer template, rendered again with each claim on both sides: no undefined number,
no empty sentence, and the sentence each outcome implies, never its opposite."""

from __future__ import annotations

import re

import pytest

from labrunner.authoring.context import render_markdown

pytestmark = pytest.mark.slow  # the session's smoke run trains the stand-in once

#: claim -> (what the answer says when it holds, what it says when it does not)
PHRASES = {
    "alexnet_bit_identical": ("are bit-for-bit identical", "differ by at most"),
    "standin_beats_chance": ("has learned the shapes", "not clearly above chance"),
    "adam_direction_matters": (
        "The direction of the perturbation is what reaches them",
        "cannot be told apart",
    ),
    "pgd_beats_fgsm": ("One step is not enough", "to rank the two"),
    "fgsm_step_towards_target": ("does point towards the target", "does no better than chance"),
    "fgsm_step_away_from_clean": ("It also pushes the image away", "does not push the image away"),
    "linearisation_overestimates": ("the model is not linear over a step", "do not show the model"),
    "ista_sparser": (
        ["Already at the assignment's", "in the direction EAD claims"],
        ["does not make ISTA sparser by the", "ISTA is not consistently sparser"],
    ),
    "ista_fewer_changes_with_larger_alpha": (
        "A larger penalty removes values from ISTA",
        "does not change consistently fewer values",
    ),
    "penalty_sparsifies_ista_more_than_adam": (
        ["without setting them to zero", "removes far more values from ISTA's"],
        ["not more than from Adam's", "does not remove clearly more values"],
    ),
    "least_l2_is_clear": ("The smallest change in energy", "cannot be ranked by $\\ell_2$"),
    "least_linf_is_clear": ("The smallest largest change", "cannot be ranked by $\\ell_\\infty$"),
}
#: Exact counts and claims derived from others: they choose a paragraph (guards) rather than
#: state a sentence of their own, so they have no phrase pair.
COUNTS_AND_DERIVED = {
    "png_undoes_some_successes",
    "ista_sparser_at_every_alpha",
    "ista_sparser_at_some_alpha",
    "ista_sparser_at_other_alpha",
    "penalty_costs_ista_success",
    "iterative_methods_share_pairs",
    "least_l2_and_linf_same_method",
}
#: A claim whose sentence only appears when another holds.
NEEDS = {"penalty_sparsifies_ista_more_than_adam": "ista_fewer_changes_with_larger_alpha"}

BROKEN = [
    (re.compile(r"(?<![-\\])\b(nan|NaN|None|inf)\b"), "an undefined number"),  # not L-inf, \\infty
    (re.compile(r"\(\s*\)"), "empty brackets"),
    (re.compile(r"[,;:]\s*[.,;:]"), "an empty clause"),
    (re.compile(r"\.\s+\."), "an empty sentence"),
    (re.compile(r"^\s*[-*]\s*$", re.M), "an empty list item"),
    (re.compile(r"{{|}}|{%|%}"), "template syntax left over"),
]


def assert_readable(rendered: str, where: str) -> None:
    assert rendered.strip(), f"{where}: empty answer"
    for pattern, what in BROKEN:
        match = pattern.search(rendered)
        assert match is None, f"{where}: {what}: {rendered[max(0, match.start() - 80) : match.end() + 80]!r}"


def phrases(value) -> list[str]:
    return value if isinstance(value, list) else [value]


def test_every_claim_is_in_the_phrase_table(smoke_run):
    recorded = {c.name for ex in smoke_run.result.exercises for c in ex.claims}
    used = {name for name in recorded if not name.startswith(("ista_sparser_alpha_", "reaches_target_"))}
    assert used - set(PHRASES) <= COUNTS_AND_DERIVED and set(PHRASES) <= used


def test_each_claim_on_both_sides_gives_its_own_sentence_and_never_the_opposite(smoke_run):
    """Where an answer states a claim's sentence (a guard may hide it, as when no pair was
    reached), it is the one for the claim's outcome; each outcome's sentence shows somewhere."""
    shown = set()
    for answer in smoke_run.answers:
        for name, (yes, no) in PHRASES.items():
            if f"claims.{name}" not in answer.template:
                continue
            for holds in (True, False):
                claims = dict(answer.claims)
                if name in NEEDS:
                    claims[NEEDS[name]] = True
                claims[name] = holds
                rendered = render_markdown(answer.template, claims=claims, **answer.values)
                where = f"{answer.exercise}, {name}={holds}"
                assert_readable(rendered, where)
                said, opposite = (yes, no) if holds else (no, yes)
                assert not any(p in rendered for p in phrases(opposite)), f"{where}: says {opposite!r}"
                if any(p in rendered for p in phrases(said)):
                    shown.add((name, holds))
    missing = {(name, holds) for name in PHRASES for holds in (True, False)} - shown
    assert not missing, f"never stated: {sorted(missing)}"


@pytest.mark.parametrize("holds", [True, False])
def test_all_claims_one_way_render_cleanly(smoke_run, holds):
    for answer in smoke_run.answers:
        claims = dict.fromkeys(answer.claims, holds)
        assert_readable(render_markdown(answer.template, claims=claims, **answer.values), answer.exercise)


def test_the_run_itself_reads_cleanly_and_states_each_claims_evidence(smoke_run):
    result = smoke_run.result
    for ex in result.exercises:
        assert_readable(ex.answer, ex.title)
        assert ex.fidelity == "stand-in" and "the lab's note says why" in ex.fidelity_reason
        for claim in ex.claims:
            assert claim.statement and claim.evidence and claim.baseline, claim.name
            assert "nan" not in claim.evidence
