"""The example notebook, executed by a real Jupyter kernel (nbclient + ipykernel).

It runs the four labs in the smoke profile, displays the run, a lab and an exercise
inline, reruns one lab with a changed setting and builds the zip; the test reads the
outputs the kernel produced.
"""

from __future__ import annotations

import html
import os
import queue
import re
import shutil
import time
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "assignment2.ipynb"

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")


def _frames(cell) -> list[str]:
    """The inline report frames a cell displayed (progress bars are HTML outputs too)."""
    return [
        o["data"]["text/html"]
        for o in cell.get("outputs", [])
        if "labrunner-inline" in o.get("data", {}).get("text/html", "")
    ]


def _text(cell) -> str:
    parts = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            parts.append(o["text"])
        elif "text/plain" in o.get("data", {}):
            parts.append(o["data"]["text/plain"])
    return "".join(parts)


def _srcdoc(frame: str) -> str:
    match = re.search(r'srcdoc="([^"]*)"', frame)
    assert match, frame[:300]
    return html.unescape(match.group(1))


def test_the_repository_copy_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None


@pytest.mark.slow
def test_the_example_notebook_runs_in_a_real_kernel(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(NOTEBOOK, work / NOTEBOOK.name)
    monkeypatch.setenv("LABRUNNER_PROFILE", "smoke")
    monkeypatch.setenv("LABRUNNER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(work / NOTEBOOK.name, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=600,
        iopub_timeout=60,  # a busy machine can deliver a cell's output after its reply
        kernel_name="python3",
        resources={"metadata": {"path": str(work)}},
    )
    client.execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors

    # the run displays as the whole report: every lab, figures embedded, math as MathML
    (run_frame,) = _frames(code[2])
    report = _srcdoc(run_frame)
    assert report.startswith("<!DOCTYPE html>")
    for title in ("receptive", "adversarial", "language model", "attention"):
        assert title in report.lower()
    assert "data:image/png;base64," in report and "<math" in report
    assert "<script>" not in report.lower()

    # the table of labs printed from Python values
    listing = _text(code[3])
    for name in ("cnn_receptive", "adversarial", "rnn_lm", "attention"):
        assert re.search(rf"^{name}\s+passed\b", listing, re.M), listing

    # an exercise, then the rerun lab, each its own fragment of the report
    (exercise_frame,) = _frames(code[4])
    exercise = _srcdoc(exercise_frame)
    assert 'class="exercise"' in exercise and "Question" in exercise
    (lab_frame,) = _frames(code[5])
    lab = _srcdoc(lab_frame)
    assert 'class="lab' in lab and "rnn_lm" in lab

    # the zip was built next to the notebook, not in the source tree
    printed = _text(code[6]).split()
    assert printed[-1].endswith("submission.zip")
    assert (work / "submission.zip").is_file()
    assert (work / "reports" / "latest" / "report.html").is_file()


@pytest.mark.slow
def test_interrupting_the_kernel_stops_the_run_and_keeps_finished_labs(tmp_path):
    """The notebook's interrupt button (SIGINT to the kernel) stops labrunner.run as Ctrl-C
    does: the lab that finished is kept and the run says it was interrupted."""
    from conftest import TEST_PLUGINS, lab_saved
    from jupyter_client.manager import start_new_kernel

    env = {**os.environ, "LABRUNNER_CACHE_DIR": str(tmp_path / "cache"), "LABRUNNER_PLUGINS": "core_labs"}
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(tmp_path), env=env)
    try:
        # failing finishes at once; counter sleeps 5 s a step: interrupt it while it runs, once
        # failing has finished (the two may run side by side)
        code = (
            "import labrunner\n"
            f"run = labrunner.run(['failing', 'counter'], profile='smoke', plugins_dir=[{str(TEST_PLUGINS)!r}],"
            " settings={'counter.sleep_s': 5.0, 'counter.steps': 20})\n"
        )
        msg_id = client.execute(code)
        seen = ""
        deadline = time.monotonic() + 300
        while (
            not ("counter: running" in seen and lab_saved(tmp_path, "failing"))
            and time.monotonic() < deadline
        ):
            try:
                content = client.get_iopub_msg(timeout=5).get("content", {})
            except queue.Empty:
                continue
            seen += content.get("text", "") + str(content.get("data", {}).get("text/plain", ""))
        assert "counter: running" in seen and lab_saved(tmp_path, "failing"), seen[-2000:]
        time.sleep(1.0)
        manager.interrupt_kernel()
        reply = client.get_shell_msg(timeout=120)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = client.get_shell_msg(timeout=120)
        assert reply["content"]["status"] == "ok", reply["content"]  # no KeyboardInterrupt traceback

        printed: list[str] = []
        client.execute_interactive(
            "print(run.interrupted, run.status, run.exit_status, run.labs['failing'].status)",
            timeout=60,
            output_hook=lambda msg: printed.append(msg["content"].get("text", "")),
        )
        assert "".join(printed).split() == ["True", "interrupted", "130", "failed"]
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
