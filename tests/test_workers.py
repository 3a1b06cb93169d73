"""How workers start and end: never by running the user's script again, never kept alive
by what a lab left behind, forked from a zygote for CPU runs (each lab still in its own
process and process group), and SIGTERM ending a run as Ctrl-C does."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TEST_PLUGINS, lab_saved, labrunner_argv, subprocess_env

from labrunner.records.results import LabResult

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = Path(__file__).parent / "plugins_hostile"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    cache = str(tmp_path / "cache")
    return subprocess_env(
        {"LABRUNNER_CACHE_DIR": cache, "LABRUNNER_PLUGINS": "core_labs,hostile_labs", **extra}
    )


def _gone(pid: int) -> bool:
    """Whether ``pid`` has ended (a zombie waiting for a reaper counts as ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


@pytest.mark.slow
def test_the_readme_snippet_runs_as_a_script(tmp_path):
    """`python snippet.py` with the README's snippet: the workers must not run the script
    again (the spawned worker used to re-import __main__ and wait on the parent's lock)."""
    block = re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    call = 'labrunner.run("all", profile="quick")'
    assert call in block, "the README's snippet changed; update this test"
    script = block.replace(
        call, f'labrunner.run("counter", profile="smoke", plugins_dir=[{str(TEST_PLUGINS)!r}])'
    )
    script += "\nprint('RESULTS', [r.status for r in run.results], run.interrupted)\n"
    (tmp_path / "snippet.py").write_text(script)
    proc = subprocess.run(
        [sys.executable, "snippet.py"],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    assert "RESULTS ['passed'] False" in proc.stdout, proc.stdout + proc.stderr
    runs = [p for p in (tmp_path / "reports").iterdir() if not p.is_symlink()]
    assert len(runs) == 1, runs  # one run, not one per re-imported script
    info = json.loads((tmp_path / "reports" / "latest" / "run.json").read_text())
    assert info["status"] == "finished"


@pytest.mark.slow
@pytest.mark.parametrize("start", ["zygote", "spawn"])
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_lab_that_forks_a_child_does_not_hold_the_run(tmp_path, start, jobs):
    """The forked child would sleep 10 minutes holding the worker's descriptors (stdout,
    stderr, the socket); it is ended with the worker's process group when the lab ends."""
    command = labrunner_argv("run", "forker", "failing", "--jobs", jobs)
    command += ["--plugins-dir", str(TEST_PLUGINS), "--plugins-dir", str(HOSTILE)]
    proc = subprocess.run(
        command,
        cwd=tmp_path,
        env=_env(tmp_path, LABRUNNER_WORKER_START=start),
        capture_output=True,
        text=True,
        timeout=150,  # the child sleeps 600 s
    )
    assert proc.returncode == 1, proc.stderr  # `failing` fails; forker passed
    run_dir = (tmp_path / "reports" / "latest").resolve()
    assert LabResult.load(run_dir / "forker" / "result.json").status == "passed"
    child = int((run_dir / "forker" / "child.pid").read_text())
    deadline = time.monotonic() + 10
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(child), f"the lab's child {child} still runs"


@pytest.mark.slow
def test_zygote_workers_are_fresh_processes_in_their_own_groups(tmp_path, monkeypatch):
    """Workers forked from one zygote: each its own process and process group, none of them
    this process's child, and each runs its job; the zygote never initialised CUDA."""
    from labrunner.base.progress import Reporter
    from labrunner.execution.worker import LocalWorker, WorkerStarter

    monkeypatch.setenv("LABRUNNER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LABRUNNER_PLUGINS", "core_labs")
    spec = _failing_spec(tmp_path)
    starter = WorkerStarter("zygote")
    try:
        first, second = starter.start(), starter.start()
        zygote = starter._zygote.process.pid
        for worker in (first, second):
            assert worker.method == "zygote"
            assert os.getpgid(worker.process.pid) == worker.process.pid
            parent = Path(f"/proc/{worker.process.pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
            assert int(parent) == zygote != os.getpid()
        assert first.process.pid != second.process.pid
        for worker in (first, second):
            outcome = LocalWorker(Reporter()).run(spec, worker)
            assert outcome.reply and outcome.reply["status"] == "failed", outcome
        assert _gone(first.process.pid) and _gone(second.process.pid)
    finally:
        starter.close()
    assert starter_ended(zygote)


def starter_ended(pid: int) -> bool:
    deadline = time.monotonic() + 10
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _gone(pid)


def _failing_spec(tmp_path: Path) -> object:
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
    return lab_job(lab, settings, plugins, ResultCache(tmp_path / "cache"), tmp_path / "out" / "failing")


@pytest.mark.slow
@pytest.mark.parametrize("expected", [1, 2])
def test_the_next_jobs_worker_starts_while_a_lab_runs(tmp_path, monkeypatch, expected):
    """A sequential run is the local executor with one slot: while a lab runs, the worker of
    the next job starts (only the first lab waits for its worker), and only when a job is
    still expected; the next job takes that worker."""
    import dataclasses

    from labrunner.base.progress import Reporter
    from labrunner.execution.executors import LocalExecutor
    from labrunner.execution.worker import WorkerStarter, start_method

    monkeypatch.setenv("LABRUNNER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LABRUNNER_PLUGINS", "core_labs")
    starts: list[int] = []

    class CountingStarter(WorkerStarter):
        def start(self):
            worker = super().start()
            starts.append(worker.process.pid)
            return worker

    first = _failing_spec(tmp_path)
    second = dataclasses.replace(first, out_dir=str(tmp_path / "out" / "second"))
    executor = LocalExecutor(1, starter=CountingStarter(start_method("cpu")), expected=expected)
    try:
        assert executor.run(first, Reporter()).reply["status"] == "failed"
        assert len(starts) == expected  # the spare started during the first lab, if wanted
        if expected == 2:
            spare = starts[1]
            assert executor.run(second, Reporter()).reply["status"] == "failed"
            assert len(starts) == 2  # the second job took the spare: no third start
            assert _gone(spare)
    finally:
        executor.close()


def test_the_start_method_follows_the_device(monkeypatch):
    from labrunner.base.errors import UsageError
    from labrunner.execution.worker import can_fork, start_method

    monkeypatch.delenv("LABRUNNER_WORKER_START", raising=False)
    assert start_method("cpu") == ("zygote" if can_fork() else "spawn")
    assert start_method("cuda:0") == "spawn"  # the CUDA driver starts in a fresh process
    assert start_method("mps") == "spawn"
    monkeypatch.setenv("LABRUNNER_WORKER_START", "spawn")
    assert start_method("cpu") == "spawn"
    monkeypatch.setenv("LABRUNNER_WORKER_START", "fork")
    with pytest.raises(UsageError, match="LABRUNNER_WORKER_START='fork': expected spawn or zygote"):
        start_method("cpu")


@pytest.mark.slow
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_sigterm_interrupts_the_run_and_it_resumes(tmp_path, jobs):
    """SIGTERM (`timeout`, `kill`) stops a local run as Ctrl-C does: exit 143, run.json
    interrupted, the lab saved as interrupted; the same command again resumes."""
    command = labrunner_argv("run", "counter", "sleeper", "--jobs", jobs, "-v")
    command += ["--plugins-dir", str(TEST_PLUGINS), "--plugins-dir", str(HOSTILE)]
    slow = ["--set", "sleeper.sleep_s=0.1"]
    child = subprocess.Popen(
        command + slow,
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until the sleeper's worker reports progress
            runs = list(tmp_path.glob("reports/2*/sleeper"))
            if runs and lab_saved(tmp_path, "counter"):
                break
            time.sleep(0.2)
        time.sleep(1)
        child.send_signal(signal.SIGTERM)
        _out, err = child.communicate(timeout=90)
    finally:
        child.kill()
    assert child.returncode == 143, err
    run_dir = sorted(p for p in (tmp_path / "reports").iterdir() if not p.is_symlink())[-1]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "interrupted"
    assert LabResult.load(run_dir / "sleeper" / "result.json").status == "interrupted"
    again = subprocess.run(
        command + ["--set", "sleeper.sleep_s=0.001"],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert again.returncode == 0, again.stderr
    assert "counter: reused cached result" in again.stderr
