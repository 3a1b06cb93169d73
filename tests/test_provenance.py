"""One consistent run per hand-in: each lab's provenance, the rule for what a run carries
over, the report's title block and "mixed" table, check and submit on a mixed run, and
``labrunner diff``."""

from __future__ import annotations

import json
import re

import pytest
from runfolders import make_lab

from labrunner.course.bundle import NotSubmittable
from labrunner.records.folders import complete_run
from labrunner.records.results import write_json
from labrunner.records.runfolder import load_run

INSTALLED = {"lab0": "Lab lab0", "lab1": "Lab lab1", "lab2": "Lab lab2"}


def lab_run(
    out, name, labs, *, profile="quick", seed=0, changed=None, finished=None, metrics=None, claims=None
):
    """A finished run folder of ``out`` in which ``labs`` ran with ``profile`` and ``seed``."""
    from labrunner.records.results import Claim

    run_dir = out / name
    run_dir.mkdir(parents=True)
    for lab in labs:
        result = make_lab(run_dir, lab)
        result.profile, result.seed, result.run = profile, seed, name
        result.changed = dict(changed or {})
        result.config = {"steps": 3, **(changed or {})}
        result.code_hash = "c0de" + lab
        day = name[6:8]
        result.started = f"2026-11-{day}T10:00:00+00:00"
        result.finished = finished or f"2026-11-{day}T{name[9:11]}:{name[11:13]}:00+00:00"
        if metrics:
            result.metrics.update(metrics)
        if claims:
            result.exercises[0].claims = [Claim(n, holds) for n, holds in claims.items()]
        result.save(run_dir / lab / "result.json")
    write_json(
        run_dir / "run.json",
        {
            "status": "finished",
            "started": f"2026-11-{name[6:8]}T10:00:00+00:00",
            "settings": {"labs": list(labs), "seed": seed, "profile": profile, "device": "cpu"},
            "labs": [{"lab": lab, "status": "passed", "duration_s": 1.0, "cached": False} for lab in labs],
        },
    )
    return run_dir


# --------------------------------------------------------------------------- what a run carries over


def test_a_lab_carries_over_its_most_recent_result_whatever_its_settings(tmp_path):
    out = tmp_path / "reports"
    lab_run(out, "20261127-100000", ["lab0", "lab1"])
    newer = lab_run(out, "20261128-100000", ["lab0"], changed={"steps": 4})
    # a run folder named earlier whose lab finished later (two runs at once): its result is the newer
    late = lab_run(out, "20261126-100000", ["lab1"], seed=2, finished="2026-11-28T23:00:00+00:00")
    current = lab_run(out, "20261129-100000", ["lab2"])
    complete_run(current, INSTALLED)
    run = load_run(current)
    p0 = run.provenance(next(lab for lab in run.labs if lab.lab == "lab0"))
    p1 = run.provenance(next(lab for lab in run.labs if lab.lab == "lab1"))
    assert (p0.run, p0.changed, p0.origin) == (newer.name, {"steps": 4}, "earlier run")
    assert (p1.run, p1.seeds) == (late.name, (2,))
    assert next(lab for lab in run.labs if lab.lab == "lab0").config["steps"] == 4


@pytest.mark.slow
def test_a_newer_run_with_changed_settings_wins_over_the_cache(cli, workdir):
    """`run counter --set counter.steps=7` after `run counter`, then `run failing`: the report
    of the last run shows counter at 7 steps (its most recent result), not the cache entry
    for the default settings."""
    assert cli("run", "counter", "--profile", "smoke", "--isolation", "none")[0] == 0
    assert (
        cli("run", "counter", "--profile", "smoke", "--isolation", "none", "--set", "counter.steps=7")[0] == 0
    )
    changed = (workdir / "reports" / "latest").resolve()
    status, out, err = cli("run", "failing", "--profile", "smoke", "--isolation", "none")
    run = load_run((workdir / "reports" / "latest").resolve())
    counter = next(lab for lab in run.labs if lab.lab == "counter")
    assert counter.config["steps"] == 7 and counter.changed == {"steps": 7}
    p = run.provenance(counter)
    assert (p.profile, p.seeds, p.run, p.origin) == ("smoke", (0,), changed.name, "earlier run")
    assert len(p.code_hash) >= 8 and p.date
    assert "counter: not selected; shown from " + changed.name in err


@pytest.mark.slow
def test_one_lab_in_another_profile_makes_a_mixed_run_that_submit_names(cli, workdir):
    """`run counter failing`, then `run counter --profile smoke`: the latest report mixes a
    smoke counter with a quick failing; check says so and submit (even with every other
    opt-in) refuses it, naming both, until --allow-mixed."""
    assert cli("run", "counter", "failing", "--isolation", "none")[0] == 1  # failing fails
    status, out, err = cli("run", "counter", "--profile", "smoke", "--isolation", "none")
    assert status == 0, err
    assert "labrunner: note: the report mixes profiles or seeds: smoke profile, seed 0: counter;" in err
    status, out, err = cli("check")
    assert (
        "mixed run: labs differ in profile or seed: smoke profile, seed 0: counter; quick profile, seed 0: failing"
        in out
    )
    status, out, err = cli("submit", "-o", "hw.zip", "--partial", "--allow-stand-ins")
    assert status == 1 and "smoke profile, seed 0: counter; quick profile, seed 0: failing" in err
    assert not (workdir / "hw.zip").exists()
    assert cli("submit", "-o", "hw.zip", "--partial", "--allow-mixed")[0] == 0
    md = (workdir / "reports" / "latest" / "report.md").read_text()
    assert "**Mixed run: these labs did not all run with the same profile and seed.**" in md


# --------------------------------------------------------------------------- the report


def _mixed_run(tmp_path):
    """lab0 ran quick in an earlier run; this run ran lab1 with smoke, lab2 with smoke and
    seed 2 carried over."""
    out = tmp_path / "reports"
    lab_run(out, "20261127-100000", ["lab0"], profile="quick")
    lab_run(out, "20261128-100000", ["lab2"], profile="smoke", seed=2, changed={"steps": 9})
    current = lab_run(out, "20261129-100000", ["lab1"], profile="smoke")
    (current / "config.yaml").write_text("profile: smoke\nseed: 0\nlabs:\n  lab1:\n    steps: 3\n")
    complete_run(current, INSTALLED)
    return current


def test_a_mixed_report_says_so_in_its_title_block_and_appendix(tmp_path):
    from labrunner.report.render import render_report

    run_dir = _mixed_run(tmp_path)
    render_report(run_dir, formats=["html", "md"])
    md = (run_dir / "report.md").read_text()
    head = md.split("## Contents")[0]
    assert "**Mixed run: these labs did not all run with the same profile and seed.**" in head
    assert "| Lab | Profile | Seed(s) | Changed settings | From run |" in head
    assert "| `lab0` | quick | 0 | none | `20261127-100000` (earlier run, 27 November 2026) |" in head
    assert "| `lab1` | smoke | 0 | none | `20261129-100000` (this run, 29 November 2026) |" in head
    assert "| `lab2` | smoke | 2 | steps = 9 | `20261128-100000` (earlier run, 28 November 2026) |" in head
    appendix = md.split("## Appendix")[1]
    # no line claims one profile or seed for labs that ran with another
    assert "| Profile | smoke (lab1, lab2); quick (lab0) |" in appendix
    assert "| Seed | 0 (lab1, lab0); 2 (lab2) |" in appendix
    assert not re.search(r"\| (Profile|Seed) \| (smoke|quick|\d+) \|", appendix)
    lab2 = md.split('<a id="lab-lab2"></a>')[1]
    assert "smoke profile · cpu · seed 2 ·" in lab2
    assert (
        "settings changed from the profile: steps = 9 · code `c0delab2` · ran 28 November 2026 in run `20261128-100000` (earlier run)"
        in lab2
    )

    html = (run_dir / "report.html").read_text()
    title = html.split('<nav class="toc"')[0]
    assert 'class="mixed-run"' in title and '<table class="mixed-table">' in title
    assert title.count("<tr><td><code>lab") == 3
    assert "Every lab ran with" not in title
    assert "config.yaml, as saved in the run folder: the settings of the labs this run ran itself" in html


def test_a_consistent_report_states_its_profile_and_seed(tmp_path):
    from labrunner.report.render import render_report

    out = tmp_path / "reports"
    lab_run(out, "20261128-100000", ["lab0", "lab2"], profile="smoke", seed=3)
    current = lab_run(out, "20261129-100000", ["lab1"], profile="smoke", seed=3, changed={"steps": 5})
    complete_run(current, INSTALLED)
    render_report(current, formats=["html", "md"])
    md = (current / "report.md").read_text()
    assert "**Every lab ran with the smoke profile, seed 3.** `lab1` changed steps = 5." in md
    assert "Mixed run" not in md
    assert "| Profile | smoke |" in md and "| Seed | 3 |" in md
    html = (current / "report.html").read_text()
    assert '<p class="ran-with">Every lab ran with the smoke profile, seed 3.' in html
    assert 'class="mixed-run"' not in html


def test_a_seed_sweep_is_named_by_all_its_seeds(tmp_path):
    """A lab run with --seeds 0-4 is not "seed 0" (its folder's result is seed 0's): the lab's
    line, the title block and check name its seeds, and one lab run with seed 0 alone differs."""
    from labrunner.records.results import LabResult
    from labrunner.records.sweep import summarize_sweep
    from labrunner.report.render import render_report

    out = tmp_path / "reports"
    run_dir = lab_run(out, "20261129-100000", ["lab0", "lab1"], profile="smoke")
    first = LabResult.load(run_dir / "lab0" / "result.json")
    seeds = []
    for seed in range(5):
        one = LabResult.load(run_dir / "lab0" / "result.json")
        one.seed = seed
        seeds.append(one)
    summarize_sweep("lab0", seeds).save(run_dir / "lab0" / "sweep.json")
    assert first.seed == 0
    run = load_run(run_dir)
    assert run.provenance(run.labs[0]).seeds == (0, 1, 2, 3, 4)
    assert run.consistency.mixed and run.consistency.describe() == (
        "smoke profile, seeds 0-4: lab0; smoke profile, seed 0: lab1"
    )
    render_report(run_dir, formats=["md"])
    md = (run_dir / "report.md").read_text()
    assert "smoke profile · cpu · seeds 0-4 ·" in md and "| `lab0` | smoke | 0, 1, 2, 3, 4 |" in md
    assert "| Seeds | 0-4 (lab0); 0 (lab1) |" in md


def test_format_seeds():
    from labrunner.records.runfolder import format_seeds

    assert format_seeds((0,)) == "0"
    assert format_seeds([0, 1, 2, 3, 4]) == "0-4"
    assert format_seeds([0, 2, 5]) == "0, 2, 5"
    assert format_seeds([0, 1, 5, 6, 7]) == "0, 1, 5-7"


# --------------------------------------------------------------------------- check and submit


def test_check_says_when_labs_differ_and_submit_refuses_without_allow_mixed(cli, tmp_path):
    run_dir = _mixed_run(tmp_path)
    status, out, err = cli("check", str(run_dir))
    assert status == 0, err
    line = "mixed run: labs differ in profile or seed: smoke profile, seed 0: lab1; quick profile, seed 0: lab0; smoke profile, seed 2: lab2"
    assert line in out.splitlines()
    status, out, err = cli("check", str(run_dir), "--json")
    grades = json.loads(out)
    assert grades["mixed"] is True and grades["profile"] is None and grades["seeds"] is None
    by_lab = {lab["lab"]: lab["provenance"] for lab in grades["labs"]}
    assert by_lab["lab2"]["seeds"] == [2] and by_lab["lab2"]["changed"] == {"steps": 9}
    assert by_lab["lab0"]["run"] == "20261127-100000" and by_lab["lab1"]["origin"] == "this run"

    dest = tmp_path / "hw.zip"
    for extra in ([], ["--allow-stand-ins", "--partial"]):  # no other opt-in lets it through
        status, out, err = cli("submit", str(run_dir), "-o", str(dest), *extra)
        assert status == 1 and len(err.splitlines()) == 1 and not dest.exists()
        assert (
            "labs differ in profile or seed: smoke profile, seed 0: lab1; quick profile, seed 0: lab0;" in err
        )
        assert "--allow-mixed" in err
    status, out, err = cli("submit", str(run_dir), "-o", str(dest), "--allow-mixed")
    assert status == 0, err
    assert dest.is_file()


def test_the_api_checks_and_submits_a_mixed_run_the_same_way(tmp_path):
    import labrunner

    run_dir = _mixed_run(tmp_path)
    run = labrunner.load(run_dir)
    grades = run.check()
    assert grades["mixed"] and "smoke profile, seed 2: lab2" in grades["mixed_labs"]
    with pytest.raises(NotSubmittable, match="labs differ in profile or seed.*lab2"):
        run.submit(tmp_path / "a.zip", allow_stand_ins=True)
    assert run.submit(tmp_path / "b.zip", allow_mixed=True).is_file()


def test_a_consistent_run_is_not_called_mixed(cli, tmp_path):
    out = tmp_path / "reports"
    current = lab_run(out, "20261129-100000", ["lab0", "lab1"], profile="smoke", seed=1)
    status, text, err = cli("check", str(current))
    assert "mixed" not in text
    grades = json.loads(cli("check", str(current), "--json")[1])
    assert (grades["mixed"], grades["profile"], grades["seeds"]) == (False, "smoke", [1])
    assert cli("submit", str(current), "-o", str(tmp_path / "ok.zip"))[0] == 0


# --------------------------------------------------------------------------- labrunner diff


def _two_runs(tmp_path):
    out = tmp_path / "reports"
    a = lab_run(
        out, "20261128-100000", ["lab0", "lab1"], metrics={"loss": 2.0}, claims={"beats_chance": True}
    )
    b = lab_run(
        out,
        "20261129-100000",
        ["lab0", "lab2"],
        profile="smoke",
        changed={"steps": 9},
        metrics={"loss": 1.5},
        claims={"beats_chance": False},
    )
    return a, b


def test_diff_shows_settings_metrics_and_claims_that_changed(cli, tmp_path):
    a, b = _two_runs(tmp_path)
    status, out, err = cli("diff", str(a), str(b))
    assert status == 0, err
    assert "## Settings" in out and "## Metrics" in out and "## Claims" in out
    assert "| `lab0` | profile | quick | smoke |" in out
    assert "| `lab0` | steps | 3 | 9 |" in out
    assert "| `lab0` | loss | 2 | 1.5 | -0.5 (-25.0 %) |" in out
    assert "| `lab0` | beats_chance | holds | does not hold |" in out
    assert "| `lab1` | status | passed | — |" in out and "| `lab2` | status | — | passed |" in out
    assert "| `lab0` | total |" not in out  # unchanged: shown only with --all
    assert "| `lab0` | total | 6 | 6 |" in cli("diff", str(a), str(b), "--all")[1]

    status, out, err = cli("diff", str(a), str(b), "--json")
    data = json.loads(out)
    assert data["a"]["run_dir"] == str(a) and data["b"]["run_dir"] == str(b)
    metric = next(row for row in data["metrics"] if row["lab"] == "lab0" and row["name"] == "loss")
    assert (metric["a"], metric["b"], metric["change"], metric["relative"]) == (2.0, 1.5, -0.5, -0.25)
    claim = next(row for row in data["claims"] if row["lab"] == "lab0")
    assert (claim["name"], claim["a"], claim["b"]) == ("beats_chance", True, False)
    only = next(row for row in data["settings"] if row["lab"] == "lab1" and row["name"] == "steps")
    assert only["only_in"] == "a" and only["b"] is None

    # names of run folders in --out, and a run against itself
    status, out, err = cli("diff", "20261128-100000", "latest", "--out", str(tmp_path / "reports"))
    assert status == 2 and "latest: no such run folder" in err  # no latest link in this out folder
    status, out, err = cli("diff", "20261128-100000", "20261128-100000", "--out", str(tmp_path / "reports"))
    assert status == 0 and "No setting, metric or claim differs" in out


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda t: t / "missing", "missing: no such run folder"),
        (lambda t: t, "not a run folder (no run.json)"),
        (lambda t: (t / "file.txt").write_text("x") and t / "file.txt", "not a run folder (not a folder)"),
        (
            lambda t: (t / "bad").mkdir() or (t / "bad" / "run.json").write_text("{") and t / "bad",
            "not valid JSON",
        ),
    ],
)
def test_diff_of_something_that_is_not_a_run_is_one_line(cli, tmp_path, make, message):
    a, _b = _two_runs(tmp_path)
    bad = make(_fresh(tmp_path))
    for args in ((str(a), str(bad)), (str(bad), str(a))):
        status, out, err = cli("diff", *args)
        assert status == 2 and out == ""
        assert len(err.splitlines()) == 1 and message in err, err


def _fresh(tmp_path):
    folder = tmp_path / "elsewhere"
    folder.mkdir(exist_ok=True)
    return folder
