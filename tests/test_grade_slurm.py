"""`labrunner grade --executor slurm`: the re-executions of a class as SLURM jobs on the real
one-node cluster CI starts (each sandboxed on its node), graded as a local grading grades
them; and the option errors, which need no cluster."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
from gradecohort import INSTRUCTOR, make_submission, rewrite_zip
from test_slurm import needs_cluster

from labrunner.cli import main

WRONG_TRIANGLE = ("return n * (n + 1) // 2", "return n * n")


def _class(tmp_path):
    """Three submissions: correct, partly wrong, and one tampered after submitting."""
    work, subs = tmp_path / "students", tmp_path / "subs"
    work.mkdir()
    subs.mkdir()
    shutil.move(make_submission(work, "ada", seed=0), subs / "ada.zip")
    shutil.move(
        make_submission(work, "fay", seed=1, edit=lambda t: t.replace(*WRONG_TRIANGLE)), subs / "fay.zip"
    )
    base = make_submission(work, "kim", seed=2)

    def tamper(rel, data):
        if rel == "tiny/result.json":
            result = json.loads(data)
            result["metrics"]["mean"] = 0.5
            return json.dumps(result).encode()
        return None

    rewrite_zip(base, subs / "kim.zip", tamper)
    return subs


def _grade(subs, out, *extra):
    args = ["grade", str(subs), "--out", str(out), "--rerun", "submitted", "--timeout", "120"]
    return main([*args, "--lab-package", str(INSTRUCTOR), "--sandbox", "rlimits", *extra])


@pytest.mark.slow
@needs_cluster
def test_re_executions_run_as_slurm_jobs_and_grade_as_locally(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LABRUNNER_CACHE_DIR", str(tmp_path / "cache"))
    subs = _class(tmp_path)
    local, cluster = tmp_path / "local", tmp_path / "cluster"
    assert _grade(subs, local) == 1  # kim's tampered result is flagged
    assert _grade(subs, cluster, "--executor", "slurm", "--executor-option", "time=10") == 1
    capsys.readouterr()

    def rows(out):
        return {row["student"]: row for row in csv.DictReader((out / "gradebook.csv").open())}

    assert rows(cluster) == rows(local)
    records = {r["student"]: r for r in json.loads((cluster / "grading.json").read_text())["submissions"]}
    for name in ("ada", "fay", "kim"):
        rerun = records[name]["labs"]["tiny"]["rerun"]
        assert rerun["status"] == "done", rerun
        assert rerun["where"].startswith("SLURM job on "), rerun
    assert records["ada"]["status"] == "graded" and records["fay"]["status"] == "graded"
    assert records["kim"]["status"] == "flagged"
    (diff,) = [d for d in records["kim"]["labs"]["tiny"]["differences"] if d["kind"] == "metric"]
    assert diff["submitted"] == 0.5 and diff["rerun"] != 0.5
    # submitit's files stay inside the grading folder
    assert any((cluster / ".slurm").rglob("*_submission.sh"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--rerun", "smoke", "--executor", "slurm", "--executor-option", "colour=red"],
            "unknown SLURM option",
        ),
        (["--rerun", "smoke", "--executor-option", "time=10"], "only with --executor slurm"),
        (["--executor", "slurm"], "add --rerun"),
        (["--rerun", "smoke", "--executor", "slurm", "--executor-option", "time"], "expected KEY=VALUE"),
    ],
)
def test_executor_options_are_checked_before_anything_runs(tmp_path, capsys, extra, message):
    out = tmp_path / "grading"
    status = main(["grade", str(tmp_path), "--out", str(out), *extra])
    err = capsys.readouterr().err
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()
