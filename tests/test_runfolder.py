"""The run folder's typed model: records, run.json and result.json read back with
validation, the same one-line error for every reader, nothing read outside the folder."""

from __future__ import annotations

import json
import os
import re

import pytest
from runfolders import make_run, png_bytes

from labrunner.base.errors import UsageError
from labrunner.records.folders import complete_run, find_run_dir, latest_run_dir, new_run_dir, point_latest
from labrunner.records.results import (
    SCHEMA_VERSION,
    FigureRecord,
    LabResult,
    MarkdownRecord,
    RunFileError,
    TableRecord,
    write_json,
)
from labrunner.records.runfolder import LabEntry, RunInfo, load_run, summarize


def _edit(path, change):
    data = json.loads(path.read_text())
    change(data)
    write_json(path, data)


# --------------------------------------------------------------------------- the records


def test_records_read_back_typed(tmp_path):
    run_dir = make_run(tmp_path)
    result = LabResult.load(run_dir / "lab0" / "result.json")
    figure, table, markdown = result.exercises[0].records
    assert isinstance(figure, FigureRecord) and figure.path == "figures/fig0.png"
    assert isinstance(table, TableRecord) and table.rows[0] == ["conv1", 11, 4]
    assert isinstance(markdown, MarkdownRecord) and markdown.text.startswith("Extra block")
    assert (figure.kind, table.kind, markdown.kind) == ("figure", "table", "markdown")
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
    assert (
        info.schema == SCHEMA_VERSION
    )  # older run folders have no schema: read as version 1, kept as this one
    info.save(tmp_path / "run.json")
    again = json.loads((tmp_path / "run.json").read_text())
    assert again["executor"] == {"name": "local", "jobs": 2} and again["schema"] == SCHEMA_VERSION
    assert RunInfo.load(tmp_path / "run.json") == info


def test_a_bad_run_json_is_refused_where_it_is_written(tmp_path):
    info = RunInfo(status="running", settings={"labs": ["lab0"], "seed": 0})
    info.labs.append(LabEntry(lab="lab0", status="passed"))
    info.save(tmp_path / "run.json")
    assert RunInfo.load(tmp_path / "run.json") == info
    for change, message in (
        (lambda i: setattr(i, "status", "done"), "status: expected one of running"),
        (lambda i: i.settings.update(seed=-1), "settings.seed: expected a seed >= 0"),
        (lambda i: i.labs.append(LabEntry(lab="../x", status="passed")), "labs[1].lab: invalid lab name"),
    ):
        bad = RunInfo.load(tmp_path / "run.json")
        change(bad)
        with pytest.raises(RunFileError, match=re.escape(message)):
            bad.save(tmp_path / "run.json")
        assert RunInfo.load(tmp_path / "run.json") == info  # the file is left as it was


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
    from labrunner.report.render import render_report

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


# --------------------------------------------------------------------------- clean --keep N


def _runs(out, names):
    for name in names:
        (out / name).mkdir(parents=True)
        write_json(out / name / "run.json", {"status": "finished"})
    return [out / name for name in names]


def test_clean_keeps_the_newest_and_latest_and_nothing_else_is_touched(cli, tmp_path):
    out = tmp_path / "reports"
    runs = _runs(out, ["20261128-090000", "20261129-100000", "20261129-100000-2", "20261130-080000"])
    point_latest(out, runs[0])  # latest points at the oldest run
    (out / "notes").mkdir()
    (out / "notes" / "run.json").write_text("{}")  # not a run folder's name: never removed
    (out / "20261101-000000").mkdir()  # no run.json: not a run folder
    elsewhere = tmp_path / "elsewhere" / "20261001-000000"
    _runs(tmp_path / "elsewhere", [elsewhere.name])
    (out / "20261002-000000").symlink_to(elsewhere, target_is_directory=True)  # a link: never followed
    status, text, err = cli("clean", "--keep", "2", "--out", str(out), "--dry-run")
    assert status == 0 and all(p.exists() for p in runs)
    assert f"would remove: {runs[1]}" in text
    status, text, err = cli("clean", "--keep", "2", "--out", str(out))
    assert status == 0, err
    assert [p.exists() for p in runs] == [True, False, True, True]
    assert (out / "notes").is_dir() and (out / "20261101-000000").is_dir() and elsewhere.is_dir()
    assert "removed 1 run folder, kept the newest 2" in text
    assert cli("clean", "--keep", "0", "--out", str(out))[0] == 2


# --------------------------------------------------------------------------- a complete run


def _one_lab_run(out, name, lab, *, seed=0):
    """A finished run folder holding one lab (from make_run's lab0, renamed)."""
    from runfolders import make_lab

    run_dir = out / name
    run_dir.mkdir(parents=True)
    result = make_lab(run_dir, lab, figures=2)
    result.seed = seed
    result.finished = f"2026-11-{name[6:8]}T10:00:00+00:00"
    result.save(run_dir / lab / "result.json")
    write_json(
        run_dir / "run.json",
        {
            "status": "finished",
            "settings": {"labs": [lab], "seed": seed},
            "labs": [{"lab": lab, "status": "passed", "duration_s": 1.0, "cached": False}],
        },
    )
    return run_dir


@pytest.mark.slow
def test_complete_run_lists_every_installed_lab(tmp_path):
    out = tmp_path / "reports"
    old = _one_lab_run(out, "20261127-100000", "attention", seed=1)
    newer = _one_lab_run(out, "20261128-100000", "attention", seed=2)
    elsewhere = _one_lab_run(tmp_path / "other-out", "20261126-100000", "cnn_receptive")
    current = _one_lab_run(out, "20261129-100000", "rnn_lm")
    installed = {
        "cnn_receptive": "CNN",
        "attention": "Attention",
        "rnn_lm": "RNN",
        "adversarial": "Adversarial",
    }

    added = complete_run(current, installed)
    # results come from this out folder's runs only (not another out folder, not the cache)
    assert [(e.lab, e.status, (e.origin or {}).get("kind")) for e in added] == [
        ("cnn_receptive", "not run", "not run"),
        ("attention", "passed", "earlier run"),
        ("adversarial", "not run", "not run"),
    ]
    run = load_run(current)
    assert not run.incomplete and run.not_run == ["cnn_receptive", "adversarial"]
    by_name = {s.lab: s for s in run.summaries()}
    assert (by_name["attention"].origin, by_name["attention"].origin_run) == ("earlier run", newer.name)
    assert by_name["attention"].seed == 2 and by_name["attention"].date == "28 November 2026"
    assert by_name["rnn_lm"].origin == "this run" and by_name["adversarial"].status == "not run"
    assert by_name["adversarial"].title == "Adversarial"
    # every file is the run's own copy: an edit here never reaches the earlier run
    for fig in ("fig0.png", "fig1.png"):
        copy, original = current / "attention" / "figures" / fig, newer / "attention" / "figures" / fig
        assert copy.read_bytes() == original.read_bytes() and not os.path.samefile(copy, original)
    assert not os.path.samefile(current / "attention" / "result.json", newer / "attention" / "result.json")
    assert old.is_dir() and elsewhere.is_dir()
    # carried over again, a result keeps its first origin
    later = _one_lab_run(out, "20261130-100000", "rnn_lm")
    complete_run(later, installed)
    again = {s.lab: s for s in load_run(later).summaries()}
    assert again["attention"].origin_run == newer.name
    assert again["adversarial"].status == "not run"
    # the rendered report holds every installed lab
    from labrunner.report.render import render_report

    render_report(later, formats=["html"])
    html = (later / "report.html").read_text()
    assert all(f'id="lab-{name.replace("_", "-")}"' in html for name in installed)


def test_complete_run_skips_results_it_cannot_trust(tmp_path):
    out = tmp_path / "reports"
    bad = _one_lab_run(out, "20261128-100000", "attention")
    (bad / "attention" / "result.json").write_text('{"lab": "../../x"}')
    linked = _one_lab_run(out, "20261127-100000", "attention")
    fig = linked / "attention" / "figures" / "fig0.png"
    fig.unlink()
    fig.symlink_to(tmp_path / "secret.png")
    current = _one_lab_run(out, "20261129-100000", "rnn_lm")
    (added,) = complete_run(current, {"attention": "Attention"})
    assert added.status == "not run"


@pytest.mark.slow
def test_a_run_of_some_labs_reports_every_installed_lab(cli, workdir):
    """`labrunner run counter`, then `run failing`: each report lists all three test labs,
    the other labs taken from their most recent run (figures hard-linked) or listed as not run."""
    status, out, err = cli("run", "counter", "--profile", "smoke")
    assert status == 0, err
    first = (workdir / "reports" / "latest").resolve()
    run = load_run(first)
    assert [(lab.lab, lab.status) for lab in run.labs] == [
        ("counter", "passed"),
        ("failing", "not run"),
        ("crashing", "not run"),
    ]
    assert not run.incomplete and run.not_run == ["failing", "crashing"]
    status, out, err = cli("submit", "-o", "hw.zip")
    assert status == 1 and "labs not run: failing, crashing" in err
    assert cli("submit", "-o", "hw.zip", "--partial")[0] == 0

    status, out, err = cli("run", "failing", "--profile", "smoke")
    assert status == 1, err
    second = (workdir / "reports" / "latest").resolve()
    run = load_run(second)
    summaries = {s.lab: s for s in run.summaries()}
    assert summaries["counter"].origin == "earlier run" and summaries["counter"].status == "passed"
    assert summaries["counter"].origin_run == first.name
    assert summaries["failing"].origin == "this run" and summaries["crashing"].status == "not run"
    figure = "counter/figures/steps.png"
    assert (first / figure).read_bytes() == (second / figure).read_bytes()
    assert not os.path.samefile(first / figure, second / figure)  # copied, never linked
    html = (second / "report.html").read_text()
    assert 'id="lab-counter"' in html and 'id="lab-crashing"' in html
    status, out, err = cli("check")
    assert status == 1 and "counter  passed" in out and "crashing  not run" in out


def test_report_md_escapes_raw_html_from_lab_text(tmp_path):
    """Lab text reaches report.md as Markdown with its raw HTML escaped (as report.html
    escapes it); code spans keep their text and math keeps its symbols."""
    from labrunner.report.render import render_report

    run_dir = make_run(tmp_path)
    hostile = "<script>alert(1)</script> <img src=x onerror=alert(2)> `<eos>` $x<y$ 1 < 2"

    def change(d):
        ex = d["exercises"][0]
        ex["question"] = ex["answer"] = hostile
        ex["records"][0]["caption"] = ex["records"][1]["caption"] = hostile
        ex["records"][2]["text"] = hostile
        d["notes"] = [hostile]

    _edit(run_dir / "lab0" / "result.json", change)
    render_report(run_dir, formats=["md"])
    text = (run_dir / "report.md").read_text()
    assert "<script" not in text and "<img" not in text
    assert text.count("&lt;script>alert(1)&lt;/script>") >= 6 and text.count("&lt;img src=x") >= 6
    assert text.count("`<eos>`") == 6 and text.count("$x\\lt y$") == 6 and text.count("1 < 2") >= 6


def test_report_md_copies_its_figures_so_an_edit_stays_where_it_was_made(tmp_path):
    from labrunner.report.render import render_report

    run_dir = make_run(tmp_path, figures=2)
    render_report(run_dir, formats=["md"])
    for name in ("fig0.png", "fig1.png"):
        shown, lab_figure = run_dir / "figures" / "lab0" / name, run_dir / "lab0" / "figures" / name
        assert shown.read_bytes() == lab_figure.read_bytes()
        assert not os.path.samefile(shown, lab_figure)
        with open(shown, "r+b") as fh:
            fh.write(b"edited")
        assert lab_figure.read_bytes()[:4] == b"\x89PNG"
