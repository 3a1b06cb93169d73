"""The result cache under faults and concurrency: invalid entries, unusable folders,
leftovers of runs that died, Ctrl-C while storing, and runs sharing one cache."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import TEST_PLUGINS, labrunner_argv, run_cli, subprocess_env, without_root_powers

from labrunner.base.hashing import stable_hash
from labrunner.records.cache import ResultCache

HOSTILE = Path(__file__).parent / "plugins_hostile"


def load(path: Path):
    return json.loads(path.read_text())


@pytest.fixture
def hostile(monkeypatch):
    """Let the hostile test labs load beside the core test labs."""
    monkeypatch.setenv("LABRUNNER_PLUGINS", "core_labs,hostile_labs")


def latest_result(workdir: Path, lab: str) -> dict:
    return load((workdir / "reports" / "latest" / lab / "result.json").resolve())


def entries(cache: Path, lab: str) -> list[Path]:
    return sorted((cache / "results" / lab).iterdir())


def test_stable_hash_is_canonical():
    assert stable_hash({"b": 1, "a": [1, 2]}) == stable_hash({"a": [1, 2], "b": 1})
    assert stable_hash(b"abc", 64) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert len(stable_hash("x")) == 16


def writable(path: Path) -> Path:
    """An entry's file made writable again (entries are read-only), as a tamperer would."""
    path.chmod(0o644)
    return path


def _corrupt_json(entry: Path) -> None:
    writable(entry / "result.json").write_text('{"lab": "counter", "status": "pa')


def _missing_figure(entry: Path) -> None:
    (entry / "figures" / "steps.png").unlink()


def _wrong_types(entry: Path) -> None:
    data = load(entry / "result.json")
    data["status"] = 5
    writable(entry / "result.json").write_text(json.dumps(data))


def _symlinked_figure(entry: Path) -> None:
    figure = entry / "figures" / "steps.png"
    figure.unlink()
    figure.symlink_to("/etc/hostname")


@pytest.mark.parametrize("corrupt", [_corrupt_json, _missing_figure, _wrong_types, _symlinked_figure])
def test_an_invalid_entry_is_discarded_and_the_lab_reruns(cli, workdir, tmp_path, corrupt):
    assert cli("run", "counter", "--profile", "smoke", "--isolation", "none")[0] == 0
    (entry,) = entries(tmp_path / "cache", "counter")
    corrupt(entry)
    status, out, err = cli("run", "counter", "--profile", "smoke", "--isolation", "none")
    assert status == 0, err
    assert f"cached result of counter (key {entry.name}) discarded" in err
    assert latest_result(workdir, "counter")["cached"] is False
    # the entry was stored again, whole
    assert (entry / "figures" / "steps.png").is_file() and not (entry / "figures" / "steps.png").is_symlink()
    assert cli("run", "counter", "--profile", "smoke", "--isolation", "none")[0] == 0
    assert latest_result(workdir, "counter")["cached"] is True


def test_an_unusable_cache_folder_warns_once_and_runs_uncached(cli, workdir, tmp_path, monkeypatch, hostile):
    not_a_folder = tmp_path / "cache-file"
    not_a_folder.write_text("this is a file")
    monkeypatch.setenv("LABRUNNER_CACHE_DIR", str(not_a_folder))
    for _ in range(2):
        status, out, err = cli(
            "run",
            "counter",
            "checkpointing",
            "--profile",
            "smoke",
            "--isolation",
            "none",
            "--plugins-dir",
            str(HOSTILE),
        )
        assert status == 0, err
        warnings = [line for line in err.splitlines() if "not usable" in line]
        assert len(warnings) == 1, err
        assert f"cache folder {not_a_folder} is not usable" in warnings[0]
        assert latest_result(workdir, "counter")["cached"] is False
        assert latest_result(workdir, "checkpointing")["metrics"]["resumed"] == 0
    assert not_a_folder.read_text() == "this is a file"


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_a_read_only_cache_folder_runs_uncached(workdir, tmp_path):
    prefix = without_root_powers()  # root writes anywhere, except without its capabilities
    cache = tmp_path / "ro-cache"
    cache.mkdir()
    cache.chmod(0o500)
    args = ["run", "counter", "--plugins-dir", str(TEST_PLUGINS), "--profile", "smoke", "--isolation", "none"]
    try:
        proc = run_cli(*args, prefix=prefix, cwd=workdir, env={"LABRUNNER_CACHE_DIR": str(cache)})
    finally:
        cache.chmod(0o700)
    assert proc.returncode == 0, proc.stderr
    assert sum("not usable" in line for line in proc.stderr.splitlines()) == 1, proc.stderr
    assert list(cache.iterdir()) == []


def test_leftover_temporary_entries_are_cleaned(cli, workdir, tmp_path):
    assert cli("run", "counter", "--profile", "smoke", "--isolation", "none")[0] == 0
    folder = tmp_path / "cache" / "results" / "counter"
    stale = folder / ".0123456789abcdef.dead.tmp"
    (stale / "figures").mkdir(parents=True)
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    fresh = folder / ".fedcba9876543210.busy.tmp"
    fresh.mkdir()
    cli("run", "counter", "--profile", "smoke", "--isolation", "none", "--force")
    assert not stale.exists()
    assert fresh.exists()  # may belong to a run storing right now


def test_force_retrains_instead_of_resuming(cli, workdir, hostile):
    args = (
        "run",
        "checkpointing",
        "--profile",
        "smoke",
        "--isolation",
        "none",
        "--plugins-dir",
        str(HOSTILE),
    )
    cli(*args)
    assert latest_result(workdir, "checkpointing")["metrics"]["resumed"] == 0
    cli(*args, "--force")
    assert latest_result(workdir, "checkpointing")["metrics"]["resumed"] == 0


def test_ctrl_c_while_storing_keeps_run_json_consistent(cli, workdir, tmp_path, monkeypatch):
    import labrunner.records.cache

    real_copy_tree = labrunner.records.files.copy_tree

    def interrupted_store(src, dst, *args, **kwargs):
        copied = real_copy_tree(src, dst, *args, **kwargs)
        if "results" in Path(dst).parts:  # the cache's copy, not the run folder's: Ctrl-C now
            raise KeyboardInterrupt
        return copied

    monkeypatch.setattr(labrunner.records.cache, "copy_tree", interrupted_store)
    status, out, err = cli("run", "counter", "failing", "--profile", "smoke", "--isolation", "none")
    assert status == 130, err
    run = load((workdir / "reports" / "latest" / "run.json").resolve())
    assert run["status"] == "interrupted"
    ran = [(lab["lab"], lab["status"]) for lab in run["labs"] if lab["status"] != "not run"]
    assert ran == [("counter", "passed")]
    assert latest_result(workdir, "counter")["status"] == "passed"
    # neither a half entry nor its temporary folder is left in the cache
    assert list((tmp_path / "cache" / "results" / "counter").iterdir()) == []


def test_cache_api_round_trip(tmp_path):
    run_dir = tmp_path / "run" / "counter"
    run_dir.mkdir(parents=True)
    (run_dir / "result.json").write_text(
        json.dumps(
            {
                "lab": "counter",
                "title": "t",
                "version": "1",
                "status": "passed",
                "cache_key": "0123456789abcdef",
                "schema": 1,
            }
        )
    )
    cache = ResultCache(tmp_path / "cache")
    with cache.lock("counter", "0123456789abcdef"):
        cache.put("counter", "0123456789abcdef", run_dir)
    got = cache.get("counter", "0123456789abcdef", tmp_path / "out")
    assert got is not None and got.cached is True
    assert cache.get("counter", "fedcba9876543210", tmp_path / "out2") is None


@pytest.mark.slow
def test_three_runs_sharing_one_cache_all_succeed(tmp_path):
    env = subprocess_env(
        {"LABRUNNER_CACHE_DIR": str(tmp_path / "cache"), "LABRUNNER_PLUGINS": "core_labs,hostile_labs"}
    )
    args = labrunner_argv(
        *("run", "many_files", "counter", "failing", "--profile", "smoke", "--threads", "1"),
        *("--plugins-dir", str(TEST_PLUGINS), "--plugins-dir", str(HOSTILE)),
    )
    for trial in range(2):
        procs = []
        for i in range(3):
            cwd = tmp_path / f"run{trial}-{i}"
            cwd.mkdir()
            procs.append(
                (
                    cwd,
                    subprocess.Popen(
                        [*args, "--force"] if trial else args,
                        cwd=cwd,
                        env=env,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                    ),
                )
            )
        for cwd, proc in procs:
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 1, err  # 'failing' fails a check; nothing else may fail
            run = load((cwd / "reports" / "latest" / "run.json").resolve())
            ran = [lab["status"] for lab in run["labs"] if lab["status"] != "not run"]
            assert ran == ["passed", "passed", "failed"], err
            result = load((cwd / "reports" / "latest" / "many_files" / "result.json").resolve())
            assert result["metrics"]["files"] == 300
            assert len(list((cwd / "reports" / "latest" / "many_files").glob("part-*.txt"))) == 300
        (entry,) = entries(tmp_path / "cache", "many_files")
        assert len(list(entry.glob("part-*.txt"))) == 300
        assert not [p for p in (tmp_path / "cache" / "results").rglob(".*")]
