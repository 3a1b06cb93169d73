"""`labrunner grade` without re-execution: verify, score, gradebook, results.json, feedback,
cohort, resuming; and the parts of grading that need no lab to run."""

from __future__ import annotations

import csv
import json
import zipfile

import pytest
from gradecohort import rewrite_zip
from test_report import make_run

from labrunner.cli import main
from labrunner.course.bundle import make_bundle
from labrunner.course.grade import GradeOptions, grade
from labrunner.course.gradeout import cohort
from labrunner.course.graderecords import LabGrade, Submission
from labrunner.course.scoring import compare
from labrunner.course.submissions import safe_id
from labrunner.records.results import RunFileError


def _zip(tmp_path, name, author="", edit=None):
    """A submission zip of make_run's run (labs lab0, counter, crashing), by ``author`` (none:
    the file name identifies the student)."""
    run_dir = make_run(tmp_path / f"run-{name}")
    info = json.loads((run_dir / "run.json").read_text())
    info["settings"]["report"].update(author=author, student_id="")
    (run_dir / "run.json").write_text(json.dumps(info))
    if edit is not None:
        edit(run_dir)
    dest = tmp_path / "subs" / f"{name}.zip"
    dest.parent.mkdir(exist_ok=True)
    make_bundle(run_dir, dest, partial=True, allow_stand_ins=True)
    return dest


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Ada Lovelace", "Ada_Lovelace"),
        ("../../etc/passwd", "etc_passwd"),
        ("..", "student"),
        ("", "student"),
        ("-rf", "rf"),
        ("Zoë ☃", "Zo"),
        ("a" * 100, "a" * 64),
    ],
)
def test_student_ids_are_safe_file_names(text, expected):
    assert safe_id(text) == expected


def test_grading_without_rerun_writes_every_output(tmp_path, capsys):
    good = _zip(tmp_path, "ada", author="Ada Lovelace")
    _zip(tmp_path, "bob-hw2")
    corrupt = tmp_path / "subs" / "carl.zip"
    corrupt.write_bytes(good.read_bytes()[:300])
    tampered = rewrite_zip(good, tmp_path / "subs" / "dan.zip", lambda rel, d: None, manifest=False)
    with zipfile.ZipFile(tampered, "a") as zf:  # a file added after the manifest was written
        zf.writestr("dan/lab0/extra.txt", "x")
    out = tmp_path / "grading"
    status = main(["grade", str(tmp_path / "subs"), "--out", str(out), "-q"])
    printed = capsys.readouterr().out
    assert status == 1  # two invalid zips
    assert "graded 4 submissions: 2 graded, 2 invalid" in printed
    rows = list(csv.reader((out / "gradebook.csv").open()))
    header, possible, *students = rows
    assert header[0] == "student" and header[-4:] == ["total", "max_total", "status", "flags"]
    assert possible[0] == "Points Possible"
    by_name = {row[0]: dict(zip(header, row, strict=True)) for row in students}
    assert set(by_name) == {"Ada_Lovelace", "bob-hw2", "carl", "dan"}  # author, else the file name
    ada = by_name["Ada_Lovelace"]
    assert ada["status"] == "graded" and float(ada["total"]) > 0
    assert by_name["carl"]["status"] == "invalid" and "not a readable zip" in by_name["carl"]["flags"]
    assert by_name["dan"]["status"] == "invalid" and "not in the manifest" in by_name["dan"]["flags"]
    exercise_cols = header[1:-4]
    assert all(":" in c for c in exercise_cols)
    assert sum(float(ada[c]) for c in exercise_cols if ada[c]) == float(ada["total"])

    results = json.loads((out / "results" / "Ada_Lovelace" / "results.json").read_text())
    assert set(results) >= {"score", "max_score", "tests", "output"}
    assert results["score"] == float(ada["total"])
    for test in results["tests"]:
        assert set(test) >= {"name", "score", "max_score", "output", "visibility"}
        assert test["visibility"] in ("visible", "hidden", "after_published", "after_due_date")
    assert sum(t["score"] for t in results["tests"]) == results["score"]
    page = (out / "feedback" / "Ada_Lovelace" / "index.html").read_text()
    assert "Ada_Lovelace" in page and "<script>" not in page  # a check name with <script> is escaped
    assert (out / "feedback" / "Ada_Lovelace" / "report.html").is_file()
    assert (out / "cohort.html").is_file() and json.loads((out / "cohort.json").read_text())["metrics"]

    # Resumable: the same zips are not graded again; a changed zip is; --regrade grades all.
    before = (out / "grading.json").read_text()
    status = main(["grade", str(tmp_path / "subs"), "--out", str(out)])
    assert "(4 unchanged since the last grading, not graded again)" in capsys.readouterr().out
    assert json.loads((out / "grading.json").read_text())["submissions"] == json.loads(before)["submissions"]
    main(["grade", str(tmp_path / "subs"), "--out", str(out), "--regrade"])
    assert "unchanged since" not in capsys.readouterr().out


def test_grading_leaves_the_submissions_alone(tmp_path):
    zips = [_zip(tmp_path, "ada", author="ada"), _zip(tmp_path, "bob", author="bob")]
    before = {p: p.read_bytes() for p in zips}
    grade([tmp_path / "subs"], GradeOptions(out=tmp_path / "grading"))
    assert {p: p.read_bytes() for p in zips} == before
    assert sorted(p.name for p in (tmp_path / "subs").iterdir()) == ["ada.zip", "bob.zip"]


def test_two_zips_of_one_student_are_both_kept_and_flagged(tmp_path):
    _zip(tmp_path, "first", author="ada")
    _zip(
        tmp_path,
        "second",
        author="ada",
        edit=lambda d: (d / "lab0" / "figures" / "fig0.png").write_bytes(b"x"),
    )
    records = grade([tmp_path / "subs"], GradeOptions(out=tmp_path / "grading")).records
    assert len({r.student for r in records}) == 2
    assert all(r.status == "flagged" and "2 submissions for ada" in r.flags for r in records)


def test_bad_input_is_one_line_and_status_2(tmp_path, capsys):
    assert main(["grade", str(tmp_path / "missing"), "--out", str(tmp_path / "g")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["grade", str(tmp_path / "empty"), "--out", str(tmp_path / "g")]) == 2
    assert "no submission zips" in capsys.readouterr().err
    good = _zip(tmp_path, "ada")
    assert main(["grade", str(good), "--out", str(tmp_path / "g"), "--jobs", "0"]) == 2
    assert main(["grade", str(good), "--out", str(tmp_path / "g"), "--memory", "lots"]) == 2
    assert "--memory 'lots'" in capsys.readouterr().err
    assert not (tmp_path / "g").exists()


def _result(metrics, claims=(), checks=()):
    return {
        "metrics": metrics,
        "exercises": [
            {
                "title": "1",
                "claims": [{"name": n, "holds": h} for n, h in claims],
                "checks": [
                    {"name": n, "passed": p, "actual": a, "tolerance": t, "points": 1.0}
                    for n, p, a, t in checks
                ],
            }
        ],
    }


def test_compare_finds_each_kind_of_difference_with_both_numbers():
    a = _result({"x": 1.0, "y": 2.0}, [("c", True)], [("k", True, 0.50, "±0.1"), ("e", True, 3, None)])
    assert compare(a, a, 1e-6, 1e-9) == []
    same_within_tol = _result(
        {"x": 1.0 + 1e-9, "y": 2.0}, [("c", True)], [("k", True, 0.55, "±0.1"), ("e", True, 3, None)]
    )
    assert compare(a, same_within_tol, 1e-6, 1e-9) == []
    b = _result({"x": 1.5, "z": 0.0}, [("c", False)], [("k", True, 0.70, "±0.1"), ("e", False, 4, None)])
    diffs = {(d.kind, d.name): d for d in compare(a, b, 1e-6, 1e-9)}
    assert diffs[("metric", "x")].submitted == 1.0 and diffs[("metric", "x")].rerun == 1.5
    assert ("metric", "y") in diffs and ("metric", "z") in diffs  # missing on one side
    assert diffs[("claim", "1 / c")].rerun is False
    assert diffs[("check value", "1 / k")].tolerance == "±0.1"
    assert diffs[("check", "1 / e")].submitted == "passed"


def test_cohort_finds_outliers_and_identical_results_under_other_seeds():
    def record(student, seed, value):
        result = {
            "seed": seed,
            "metrics": {"m": value},
            "exercises": [{"claims": [{"name": "c", "holds": value > 0}]}],
        }
        return Submission(student=student, labs={"lab": LabGrade(submitted=result)})

    records = [record(f"s{i}", i, 1.0 + 0.01 * i) for i in range(10)]
    records += [record("copy", 99, 1.0 + 0.01 * 3), record("odd", 5, 50.0)]
    c = cohort(records)
    (m,) = c["metrics"]
    assert m["n"] == 12 and [o["student"] for o in m["outliers"]] == ["odd"]
    (group,) = c["identical_under_different_seeds"]
    assert {s["student"] for s in group["students"]} == {"s3", "copy"}
    assert c["claims"] == [{"lab": "lab", "claim": "c", "n": 12, "holds": 12}]


def test_a_graded_zip_is_read_back_from_its_state_and_a_bad_state_is_graded_again(tmp_path):
    _zip(tmp_path, "ada", author="ada")
    out = tmp_path / "grading"
    first = grade([tmp_path / "subs"], GradeOptions(out=out))
    (state,) = (out / ".state").iterdir()
    text = state.read_text()
    record = Submission.from_json(json.loads(text), str(state))
    assert record == first.records[0] and record.status == "graded"
    assert json.dumps(record.to_json(), default=str) == text  # written through the record
    again = grade([tmp_path / "subs"], GradeOptions(out=out))
    assert again.reused == 1 and again.records == first.records

    data = json.loads(text)
    data["labs"]["lab0"]["exercises"][0]["earned"] = "all of it"
    with pytest.raises(
        RunFileError, match=r"state\.labs\.lab0\.exercises\[0\]\.earned: expected a finite number"
    ):
        Submission.from_json(data, "state")
    data = json.loads(text)
    data["labs"]["lab0"]["submitted"]["exercises"][0]["checks"][0]["passed"] = "yes"  # an edited result
    with pytest.raises(RunFileError, match="passed"):
        Submission.from_json(data, "state")
    state.write_text(json.dumps(data))
    third = grade([tmp_path / "subs"], GradeOptions(out=out))
    assert third.reused == 0 and third.records == first.records  # graded again from the zip


def test_two_copies_of_one_zip_each_have_their_own_work_folder(tmp_path):
    first = _zip(tmp_path, "ada", author="ada")
    (tmp_path / "subs" / "ada-again.zip").write_bytes(first.read_bytes())
    records = grade([tmp_path / "subs"], GradeOptions(out=tmp_path / "grading", jobs=2)).records
    assert [r.status for r in records] == ["flagged", "flagged"]  # two submissions for ada
    assert records[0].zip_sha256 == records[1].zip_sha256
    assert len({r.folder for r in records}) == 2  # re-executions of the two never share a folder
