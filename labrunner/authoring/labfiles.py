"""The files a lab is made of: its source files (their hash and the lab's cache key) and, for a
student version, the student's answer file."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from ..base.hashing import sha256_file, stable_hash
from ..base.version import __version__
from ..records.answers import RUN_FILE, read_answer_file
from ..records.results import LabResult, write_atomic
from .lab import Lab

#: The files of a lab package that decide its results: code, templates, texts.
SOURCE_SUFFIXES = (".py", ".j2", ".md")


def lab_source_files(lab: Lab) -> list[Path]:
    """The files a lab's results depend on: its package's .py/.j2/.md files (the module
    file alone for a lab defined in a single-file plugin)."""
    module = sys.modules.get(type(lab).__module__)
    file = getattr(module, "__file__", None)
    if not file:
        return []
    file_path = Path(file)
    package = sys.modules.get(getattr(module, "__package__", "") or "")
    roots = [Path(p) for p in getattr(package, "__path__", []) or []]
    if getattr(module, "__path__", None):  # the lab is defined in a package's __init__
        roots = [file_path.parent]
    if not roots:
        return [file_path]
    files = []
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.suffix in SOURCE_SUFFIXES and path.is_file() and "__pycache__" not in path.parts:
                files.append(path)
    return files


def source_hash(lab: Lab) -> str:
    """A hash of the contents of :func:`lab_source_files` and their names relative to one
    another (not where they are installed): editing a lab or its template changes it."""

    files = lab_source_files(lab)
    base = Path(os.path.commonpath(files)) if files else Path()
    if len(files) == 1:
        base = files[0].parent
    digests = {}
    for path in files:
        try:
            digests[path.relative_to(base).as_posix()] = sha256_file(path)
        except OSError:
            digests[path.relative_to(base).as_posix()] = "unreadable"
    return stable_hash(digests)


def cache_key(
    lab: Lab, config: dict[str, Any], seed: int, device: str, deterministic: bool, source: str = ""
) -> str:
    """The key under which a lab's result is cached."""
    return stable_hash(
        {
            "lab": lab.name,
            "version": lab.version,
            "source": source,
            "config": config,
            "seed": seed,
            "device_type": device.split(":")[0],
            "deterministic": deterministic,
            "labrunner": __version__,
        }
    )


def answer_file_of(lab: Lab) -> Path | None:
    """Where the student version of ``lab`` keeps its answers: ``answers/<lab>.md`` beside
    its package (the folder ``labrunner assign`` wrote), or None for a lab that is no student
    version."""
    parts = type(lab).__module__.split(".")
    package = None
    for end in range(len(parts), 0, -1):  # the innermost package that is a student version
        candidate = sys.modules.get(".".join(parts[:end]))
        if candidate is not None and getattr(candidate, "__labrunner_assigned_from__", None):
            package = candidate
            break
    if package is None:
        return None
    file = getattr(package, "__file__", None)
    if not file:
        return None
    return Path(file).resolve().parent.parent / "answers" / f"{lab.name}.md"


def copy_answers(run_dir: Path, labs: list[Lab], results: list[LabResult], warn: Any = None) -> None:
    """Copy each student-answered lab's answer file into its folder of the run."""

    by_name = {lab.name: lab for lab in labs}
    for result in results:
        if result.lab not in by_name:
            continue
        path = answer_file_of(by_name[result.lab])
        if path is None or not path.is_file():
            continue
        try:
            text = read_answer_file(path)
        except Exception as exc:  # a bad answer file is flagged as no answer, the run goes on
            if warn is not None:
                warn(str(exc))
            continue
        if (run_dir / result.lab).is_dir():
            write_atomic(run_dir / result.lab / RUN_FILE, text)
