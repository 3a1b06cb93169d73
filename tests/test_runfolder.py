"""The run folder's typed model: records, run.json and result.json read back with
validation, the same one-line error for every reader, nothing read outside the folder."""

from __future__ import annotations

import json
import os

import pytest
from runfolders import make_run, png_bytes

from labrunner.errors import UsageError
from labrunner.results import (
    SCHEMA_VERSION,
    FigureRecord,
    LabResult,
    MarkdownRecord,
    RunFileError,
    TableRecord,
    write_json,
)
from labrunner.runfolder import (
    LabEntry,
    RunInfo,
    find_run_dir,
    latest_run_dir,
    load_run,
    new_run_dir,
    point_latest,
    summarize,
)


def _edit(path, change):
    data = json.loads(path.read_text())
    change(data)
    write_json(path, data)


# --------------------------------------------------------------------------- the records


def test_records_read_back_typed_and_as_mappings(tmp_path):
    run_dir = make_run(tmp_path)
    result = LabResult.load(run_dir / "lab0" / "result.json")
    figure, table, markdown = result.exercises[0].records
    assert isinstance(figure, FigureRecord) and figure.path == "figures/fig0.png"
    assert isinstance(table, TableRecord) and table.rows[0] == ["conv1", 11, 4]
    assert isinstance(markdown, MarkdownRecord) and markdown.text.startswith("Extra block")
    # code written against the earlier dict records still reads them
    assert figure["kind"] == "figure" and table.get("caption") == "Receptive fields"
    assert dict(markdown) == {"text": markdown.text, "kind": "markdown"}
    # and the JSON form is the same as before: reading and saving again changes nothing
    before = json.loads((run_dir / "lab0" / "result.json").read_text())
    result.save(tmp_path / "again.json")
    assert json.loads((tmp_path / "again.json").read_text()) == {**before, "origin": None}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(status="great"), r"status: expected one of passed, failed"),
        (lambda d: d.update(seed="0"), r"seed: expected an integer, got a string"),
        (lambda d: d.update(duration_s=-1e400), r"duration_s: expected a finite number, got a string"),
        (
            lambda d: d["exercises"][0]["checks"][0].update(passed="yes"),
            r"exercises\[0\]\.checks\[0\]\.passed",
        ),
        (lambda d: d["exercises"][0]["records"][1].update(rows="x"), r"records\[1\]\.rows: expected a list"),
        (lambda d: d["exercises"][0]["records"][2].update(kind="video"), r"unknown record kind 'video'"),
        (
            lambda d: d["exercises"][0].update(fidelity="maybe"),
            r"fidelity: expected one of assignment, stand-in",
        ),
        (lambda d: d.update(error={"type": 3}), r"error\.type: expected a string, got an integer"),
        (lambda d: d.update(schema=SCHEMA_VERSION + 1), r"written by a newer labrunner"),
        (lambda d: d.pop("schema"), r"schema: missing"),
        (lambda d: d.update(lab="../../x"), r"lab: invalid lab name '../../x'"),
        (lambda d: d.update(lab="figures"), r"invalid lab name 'figures'"),
        (lambda d: d["exercises"][0]["records"][0].update(path="../../../secret.png"), r"unsafe path"),
        (lambda d: d["exercises"][0]["records"][0].update(path="/etc/passwd"), r"unsafe path '/etc/passwd'"),
    ],
)
def test_a_bad_result_file_is_one_line_naming_file_and_field(tmp_path, change, message):
    run_dir = make_run(tmp_path)
    path = run_dir / "lab0" / "result.json"
    _edit(path, change)
    with pytest.raises(RunFileError, match=message) as info:
        load_run(run_dir)
    text = str(info.value)
    assert text.startswith(str(path)) and "\n" not in text and len(text) < 300
    assert isinstance(info.value, UsageError) and isinstance(info.value, ValueError)


def test_a_result_in_the_wrong_folder_is_refused(tmp_path):
    run_dir = make_run(tmp_path)
    _edit(run_dir / "lab0" / "result.json", lambda d: d.update(lab="counter"))
    with pytest.raises(RunFileError, match="'counter' does not match its folder 'lab0'"):
        load_run(run_dir)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(status="done"), r"run.json: status: expected one of running, finished"),
        (lambda d: d["settings"].update(seed=-1), r"settings.seed: expected a seed >= 0"),
        (lambda d: d["settings"].update(labs=["lab0", "a/b"]), r"settings.labs\[1\]: invalid lab name 'a/b'"),
        (lambda d: d["settings"].update(report="Ada"), r"settings.report: expected an object"),
        (lambda d: d["environment"]["git"].update(commit=5), r"environment.git.commit: expected a string"),
        (lambda d: d["labs"][0].update(cached="no"), r"labs\[0\].cached: expected true or false"),
        (lambda d: d.update(labs={"lab0": 1}), r"run.json: labs: expected a list, got an object"),
        (lambda d: d.update(schema=99), r"schema: version 99 was written by a newer labrunner"),
    ],
)
def test_a_bad_run_json_is_one_line(tmp_path, change, message):
    run_dir = make_run(tmp_path)
    _edit(run_dir / "run.json", change)
    with pytest.raises(RunFileError, match=message) as info:
        load_run(run_dir)
    assert "\n" not in str(info.value)


def test_files_that_are_not_json(tmp_path):
    run_dir = make_run(tmp_path)
    path = run_dir / "lab0" / "result.json"
    good = path.read_text()
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(RunFileError, match=r"result.json: not UTF-8 text \(byte 0\)"):
        load_run(run_dir)
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(RunFileError, match="not valid JSON"):
        load_run(run_dir)
    path.write_text(good.replace('"duration_s": 1.25', '"duration_s": 1e400'))
    with pytest.raises(RunFileError, match="duration_s: expected a finite number, got the number inf"):
        load_run(run_dir)
    path.write_text("[1, 2]")
    with pytest.raises(RunFileError, match="result.json: the file: expected an object, got a list"):
        load_run(run_dir)


def test_run_info_round_trip_keeps_keys_it_does_not_know(tmp_path):
    run_dir = make_run(tmp_path)
    _edit(run_dir / "run.json", lambda d: d.update(executor={"name": "local", "jobs": 2}))
    info = RunInfo.load(run_dir / "run.json")
    assert info.status == "finished" and info.selected == ["lab0", "counter", "crashing"]
    assert info.entry("counter") == LabEntry(lab="counter", status="failed", duration_s=0.5)
    assert info.extra == {"executor": {"name": "local", "jobs": 2}}
    assert info.schema == SCHEMA_VERSION  # older run folders have no schema: read as version 1
    info.save(tmp_path / "run.json")
    again = json.loads((tmp_path / "run.json").read_text())
    assert again["executor"] == {"name": "local", "jobs": 2} and again["schema"] == SCHEMA_VERSION
    assert RunInfo.load(tmp_path / "run.json") == info


def test_summary_splits_points_by_fidelity(tmp_path):
    run_dir = make_run(tmp_path)
    result = LabResult.load(run_dir / "counter" / "result.json")
    result.exercises.append(result.exercises[0].__class__(title="2. On a stand-in", fidelity="stand-in"))
    result.exercises[1].fidelity_reason = "no ImageNet weights"
    result.exercises[1].checks = list(result.exercises[0].checks)
    s = summarize(result)
    assert (s.points, s.points_total) == (2.0, 8.0)
    assert (s.points_assignment, s.points_assignment_total) == (1.0, 4.0)
    assert (s.points_stand_in, s.points_stand_in_total) == (1.0, 4.0)
    assert s.fidelity == "partly stand-in" and s.stand_ins == [("2. On a stand-in", "no ImageNet weights")]
    assert s.origin == "this run"


# --------------------------------------------------------------------------- nothing outside the folder


def test_a_figure_path_cannot_leave_the_lab_folder(tmp_path):
    run_dir = make_run(tmp_path)
    (tmp_path / "secret.png").write_bytes(png_bytes(seed=9))
    _edit(
        run_dir / "lab0" / "result.json",
        lambda d: d["exercises"][0]["records"][0].update(path="../../../secret.png"),
    )
    from labrunner.report import render_report

    with pytest.raises(UsageError, match=r"records\[0\]\.path: unsafe path '../../../secret.png'"):
        render_report(run_dir, formats=["html"])
    assert not (run_dir / "report.html").exists()


def test_symbolic_links_are_refused(tmp_path):
    run_dir = make_run(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    # a figure that is a link to a file elsewhere
    secret = outside / "secret.png"
    secret.write_bytes(png_bytes(seed=9))
    figure = run_dir / "lab0" / "figures" / "fig0.png"
    figure.unlink()
    figure.symlink_to(secret)
    with pytest.raises(RunFileError, match=r"lab0/figures/fig0.png: a symbolic link"):
        load_run(run_dir)
    # a figures folder that is a link
    figure.unlink()
    (run_dir / "lab0" / "figures").rmdir()
    (run_dir / "lab0" / "figures").symlink_to(outside, target_is_directory=True)
    with pytest.raises(RunFileError, match=r"lab0/figures: a symbolic link"):
        load_run(run_dir)
    # a lab folder that is a link to a real lab folder elsewhere
    (run_dir / "lab0" / "figures").unlink()
    (run_dir / "lab0").rename(outside / "lab0")
    (run_dir / "lab0").symlink_to(outside / "lab0", target_is_directory=True)
    with pytest.raises(RunFileError, match=r"lab0: a symbolic link"):
        load_run(run_dir)


def test_a_run_folder_reached_through_latest_is_fine(tmp_path):
    run_dir = make_run(tmp_path)
    point_latest(run_dir.parent, run_dir)
    run = load_run(run_dir.parent / "latest")
    assert [lab.lab for lab in run.labs] == ["lab0", "counter", "crashing"]


# --------------------------------------------------------------------------- creating and finding


def test_new_run_dirs_are_unique_and_latest_follows(tmp_path):
    out = tmp_path / "reports"
    first, second = new_run_dir(out), new_run_dir(out)
    assert first != second and first.is_dir() and second.is_dir()
    assert os.readlink(out / "latest") == second.name  # relative: the folder can move
    assert latest_run_dir(out) == second.resolve()
    with pytest.raises(UsageError, match="not a run folder"):
        find_run_dir(None, out)  # latest has no run.json yet
    write_json(second / "run.json", {"status": "running"})
    assert find_run_dir(None, out) == second.resolve()
    with pytest.raises(UsageError, match="no runs found in"):
        find_run_dir(None, tmp_path / "nothing")
