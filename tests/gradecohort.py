"""Generated submissions for the grading tests and benchmarks/bench_grade.py.

A submission is made the way a student makes one: the student's version of the tiny lab
(``tests/grading/student/tinylab``, edited per student) run in this process, then
``labrunner submit``. :func:`rewrite_zip` edits a zip after submitting and writes a new
manifest, as a student who tampers with a result would.
"""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).parent / "grading"
INSTRUCTOR = HERE / "instructor" / "tinylab"
STUDENT = HERE / "student" / "tinylab"


def student_code(folder: Path, edit: Callable[[str], str] | None = None) -> Path:
    """A copy of the student version in ``folder/tinylab``, its text passed through ``edit``."""
    target = folder / "tinylab"
    shutil.copytree(STUDENT, target, ignore=shutil.ignore_patterns("__pycache__"))
    if edit is not None:
        init = target / "__init__.py"
        init.write_text(edit(init.read_text(encoding="utf-8")), encoding="utf-8")
    return folder


def make_submission(
    work: Path,
    student: str,
    *,
    seed: int = 0,
    profile: str = "smoke",
    edit: Callable[[str], str] | None = None,
) -> Path:
    """Run the (edited) student version of the tiny lab as ``student`` and submit it; returns
    the zip ``work/<student>.zip``."""
    import os

    import labrunner
    from labrunner.settings.plugins import load_plugins

    home = work / f".{student}"
    plugins_dir = student_code(home, edit)
    old = os.environ.get("LABRUNNER_PLUGINS")
    os.environ["LABRUNNER_PLUGINS"] = "tinylab"
    try:
        plugins = load_plugins([plugins_dir])
        run = labrunner.run(
            ["tiny"],
            plugins=plugins,
            profile=profile,
            seed=seed,
            isolation="none",
            out=home / "reports",
            author=student,
            report=True,
        )
        dest = work / f"{student}.zip"
        labrunner.Run(run.path, plugins=plugins).submit(dest)
    finally:
        if old is None:
            os.environ.pop("LABRUNNER_PLUGINS", None)
        else:
            os.environ["LABRUNNER_PLUGINS"] = old
    return dest


def rewrite_zip(
    src: Path, dest: Path, change: Callable[[str, bytes], bytes | None], *, manifest: bool = True
) -> Path:
    """Copy a submission zip, ``change(path inside its folder, data)`` giving new bytes (or
    None to keep them), and, with ``manifest``, write a manifest that matches."""
    with zipfile.ZipFile(src) as zin:
        names = zin.namelist()
        root = names[0].split("/", 1)[0]
        files = {n.split("/", 1)[1]: zin.read(n) for n in names if not n.endswith("/")}
    for rel in list(files):
        if rel != "MANIFEST.sha256":
            new = change(rel, files[rel])
            if new is not None:
                files[rel] = new
    if manifest:
        lines = [
            f"{hashlib.sha256(d).hexdigest()}  {rel}" for rel, d in files.items() if rel != "MANIFEST.sha256"
        ]
        files["MANIFEST.sha256"] = ("\n".join(lines) + "\n").encode()
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as zout:
        for rel, data in files.items():
            zout.writestr(f"{dest.stem}/{rel}" if root != dest.stem else f"{root}/{rel}", data)
    return dest
