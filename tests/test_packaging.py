"""An installed wheel carries the built-in labs and the templates."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_contains_labs_and_templates(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("labrunner-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for lab in ("cnn_receptive", "adversarial", "rnn_lm", "attention"):
        assert f"labrunner/labs/{lab}/__init__.py" in names
    for template in (
        "new/lab.py.j2",
        "new/pyproject.toml.j2",
        "new/test_lab.py.j2",
        "report.html.j2",
        "report.md.j2",
    ):
        assert f"labrunner/templates/{template}" in names, template
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "labrunner = labrunner.cli:main" in text
    assert "[pytest11]" in text
    assert not [n for n in names if n.startswith(("tests/", "reports/", "benchmarks/"))]
