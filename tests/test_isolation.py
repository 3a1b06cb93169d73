"""Each lab in a fresh worker process: every way a lab can end is recorded as its error and
the run goes on; global state cannot leak into later labs; the parent stays light."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from conftest import TEST_PLUGINS, run_cli, run_subprocess

from labrunner.records.results import LabResult

HOSTILE = Path(__file__).parent / "plugins_hostile"


@pytest.fixture
def hostile(monkeypatch):
    monkeypatch.setenv("LABRUNNER_PLUGINS", "core_labs,hostile_labs")


def results(workdir: Path) -> dict[str, LabResult]:
    run_dir = (workdir / "reports" / "latest").resolve()
    run = json.loads((run_dir / "run.json").read_text())
    return {
        lab["lab"]: LabResult.load(run_dir / lab["lab"] / "result.json")
        for lab in run["labs"]
        if lab["status"] != "not run"  # other installed labs, listed for the report
    }


def run_json(workdir: Path) -> dict:
    return json.loads((workdir / "reports" / "latest" / "run.json").resolve().read_text())


#: lab -> (error type, text in the message) for the exits a lab can take inside Python.
RAISED = {
    "exit_zero": ("SystemExit", "0"),
    "exit_three": ("SystemExit", "3"),
    "memory": ("MemoryError", ""),
    "unprintable": ("Unprintable", "<str() of the exception raised RuntimeError>"),
    "bad_check_value": ("RuntimeError", "no text"),
    "bad_check_name": ("ValueError", "check: the name must be a non-empty string, not NoText"),
    "unsaveable": ("RuntimeError", "the lab's records cannot be saved"),
}
#: ... and the ways only a worker process survives.
ENDED = {
    "os_exit": ("WorkerExited", "ended with exit status 0 before the lab finished"),
    "killed": ("WorkerKilled", "killed by SIGKILL (out of memory, or killed from outside)"),
}


def assert_errors(found: dict[str, LabResult], expected: dict[str, tuple[str, str]]) -> None:
    for name, (kind, text) in expected.items():
        result = found[name]
        assert result.status == "error", name
        assert result.error.type == kind, (name, result.error)
        assert text in result.error.message, (name, result.error)
        assert "\n" not in result.error.message


@pytest.mark.slow
def test_every_way_a_worker_ends_is_that_labs_error(cli, workdir, hostile):
    labs = [*RAISED, *ENDED, "counter"]
    status, out, err = cli("run", *labs, "--profile", "smoke", "--plugins-dir", str(HOSTILE))
    assert status == 1, err
    found = results(workdir)
    assert list(found) == labs  # the run went on after each
    assert_errors(found, {**RAISED, **ENDED})
    assert found["killed"].error.details["signal"] == "SIGKILL"
    assert found["os_exit"].error.details["exit_code"] == 0
    assert "sys.exit(3)" in found["exit_three"].error.traceback
    assert found["counter"].status == "passed"
    assert run_json(workdir)["status"] == "finished"
    # `check` does not call this run a pass
    assert cli("check")[0] != 0


def test_in_process_the_raised_exits_are_recorded_too(cli, workdir, hostile):
    status, out, err = cli(
        "run", *RAISED, "counter", "--profile", "smoke", "--isolation", "none", "--plugins-dir", str(HOSTILE)
    )
    assert status == 1, err
    found = results(workdir)
    assert_errors(found, RAISED)
    assert found["counter"].status == "passed"


@pytest.mark.slow
def test_a_worker_that_cannot_start_the_lab_records_why(cli, workdir, hostile):
    status, out, err = cli("run", "vanishing", "failing", "--plugins-dir", str(HOSTILE))
    assert status == 1, err
    found = results(workdir)
    assert found["vanishing"].status == "error"
    assert found["vanishing"].error.type == "LookupError"
    assert "lab 'vanishing' not found in plugin 'hostile_labs'" in found["vanishing"].error.message
    assert "run_lab_job" in found["vanishing"].error.traceback
    assert found["failing"].status == "failed"


@pytest.mark.slow
def test_a_lab_over_its_time_limit_is_stopped_and_the_run_goes_on(cli, workdir, hostile):
    status, out, err = cli(
        "run", "sleeper", "failing", "--set", "sleeper.sleep_s=0.05", "--lab-timeout", "3", "-v",
        "--plugins-dir", str(HOSTILE), "--jobs", "1",  # one at a time: failing runs after the timeout
    )  # fmt: skip
    assert status == 1, err
    found = results(workdir)
    assert found["sleeper"].status == "error"
    assert found["sleeper"].error.type == "Timeout"
    assert "--lab-timeout 3 s" in found["sleeper"].error.message
    assert found["failing"].status == "failed"  # the next lab ran
    assert "waiting ..." in err  # the worker's progress reached the parent


def test_lab_timeout_needs_a_worker(cli, workdir):
    status, out, err = cli("run", "counter", "--isolation", "none", "--lab-timeout", "5")
    assert status == 2
    assert "--lab-timeout needs --isolation process" in err
    assert not (workdir / "reports").exists()


@pytest.mark.slow
def test_global_state_does_not_leak_into_the_next_lab(cli, workdir, hostile, monkeypatch):
    monkeypatch.setenv("LABRUNNER_TEST_CWD", str(workdir))
    status, out, err = cli(
        "run", "state_changer", "state_reader", "--profile", "smoke", "--plugins-dir", str(HOSTILE),
        "--jobs", "1",  # one at a time: the reader runs after the changer has finished
    )  # fmt: skip
    assert [r.status for r in results(workdir).values()] == ["passed", "passed"], err
    reader = results(workdir)["state_reader"]
    assert [(c.name, c.passed) for c in reader.checks] == [
        ("default dtype", True),
        ("cwd", True),
        ("SIGTERM handler", True),
        ("environment", True),
        ("module global", True),
    ]
    assert reader.metrics["torch_threads"] != 7
    assert os.getcwd() == str(workdir)


@pytest.mark.slow
def test_in_process_the_same_labs_do_leak(tmp_path):
    """The test above can fail: without workers, the reader sees the changes."""
    env = {
        "LABRUNNER_CACHE_DIR": str(tmp_path / "cache"),
        "LABRUNNER_PLUGINS": "hostile_labs",
        "LABRUNNER_TEST_CWD": str(tmp_path),
    }
    args = ["run", "state_changer", "state_reader", "--isolation", "none", "--plugins-dir", str(HOSTILE)]
    proc = run_cli(*args, env=env, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    # the changer's chdir even moved where the reader's folder went
    (path,) = tmp_path.rglob("state_reader/result.json")
    reader = LabResult.load(path)
    assert [c.name for c in reader.checks if not c.passed] == [
        "default dtype",
        "cwd",
        "SIGTERM handler",
        "environment",
        "module global",
    ]


PROGRAM = """
import sys
from labrunner.cli import main
status = main({argv!r})
print("STATUS", status, "TORCH", "torch" in sys.modules, file=sys.stderr)
"""


@pytest.mark.slow
def test_the_parent_never_imports_torch(tmp_path):
    env = {"LABRUNNER_CACHE_DIR": str(tmp_path / "cache"), "LABRUNNER_PLUGINS": "core_labs"}
    # --device cpu: on a machine with a GPU driver, resolving `auto` asks torch
    argv = ["run", "counter", "--profile", "smoke", "--device", "cpu", "--plugins-dir", str(TEST_PLUGINS)]
    first = run_subprocess("-c", PROGRAM.format(argv=argv), env=env, cwd=tmp_path)
    assert "STATUS 0 TORCH False" in first.stderr, first.stderr  # the worker imported it
    second = run_subprocess("-c", PROGRAM.format(argv=argv), env=env, cwd=tmp_path)
    assert "reused cached result" in second.stderr
    assert "STATUS 0 TORCH False" in second.stderr, second.stderr


def test_the_job_is_a_json_record_and_running_it_a_plain_function(workdir, tmp_path, monkeypatch):
    from labrunner.execution.labjob import LabJob, LabJobError
    from labrunner.execution.labrun import run_lab_job
    from labrunner.execution.runstate import lab_job
    from labrunner.records.cache import ResultCache
    from labrunner.settings.config import RunConfig
    from labrunner.settings.options import RunOptions
    from labrunner.settings.plugins import load_plugins
    from labrunner.settings.resolve import resolve_settings

    plugins = load_plugins([TEST_PLUGINS])
    options = RunOptions(labs=("failing",), profile="smoke", plugins_dir=(str(TEST_PLUGINS),))
    settings = resolve_settings(plugins, options, RunConfig())
    (lab,) = settings.labs
    job = lab_job(lab, settings, plugins, ResultCache(tmp_path / "cache"), tmp_path / "out" / "failing")
    sent = json.loads(json.dumps(job.to_json()))
    assert LabJob.from_json(sent) == job
    reply = run_lab_job(sent)
    assert reply["status"] == "failed"
    result = LabResult.load(Path(reply["result"]))
    assert result.cache_key == job.cache_key and [c.passed for c in result.checks] == [False, True]
    with pytest.raises(LabJobError, match="invalid lab job record: plugin: missing"):
        run_lab_job({key: value for key, value in sent.items() if key != "plugin"})
    with pytest.raises(LookupError, match="lab 'nope' not found in plugin 'core_labs'"):
        run_lab_job({**sent, "lab": "nope"})
    assert sys.modules.get("labrunner_plugins_dir.core_labs") is not None
