"""Exit statuses and records that cannot lie: each test injects the fault.

- a seed sweep with a seed that did not pass never passes (check, submit, the report);
- a closed stdout does not turn a failing run into success;
- a check or claim decided by anything but a bool is the lab's error;
- a lab cannot take the name of a run folder's own entry;
- ``submit -o`` to a place it cannot write is one line and exit status 2.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TEST_PLUGINS, labrunner_argv
from runfolders import make_run

from labrunner.base.errors import PluginError
from labrunner.records.results import LabError, LabResult, write_json

# --------------------------------------------------------------------------- a sweep with a failed seed


def _sweep_run(tmp_path: Path, statuses: dict[int, str]) -> Path:
    """A finished run folder of lab ``lab0`` swept over the seeds of ``statuses``, where a
    seed that errored recorded no measurements (what ``run --seeds`` writes)."""
    from labrunner.records.sweep import SWEEP_FILE, seed_dir, summarize_sweep

    run_dir = make_run(tmp_path, labs=1)
    info = json.loads((run_dir / "run.json").read_text())
    info["labs"] = [e for e in info["labs"] if e["lab"] == "lab0"]
    info["settings"]["labs"] = ["lab0"]
    info["settings"]["seeds"] = list(statuses)
    info["labs"][0]["status"] = "passed"  # what run.json said of a sweep: its first seed's status
    write_json(run_dir / "run.json", info)
    first = LabResult.load(run_dir / "lab0" / "result.json")
    results = []
    for seed, status in statuses.items():
        result = LabResult.load(run_dir / "lab0" / "result.json")
        result.seed, result.status = seed, status
        if status == "error":
            result.exercises = []
            result.metrics = {}
            result.stop(LabError("ValueError", "diverged"))
        result.save(seed_dir(run_dir / "lab0", seed) / "result.json")
        results.append(result)
    assert first.status == "passed"
    summarize_sweep("lab0", results).save(run_dir / "lab0" / SWEEP_FILE)
    return run_dir


def test_a_sweep_with_a_failed_seed_never_passes(cli, tmp_path):
    run_dir = _sweep_run(tmp_path, {0: "passed", 1: "error", 2: "passed"})
    status, out, err = cli("check", str(run_dir), plugins=False)
    assert status == 1, out
    assert "all labs passed" not in out.replace("NOT all labs passed", "")
    assert "SEED 1  error" in out
    grades = json.loads(cli("check", str(run_dir), "--json", plugins=False)[1])
    assert grades["passed"] is False and grades["labs"][0]["failed_seeds"] == {"1": "error"}
    status, _out, err = cli("submit", str(run_dir), "-o", str(tmp_path / "hw.zip"), plugins=False)
    assert status == 1 and "lab0: seed 1 (error)" in err and not (tmp_path / "hw.zip").exists()
    status, _out, err = cli("report", str(run_dir), plugins=False)
    assert status == 0, err
    assert "Seeds without a passing result: 1 (error)" in (run_dir / "report.md").read_text()
    assert "Seeds without a passing result: 1 (error)" in (run_dir / "report.html").read_text()


def test_a_seed_of_the_run_missing_from_the_sweep_is_named(cli, tmp_path):
    run_dir = _sweep_run(tmp_path, {0: "passed", 2: "passed"})
    info = json.loads((run_dir / "run.json").read_text())
    info["settings"]["seeds"] = [0, 1, 2]
    write_json(run_dir / "run.json", info)
    status, out, _err = cli("check", str(run_dir), plugins=False)
    assert status == 1 and "SEED 1  no result" in out


def test_a_sweep_whose_seeds_all_passed_passes(cli, tmp_path):
    run_dir = _sweep_run(tmp_path, {0: "passed", 1: "passed"})
    status, out, _err = cli("check", str(run_dir), plugins=False)
    assert status == 0 and "(all labs passed)" in out


def test_a_lab_over_seeds_has_its_worst_seeds_status():
    from labrunner.records.sweep import worst_status

    assert worst_status(["passed", "passed"]) == "passed"
    assert worst_status(["passed", "failed", "passed"]) == "failed"
    assert worst_status(["passed", "error", "failed"]) == "error"


SEEDY = """
import labrunner


class Seedy(labrunner.Lab):
    name = "seedy"
    title = "Fails for seed 1"
    version = "1"

    def run(self, ctx):
        with ctx.exercise("1. Count") as ex:
            if ctx.seed == 1:
                raise ValueError("diverged")
            ex.metric("value", float(ctx.seed))
            ex.check("ran", True)


@labrunner.hookimpl
def register_labs(register):
    register(Seedy())
"""


@pytest.mark.slow
def test_a_real_sweep_with_a_failing_seed_is_not_handed_in(cli, workdir, tmp_path, monkeypatch):
    plugins = tmp_path / "seedy_plugins"
    plugins.mkdir()
    (plugins / "seedy.py").write_text(SEEDY)
    monkeypatch.setenv("LABRUNNER_PLUGINS", "seedy")
    status, out, err = cli("run", "seedy", "--seeds", "0-2", "--plugins-dir", str(plugins), plugins=False)
    assert status == 1, err
    run_dir = (workdir / "reports" / "latest").resolve()
    entry = json.loads((run_dir / "run.json").read_text())["labs"][0]
    assert entry["lab"] == "seedy" and entry["status"] == "error"
    status, out, _err = cli("check", str(run_dir), plugins=False)
    assert status == 1 and "SEED 1  error" in out
    status, _out, err = cli("submit", str(run_dir), "-o", str(tmp_path / "hw.zip"), plugins=False)
    assert status == 1 and "seed 1 (error)" in err
    assert "Seeds without a passing result: 1 (error)" in (run_dir / "report.md").read_text()


# --------------------------------------------------------------------------- a closed stdout


class ClosedPipe:
    """A stdout whose reader has gone away (``labrunner run ... | true``)."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self) -> int:
        raise ValueError("no descriptor")


def test_a_closed_stdout_keeps_a_failing_runs_exit_status(workdir, monkeypatch):
    from labrunner.cli import main

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    args = ["run", "failing", "--plugins-dir", str(TEST_PLUGINS), "--profile", "smoke", "--isolation", "none"]
    assert main(args) == 1
    run_dir = (workdir / "reports" / "latest").resolve()
    assert (run_dir / "report.html").is_file()  # the run still completed its folder
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"
    assert main(["check", str(run_dir)]) == 1
    assert main(["list", "--plugins-dir", str(TEST_PLUGINS)]) == 0


@pytest.mark.slow
def test_pipefail_sees_a_failing_run_whose_output_is_not_read(workdir):
    labrunner = labrunner_argv("run", "failing", "--plugins-dir", str(TEST_PLUGINS), "--profile", "smoke")
    command = f"set -o pipefail; {shlex.join(labrunner)} --isolation none | true"
    proc = subprocess.run(["bash", "-c", command], cwd=workdir, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert (workdir / "reports" / "latest" / "report.html").is_file()


# --------------------------------------------------------------------------- checks and claims


def _recorder(tmp_path: Path):
    from labrunner.authoring.context import LabContext
    from labrunner.base.progress import Reporter

    result = LabResult(lab="truth", title="t", version="1")
    ctx = LabContext(
        result,
        None,
        device="cpu",
        seed=0,
        profile="smoke",
        out_dir=tmp_path,
        cache_dir=tmp_path,
        state_dir=tmp_path,
        reporter=Reporter(),
    )
    return ctx.exercise("1. Truth"), result


@pytest.mark.parametrize(
    "value", [float("nan"), "False", "True", [False], [], 1, 0, None, np.float64("nan"), np.array([True])]
)
def test_a_check_or_claim_decided_by_anything_but_a_bool_is_an_error(tmp_path, value):
    ex, result = _recorder(tmp_path)
    with pytest.raises(TypeError, match="check 'converged': passed must be True or False"):
        ex.check("converged", value)
    with pytest.raises(TypeError, match="claim 'beats_chance': holds must be True or False"):
        ex.claim("beats_chance", value, statement="better than chance")
    assert result.exercises[0].checks == [] and result.exercises[0].claims == []


def test_python_and_numpy_bools_decide_checks_and_claims(tmp_path):
    ex, result = _recorder(tmp_path)
    assert ex.check("a", True) is True and ex.check("b", np.bool_(False)) is False
    assert ex.claim("c", np.float64(2.0) > 1.0, statement="s") is True
    assert ex.claim("d", False, statement="s") is False
    assert ex.check_close("e", float("nan"), 1.0, 0.1) is False  # nan is never close
    assert [c.passed for c in result.checks] == [True, False, False]
    assert all(type(c.passed) is bool for c in result.checks)
    assert [type(c.holds) for c in result.exercises[0].claims] == [bool, bool]


NAN_CHECK = """
import labrunner


class NanCheck(labrunner.Lab):
    name = "nan_check"
    title = "A check decided by nan"
    version = "1"

    def run(self, ctx):
        with ctx.exercise("1. Loss") as ex:
            ex.check("loss is finite", float("nan"))


@labrunner.hookimpl
def register_labs(register):
    register(NanCheck())
"""


def test_a_lab_whose_check_is_nan_fails_with_an_error_naming_the_check(cli, workdir, tmp_path, monkeypatch):
    plugins = tmp_path / "nan_plugins"
    plugins.mkdir()
    (plugins / "nan_check.py").write_text(NAN_CHECK)
    monkeypatch.setenv("LABRUNNER_PLUGINS", "nan_check")
    status, _out, err = cli(
        "run", "nan_check", "--isolation", "none", "--plugins-dir", str(plugins), plugins=False
    )
    assert status == 1
    result = json.loads((workdir / "reports" / "latest" / "nan_check" / "result.json").read_text())
    assert result["status"] == "error" and result["error"]["type"] == "TypeError"
    assert "check 'loss is finite'" in result["error"]["message"]


# --------------------------------------------------------------------------- reserved names


@pytest.mark.parametrize("name", ["figures", "seeds", "latest", "report", "config", "jobs", "run"])
def test_a_lab_named_like_a_run_folders_own_entry_is_refused(cli, tmp_path, name):
    import labrunner
    from labrunner.authoring.lab import validate_lab

    class Colliding(labrunner.Lab):
        title = "Collides"
        version = "1"

        def run(self, ctx):
            pass

    Colliding.name = name
    with pytest.raises(PluginError, match=f"invalid lab name '{name}': it is reserved"):
        validate_lab(Colliding())
    status, _out, err = cli("new", name, "--dir", str(tmp_path), plugins=False)
    assert status == 2 and "reserved" in err and not (tmp_path / name).exists()


def test_a_run_file_naming_a_reserved_lab_is_refused(cli, tmp_path):
    run_dir = make_run(tmp_path)
    info = json.loads((run_dir / "run.json").read_text())
    info["settings"]["labs"].append("figures")
    write_json(run_dir / "run.json", info)
    status, _out, err = cli("check", str(run_dir), plugins=False)
    assert status == 2 and "invalid lab name 'figures'" in err


# --------------------------------------------------------------------------- submit -o


@pytest.mark.parametrize(
    "where", ["folder", "folder.zip", "unwritable", "missing parent", "parent is a file"]
)
def test_submit_to_a_place_it_cannot_write_is_one_line(cli, tmp_path, where):
    run_dir = make_run(tmp_path)
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder.zip").mkdir()
    (tmp_path / "notes.txt").write_text("notes")
    dest = {
        "folder": str(tmp_path / "folder") + "/",
        "folder.zip": str(tmp_path / "folder.zip"),
        "unwritable": "/sys/submission.zip",
        "missing parent": str(tmp_path / "missing" / "hw.zip"),
        "parent is a file": str(tmp_path / "notes.txt" / "hw.zip"),
    }[where]
    before = sorted(str(p) for p in tmp_path.rglob("*") if "work" not in p.parts)
    status, out, err = cli("submit", str(run_dir), "-o", dest, plugins=False)
    assert status == 2, err
    assert err.count("\n") == 1 and err.startswith("labrunner: error: -o "), err
    assert sorted(str(p) for p in tmp_path.rglob("*") if "work" not in p.parts) == before  # nothing written
