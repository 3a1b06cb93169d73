"""An installed wheel carries the built-in labs and the templates."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Never copied: build output, caches and version control (the build must not need them).
NOT_COPIED = shutil.ignore_patterns(
    ".git", "build", "dist", "*.egg-info", "__pycache__", ".*cache", ".hypothesis", "reports", "*.zip"
)


def source_copy(tmp_path: Path) -> Path:
    """The checkout's files in a temporary folder: building writes build/ and *.egg-info next
    to pyproject.toml, which must not happen in the source tree."""
    copy = tmp_path / "src"
    shutil.copytree(ROOT, copy, ignore=NOT_COPIED, symlinks=True)
    return copy


@pytest.mark.slow
def test_wheel_contains_labs_and_templates(tmp_path):
    source = source_copy(tmp_path)
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
            str(tmp_path / "wheels"),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (wheel,) = (tmp_path / "wheels").glob("labrunner-*.whl")
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
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert (source / "build").is_dir()  # the build did write next to pyproject.toml: in the copy


def test_the_copy_leaves_out_build_output_and_caches(tmp_path):
    assert NOT_COPIED(str(tmp_path), ["build", "labrunner.egg-info", ".pytest_cache", "labs", "x.py"]) == {
        "build",
        "labrunner.egg-info",
        ".pytest_cache",
    }
