"""matplotlib's backend is the core's choice: the workers run labs with Agg, and importing a
lab's module leaves the importing process's backend as it was."""

from __future__ import annotations

import pytest
from conftest import run_subprocess

from labrunner.execution.job import child_environment

LAB_MODULES = (
    "labrunner.labs.rnn_lm.figures",
    "labrunner.labs.adversarial.figures",
    "labrunner.labs.cnn_receptive.experiment",
    "labrunner.labs.attention.experiment",
)


def test_workers_run_labs_with_agg(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "TkAgg")
    assert child_environment()["MPLBACKEND"] == "Agg"


@pytest.mark.slow
def test_importing_a_lab_keeps_the_backend():
    code = (
        "import matplotlib\n"
        "matplotlib.use('pdf')\n"
        f"for name in {LAB_MODULES!r}:\n"
        "    __import__(name)\n"
        "print(matplotlib.get_backend())\n"
    )
    out = run_subprocess("-c", code, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "pdf"
