"""Results nobody changes by accident, and nothing lost: each test injects the fault.

- the cache is content-addressed and immutable: a run folder's files are its own copies
  (no inode shared with the cache or another run), an edit in a run folder never reaches
  the cache, and a cache entry changed on disk is discarded with one warning;
- ``clean`` never removes a run that is still running, and a missing ``--out`` is bad input;
- ``report`` removes only files it wrote itself;
- jobs.json and sweep.json are validated before any path is built from them.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import TEST_PLUGINS, labrunner_argv, subprocess_env
from runfolders import make_run, png_bytes

from labrunner.records.cache import ResultCache
from labrunner.records.folders import point_latest
from labrunner.records.results import RunFileError, write_json

#: labrunner.records.files.MANIFEST (spelt out: these tests must fail, not break, where it is missing)
MANIFEST = "MANIFEST.sha256"


def run_counter(cli, *extra: str):
    return cli("run", "counter", "--profile", "smoke", "--isolation", "none", *extra)


def latest(workdir: Path) -> Path:
    return (workdir / "reports" / "latest").resolve()


def the_entry(cache: Path, lab: str) -> Path:
    (entry,) = [p for p in (cache / "results" / lab).iterdir() if not p.name.startswith(".")]
    return entry


def files_below(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


# --------------------------------------------------------------------------- 1. the cache


def test_editing_a_run_folders_result_in_place_leaves_the_cache_alone(cli, workdir, tmp_path):
    assert run_counter(cli)[0] == 0
    first = latest(workdir) / "counter"
    original = json.loads((first / "result.json").read_text())["metrics"]["total"]
    data = json.loads((first / "result.json").read_text())
    data["metrics"]["total"] = 12345.0
    data["exercises"][0]["metrics"]["total"] = 12345.0
    with open(first / "result.json", "w") as fh:  # in place, as an editor saves it
        fh.write(json.dumps(data))
    with open(first / "figures" / "steps.png", "r+b") as fh:
        fh.write(b"edited!!")
    status, _out, err = run_counter(cli)
    assert status == 0, err
    assert "reused cached result" in err and "discarded" not in err
    second = latest(workdir)
    assert second != first.parent
    result = json.loads((second / "counter" / "result.json").read_text())
    assert result["cached"] is True and result["metrics"]["total"] == original
    assert (second / "counter" / "figures" / "steps.png").read_bytes()[:4] == b"\x89PNG"
    assert "12345" not in (second / "report.md").read_text()


def test_no_file_of_a_run_folder_shares_its_inode(cli, workdir, tmp_path):
    """Labs that ran, came from the cache, or were carried over from an earlier run, the
    report's figures and a sweep's seed folders: each file has one name only."""
    assert run_counter(cli, "--set", "counter.steps=4")[0] == 0
    # counter's current settings are not cached: it is carried over from the earlier run
    assert cli("run", "failing", "--profile", "smoke", "--isolation", "none")[0] == 1
    assert cli("run", "failing", "--profile", "smoke", "--isolation", "none")[0] == 1  # failing cached
    runs = [p for p in (workdir / "reports").iterdir() if not p.is_symlink()]
    assert len(runs) == 3
    carried = json.loads((latest(workdir) / "counter" / "result.json").read_text())
    assert carried["origin"]["kind"] == "earlier run"
    files = files_below(workdir / "reports", tmp_path / "cache" / "results")
    assert len(files) > 20
    shared = [str(p) for p in files if p.stat().st_nlink != 1]
    assert shared == []
    inodes = {(p.stat().st_dev, p.stat().st_ino) for p in files}
    assert len(inodes) == len(files)


def test_cache_entries_are_read_only_with_a_manifest_and_run_folder_copies_writable(cli, workdir, tmp_path):
    assert run_counter(cli)[0] == 0
    entry = the_entry(tmp_path / "cache", "counter")
    lines = (entry / MANIFEST).read_text().splitlines()
    assert sorted(line.split("  ")[1] for line in lines) == ["figures/steps.png", "result.json"]
    for path in files_below(entry):
        assert path.stat().st_mode & 0o777 == 0o444, path
    for path in files_below(latest(workdir) / "counter"):
        assert path.stat().st_mode & 0o200, path


def _flip_bytes(entry: Path) -> str:
    figure = entry / "figures" / "steps.png"
    figure.chmod(0o644)
    with open(figure, "r+b") as fh:  # same size, other bytes
        fh.seek(100)
        fh.write(b"\x00\x01\x02\x03")
    return "figures/steps.png no longer matches its sha256"


def _add_file(entry: Path) -> str:
    (entry / "figures" / "extra.png").write_bytes(png_bytes())
    return "figures/extra.png was added"


def _drop_manifest(entry: Path) -> str:
    (entry / MANIFEST).unlink()
    return f"no {MANIFEST}"


def _edit_result(entry: Path) -> str:
    path = entry / "result.json"
    data = json.loads(path.read_text())
    data["metrics"]["total"] = 12345.0
    path.chmod(0o644)
    path.write_text(json.dumps(data))
    return "result.json no longer matches its sha256"


@pytest.mark.parametrize("tamper", [_flip_bytes, _add_file, _drop_manifest, _edit_result])
def test_a_changed_cache_entry_is_discarded_with_one_warning_and_the_lab_reruns(
    cli, workdir, tmp_path, tamper
):
    assert run_counter(cli)[0] == 0
    entry = the_entry(tmp_path / "cache", "counter")
    why = tamper(entry)
    status, _out, err = run_counter(cli)
    assert status == 0, err
    warnings = [line for line in err.splitlines() if "discarded" in line]
    assert len(warnings) == 1, err
    assert f"cached result of counter (key {entry.name}) discarded: {why}" in warnings[0]
    result = json.loads((latest(workdir) / "counter" / "result.json").read_text())
    assert result["cached"] is False and result["metrics"]["total"] == 6.0
    # stored again, whole, and used by the next run without a word
    assert (entry / MANIFEST).is_file()
    status, _out, err = run_counter(cli)
    assert status == 0 and "discarded" not in err
    assert json.loads((latest(workdir) / "counter" / "result.json").read_text())["cached"] is True


def test_cache_paths_are_built_from_checked_names_only(tmp_path):
    cache = ResultCache(tmp_path / "cache")
    for lab, key in [
        ("../../x", "0123456789abcdef"),
        ("counter", "thesis"),
        ("counter", "../0123456789abcdef"),
    ]:
        with pytest.raises(RunFileError, match="invalid"):
            cache.entry(lab, key)
        with pytest.raises(RunFileError, match="invalid"):
            cache.state_dir(lab, key)
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- 3. clean


def _runs(out: Path, names: list[str], status: str = "finished") -> list[Path]:
    for name in names:
        (out / name).mkdir(parents=True)
        write_json(out / name / "run.json", {"status": status})
    return [out / name for name in names]


def test_clean_skips_a_run_whose_lock_is_held_and_names_it(cli, tmp_path):
    out = tmp_path / "reports"
    running, old, newest = _runs(out, ["20261128-090000", "20261129-100000", "20261130-080000"])
    write_json(running / "run.json", {"status": "running"})
    from labrunner.records.folders import RunLock

    lock = RunLock(running)
    assert lock.acquire()
    try:
        status, text, err = cli("clean", "--keep", "1", "--out", str(out))
    finally:
        lock.release()
    assert status == 0, err
    assert running.is_dir() and not old.exists() and newest.is_dir()
    assert f"kept: {running} (still running)" in text
    # once the run has ended, it is an old run like the others
    status, text, err = cli("clean", "--keep", "1", "--out", str(out))
    assert status == 0 and not running.exists()


def test_clean_keeps_a_run_whose_jobs_were_not_collected(cli, tmp_path):
    out = tmp_path / "reports"
    detached, _newest = _runs(out, ["20261128-090000", "20261130-080000"], status="submitted")
    status, text, _err = cli("clean", "--keep", "1", "--out", str(out))
    assert status == 0 and detached.is_dir() and "not collected" in text


@pytest.mark.parametrize("make", ["missing", "file"])
def test_clean_out_that_is_not_a_folder_is_bad_input(cli, tmp_path, make):
    out = tmp_path / "nowhere"
    if make == "file":
        out.write_text("notes")
    status, text, err = cli("clean", "--keep", "1", "--out", str(out))
    assert status == 2 and "removed" not in text
    assert err.count("\n") == 1 and f"--out {out}:" in err
    assert not out.is_dir()


@pytest.mark.slow
def test_clean_never_removes_a_run_another_process_is_running(cli, workdir, tmp_path):
    env = subprocess_env({"LABRUNNER_CACHE_DIR": str(tmp_path / "cache"), "LABRUNNER_PLUGINS": "core_labs"})
    proc = subprocess.Popen(
        labrunner_argv(
            *("run", "counter", "--plugins-dir", str(TEST_PLUGINS), "--profile", "smoke"),
            *("--isolation", "none", "--set", "counter.sleep_s=2"),
        ),
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out = workdir / "reports"
    deadline = time.monotonic() + 120
    while not list(out.glob("2*/run.json")):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    (running,) = [p.parent for p in out.glob("2*/run.json")]
    later = _runs(out, ["29991231-000000", "29991231-000001"])
    point_latest(out, later[1])  # the running run is neither the newest nor latest
    status, text, err = cli("clean", "--keep", "1", "--out", str(out))
    assert status == 0, err
    assert running.is_dir() and f"kept: {running} (still running)" in text
    assert not later[0].exists() and later[1].is_dir()
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert json.loads((running / "run.json").read_text())["status"] == "finished"
    assert (running / "report.html").is_file() and (running / "counter" / "result.json").is_file()
    status, text, err = cli("clean", "--keep", "1", "--out", str(out))
    assert status == 0 and not running.exists()


# --------------------------------------------------------------------------- 3. report


def test_report_removes_only_files_it_wrote(cli, tmp_path):
    run_dir = make_run(tmp_path, figures=2)
    assert cli("report", str(run_dir), plugins=False)[0] == 0
    rendered = run_dir / "figures" / "lab0" / "fig1.png"
    assert rendered.is_file()
    assert not os.path.samefile(rendered, run_dir / "lab0" / "figures" / "fig1.png")
    mine = run_dir / "figures" / "my_diagram.png"
    mine.write_bytes(png_bytes(seed=7))
    notes = run_dir / "figures" / "lab0" / "notes.txt"
    notes.write_text("my notes")
    assert cli("report", str(run_dir), plugins=False)[0] == 0
    assert mine.read_bytes() == png_bytes(seed=7) and notes.read_text() == "my notes"
    # a figure the lab no longer records is removed, since the report wrote it
    path = run_dir / "lab0" / "result.json"
    data = json.loads(path.read_text())
    data["exercises"][0]["records"] = [
        r for r in data["exercises"][0]["records"] if r.get("path") != "figures/fig1.png"
    ]
    write_json(path, data)
    assert cli("report", str(run_dir), plugins=False)[0] == 0
    assert not rendered.exists() and (run_dir / "figures" / "lab0" / "fig0.png").is_file()
    assert mine.is_file() and notes.is_file()


def test_report_leaves_a_file_of_someone_elses_in_a_figures_place(cli, tmp_path):
    run_dir = make_run(tmp_path, figures=1)
    theirs = run_dir / "figures" / "lab0" / "fig0.png"
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(b"their own drawing")
    status, _out, err = cli("report", str(run_dir), plugins=False)
    assert status == 0 and "not written by labrunner" in err
    assert theirs.read_bytes() == b"their own drawing"


# --------------------------------------------------------------------------- 3. jobs.json, sweep.json


def _detached_run(tmp_path: Path, job: dict) -> Path:
    run_dir = tmp_path / "reports" / "20261129-041000"
    run_dir.mkdir(parents=True)
    write_json(run_dir / "run.json", {"status": "submitted", "settings": {"labs": ["counter"], "seed": 0}})
    write_json(run_dir / "jobs.json", {"jobs": [job], "seeds": [0]})
    return run_dir


GOOD_JOB = {
    "lab": "counter",
    "seed": 0,
    "out_dir": "counter",
    "cache_key": "0123456789abcdef",
    "executor": "slurm",
    "job_id": "17",
}


@pytest.mark.parametrize(
    "change, field",
    [
        ({"lab": "../../../x", "out_dir": "../../../x", "cache_key": "thesis"}, "jobs[0].lab"),
        ({"cache_key": "thesis"}, "jobs[0].cache_key"),
        ({"out_dir": "../../x"}, "jobs[0].out_dir"),
        ({"lab": "attention", "out_dir": "attention"}, "jobs[0].lab"),
        ({"seed": -1}, "jobs[0].seed"),
        ({"job_id": "17; touch /tmp/x"}, "jobs[0].job_id"),
        ({"folder": "../../.."}, "jobs[0].folder"),
    ],
)
def test_status_refuses_a_jobs_file_that_is_not_what_labrunner_writes(cli, tmp_path, change, field):
    victim = tmp_path / "x" / "thesis"
    victim.mkdir(parents=True)
    (victim / "chapter1.tex").write_text("months of work")
    run_dir = _detached_run(tmp_path, {**GOOD_JOB, **change})
    before = (run_dir / "run.json").read_text()
    status, out, err = cli("status", str(run_dir), plugins=False)
    assert status == 2, (out, err)
    assert err.count("\n") == 1 and "jobs.json" in err and field in err
    assert (victim / "chapter1.tex").read_text() == "months of work"
    assert (run_dir / "run.json").read_text() == before


def test_a_sweep_file_that_is_not_what_labrunner_writes_is_one_line(cli, tmp_path):
    run_dir = make_run(tmp_path)
    write_json(
        run_dir / "lab0" / "sweep.json",
        {"schema": 1, "lab": "../../x", "seeds": [0], "status": {"0": "passed"}},
    )
    status, _out, err = cli("check", str(run_dir), plugins=False)
    assert status == 2 and err.count("\n") == 1 and "sweep.json" in err and "lab" in err
    write_json(
        run_dir / "lab0" / "sweep.json",
        {"schema": 1, "lab": "lab0", "seeds": [0], "status": {"0": "<b>fine</b>"}},
    )
    status, _out, err = cli("check", str(run_dir), plugins=False)
    assert status == 2 and "status.0" in err
