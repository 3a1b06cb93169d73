"""A cached rerun of the lab stays light: the labrunner process (plugin discovery, settings,
cache lookup, the report) imports neither torch, torchvision, matplotlib nor numpy, although
the lab's own modules import them at the top (experiment.py, networks.py)."""

from __future__ import annotations

import re

import pytest
from conftest import run_subprocess

HEAVY = ["matplotlib", "numpy", "torch", "torchvision"]

# sys.modules, not -X importtime: importtime does not list what importlib.import_module
# loads (the plugins, for one)
PROGRAM = """
import sys
from labrunner.cli import main
status = main({argv!r})
loaded = [m for m in ("labrunner.labs.cnn_receptive", "labrunner.report", *{heavy!r}) if m in sys.modules]
print("STATUS", status, "LOADED", ",".join(loaded), file=sys.stderr)
"""


def loaded(argv: list[str], env: dict[str, str], cwd) -> tuple[list[str], str]:
    """The modules of interest the ``labrunner`` command ``argv`` leaves imported, and its output."""
    proc = run_subprocess("-c", PROGRAM.format(argv=argv, heavy=HEAVY), env=env, cwd=cwd)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("STATUS")]
    assert lines and lines[0].startswith("STATUS 0 "), proc.stderr[-3000:]
    return lines[0].split()[-1].split(","), proc.stdout + proc.stderr


@pytest.mark.slow  # runs the lab's smoke profile in a worker, then in this process
def test_a_cached_rerun_imports_no_torch(tmp_path):
    env = {"LABRUNNER_CACHE_DIR": str(tmp_path / "cache"), "LABRUNNER_PLUGINS": ""}  # every plugin loads
    # --device cpu: on a machine with a GPU driver, resolving `auto` asks torch
    run = ["run", "cnn_receptive", "--profile", "smoke", "--device", "cpu", "--threads", "1", "-q"]
    run += ["--out", str(tmp_path / "reports")]
    _, output = loaded(run, env, tmp_path)  # the lab runs in a worker and its result is cached
    assert "cached" not in output
    modules, output = loaded(run, env, tmp_path)
    assert re.search(r"cnn_receptive +passed +\S+ checks +cached", output), output
    # the lab was found and the report made, with no heavy import
    assert modules == ["labrunner.labs.cnn_receptive", "labrunner.report"]
    # the check can fail: the lab run in this very process imports all of them
    modules, output = loaded([*run, "--isolation", "none", "--force"], env, tmp_path)
    assert "cached" not in output and modules[2:] == HEAVY
