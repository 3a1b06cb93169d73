"""The round trip of the four built-in labs: assign them, run the student version (every
stubbed exercise "not implemented yet", exit 1, a report), put the solutions back into the
stubs, and get the instructor's metrics back exactly (smoke profile)."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import run_cli

from labrunner.course.assign import assign, locate_package, transplant_package
from labrunner.course.markers import find_regions

LABS = ("cnn_receptive", "adversarial", "rnn_lm", "attention")
#: Metrics that time something: they differ from run to run, the others must not.
TIMED = re.compile(r"ms_per|_ms$|per_s$|us_per|time|cost_per_token")


def test_the_built_in_labs_mark_what_students_write():
    regions = {}
    for lab in LABS:
        root = locate_package(f"labrunner.labs.{lab}")
        regions[lab] = [
            r.label
            for path in sorted(root.glob("*.py"))
            for r in find_regions(path.read_text(encoding="utf-8"), path.name)
            if r.kind == "solution"
        ]
    assert regions["cnn_receptive"] == ["the receptive-field recurrence (j, r and start after one layer)"]
    assert regions["adversarial"] == [
        "AlexNet's layers",
        "AlexNet's forward pass",
        "the targeted attack loop",
        "Adam's step on the L1-penalised loss",
    ]
    assert sorted(regions["rnn_lm"]) == [
        "the LSTM training step batched over replicas (rnn_lm.batch_seeds=true)",
        "the LSTM training step: forward, loss, backward, clipping, update",
        "the samplers: greedy, temperature, top-k, top-p",
        "the truncation of truncated BPTT",
    ]
    assert sorted(regions["attention"]) == [
        "self-attention",
        "the FFN with nn.Conv1d(kernel_size=1)",
        "the FFN with nn.Linear",
        "the FFN with torch.func.vmap",
        "the attention scores",
        "the permutation-invariant readout",
    ]


def test_assign_the_built_in_labs(tmp_path):
    packages = assign([f"labrunner.labs.{lab}" for lab in LABS], tmp_path / "hw")
    assert [p.name for p in packages] == list(LABS)
    for path in (tmp_path / "hw").rglob("*.py"):
        ast.parse(path.read_text(encoding="utf-8"))
    for lab in LABS:
        answers = (tmp_path / "hw" / "answers" / f"{lab}.md").read_text()
        assert answers.count("\n## ") >= 3
        text = (tmp_path / "hw" / lab / "text.py").read_text()
        assert "the student writes this answer" in text
    geometry = (tmp_path / "hw" / "cnn_receptive" / "geometry.py").read_text()
    assert "jump=a.jump * stride" not in geometry


def labrunner(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """``python -m labrunner ARGS`` in a fresh interpreter (a run of four labs takes minutes)."""
    return run_cli(*args, env=env, cwd=cwd, timeout=1800)


def metrics(run_dir: Path, lab: str) -> dict:
    return json.loads((run_dir / lab / "result.json").read_text())["metrics"]


@pytest.mark.slow
def test_round_trip_student_version_then_solutions_back(tmp_path):
    env = {"LABRUNNER_CACHE_DIR": str(tmp_path / "cache")}
    common = ("--profile", "smoke", "--threads", "1", "-q")

    # the instructor's version (the built-in labs); it also trains the adversarial stand-in once
    done = labrunner("run", *LABS, *common, "--out", str(tmp_path / "teacher"), env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    teacher = (tmp_path / "teacher" / "latest").resolve()

    hw = tmp_path / "hw"
    done = labrunner("assign", *(f"labrunner.labs.{lab}" for lab in LABS), "--out", str(hw), cwd=tmp_path)
    assert done.returncode == 0, done.stderr

    # the student's version: every exercise with a stub in its way says so, the run exits 1
    done = labrunner(
        "run",
        *LABS,
        *common,
        "--plugins-dir",
        str(hw),
        "--out",
        str(tmp_path / "student"),
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    student = (tmp_path / "student" / "latest").resolve()
    for lab in LABS:
        result = json.loads((student / lab / "result.json").read_text())
        assert result["status"] == "failed", (lab, result.get("error"))
        assert result["error"] is None
        stubbed = [ex["title"] for ex in result["exercises"] if ex["not_implemented"]]
        assert stubbed, lab
        for ex in result["exercises"]:
            if ex["not_implemented"]:
                assert ex["not_implemented"].startswith("not implemented yet: ")
        assert (student / lab / "answers.md").is_file()
    html = (student / "report.html").read_text()
    assert html.count("Not implemented yet:</strong>") >= 10 and "No answer yet:" in html
    # the model answers are not in the student's report
    assert "Answer</h4>" not in html
    check = labrunner("check", str(student), env=env, cwd=tmp_path)
    assert check.returncode == 1 and "  TODO  " in check.stdout and "ANSWER" in check.stdout

    # the solutions back into the stubs: the instructor's metrics again (timings aside)
    back = tmp_path / "back"
    back.mkdir()
    for lab in LABS:
        transplant_package(hw / lab, locate_package(f"labrunner.labs.{lab}"), back / lab)
    shutil.copytree(hw / "answers", back / "answers")
    done = labrunner(
        "run",
        *LABS,
        *common,
        "--plugins-dir",
        str(back),
        "--out",
        str(tmp_path / "restored"),
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode in (0, 1), done.stderr  # 1: the answers are the student's to write
    restored = (tmp_path / "restored" / "latest").resolve()
    for lab in LABS:
        result = json.loads((restored / lab / "result.json").read_text())
        assert result["status"] == "passed", lab
        assert not any(ex["not_implemented"] for ex in result["exercises"])
        mine, theirs = metrics(restored, lab), metrics(teacher, lab)
        assert set(mine) == set(theirs)
        same = {k: v for k, v in mine.items() if not TIMED.search(k)}
        assert same == {k: v for k, v in theirs.items() if not TIMED.search(k)}, lab
        assert len(same) >= 0.8 * len(mine)
