"""`labrunner run`: run folders, results, isolation, caching, interruption, bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TEST_PLUGINS, lab_saved, labrunner_argv, subprocess_env

from labrunner.records.results import LabResult

#: The default (each lab in a worker process, slow to start) and the in-process run.
ISOLATIONS = [pytest.param("process", marks=pytest.mark.slow), "none"]
#: Tests about something else run in-process: a worker's start-up would dominate them.
HERE = ("--isolation", "none")


def load(path: Path):
    return json.loads(path.read_text())


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_run_writes_run_folder_and_results(cli, workdir, isolation):
    status, out, err = cli("run", "counter", "--profile", "smoke", "--seed", "7", "--isolation", isolation)
    assert status == 0, err
    latest = workdir / "reports" / "latest"
    assert latest.is_symlink()
    run_dir = latest.resolve()
    run = load(run_dir / "run.json")
    assert run["status"] == "finished"
    env = run["environment"]
    for key in ("labrunner", "python", "torch", "torchvision", "platform", "cpu", "gpu", "git"):
        assert key in env
    assert run["settings"]["seed"] == 7 and run["settings"]["device"] == "cpu"
    assert run["labs"][0]["lab"] == "counter" and run["labs"][0]["status"] == "passed"
    assert run["config"]["counter"]["steps"] == 3
    assert (run_dir / "config.yaml").is_file()
    result = load(run_dir / "counter" / "result.json")
    assert result["status"] == "passed"
    assert result["metrics"]["total"] == 6.0
    assert result["duration_s"] > 0
    ex = result["exercises"][0]
    assert ex["title"] == "1. Count"
    assert ex["answer"] == "$\\frac{n(n+1)}{2} = 6.00$ for $n = 3$."
    assert ex["checks"][0] == {
        "name": "sum formula",
        "passed": True,
        "expected": 6.0,
        "actual": 6.0,
        "tolerance": "±1e-09",
        "points": 2.0,
        "message": "",
        "hidden": False,
    }
    assert [r["kind"] for r in ex["records"]] == ["figure", "table"]
    png = run_dir / "counter" / ex["records"][0]["path"]
    assert png.read_bytes().startswith(b"\x89PNG")
    assert "counter" in out and "passed" in out
    # no temporary files are left behind: the only hidden files are the run's lock and the
    # report's record of the figures it wrote
    hidden = [p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.name.startswith(".")]
    assert sorted(hidden) == [".lock", ".report-files.json"]


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_a_crashing_lab_fails_alone(cli, workdir, isolation):
    status, out, err = cli(
        "run", "crashing", "counter", "failing", "--profile", "smoke", "--isolation", isolation
    )
    assert status == 1
    run_dir = (workdir / "reports" / "latest").resolve()
    crashed = LabResult.load(run_dir / "crashing" / "result.json")
    assert crashed.status == "error"
    assert crashed.error.type == "ZeroDivisionError"
    assert "1 / 0" in crashed.error.traceback
    assert LabResult.load(run_dir / "counter" / "result.json").status == "passed"
    failing = LabResult.load(run_dir / "failing" / "result.json")
    assert failing.status == "failed"
    assert [c.passed for c in failing.checks] == [False, True]
    assert [lab["status"] for lab in load(run_dir / "run.json")["labs"]] == ["error", "passed", "failed"]
    assert "crashing: error: ZeroDivisionError" in err


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_hooks_observe_the_run(cli, isolation):
    import labrunner_plugins_dir.core_labs as core_labs  # loaded by the CLI from --plugins-dir

    core_labs.EVENTS.clear()
    # one lab at a time (on an idle machine --jobs auto would run both at once)
    cli("run", "counter", "failing", "--profile", "smoke", "--isolation", isolation, "--jobs", "1")
    import labrunner_plugins_dir.core_labs as reloaded

    assert reloaded.EVENTS == [
        ("started", "counter"),
        ("finished", "counter:passed"),
        ("started", "failing"),
        ("finished", "failing:failed"),
    ]


def test_cache_reuse_and_force(cli, workdir):
    status, out, err = cli("run", "counter", "--profile", "smoke", *HERE)
    assert status == 0
    first = load((workdir / "reports/latest/counter/result.json").resolve())
    assert first["cached"] is False
    status, out, err = cli("run", "counter", "--profile", "smoke", *HERE)
    assert "reused cached result" in err
    second = load((workdir / "reports/latest/counter/result.json").resolve())
    assert second["cached"] is True
    assert second["metrics"] == first["metrics"]
    assert (workdir / "reports/latest/counter/figures/steps.png").is_file()
    # a different config, seed or --force runs again
    cli("run", "counter", "--profile", "smoke", "--seed", "1", *HERE)
    assert load((workdir / "reports/latest/counter/result.json").resolve())["cached"] is False
    cli("run", "counter", "--profile", "smoke", "--force", *HERE)
    assert load((workdir / "reports/latest/counter/result.json").resolve())["cached"] is False
    cli("run", "counter", "--profile", "smoke", "--set", "counter.scale=2", *HERE)
    assert load((workdir / "reports/latest/counter/result.json").resolve())["metrics"]["total"] == 12.0


def test_errors_are_not_cached(cli, workdir):
    cli("run", "crashing", "--profile", "smoke", *HERE)
    cli("run", "crashing", "--profile", "smoke", *HERE)
    assert load((workdir / "reports/latest/crashing/result.json").resolve())["cached"] is False


def test_seed_makes_runs_repeatable(cli, workdir):
    def draw(seed: str) -> float:
        cli("run", "counter", "--profile", "smoke", "--seed", seed, "--force", *HERE)
        return load((workdir / "reports/latest/counter/result.json").resolve())["metrics"]["random_draw"]

    assert draw("3") == draw("3")
    assert draw("3") != draw("4")


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_interrupt_keeps_finished_labs(cli, workdir, isolation):
    status, out, err = cli(
        "run",
        "counter",
        "failing",
        "--profile",
        "smoke",
        "--set",
        "counter.interrupt=true",
        "--isolation",
        isolation,
        "--jobs",
        "1",  # one lab at a time: the second has not started when the first is interrupted
    )
    assert status == 130
    run_dir = (workdir / "reports" / "latest").resolve()
    assert load(run_dir / "run.json")["status"] == "interrupted"
    assert LabResult.load(run_dir / "counter" / "result.json").status == "interrupted"
    assert not (run_dir / "failing").exists()


@pytest.mark.slow
def test_sigint_in_a_real_process(tmp_path):
    env = subprocess_env({"LABRUNNER_CACHE_DIR": str(tmp_path / "cache"), "LABRUNNER_PLUGINS": "core_labs"})
    args = labrunner_argv(
        *("run", "failing", "counter", "--plugins-dir", str(TEST_PLUGINS), "--profile", "smoke"),
        *("--set", "counter.sleep_s=0.2", "--set", "counter.steps=200"),
        "-v",  # the worker's progress lines, relayed
    )
    log = tmp_path / "stderr.txt"

    def running() -> bool:  # counter is counting and failing has finished (they may run side by side)
        return "counting: " in log.read_text() and lab_saved(tmp_path, "failing")

    with open(log, "w") as stderr:
        proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
        deadline = time.time() + 240
        while time.time() < deadline and not running():
            time.sleep(0.1)
        assert running(), log.read_text()[-2000:]
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    err = log.read_text()
    assert proc.returncode == 130, err
    run_dir = (tmp_path / "reports" / "latest").resolve()
    assert LabResult.load(run_dir / "failing" / "result.json").status == "failed"
    assert LabResult.load(run_dir / "counter" / "result.json").status == "interrupted"
    # resumable: the same command reuses the finished lab
    args[args.index("counter.sleep_s=0.2")] = "counter.sleep_s=0.0"
    again = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert "failing: reused cached result" in again.stderr


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_plain_progress_lines_when_not_a_terminal(cli, isolation):
    status, out, err = cli("run", "counter", "--profile", "smoke", "-v", "--isolation", isolation)
    assert "counting ..." in err
    assert "counting: 3/3" in err
    assert "[counter] counted" in err
    status, out, err = cli("run", "counter", "--profile", "smoke", "-q", "--force", "--isolation", isolation)
    assert "counting" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "nope"], "unknown lab 'nope'; installed labs: counter, failing, crashing"),
        (["run", "countr"], "unknown lab 'countr' (did you mean 'counter'?)"),
        (
            ["run", "counter", "--set", "counter.stepz=1"],
            "unknown key 'counter.stepz' (did you mean 'steps'?)",
        ),
        (["run", "counter", "--set", "counter.steps=many"], "counter.steps: expected int, got str 'many'"),
        (["run", "counter", "--set", "steps"], "bad --set 'steps': expected LAB.KEY=VALUE"),
        (["run", "counter", "--set", "nolab.steps=1"], "--set nolab.*: unknown lab 'nolab'"),
        (["run", "counter", "--profile", "huge"], "unknown profile 'huge', which no selected lab has"),
        (["run", "counter", "--config", "missing.yaml"], "config file not found: missing.yaml"),
        (["run", "counter", "--device", "tpu"], "unknown device 'tpu'"),
        (["run", "counter", "--device", "cuda:3"], "device 'cuda:3' is not available"),
        (["run", "counter", "--seed", "-1"], "--seed must be >= 0"),
        (["run", "counter", "--threads", "0"], "--threads must be >= 1"),
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(cli, workdir, args, message):
    if "cuda:3" in args:
        import torch

        if torch.cuda.device_count() > 3:
            pytest.skip("this machine has a fourth GPU")
    status, out, err = cli(*args)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("labrunner: error: ")
    assert message in lines[0]
    assert not (workdir / "reports").exists()


def test_malformed_config_file(cli, workdir):
    (workdir / "labrunner.yaml").write_text("labs:\n  counter: {steps: 2\n")
    status, out, err = cli("run", "counter")
    assert status == 2
    assert "malformed YAML in labrunner.yaml:3:1" in err
    assert not (workdir / "reports").exists()


def test_unknown_lab_in_config_file(cli, workdir):
    (workdir / "labrunner.yaml").write_text("labs:\n  countre: {steps: 2}\n")
    status, out, err = cli("run", "counter")
    assert status == 2
    assert "labrunner.yaml: labs.countre: unknown lab 'countre' (did you mean 'counter'?)" in err


def test_cuda_unavailable_is_clear(cli, workdir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    status, out, err = cli("run", "counter", "--device", "cuda")
    assert status == 2
    assert "device 'cuda' is not available: no CUDA GPU found" in err


def test_out_and_deterministic(cli, workdir):
    import torch

    before = torch.get_num_threads()
    try:
        status, out, err = cli(
            "run",
            "counter",
            "--profile",
            "smoke",
            "--out",
            "elsewhere",
            "--deterministic",
            "--threads",
            "1",
            *HERE,
        )
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert status == 0, err
    run = load((workdir / "elsewhere" / "latest" / "run.json").resolve())
    assert run["settings"]["deterministic"] is True
    assert run["settings"]["threads"] == 1
    assert run["environment"]["torch_threads"] == 1


def test_editing_a_lab_reruns_it(cli, workdir, tmp_path, monkeypatch):
    plugins = tmp_path / "own_plugins"
    plugins.mkdir()
    source = (TEST_PLUGINS / "core_labs.py").read_text()
    (plugins / "core_labs.py").write_text(source)
    args = ("run", "counter", "--profile", "smoke", "--plugins-dir", str(plugins))
    monkeypatch.setattr("conftest.TEST_PLUGINS", plugins)
    cli(*args, *HERE, plugins=False)
    cli(*args, *HERE, plugins=False)
    assert load((workdir / "reports/latest/counter/result.json").resolve())["cached"] is True
    # an edit of the answer text (not of the version) is a new lab: it runs again
    (plugins / "core_labs.py").write_text(source.replace("for $n = {{ n }}$.", "when $n = {{ n }}$."))
    import sys

    sys.modules.pop("labrunner_plugins_dir.core_labs", None)
    status, out, err = cli(*args, *HERE, plugins=False)
    result = load((workdir / "reports/latest/counter/result.json").resolve())
    assert result["cached"] is False
    assert result["exercises"][0]["answer"].endswith("when $n = 3$.")


def test_cache_location_follows_the_platform(monkeypatch, tmp_path):
    from labrunner.records.cache import cache_root

    monkeypatch.delenv("LABRUNNER_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert cache_root() == tmp_path / "xdg" / "labrunner"
    monkeypatch.setenv("LABRUNNER_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"
