"""benchmarks/seed_claims.py: claims whose outcome depends on the seed, and answers with "nan"."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from conftest import installed_plugin

from labrunner.records.results import Claim, Exercise, LabResult

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "seed_claims.py"


@pytest.fixture(scope="module")
def seed_claims():
    spec = importlib.util.spec_from_file_location("seed_claims", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def result(seed: int, holds: dict[str, bool], answer: str = "fine", lab: str = "demo") -> LabResult:
    claims = [Claim(name=n, holds=h, statement=f"{n} holds") for n, h in holds.items()]
    ex = Exercise(title="1. Q", question="q?", answer=answer, claims=claims)
    return LabResult(lab=lab, title="Demo", version="1", seed=seed, exercises=[ex])


def test_seeds_parse_ranges_and_lists(seed_claims):
    assert seed_claims.parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert seed_claims.parse_seeds("3,1,1") == [1, 3]
    for bad in ("4-0", "a", ""):
        with pytest.raises(Exception, match="--seeds"):
            seed_claims.parse_seeds(bad)


def test_only_claims_that_flip_or_go_missing_are_listed(seed_claims):
    by_seed = {
        0: [result(0, {"stable": True, "flips": True, "sometimes": True})],
        1: [result(1, {"stable": True, "flips": False})],
    }
    outcomes = seed_claims.claim_outcomes(by_seed)
    assert outcomes[("demo", "flips")] == {0: True, 1: False}
    assert seed_claims.varying(outcomes, [0, 1]) == [("demo", "flips"), ("demo", "sometimes")]


def test_answers_showing_nan_are_found_but_not_words_containing_it(seed_claims):
    by_seed = {
        0: [result(0, {}, answer="The loss was nan after 3 steps."), result(0, {}, "nanoGPT", "other")]
    }
    (found,) = seed_claims.nan_texts(by_seed)
    assert found[:3] == (0, "demo", "1. Q: answer") and "loss was nan" in found[3]


def test_a_verdict_in_prose_that_no_claim_records_is_found(seed_claims):
    steady = {"beats": True}
    by_seed = {
        0: [
            result(
                0,
                steady,
                answer="Perplexity 41.2 (seed 0).\nIt was never measurably below the unigram model.",
            )
        ],
        1: [
            result(1, steady, answer="Perplexity 39,870.5 (seed 1).\nIt was measurably below from step 198.")
        ],
    }
    ((lab, title, line),) = seed_claims.prose_verdicts(by_seed, flips=[])
    assert (lab, title) == ("demo", "1. Q") and "measurably below" in line
    # numbers alone differ: the same wording
    by_seed[1] = [
        result(
            1,
            steady,
            answer="Perplexity 3.5e-05 (seed 12).\nIt was never measurably below the unigram model.",
        )
    ]
    assert seed_claims.prose_verdicts(by_seed, flips=[]) == []
    # a claim that flipped explains the changed wording
    by_seed[1] = [result(1, steady, answer="Other words")]
    assert seed_claims.prose_verdicts(by_seed, flips=[("demo", "beats")]) == []


def test_names_from_the_exercise_tables_are_not_wording(seed_claims):
    from labrunner.records.results import TableRecord

    def drawn(seed, target):
        r = result(seed, {}, answer=f"The pair cat → {target} was lost.")
        r.exercises[0].records.append(TableRecord(columns=["image", "target"], rows=[["cat", target]]))
        return r

    assert seed_claims.prose_verdicts({0: [drawn(0, "toaster")], 1: [drawn(1, "goldfish")]}, []) == []


def test_claims_and_measurements_the_seed_does_not_reach_are_listed(seed_claims):
    def res(seed):
        ex = Exercise(title="1. Q", metrics={"rf": 195, "loss": 1.0 + seed})
        ex.claims = [
            Claim(name="exact", holds=True, evidence="r = 195"),
            Claim(name="drawn", holds=True, evidence=f"{seed}"),
        ]
        return LabResult(lab="demo", title="Demo", version="1", seed=seed, exercises=[ex])

    same_claims, same_metrics, n_claims, n_metrics = seed_claims.seed_independent({0: [res(0)], 1: [res(1)]})
    assert same_claims == ["demo.exact"] and same_metrics == ["demo.rf"] and (n_claims, n_metrics) == (1, 1)


def test_results_from_another_seed_or_run_are_ignored(seed_claims, tmp_path):
    for name, res in {
        "a": result(2, {"x": True}, lab="a"),
        "b": result(3, {"x": True}, lab="b"),
        "c": LabResult(
            lab="c", title="C", version="1", seed=2, origin={"kind": "cache", "run": "r", "finished": ""}
        ),
    }.items():
        (tmp_path / name).mkdir()
        res.save(tmp_path / name / "result.json")
    assert [r.lab for r in seed_claims.results_of(tmp_path, 2)] == ["a"]


#: Two labs from an installed plugin: one claim follows the seed's parity, one holds always.
PARITY_PLUGIN = """
import labrunner

class CoinLab(labrunner.Lab):
    name = "coin"
    title = "A claim that follows the seed"

    def run(self, ctx):
        with ctx.exercise("1. Parity") as ex:
            ex.claim("even_seed", ctx.seed % 2 == 0, statement="the seed is even", evidence=f"seed {ctx.seed}")
            ex.check("ran", True)
            ex.answer("{% if claims.even_seed %}Even.{% else %}Odd.{% endif %}")

class SteadyLab(labrunner.Lab):
    name = "steady"
    title = "A claim that holds under every seed"

    def run(self, ctx):
        with ctx.exercise("1. Steady") as ex:
            ex.claim("always", True, statement="it holds", evidence="1 = 1")
            ex.check("ran", True)
            ex.answer("The same words under seed {{ seed }}.", seed=ctx.seed)

@labrunner.hookimpl
def register_labs(register):
    register(CoinLab())
    register(SteadyLab())
"""


def seed_claims_main(seed_claims, out: Path, *labs: str) -> int:
    return seed_claims.main(
        ["--labs", *labs, "--profile", "smoke", "--seeds", "0-1", "--threads", "1", "--out", str(out)]
    )


@pytest.mark.slow
def test_exit_status_is_1_when_a_claim_flips_with_the_seed_and_0_when_none_does(
    seed_claims, tmp_path, monkeypatch, capsys
):
    for key, value in installed_plugin(tmp_path / "site", "parity", PARITY_PLUGIN).items():
        monkeypatch.setenv(key, value)

    assert seed_claims_main(seed_claims, tmp_path / "flips", "coin", "steady") == 1
    out = capsys.readouterr().out
    assert "2 claims, 1 with an outcome that depends on the seed" in out
    assert "coin.even_seed: holds for seeds 0, fails for 1\n      the seed is even" in out
    assert "steady.always" not in out.split("seed-independent")[0]
    # the flipped claim explains the changed answer: no prose verdict
    assert "0 answer(s) whose wording changes with the seed" in out

    assert seed_claims_main(seed_claims, tmp_path / "steady", "steady") == 0
    out = capsys.readouterr().out
    assert "1 claims, 0 with an outcome that depends on the seed" in out
    assert "0 answer(s) whose wording changes with the seed" in out
    assert "1 claims, 0 measurements" in out and "  claim steady.always" in out
    assert "0 text(s) containing 'nan'" in out


def printed_count(out: str, text: str) -> int:
    """The number printed before ``text`` (``3 claims, 1 with an outcome ...``)."""
    return int(re.search(r"(\d+) " + re.escape(text), out).group(1))


@pytest.mark.slow
def test_two_seeds_of_a_real_lab(seed_claims, tmp_path, capsys):
    status = seed_claims_main(seed_claims, tmp_path, "attention")
    out = capsys.readouterr().out
    assert "seed-independent" in out
    assert "seed 0:" in out and "seed 1:" in out and "attention passed" in out
    assert "0 text(s) containing 'nan'" in out
    assert (tmp_path / "seed-1" / "latest" / "attention" / "result.json").is_file()
    assert (tmp_path / "cache-0").is_dir() and (tmp_path / "cache-1").is_dir()
    # a timing claim may flip on a busy machine: the status then says so, and only then
    flips = printed_count(out, "with an outcome that depends on the seed")
    prose = printed_count(out, "answer(s) whose wording changes with the seed while no claim of the lab does")
    assert status == (1 if flips or prose else 0), out
