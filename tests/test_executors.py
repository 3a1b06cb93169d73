"""Executors: the registry and its hook, the local executor's choices (jobs, threads,
GPUs), and labs run in parallel: the same results as in sequence, a failing job recorded as
its lab's error, Ctrl-C cancelling the running jobs."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TEST_PLUGINS, labrunner_argv, subprocess_env

from labrunner.base.errors import UsageError
from labrunner.execution.executors import (
    DevicePool,
    fair_threads,
    local_slots,
    plan_cpu,
    registered_executors,
)
from labrunner.records.results import LabResult
from labrunner.settings.executor_options import check_executor, parse_executor_options, parse_jobs
from labrunner.settings.plugins import load_plugins

HOSTILE = Path(__file__).parent / "plugins_hostile"

EXECUTOR_PLUGIN = '''
import labrunner
from labrunner.execution.executors import Executor
from labrunner.execution.labrun import run_lab_job
from labrunner.execution.worker import WorkerOutcome


class InlineExecutor(Executor):
    """Runs each lab job in this process: enough to show the hook reaches the runner."""

    name = "inline"

    def __init__(self, context):
        self.slots = 1
        self.options = context.options
        self.seen = []

    def run(self, job, reporter, bar=None):
        self.seen.append(job.lab)
        return WorkerOutcome(reply=run_lab_job(job.to_json()))


@labrunner.hookimpl
def register_executors(register):
    register("inline", InlineExecutor, "in this process")
    register("local", InlineExecutor, "cannot replace the built-in one")
'''


def test_jobs_and_options_parse_or_name_the_problem():
    assert parse_jobs("3") == 3 and parse_jobs("auto") is None and parse_jobs(None) is None
    for bad in ("0", "two", "-1"):
        with pytest.raises(UsageError, match="--jobs"):
            parse_jobs(bad)
    options = parse_executor_options(
        ["partition=gpu", "setup=module load cuda", "setup=source env", "time=1:00:00"]
    )
    assert options == {"partition": "gpu", "setup": ["module load cuda", "source env"], "time": "1:00:00"}
    with pytest.raises(UsageError, match="expected KEY=VALUE"):
        parse_executor_options(["partition"])


def test_local_jobs_fair_threads_and_one_lab_per_gpu():
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert 1 <= local_slots(None, 10, "cpu", 0) <= min(cores, 10)  # auto: the free cores
    assert local_slots(None, 10, "cuda:0", 1) == 1  # auto: one lab per GPU
    assert local_slots(4, 2, "cpu", 0) == 2  # never more slots than jobs
    assert fair_threads(None, 1) is None and fair_threads(3, 2) == 3
    assert fair_threads(None, 2) == max(1, cores // 2)
    pool = DevicePool("cuda:0", 2)
    first, second = pool.take(), pool.take()
    assert {first, second} == {"cuda:0", "cuda:1"}
    pool.give(first)
    assert pool.take() == first
    assert DevicePool("cpu", 0).take() == "cpu" and DevicePool("cuda:1", 2, "cuda:1").take() == "cuda:1"
    one_gpu = DevicePool("cuda:0", 1)
    assert one_gpu.take() == "cuda:0"
    with pytest.raises(queue.Empty):  # the second lab waits for the GPU
        one_gpu._free.get(timeout=0.01)


def test_executors_are_registered_through_the_hook(tmp_path, monkeypatch):
    (tmp_path / "inline_executor.py").write_text(EXECUTOR_PLUGIN)
    monkeypatch.setenv("LABRUNNER_PLUGINS", "core_labs,inline_executor")
    warnings: list[str] = []
    plugins = load_plugins([TEST_PLUGINS, tmp_path])
    plugins.warn = warnings.append
    found = registered_executors(plugins)
    assert list(found) == ["local", "slurm", "inline"]
    assert found["inline"].plugin == "inline_executor" and found["local"].plugin == "labrunner"
    assert warnings == ["plugin 'inline_executor': executor 'local' is already registered by 'labrunner'"]
    with pytest.raises(UsageError, match="--executor inlin: unknown executor .did you mean 'inline'"):
        check_executor("inlin", found)


def test_labrunner_plugins_lists_the_executors(cli, tmp_path, monkeypatch):
    (tmp_path / "inline_executor.py").write_text(EXECUTOR_PLUGIN)
    monkeypatch.setenv("LABRUNNER_PLUGINS", "core_labs,inline_executor")
    status, out, _err = cli("plugins", "--plugins-dir", str(tmp_path))
    assert status == 0
    assert "executors: local (labrunner), slurm (labrunner), inline (inline_executor)" in out
    status, out, _err = cli("plugins", "--json", "--plugins-dir", str(tmp_path))
    assert [e["name"] for e in json.loads(out)["executors"]] == ["local", "slurm", "inline"]


def test_bad_executor_settings_are_refused_before_anything_is_written(cli, workdir):
    for args, text in [
        (["--executor", "nowhere"], "--executor nowhere: unknown executor"),
        (["--jobs", "0"], "--jobs must be at least 1"),
        (["--executor-option", "partition=gpu"], "the local executor takes no options"),
        (["--detach"], "--detach needs an executor whose jobs outlive this process"),
        (["--jobs", "2", "--isolation", "none"], "need --isolation process"),
        (["--seeds", "0-2", "--seed", "1"], "--seed and --seeds"),
    ]:
        status, _out, err = cli("run", "counter", *args)
        assert status == 2, args
        assert text in err and len(err.strip().splitlines()) == 1, err
    assert not (workdir / "reports").exists()


def _results(run_dir: Path) -> dict[str, LabResult]:
    run = json.loads((run_dir / "run.json").read_text())
    return {
        e["lab"]: LabResult.load(run_dir / e["lab"] / "result.json")
        for e in run["labs"]
        if e["status"] != "not run"
    }


def _measured(result: LabResult) -> list:
    return [
        (ex.title, ex.metrics, [(c.name, c.passed, c.actual) for c in ex.checks]) for ex in result.exercises
    ]


def test_a_local_cpu_run_plans_its_labs_at_a_time_unless_told(workdir):
    from labrunner.api import prepare

    plugins = load_plugins([TEST_PLUGINS])
    _, settings = prepare("counter", device="cpu", plugins=plugins, writes=False)
    assert settings.jobs is None  # auto: labs at a time and threads from the free cores
    _, settings = prepare("counter", device="cpu", jobs=1, plugins=plugins, writes=False)
    assert settings.jobs == 1
    _, settings = prepare("counter", device="cpu", isolation="none", plugins=plugins, writes=False)
    assert settings.jobs == 1  # one lab in this process


def test_labs_in_parallel_start_the_longest_first():
    from labrunner.execution.runner import longest_first

    class Lab:
        def __init__(self, name: str, expected_s: dict[str, float] | None = None) -> None:
            self.name = name
            if expected_s is not None:
                self.expected_s = expected_s

    short, undeclared, long, other = (
        Lab("short", {"quick": 3}),
        Lab("x"),
        Lab("long", {"quick": 40}),
        Lab("y", {}),
    )
    tasks = [(short, 0), (undeclared, 0), (long, 0), (long, 1), (other, 0)]
    order = [(lab.name, seed) for lab, seed in longest_first(tasks, "quick")]
    assert order == [("long", 0), ("long", 1), ("short", 0), ("x", 0), ("y", 0)]
    # a profile the labs declare nothing for keeps the run's order
    assert longest_first(tasks, "smoke") == tasks


@pytest.mark.slow
def test_two_labs_in_parallel_give_the_same_results_as_in_sequence(cli, workdir):
    labs = ("counter", "failing")
    status, _out, err = cli("run", *labs, "--profile", "smoke", "--threads", "1", "--out", "seq")
    assert status == 1, err  # "failing" fails a check
    status, _out, err = cli("run", *labs, "--profile", "smoke", "--jobs", "2", "--out", "par", "--force")
    assert status == 1, err
    assert "2 lab jobs, 2 at a time (local executor)" in err
    sequential = _results((workdir / "seq" / "latest").resolve())
    parallel = _results((workdir / "par" / "latest").resolve())
    assert set(parallel) == set(labs)
    for lab in labs:
        assert _measured(parallel[lab]) == _measured(sequential[lab]), lab
        assert not parallel[lab].cached
    run = json.loads((workdir / "par" / "latest" / "run.json").read_text())
    assert run["status"] == "finished" and run["settings"]["jobs"] == 2
    assert [entry["lab"] for entry in run["labs"][: len(labs)]] == list(labs)  # in order, however they ended
    # the cache still works: a cached lab is not run again
    status, _out, err = cli("run", *labs, "--profile", "smoke", "--jobs", "2", "--out", "again")
    assert status == 1 and err.count("reused cached result") == 2, err


@pytest.mark.slow
def test_a_failing_job_is_recorded_as_its_labs_error(cli, workdir, monkeypatch):
    monkeypatch.setenv("LABRUNNER_PLUGINS", "core_labs,hostile_labs")
    status, _out, err = cli(
        "run", "killed", "counter", "--plugins-dir", str(HOSTILE), "--jobs", "2", "--profile", "smoke"
    )
    assert status == 1, err
    found = _results((workdir / "reports" / "latest").resolve())
    assert found["killed"].status == "error" and found["killed"].error.type == "WorkerKilled"
    assert found["counter"].status == "passed"


@pytest.mark.slow
def test_a_plugin_executor_runs_the_labs(cli, workdir, tmp_path, monkeypatch):
    (tmp_path / "inline_executor.py").write_text(EXECUTOR_PLUGIN)
    monkeypatch.setenv("LABRUNNER_PLUGINS", "core_labs,inline_executor")
    status, _out, err = cli(
        "run", "counter", "--plugins-dir", str(tmp_path), "--executor", "inline", "--profile", "smoke"
    )
    assert status == 0, err
    result = _results((workdir / "reports" / "latest").resolve())["counter"]
    assert result.status == "passed" and result.exercises[0].metrics["total"] == 6.0


@pytest.mark.slow
def test_ctrl_c_cancels_the_running_jobs_and_keeps_the_run_folder(workdir):
    env = subprocess_env()
    command = labrunner_argv("run", "counter", "--plugins-dir", str(TEST_PLUGINS))
    command += ["--seeds", "0-1", "--jobs", "2", "--set", "counter.sleep_s=0.5", "--set", "counter.steps=200"]
    child = subprocess.Popen(
        command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        # the run folder itself, not through the ``latest`` link (a glob would count each seed twice)
        started = lambda: len(list(workdir.glob("reports/2*/counter/seeds/*/"))) >= 2  # noqa: E731
        while not started() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert started(), "the two jobs did not start"
        time.sleep(3)  # both workers are inside the lab now (torch imported, counting)
        child.send_signal(signal.SIGINT)
        _out, err = child.communicate(timeout=90)
    finally:
        child.kill()
    assert child.returncode == 130, err
    run_dir = (workdir / "reports" / "latest").resolve()
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "interrupted"
    for seed in (0, 1):
        result = LabResult.load(run_dir / "counter" / "seeds" / str(seed) / "result.json")
        assert result.status == "interrupted", seed
    assert [e["status"] for e in run["labs"] if e["lab"] == "counter"] == ["interrupted"]


@pytest.mark.parametrize(
    ("parallel", "jobs", "threads", "cores", "load", "slots", "each"),
    [
        (None, 10, None, 8, 0.2, 8, 1),  # auto on an idle machine: a lab per core
        (None, 10, None, 8, 5.7, 3, 1),  # auto: the cores the load leaves free
        (None, 2, None, 8, 0.0, 2, 4),  # fewer jobs than cores: the threads share them
        (1, 4, None, 2, 0.1, 1, 2),  # one lab at a time on an idle 2-core machine
        (1, 4, None, 2, 5.0, 1, 1),  # ... and on a busy one: one thread, no oversubscription
        (4, 4, None, 2, 0.0, 2, 1),  # --jobs 4 on 2 cores: 2 at a time
        (2, 4, 2, 2, 0.0, 1, 2),  # --jobs 2 --threads 2 on 2 cores: one at a time
        (None, 4, 3, 8, 0.0, 2, 3),  # --threads 3, auto: as many as fit
        (None, 4, None, 4, None, 4, 1),  # no load average (Windows): the cores
    ],
)
def test_threads_times_labs_never_exceed_the_cores(parallel, jobs, threads, cores, load, slots, each):
    plan = plan_cpu(parallel, jobs, threads, cores=cores, load=load)
    assert (plan.slots, plan.threads) == (slots, each)
    assert plan.slots * plan.threads <= cores


def test_a_busy_machine_is_named_with_the_slowdown_to_expect():
    busy = plan_cpu(1, 4, None, cores=2, load=5.0)
    note = busy.busy_note()
    assert note is not None and "other work's load 5.0 on the 2 cores" in note
    assert "about 3.0x as long as on an idle machine" in note  # (5 + 1 thread) / 2 cores
    assert plan_cpu(1, 4, None, cores=2, load=0.3).busy_note() is None
    assert plan_cpu(1, 4, None, cores=2, load=None).busy_note() is None


def test_the_load_a_finished_run_left_is_not_counted_as_other_work(monkeypatch):
    from labrunner.execution import executors

    monkeypatch.setattr(executors, "load_average", lambda: 1.6)  # a run that just ended
    monkeypatch.setattr(executors, "busy_cores", lambda window=0.2: 0.1)  # idle now
    assert executors.other_load() == pytest.approx(0.1)
    assert plan_cpu(None, 4, None, cores=2).slots == 2
    monkeypatch.setattr(executors, "busy_cores", lambda window=0.2: 1.9)  # busy, and for a while
    assert executors.other_load() == pytest.approx(1.6)
    assert plan_cpu(None, 4, None, cores=2).slots == 1
    monkeypatch.setattr(executors, "busy_cores", lambda window=0.2: None)  # no /proc/stat
    assert executors.other_load() == pytest.approx(1.6)


def test_busy_cores_sees_a_process_spinning_on_a_core():
    from labrunner.execution.executors import busy_cores

    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert busy_cores(0.3) >= 0.7
    finally:
        spinner.kill()
        spinner.wait()
