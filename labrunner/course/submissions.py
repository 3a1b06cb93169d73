"""The submissions of a grading: finding the zips, verifying each against its manifest
(streaming, bounded memory) and reading its run, its labs' results and code into a
:class:`~.graderecords.Submission`."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import zipfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..base.errors import UsageError
from ..base.hashing import sha256_file
from ..records.results import RunFileError
from .bundle import CHUNK, CODE_JSON, BundleError, verify_bundle
from .graderecords import LabGrade, Submission

#: A student's identity as it appears in file names: letters, digits, '.', '_', '-'.
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_id(text: str) -> str:
    """``text`` as a file name: runs of other characters become '_', no leading '.' or '-',
    at most 64 characters; "student" when nothing is left."""
    clean = _UNSAFE.sub("_", text.strip()).strip("._-")[:64].rstrip("._-")
    return clean or "student"


def find_submissions(inputs: Sequence[Path]) -> list[Path]:
    """The zips to grade: each input is a zip or a folder of zips (not searched deeper)."""
    found: list[Path] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            found += sorted(p for p in item.iterdir() if p.suffix.lower() == ".zip" and p.is_file())
        elif item.is_file():
            found.append(item)
        else:
            raise UsageError(f"{item}: no such file or folder")
    if not found:
        raise UsageError(f"no submission zips in {', '.join(str(i) for i in inputs)}")
    seen: set[Path] = set()
    unique = []
    for path in found:
        if path.resolve() not in seen:
            seen.add(path.resolve())
            unique.append(path)
    return unique


def read_submission(zip_path: Path, work: Path) -> Submission:
    """Verify one zip and read it: a submission ``"read"`` (each lab's submitted result as
    JSON, its code's description, the run's settings) or ``"invalid"`` with its error. The
    files grading needs (run.json, results, code, report.html) are extracted below
    ``work/<digest>/``."""
    digest = sha256_file(zip_path)
    found = Submission(
        zip=str(zip_path), zip_name=zip_path.name, zip_sha256=digest, student=safe_id(zip_path.stem)
    )
    try:
        found = replace(found, files=verify_bundle(zip_path))
    except BundleError as exc:
        return found.invalid(f"the zip does not verify: {exc}")
    try:
        root = _extract(zip_path, work / _work_folder(zip_path, digest))
        from ..records.runfolder import load_run

        run = load_run(root / "submitted")
    except (RunFileError, UsageError, OSError, ValueError) as exc:
        return found.invalid(f"the run in the zip cannot be read: {exc}")
    who = run.meta.get("student_id") or run.meta.get("author") or ""
    if who.strip():
        found = replace(found, student=safe_id(who), identity_from="report")
    code, flags = _code_of(root)
    labs: dict[str, LabGrade] = {}
    for result in run.labs:
        if result.status == "not run":
            continue
        info = code.get(result.lab) if isinstance(code.get(result.lab), dict) else {}
        if info and info.get("matches_run") is False:
            flags.append(f"{result.lab}: the code in the zip is not the code the run used")
        labs[result.lab] = LabGrade(submitted=result.to_json(), code=info or {})
    found = replace(
        found,
        flags=tuple(flags),
        labs=labs,
        author=run.meta.get("author", ""),
        folder=str(root),
        settings={k: run.settings.get(k) for k in ("profile", "seed", "device", "deterministic")},
    )
    return found if labs else found.invalid("the zip holds no lab result")


def _work_folder(zip_path: Path, digest: str) -> str:
    """The folder a submission is extracted and re-executed in: its digest and where the zip
    is, so that two copies of one zip in a batch never share one (their re-executions run at
    the same time)."""
    where = hashlib.sha256(str(zip_path.resolve()).encode()).hexdigest()[:8]
    return f"{digest[:16]}-{where}"


def _code_of(root: Path) -> tuple[dict[str, Any], list[str]]:
    """The labs' code as code/code.json describes it, and a flag when it cannot be read."""
    code_json = root / "submitted" / CODE_JSON
    if not code_json.is_file():
        return {}, []
    try:
        return json.loads(code_json.read_text(encoding="utf-8")).get("labs", {}), []
    except (ValueError, AttributeError):
        return {}, ["code/code.json cannot be read"]


#: What grading extracts from a zip (below its one folder); figures stay in the zip.
def _wanted(rel: str) -> bool:
    parts = rel.split("/")
    return (
        rel in ("run.json", "config.yaml", "report.html")
        or (len(parts) == 2 and parts[1] == "result.json")
        or parts[0] == "code"
    )


def _extract(zip_path: Path, folder: Path) -> Path:
    """Extract what grading reads into ``folder/submitted`` (names were checked by
    verify_bundle: relative, normalised, no '..'); returns ``folder``."""
    target = folder / "submitted"
    if folder.exists():
        shutil.rmtree(folder)
    target.mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            if info.is_dir() or "/" not in info.filename:
                continue
            rel = info.filename.split("/", 1)[1]
            if not _wanted(rel):
                continue
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, CHUNK)
    return folder
