"""A class of about 20 generated submissions graded end to end with re-execution in the
sandbox: correct, partly wrong, tampered after submitting, not reproducible, corrupt, copied
under another seed, and hostile code (a socket, a fork bomb, a full disk, another student's
files, a hang, killing its parent). Every outcome is asserted."""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import zipfile
from pathlib import Path

import pytest
from gradecohort import INSTRUCTOR, make_submission, rewrite_zip

from labrunner.cli import main
from labrunner.course.isolation import detect_isolation

pytestmark = pytest.mark.slow
#: The sandbox users of this test: their own, so that another grading on the machine is not counted.
UID_BASE = 63000 + os.getpid() % 1000 * 3

WRONG_TRIANGLE = ("return n * (n + 1) // 2", "return n * n")
NOT_IMPLEMENTED = ("return n * (n + 1) // 2", 'raise NotImplementedError("not implemented yet: triangle")')
#: Draws from the clock: the run cannot be reproduced.
UNSEEDED = ("return float(rng.random(draws).mean())", "import time; return (time.time_ns() % 1000) / 1000")
#: Ignores the seed it is given: every seed gives the same numbers.
FIXED_SEED = (
    "return float(rng.random(draws).mean())",
    "import numpy; return float(numpy.random.default_rng(7).random(draws).mean())",
)


def _edit(pair):
    old, new = pair
    return lambda text: text.replace(old, new)


def _hostile(code: str):
    """The student's code in a zip with ``code`` in their first solution region (the grader
    runs it when it re-executes the lab)."""
    body = "".join(f"    {line}\n" for line in code.strip().splitlines())

    def change(rel, data):
        if rel == "code/tiny/tinylab/__init__.py":
            text = data.decode()
            assert "    return n * (n + 1) // 2\n" in text
            return text.replace(
                "    return n * (n + 1) // 2\n", body + "    return n * (n + 1) // 2\n"
            ).encode()
        return None

    return change


def _as(author: str, change):
    """``change``, and the report's author set to ``author`` (another student's zip)."""

    def both(rel, data):
        if rel == "run.json":
            info = json.loads(data)
            info["settings"]["report"]["author"] = author
            return json.dumps(info).encode()
        return change(rel, data)

    return both


def _tree(folder: Path, skip: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file() and not p.is_relative_to(skip)
    }


def test_a_class_graded_end_to_end_in_the_sandbox(tmp_path, monkeypatch, capsys):
    isolation = detect_isolation()
    if isolation.kind != "bubblewrap":
        pytest.skip(f"needs bubblewrap: {isolation.warning}")
    monkeypatch.setenv("LABRUNNER_CACHE_DIR", str(tmp_path / "cache"))
    subs = tmp_path / "subs"
    subs.mkdir()
    work = tmp_path / "students"
    work.mkdir()

    def submit(name, **kw):
        zip_path = make_submission(work, name, **kw)
        return shutil.move(zip_path, subs / zip_path.name)

    for i, name in enumerate(["ada", "bea", "cai", "dov", "eli"]):
        submit(name, seed=i)
    submit("fay", seed=5, edit=_edit(WRONG_TRIANGLE))
    submit("gus", seed=6, edit=_edit(NOT_IMPLEMENTED))
    submit("hal", seed=7, edit=_edit(UNSEEDED))
    submit("ivy", seed=8, edit=_edit(FIXED_SEED))
    submit("jon", seed=9, edit=_edit(FIXED_SEED))
    base = make_submission(work, "kim", seed=10)
    good_before = {p.name: p.read_bytes() for p in subs.iterdir()}

    def tamper(rel, data):  # a better mean, and a manifest recomputed to match
        if rel == "tiny/result.json":
            result = json.loads(data)
            result["metrics"]["mean"] = 0.5
            for ex in result["exercises"]:
                if "mean" in ex["metrics"]:
                    ex["metrics"]["mean"] = 0.5
            return json.dumps(result).encode()
        return None

    rewrite_zip(base, subs / "kim.zip", tamper)
    rewrite_zip(base, subs / "lea.zip", _as("lea", tamper), manifest=False)  # edited, manifest left as it was
    (subs / "max.zip").write_bytes((subs / "ada.zip").read_bytes()[:-200])  # cut short

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(0.1)
    port = listener.getsockname()[1]
    other = subs / "ada.zip"
    hostile = {
        "net": f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=5)",
        "fork": "import os, time\nwhile True:\n    if os.fork() == 0:\n        time.sleep(300)\n        os._exit(0)",
        "disk": "import os\nwith open('fill', 'wb') as f:\n    while True:\n        f.write(os.urandom(1 << 20))",
        "disk2": "import os\nfor i in range(10**6):\n    open(f'part{i}', 'wb').write(bytes(4 << 20))",
        "peek": f"STOLEN = open({str(other)!r}, 'rb').read()",
        "hang": "import time\ntime.sleep(10**6)",
        "kill": "import os, signal\ntry:\n    os.kill(os.getppid(), signal.SIGKILL)\nexcept OSError:\n    pass\nos.kill(-1, signal.SIGKILL)",
    }
    for name, code in hostile.items():
        rewrite_zip(base, subs / f"x-{name}.zip", _as(f"x-{name}", _hostile(code)))
    assert len(list(subs.iterdir())) == 20

    out = tmp_path / "grading"
    outside = _tree(tmp_path, out)
    args = ["grade", str(subs), "--out", str(out), "--rerun", "submitted", "--jobs", "3"]
    args += ["--timeout", "90", "--scratch", "64M", "--max-file-size", "16M", "--memory", "4G"]
    args += ["--lab-package", str(INSTRUCTOR), "--uid-base", str(UID_BASE)]
    status = main(args)
    printed = capsys.readouterr().out
    assert status == 1
    listener_got = []
    try:
        listener_got.append(listener.accept())
    except TimeoutError:
        pass
    assert listener_got == []  # nothing reached the host's network
    assert _tree(tmp_path, out) == outside  # no file outside the grading folder changed
    assert {p.name: p.read_bytes() for p in subs.iterdir() if p.name in good_before} == good_before

    grading = json.loads((out / "grading.json").read_text())
    records = {r["zip_name"][:-4]: r for r in grading["submissions"]}
    assert grading["isolation"].startswith("bubblewrap sandbox")
    rows = {row["student"]: row for row in csv.DictReader((out / "gradebook.csv").open())}
    hidden = _has_assign()  # with labrunner assign, the hidden check (1 point) runs too
    full = "5" if hidden else "4"
    assert rows.pop("Points Possible")["total"] == full
    for name in ["ada", "bea", "cai", "dov", "eli"]:
        assert records[name]["status"] == "graded", records[name]
        assert rows[name]["total"] == full and rows[name]["status"] == "graded"
        assert records[name]["labs"]["tiny"]["differences"] == []
    # partly wrong: the triangle check fails, re-executed, reproduced
    assert records["fay"]["status"] == "graded" and rows["fay"]["tiny: 1. Triangle numbers"] == "0"
    # a stub left in place: that exercise is not implemented, the other still scores (with
    # labrunner assign's stubs; without them the stub's error ends the lab: a grading error)
    assert rows["gus"]["tiny: 1. Triangle numbers"] == "0"
    if hidden:
        assert rows["gus"]["tiny: 2. Mean of uniform draws"] == "2"
    else:
        assert records["gus"]["status"] == "error"
        assert "not implemented yet: triangle" in records["gus"]["errors"][0]
    # not reproducible: flagged with the numbers on both sides
    hal = records["hal"]
    assert hal["status"] == "flagged"
    (diff,) = [d for d in hal["labs"]["tiny"]["differences"] if d["name"] == "mean"]
    assert diff["submitted"] != diff["rerun"]
    # tampered after submitting with a new manifest: caught by re-execution, scored from it
    kim = records["kim"]
    assert kim["status"] == "flagged"
    (diff,) = [d for d in kim["labs"]["tiny"]["differences"] if d["kind"] == "metric"]
    assert diff["name"] == "mean" and diff["submitted"] == 0.5 and diff["rerun"] != 0.5
    assert "NOT REPRODUCED" in (out / "feedback" / "kim" / "index.html").read_text()
    results = json.loads((out / "results" / "kim" / "results.json").read_text())
    (rerun_test,) = [t for t in results["tests"] if t["name"] == "tiny · re-execution"]
    assert "submitted 0.5, re-executed" in rerun_test["output"] and rerun_test["visibility"] == "hidden"
    # tampered without a new manifest, and a zip cut short: invalid
    assert records["lea"]["status"] == "invalid" and "does not match its sha256" in records["lea"]["error"]
    assert records["max"]["status"] == "invalid"
    # identical results under different seeds
    cohort = json.loads((out / "cohort.json").read_text())
    groups = [{s["student"] for s in g["students"]} for g in cohort["identical_under_different_seeds"]]
    assert {"ivy", "jon"} in groups
    # with labrunner assign, gus's stub stops only exercise 1: his mean counts too
    assert any(m["metric"] == "mean" and m["n"] == (18 if hidden else 17) for m in cohort["metrics"])

    # hostile code: each one that student's grading error with the reason; the batch went on
    reasons = {name: records[f"x-{name}"]["errors"] for name in hostile}
    for name in reasons:
        assert records[f"x-{name}"]["status"] == "error", (name, records[f"x-{name}"])
        assert rows[records[f"x-{name}"]["student"]]["total"] == "0"
    assert any("Network is unreachable" in e or "Connection refused" in e for e in reasons["net"])
    assert any("Resource temporarily unavailable" in e or "BlockingIOError" in e for e in reasons["fork"])
    assert any("No space left" in e or "SIGXFSZ" in e or "File too large" in e for e in reasons["disk"])
    assert any("No space left" in e or "scratch folder is full" in e for e in reasons["disk2"])
    assert any("No such file or directory" in e for e in reasons["peek"])
    assert any("timed out after 90 s" in e for e in reasons["hang"])
    # its parent is bwrap's, root's, in another PID namespace: nothing it can signal
    assert any("PermissionError" in e or "ProcessLookupError" in e or "SIGKILL" in e for e in reasons["kill"])
    # no process of a sandbox user is left
    users = subprocess.run(["ps", "-eo", "uid="], capture_output=True, text=True).stdout.split()
    assert not [u for u in users if UID_BASE <= int(u) < UID_BASE + 3]
    if hidden:
        ada = json.loads((out / "results" / "ada" / "results.json").read_text())
        assert any(t["visibility"] == "after_published" and t["score"] == 1 for t in ada["tests"])
        fay = json.loads((out / "results" / "fay" / "results.json").read_text())
        (t,) = [t for t in fay["tests"] if t["name"].endswith("triangle of 7")]
        assert t["score"] == 0 and t["visibility"] == "after_published"
    assert "isolation: bubblewrap sandbox" in printed
    assert os.path.isdir(out / "feedback" / "ada")


def _has_assign() -> bool:
    try:
        from labrunner.course.assign import transplant_package  # noqa: F401
    except ImportError:
        return False
    return True


def test_without_bubblewrap_grading_says_so_in_every_output(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LABRUNNER_CACHE_DIR", str(tmp_path / "cache"))
    work = tmp_path / "students"
    work.mkdir()
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.move(make_submission(work, "ada"), subs / "ada.zip")
    out = tmp_path / "grading"
    status = main(["grade", str(subs), "--out", str(out), "--rerun", "submitted", "--sandbox", "rlimits"])
    captured = capsys.readouterr()
    assert status == 0, captured
    assert "warning: NOT SANDBOXED" in captured.err and "WARNING: NOT SANDBOXED" in captured.out
    results = json.loads((out / "results" / "ada" / "results.json").read_text())
    assert "WARNING: NOT SANDBOXED" in results["output"]
    assert "NOT SANDBOXED" in (out / "feedback" / "ada" / "index.html").read_text()
    assert "NOT SANDBOXED" in (out / "cohort.html").read_text()
    assert (
        json.loads((out / "grading.json").read_text())["submissions"][0]["labs"]["tiny"]["differences"] == []
    )
    assert zipfile.ZipFile(subs / "ada.zip").testzip() is None
