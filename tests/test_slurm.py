"""The SLURM executor: its options, and lab jobs on a real one-node cluster.

The cluster tests need a running SLURM cluster (``scripts/slurm-cluster.sh start``, which
CI runs); without one they are skipped with the reason.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from labrunner.base.errors import UsageError
from labrunner.settings.executor_options import parse_time, slurm_parameters


def cluster_problem() -> str | None:
    """Why no SLURM cluster can take jobs here, or None when one can."""
    if shutil.which("sbatch") is None:
        return "SLURM is not installed (scripts/slurm-cluster.sh install)"
    try:
        import submitit  # noqa: F401
    except ImportError:
        return "submitit is not installed"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"scontrol ping failed: {exc}"
    if ping.returncode != 0 or "UP" not in ping.stdout:
        return "no SLURM controller answers (scripts/slurm-cluster.sh start)"
    return None


needs_cluster = pytest.mark.skipif(cluster_problem() is not None, reason=str(cluster_problem()))


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("90", 90), ("5:30", 6), ("1:30:00", 90), ("2-00:00:00", 2880), ("1-2", 1560), ("0-0:1", 1)],
)
def test_time_limits_in_slurm_forms(text, minutes):
    assert parse_time(text) == minutes


@pytest.mark.parametrize("text", ["", "1h", "-5", "1:2:3:4", "0", "0:30"])
def test_bad_time_limits_are_one_line_errors(text):
    with pytest.raises(UsageError, match="time="):
        parse_time(text)


def test_options_map_to_sbatch_parameters():
    params = slurm_parameters(
        {
            "partition": "gpu",
            "time": "2:00:00",
            "gpus": "1",
            "cpus": "8",
            "mem": "32G",
            "account": "course",
            "setup": "module load cuda",
            "sbatch.mail-type": "END",
        }
    )
    assert params == {
        "partition": "gpu",
        "time": 120,
        "gpus_per_node": 1,
        "cpus_per_task": 8,
        "mem": "32G",
        "account": "course",
        "setup": ["module load cuda"],
        "additional_parameters": {"mail-type": "END"},
    }
    assert slurm_parameters({}) == {"time": 60}


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"partiton": "x"}, "unknown SLURM option"),
        ({"cpus": "many"}, "whole number"),
        ({"cpus": "0"}, "range"),
    ],
)
def test_bad_options_name_the_option(options, match):
    with pytest.raises(UsageError, match=match):
        slurm_parameters(options)


@pytest.mark.slow
@needs_cluster
def test_a_lab_job_runs_on_the_cluster_and_writes_its_result(tmp_path: Path):
    from labrunner.execution.labjob import LabJob
    from labrunner.execution.slurm import SlurmExecutor
    from labrunner.records.results import LabResult
    from labrunner.settings.labconfig import config_as_dict, resolve_lab_config
    from labrunner.settings.plugins import load_plugins

    plugins = load_plugins([])
    lab = plugins.labs["attention"]
    out = tmp_path / "run" / "attention"
    spec = LabJob(
        lab="attention",
        plugin=plugins.lab_plugin["attention"],
        config=config_as_dict(resolve_lab_config(lab, "smoke", [])),
        out_dir=str(out),
        cache_dir=str(tmp_path / "cache"),
        state_dir=str(tmp_path / "state"),
        cache_key="0123456789abcdef",
        profile="smoke",
        threads=1,
        run="run",
    )
    executor = SlurmExecutor(tmp_path / "run" / ".slurm", {"time": "10", "cpus": "1"})
    states: list[str] = []
    job = executor.submit(spec)
    assert job.job_id.isdigit()
    (done,) = list(executor.follow([job], on_state=lambda j: states.append(j.state)))
    assert done.outcome is not None and "reply" in done.outcome, done.outcome
    assert done.outcome["reply"]["status"] == "passed"
    result = LabResult.load(out / "result.json")
    assert result.status == "passed" and result.exercises
    assert states and states[-1] == "COMPLETED"


def _run_json(run_dir: Path) -> dict:
    import json

    return json.loads((run_dir / "run.json").read_text())


@pytest.mark.slow
@needs_cluster
def test_labrunner_runs_two_labs_as_slurm_jobs(cli, workdir, monkeypatch):
    monkeypatch.delenv("LABRUNNER_PLUGINS")  # the built-in labs
    args = ["attention", "cnn_receptive", "--profile", "smoke", "--threads", "1", "--executor", "slurm"]
    status, out, err = cli(
        "run", *args, "--executor-option", "cpus=1", "--executor-option", "time=10", plugins=False
    )
    assert status == 0, err
    assert "SLURM job" in err and "submitted" in err
    assert "2 lab jobs, 2 at a time (slurm executor)" in err  # SLURM decides when each runs
    run_dir = (workdir / "reports" / "latest").resolve()
    run = _run_json(run_dir)
    assert run["status"] == "finished" and run["settings"]["executor"] == "slurm"
    assert {e["lab"]: e["status"] for e in run["labs"]}["cnn_receptive"] == "passed"
    assert {e["lab"]: e["status"] for e in run["labs"]}["attention"] == "passed"
    assert list((run_dir / ".slurm").iterdir()), "submitit keeps its job files in the run folder"
    assert "cnn_receptive" in out and (run_dir / "report.html").is_file()


@pytest.mark.slow
@needs_cluster
def test_a_detached_two_seed_sweep_is_collected_by_status(cli, workdir):
    import time

    status, out, err = cli(
        "run", "counter", "--profile", "smoke", "--seeds", "0,1", "--executor", "slurm", "--detach"
    )
    assert status == 0, err
    assert "submitted 2 jobs" in out
    run_dir = (workdir / "reports" / "latest").resolve()
    assert _run_json(run_dir)["status"] == "submitted"
    status, _out, err = cli("check", str(run_dir))
    assert status == 1 and "submitted, not finished" in err  # incomplete until every job ended
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        status, out, err = cli("status", str(run_dir))
        assert status == 0, err
        if out.startswith(f"{run_dir}: finished"):
            break
        time.sleep(2)
    assert out.count("COMPLETED") == 2, out
    run = _run_json(run_dir)
    assert run["status"] == "finished" and [e["status"] for e in run["labs"] if e["lab"] == "counter"] == [
        "passed"
    ]
    assert (run_dir / "counter" / "sweep.json").is_file()
    status, _out, err = cli("report", str(run_dir))
    assert status == 0, err
    assert "### Over 2 seeds (0, 1)" in (run_dir / "report.md").read_text()


@pytest.mark.slow
@needs_cluster
def test_a_job_slurm_refuses_is_that_labs_error(cli, workdir):
    status, _out, err = cli(
        "run",
        "counter",
        "--profile",
        "smoke",
        "--executor",
        "slurm",
        "--executor-option",
        "partition=nowhere",
    )
    assert status == 1, err
    run_dir = (workdir / "reports" / "latest").resolve()
    from labrunner.records.results import LabResult

    result = LabResult.load(run_dir / "counter" / "result.json")
    assert result.status == "error" and result.error.type == "JobRefused"
    assert "SLURM refused the job of counter" in result.error.message


def _without_accounting(folder: Path) -> dict[str, str]:
    """An environment whose ``sacct`` fails as it does on a cluster without accounting
    (AccountingStorageType=accounting_storage/none): the rest of SLURM works as usual."""
    import os

    folder.mkdir(parents=True, exist_ok=True)
    sacct = folder / "sacct"
    sacct.write_text("#!/bin/sh\necho 'sacct: error: Slurm accounting storage is disabled' >&2\nexit 1\n")
    sacct.chmod(0o755)
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.slow
@needs_cluster
@pytest.mark.parametrize("accounting", [True, False], ids=["sacct", "no-sacct"])
@pytest.mark.parametrize(("signame", "exit_status"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_cancels_the_submitted_jobs_and_ends_the_run(
    workdir, tmp_path, accounting, signame, exit_status
):
    """Ctrl-C or SIGTERM (a closed terminal, `timeout`) while SLURM jobs run: the jobs are
    cancelled, run.json says interrupted and labrunner exits 130 or 143, with or without
    SLURM's accounting."""
    import json
    import os
    import signal
    import time

    from conftest import TEST_PLUGINS, labrunner_argv

    env = dict(os.environ) if accounting else _without_accounting(tmp_path / "bin")
    command = labrunner_argv("run", "counter", "--plugins-dir", str(TEST_PLUGINS))
    command += ["--executor", "slurm", "--set", "counter.sleep_s=1", "--set", "counter.steps=300"]
    child = subprocess.Popen(
        command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        jobs: list[dict] = []
        while time.monotonic() < deadline:
            runs = sorted(workdir.glob("reports/2*/.slurm/*/"))
            if runs:
                job_id = runs[0].name
                state = subprocess.run(
                    ["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True
                )
                if state.stdout.strip() == "RUNNING":
                    jobs.append({"job_id": job_id})
                    break
            time.sleep(0.5)
        assert jobs, "the job did not start running"
        child.send_signal(getattr(signal, signame))
        _out, err = child.communicate(timeout=120)
    finally:
        child.kill()
    assert child.returncode == exit_status, err
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # scancel is asynchronous
        left = subprocess.run(
            ["squeue", "-h", "-j", jobs[0]["job_id"], "-o", "%T"], capture_output=True, text=True
        )
        if left.stdout.strip() in ("", "CANCELLED"):
            break
        time.sleep(0.5)
    assert left.stdout.strip() in ("", "CANCELLED"), left.stdout
    run = json.loads(((workdir / "reports" / "latest").resolve() / "run.json").read_text())
    assert run["status"] == "interrupted"


def test_status_says_why_a_state_is_unknown(tmp_path, monkeypatch):
    """Neither sacct nor squeue can be asked: the state is UNKNOWN, and status says why."""
    pytest.importorskip("submitit")
    from labrunner.execution import slurm
    from labrunner.execution.detached import _job_state
    from labrunner.records.runfolder import JobRecord

    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    slurm.accounting_problem.cache_clear()
    try:
        state = _job_state(tmp_path, JobRecord("counter", 0, "counter", "0" * 16, "slurm", "4242"))
    finally:
        slurm.accounting_problem.cache_clear()
    assert state == "UNKNOWN (not in the queue any more, and sacct is not installed)"
    assert _job_state(tmp_path, JobRecord("x", 0, "x", "0" * 16, "ray", "1")).startswith(
        "UNKNOWN (a job of the 'ray' executor"
    )


@pytest.mark.slow
@needs_cluster
def test_status_without_accounting_says_so(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    from labrunner.execution import slurm
    from labrunner.execution.detached import _job_state
    from labrunner.records.runfolder import JobRecord

    monkeypatch.setenv("PATH", _without_accounting(tmp_path / "bin")["PATH"])
    slurm.accounting_problem.cache_clear()
    try:
        state = _job_state(tmp_path, JobRecord("counter", 0, "counter", "0" * 16, "slurm", "999999"))
    finally:
        slurm.accounting_problem.cache_clear()
    assert state == (
        "UNKNOWN (not in the queue any more, and sacct fails: "
        "sacct: error: Slurm accounting storage is disabled)"
    )


@pytest.mark.slow
@needs_cluster
@pytest.mark.parametrize(
    ("stop", "exit_status"),
    [
        (KeyboardInterrupt, 130),  # Ctrl-C while the second job is being submitted
        (UsageError("SLURM refused the job of counter: no such partition"), 2),
    ],
)
def test_a_detached_submission_that_stops_half_way_cancels_what_it_submitted(
    cli, workdir, monkeypatch, stop, exit_status
):
    import json
    import time

    from labrunner.execution import slurm

    real_submit = slurm.SlurmExecutor.submit
    calls = []

    def submit_then_stop(self, spec):
        calls.append(spec.seed)
        if len(calls) == 2:
            raise stop
        return real_submit(self, spec)

    monkeypatch.setattr(slurm.SlurmExecutor, "submit", submit_then_stop)
    status, _out, err = cli(
        "run", "counter", "--seeds", "0,1", "--executor", "slurm", "--detach",
        "--set", "counter.sleep_s=1", "--set", "counter.steps=300",
    )  # fmt: skip
    assert status == exit_status, err
    assert "cancelled the 1 job(s) already submitted" in err
    run_dir = (workdir / "reports" / "latest").resolve()
    (job,) = json.loads((run_dir / "jobs.json").read_text())["jobs"]
    assert job["seed"] == 0 and job["cancelled"] is True
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # scancel is asynchronous
        left = subprocess.run(
            ["squeue", "-h", "-j", job["job_id"], "-o", "%T"], capture_output=True, text=True
        )
        if left.stdout.strip() in ("", "CANCELLED"):
            break
        time.sleep(0.5)
    assert left.stdout.strip() in ("", "CANCELLED"), left.stdout
    status, out, err = cli("status", str(run_dir))
    assert status == 0, err
    assert "(cancelled: the submission stopped)" in out, out
