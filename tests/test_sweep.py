"""Seed sweeps: --seeds and ``seeds:`` parse or name the problem, the summary's numbers,
and a real sweep's run folder, report and per-seed report."""

from __future__ import annotations

import json
import statistics

import pytest

from labrunner.base.errors import UsageError
from labrunner.records.results import Claim, Exercise, LabResult, RunFileError
from labrunner.records.sweep import SweepSummary, summarize_sweep
from labrunner.settings.config import load_run_config, parse_seeds


@pytest.mark.parametrize(
    ("text", "seeds"),
    [
        ("0-4", [0, 1, 2, 3, 4]),
        ("0,2,5", [0, 2, 5]),
        ("3", [3]),
        ("0-2,7,1", [0, 1, 2, 7]),
        ([4, 4, 1], [4, 1]),
    ],
)
def test_seed_sweeps_in_every_form(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize(
    ("text", "match"), [("4-1", "range"), ("a", "not a seed"), ("", "not a seed"), ([], "expected seeds")]
)
def test_bad_seed_sweeps_are_one_line_errors(text, match):
    with pytest.raises(UsageError, match=match):
        parse_seeds(text)


def test_seeds_and_executor_options_in_the_config_file(tmp_path):
    path = tmp_path / "labrunner.yaml"
    path.write_text("seeds: [0, 1, 2]\nexecutor: slurm\nexecutor_options:\n  partition: gpu\n  gpus: 1\n")
    cfg = load_run_config(path)
    assert cfg.seeds == [0, 1, 2] and cfg.executor == "slurm"
    assert cfg.executor_options == {"partition": "gpu", "gpus": "1"}
    path.write_text("profile: smoke\nseeds: [0, -1]\n")
    with pytest.raises(UsageError, match=r"labrunner.yaml:2: seeds must be >= 0"):
        load_run_config(path)


def _result(seed: int, loss: float, holds: bool) -> LabResult:
    ex = Exercise(title="1. Train", metrics={"loss": loss, "label": "text", "flag": True})
    ex.claims.append(Claim(name="converges", holds=holds, statement="the loss falls"))
    return LabResult(
        lab="demo", title="Demo", version="1", seed=seed, exercises=[ex], metrics={"total": seed * 2}
    )


def test_the_summary_gives_mean_spread_per_seed_values_and_claim_counts(tmp_path):
    summary = summarize_sweep("demo", [_result(0, 1.0, True), _result(1, 2.0, True), _result(2, 4.5, False)])
    (ex,) = summary.exercises
    loss = ex.metrics["loss"]
    assert list(ex.metrics) == ["loss"]  # text and true/false are not measurements to average
    assert loss.mean == pytest.approx(2.5) and loss.std == pytest.approx(statistics.stdev([1.0, 2.0, 4.5]))
    assert (loss.min, loss.max, loss.values) == (1.0, 4.5, {"0": 1.0, "1": 2.0, "2": 4.5})
    (claim,) = ex.claims
    assert (claim.holds, claim.of, claim.by_seed) == (2, 3, {"0": True, "1": True, "2": False})
    assert summary.metrics["total"].values == {"0": 0.0, "1": 2.0, "2": 4.0}
    summary.save(tmp_path / "sweep.json")
    assert SweepSummary.load(tmp_path / "sweep.json") == summary


def test_what_the_seed_does_not_reach_is_marked_not_counted(tmp_path):
    def result(seed: int) -> LabResult:
        ex = Exercise(title="1. Exact", metrics={"rf": 195.0, "draw": float(seed)})
        ex.claims.append(Claim(name="exact", holds=True, statement="r = 195", evidence="r = 195"))
        ex.claims.append(Claim(name="drawn", holds=True, statement="d > -1", evidence=f"d = {seed}"))
        return LabResult(lab="demo", title="Demo", version="1", seed=seed, exercises=[ex])

    summary = summarize_sweep("demo", [result(s) for s in range(3)])
    (ex,) = summary.exercises
    assert ex.metrics["rf"].seed_independent and not ex.metrics["draw"].seed_independent
    exact, drawn = ex.claims
    assert exact.seed_independent and exact.holds == 3 and exact.support == 0
    assert not drawn.seed_independent and drawn.support == 3
    # one seed is no evidence either way: nothing to mark
    (one,) = summarize_sweep("demo", [result(0)]).exercises
    assert not one.metrics["rf"].seed_independent and not one.claims[0].seed_independent
    summary.save(tmp_path / "sweep.json")
    assert SweepSummary.load(tmp_path / "sweep.json") == summary


@pytest.mark.slow
def test_a_sweep_runs_each_seed_and_the_report_shows_them(cli, workdir):
    status, out, err = cli("run", "counter", "--profile", "smoke", "--seeds", "0-1", "--jobs", "2")
    assert status == 0, err
    assert "counter seed 0" in out and "counter seed 1" in out
    run_dir = (workdir / "reports" / "latest").resolve()
    run = json.loads((run_dir / "run.json").read_text())
    assert [e["lab"] for e in run["labs"] if e["status"] != "not run"] == ["counter"]
    assert run["settings"]["seeds"] == [0, 1]
    first, second = (LabResult.load(run_dir / "counter" / "seeds" / s / "result.json") for s in ("0", "1"))
    assert LabResult.load(run_dir / "counter" / "result.json") == first  # the first seed's, for every reader
    draws = [r.exercises[0].metrics["random_draw"] for r in (first, second)]
    assert draws[0] != draws[1]  # each seed seeded its own way
    sweep = json.loads((run_dir / "counter" / "sweep.json").read_text())
    assert sweep["exercises"][0]["metrics"]["random_draw"]["values"] == {"0": draws[0], "1": draws[1]}
    report = (run_dir / "report.md").read_text()
    assert "### Over 2 seeds (0, 1)" in report and "| `random_draw` |" in report
    assert "Over 2 seeds" in (run_dir / "report.html").read_text()
    # answers written for one seed still render for each seed
    status, out, err = cli("report", str(run_dir), "--seed", "1")
    assert status == 0, err
    seed_report = (run_dir / "seeds" / "1" / "report.md").read_text()
    assert "seed 1" in seed_report and "$\\frac{n(n+1)}{2} = 6" in seed_report
    status, _out, err = cli("report", str(run_dir), "--seed", "9")
    assert status == 2 and "no lab of" in err and "(seeds: 0, 1)" in err
    # a second sweep with one more seed takes the first two from the cache
    status, _out, err = cli("run", "counter", "--profile", "smoke", "--seeds", "0-2", "--jobs", "2")
    assert status == 0 and err.count("reused cached result") == 2, err


def test_sweep_json_is_written_and_read_through_its_model(tmp_path):
    summary = summarize_sweep("demo", [_result(0, 1.0, True), _result(1, 2.0, False)])
    summary.save(tmp_path / "sweep.json")
    data = json.loads((tmp_path / "sweep.json").read_text())
    assert (
        data["schema"] == 1 and data["seeds"] == [0, 1] and data["status"] == {"0": "passed", "1": "passed"}
    )
    data["schema"] = 2
    (tmp_path / "sweep.json").write_text(json.dumps(data))
    with pytest.raises(
        RunFileError, match=r"sweep.json: schema: expected version 1, got 2 \(written by a newer"
    ):
        SweepSummary.load(tmp_path / "sweep.json")
    # a bad summary is refused where it is made, not when it is read back
    with pytest.raises(ValueError, match="a seed must be an integer >= 0"):
        SweepSummary(lab="demo", seeds=[0, -1], status={})
    with pytest.raises(ValueError, match="is not a status"):
        SweepSummary(lab="demo", seeds=[0], status={"0": "fine"})
    with pytest.raises(ValueError, match="invalid lab name"):
        SweepSummary(lab="../demo", seeds=[0], status={})
