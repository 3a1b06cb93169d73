"""Import another checkout of labrunner in a benchmark's subprocess.

The project maps ``labs/`` to ``labrunner.labs`` and ``templates/`` to ``labrunner.templates``
(pyproject.toml), so ``PYTHONPATH=/path/to/checkout`` alone would take the labs and the
templates from wherever labrunner is installed. :func:`import_root` builds a folder whose
``labrunner`` package is the checkout's, from symbolic links, and :func:`check_import_root`
makes sure a Python started with it imports that checkout's code.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PACKAGES = {"labrunner": "labrunner", "labrunner.labs": "labs", "labrunner.templates": "templates"}


def import_root(source: Path, into: Path) -> Path:
    """A new folder ``into`` to put first on PYTHONPATH so that ``import labrunner`` (its labs
    and templates included) comes from the checkout ``source``; returns ``into``."""
    source = source.resolve()
    package = into / "labrunner"
    package.mkdir(parents=True)
    for entry in (source / "labrunner").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for name in ("labs", "templates"):
        (package / name).symlink_to(source / name)
    return into


def check_import_root(root: Path, source: Path) -> None:
    """Exit with a message unless a Python with ``root`` on PYTHONPATH imports every package
    of labrunner from ``source``."""
    program = "import importlib\n" + "".join(
        f"print(importlib.import_module({name!r}).__file__)\n" for name in PACKAGES
    )
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, cwd=root)
    files = [Path(line).resolve() for line in proc.stdout.split()]
    expected = [source.resolve() / folder for folder in PACKAGES.values()]
    if (
        proc.returncode != 0
        or len(files) != len(expected)
        or any(not f.is_relative_to(e) for f, e in zip(files, expected, strict=False))
    ):
        sys.exit(f"PYTHONPATH={root} does not import labrunner from {source}:\n{proc.stdout}{proc.stderr}")
