"""Start-up stays light: --help, list and plugins import no torch, torchvision or matplotlib."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli, run_subprocess

PROGRAM = """
import sys
from labrunner.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
heavy = sorted(m for m in ("torch", "torchvision", "matplotlib", "numpy", "rich") if m in sys.modules)
print("HEAVY=" + ",".join(heavy), file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [["--help"], ["list"], ["plugins"], ["list", "--json"], ["run", "--help"]])
def test_no_heavy_imports(argv):
    # all plugins load here, the built-in labs included
    proc = run_subprocess("-c", PROGRAM.format(argv=argv), env={"LABRUNNER_PLUGINS": ""})
    heavy = [line for line in proc.stderr.splitlines() if line.startswith("HEAVY=")]
    assert heavy == ["HEAVY="], proc.stderr


def test_version_and_module_entry():
    proc = run_cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.startswith("labrunner ")


def test_list_json_describes_labs(cli):
    status, out, err = cli("list", "--json")
    rows = json.loads(out)
    assert [r["name"] for r in rows] == ["counter", "failing", "crashing"]
    counter = rows[0]
    assert counter["plugin"] == "core_labs"
    assert counter["profiles"] == ["smoke", "quick", "full", "tiny"]
    assert counter["config"]["sizes"] == [1, 2]
