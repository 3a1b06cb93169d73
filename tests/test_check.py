"""`labrunner check`: checks with points and a total; exit 0 only when all pass; --json."""

from __future__ import annotations

import json

from conftest import run_cli
from test_report import make_run

from labrunner.records.results import LabError, LabResult, write_json
from labrunner.records.runfolder import load_run
from labrunner.report.grading import format_grades, grade


def test_grade_counts_points(tmp_path):
    grades = grade(load_run(make_run(tmp_path, labs=2)))
    assert grades["passed"] is False
    assert (grades["checks_passed"], grades["checks_total"]) == (3, 4)
    assert (grades["points"], grades["points_total"]) == (5.0, 8.0)
    assert (grades["labs_passed"], grades["labs_total"]) == (2, 4)
    counter = grades["labs"][2]
    assert counter["lab"] == "counter" and counter["status"] == "failed"
    assert counter["checks"][0] == {
        "exercise": "1. Compare <i>x</i>",
        "name": "value above threshold",
        "passed": False,
        "points": 0.0,
        "points_total": 3.0,
        "expected": "≥ 0.5",
        "actual": 0.1,
        "tolerance": None,
        "message": "",
        "fidelity": "assignment",
        "hidden": False,
    }
    assert grades["labs"][3]["error"]["type"] == "ZeroDivisionError"


def test_format_grades_text(tmp_path):
    text = format_grades(grade(load_run(make_run(tmp_path))))
    lines = text.splitlines()
    assert lines[0] == "lab0  passed  1/1 checks  2/2 check points"
    assert lines[1] == "  * 1. Sums: 1/1 checks passed"
    assert "  PASS  2/2  sum formula" in lines
    assert "  FAIL  0/3  value above threshold  (expected ≥ 0.5, actual 0.1)" in lines
    assert "  ERROR  ZeroDivisionError: division by zero" in lines
    assert lines[-1] == "total: 2/3 checks, 3/6 check points, 1/3 labs passed (NOT all labs passed)"


def _all_passing(run_dir):
    """Keep only the passing lab in the run."""
    info = json.loads((run_dir / "run.json").read_text())
    info["labs"] = info["labs"][:1]
    info["settings"]["labs"] = ["lab0"]
    write_json(run_dir / "run.json", info)


def test_cli_check_exit_status_and_json(tmp_path):
    run_dir = make_run(tmp_path)
    cmd = ["check", str(run_dir)]
    proc = run_cli(*cmd, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "FAIL  0/3  value above threshold" in proc.stdout and "total: 2/3 checks" in proc.stdout

    proc = run_cli(*cmd, "--json", timeout=120)
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert data["passed"] is False and data["points"] == 3.0 and data["points_total"] == 6.0

    _all_passing(run_dir)
    proc = run_cli(*cmd, "--json", timeout=120)
    assert proc.returncode == 0, proc.stdout
    assert json.loads(proc.stdout)["passed"] is True


def test_cli_check_latest_and_bad_folder(tmp_path):
    run_dir = make_run(tmp_path)
    (tmp_path / "reports" / "latest").symlink_to(run_dir.name)
    proc = run_cli("check", cwd=tmp_path, timeout=120)
    assert proc.returncode == 1 and "lab0  passed" in proc.stdout
    proc = run_cli("check", str(tmp_path), timeout=120)
    assert proc.returncode == 2 and "not a run folder" in proc.stderr


def test_an_errored_lab_without_failed_checks_still_fails(tmp_path):
    run_dir = make_run(tmp_path)
    _all_passing(run_dir)
    result = LabResult.load(run_dir / "lab0" / "result.json")
    result.stop(LabError("RuntimeError", "late crash"))
    result.save(run_dir / "lab0" / "result.json")
    grades = grade(load_run(run_dir))
    assert grades["checks_passed"] == grades["checks_total"] and grades["passed"] is False


# --------------------------------------------------------------------------- incomplete runs


def test_a_run_that_is_not_finished_never_passes(cli, tmp_path):
    run_dir = make_run(tmp_path)
    _all_passing(run_dir)
    assert cli("check", str(run_dir))[0] == 0
    info = json.loads((run_dir / "run.json").read_text())
    info["status"] = "running"
    write_json(run_dir / "run.json", info)
    status, out, err = cli("check", str(run_dir))
    assert status == 1 and out == ""
    assert (
        err.strip() == f"labrunner: {run_dir}: incomplete run: run.json says the run is running, not finished"
    )
    status, out, err = cli("check", "--json", str(run_dir))
    data = json.loads(out)
    assert status == 1 and data["passed"] is False and data["complete"] is False
    assert "not finished" in data["incomplete"] and len(err.splitlines()) == 1


def test_a_lab_listed_without_a_result_is_named(cli, tmp_path):
    run_dir = make_run(tmp_path)
    _all_passing(run_dir)
    info = json.loads((run_dir / "run.json").read_text())
    info["settings"]["labs"] += ["attention", "rnn_lm"]  # selected, never finished
    write_json(run_dir / "run.json", info)
    status, out, err = cli("check", str(run_dir))
    assert status == 1
    assert err.splitlines() == [f"labrunner: {run_dir}: incomplete run: no result for labs attention, rnn_lm"]
    grades = grade(load_run(run_dir))
    assert grades["missing"] == ["attention", "rnn_lm"] and grades["passed"] is False


def test_labs_not_run_and_stand_in_points_are_shown_apart(tmp_path):
    run_dir = make_run(tmp_path)
    _all_passing(run_dir)
    result = LabResult.load(run_dir / "lab0" / "result.json")
    result.exercises[0].fidelity = "stand-in"
    result.exercises[0].fidelity_reason = "no ImageNet weights"
    result.save(run_dir / "lab0" / "result.json")
    info = json.loads((run_dir / "run.json").read_text())
    info["labs"].append(
        {"lab": "attention", "status": "not run", "title": "Attention", "origin": {"kind": "not run"}}
    )
    write_json(run_dir / "run.json", info)
    grades = grade(load_run(run_dir))
    assert grades["complete"] is True and grades["passed"] is False and grades["not_run"] == ["attention"]
    assert (grades["points_stand_in"], grades["points_stand_in_total"]) == (2.0, 2.0)
    assert (grades["points_assignment"], grades["points_assignment_total"]) == (0.0, 0.0)
    lab0, attention = grades["labs"]
    assert lab0["fidelity"] == "stand-in" and lab0["stand_ins"] == [
        {"exercise": "1. Sums", "reason": "no ImageNet weights"}
    ]
    assert attention["status"] == "not run" and attention["origin"] == "not run"
    lines = format_grades(grades).splitlines()
    assert lines[0] == "lab0  passed  1/1 checks  2/2 check points (2/2 on stand-ins)  [stand-in]"
    assert lines[1:3] == ["  * 1. Sums: 1/1 checks passed, stand-in", "  PASS  2/2  sum formula  (stand-in)"]
    assert lines[3] == "attention  not run  0/0 checks  0/0 check points"
    assert lines[-1] == (
        "total: 1/1 checks, 2/2 check points (0/0 on the assignment's material, 2/2 on stand-ins), "
        "1/2 labs passed (NOT all labs passed)"
    )


def test_check_lists_labs_in_the_reports_order(tmp_path):
    """report.order (and each lab's own order) decide the report's order; check follows it,
    not the order the labs ran in."""
    from labrunner.report.render import build_view

    run_dir = make_run(tmp_path, labs=2, report={"order": ["crashing", "lab1"]})
    run = load_run(run_dir)
    assert [lab.lab for lab in run.labs] == ["lab0", "lab1", "counter", "crashing"]
    grades = grade(run)
    assert [lab["lab"] for lab in grades["labs"]] == ["crashing", "lab1", "lab0", "counter"]
    assert [lab["lab"] for lab in grades["labs"]] == [view.result.lab for view in build_view(run)["labs"]]
    text = format_grades(grades)
    assert text.index("crashing  error") < text.index("lab1  passed") < text.index("lab0  passed")
