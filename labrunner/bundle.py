"""``labrunner submit``: a zip of the report and the results, verified after writing.

The zip holds one folder named after it: report.html, report.md (+ figures/),
report.pdf when there is one, run.json, config.yaml, and each lab's folder
(result.json and figures), plus ``MANIFEST.sha256`` listing the sha256 of every
other file in ``sha256sum`` format (``cd NAME && sha256sum -c MANIFEST.sha256``
checks an unpacked copy). After writing, the zip is opened again and every file is
checked against the manifest before it replaces NAME.zip.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

from .errors import UsageError
from .report import render_report
from .runfolder import load_run

MANIFEST = "MANIFEST.sha256"
#: Already compressed: stored as is, which is faster and no bigger.
STORED_SUFFIXES = {".png", ".jpg", ".jpeg", ".pdf", ".zip", ".gz", ".pt"}


class BundleError(Exception):
    """A bundle whose contents do not match its manifest."""


def bundle_files(run_dir: Path) -> list[tuple[Path, str]]:
    """The files a submission holds, as (file, path inside the bundle folder), sorted."""
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    files: list[tuple[Path, str]] = []
    for name in ("report.html", "report.md", "report.pdf", "run.json", "config.yaml"):
        if (run_dir / name).is_file():
            files.append((run_dir / name, name))
    folders = ["figures"] + [lab.lab for lab in run.labs]
    for folder in folders:
        top = run_dir / folder
        if not top.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(top):  # symlinks are not followed
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                path = Path(dirpath) / filename
                if filename.startswith(".") or not path.is_file() or path.is_symlink():
                    continue  # temporary files of an interrupted write, links
                files.append((path, path.relative_to(run_dir).as_posix()))
    return files


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def make_bundle(run_dir: Path, dest: Path) -> tuple[Path, int]:
    """Write the submission zip ``dest`` for a run folder; returns (path, files checked).

    Renders report.html and report.md first when the run has none. Raises
    UsageError for a bad run folder or destination, BundleError when the written
    zip does not verify (then ``dest`` is left untouched).
    """
    run_dir = Path(run_dir)
    dest = Path(dest)
    if dest.suffix.lower() != ".zip":
        raise UsageError(f"-o {dest}: the bundle name must end in .zip")
    if not dest.parent.is_dir():
        raise UsageError(f"-o {dest}: no such folder {dest.parent}")
    load_run(run_dir)  # a clear error before anything is written
    if not (run_dir / "report.html").is_file() or not (run_dir / "report.md").is_file():
        render_report(run_dir, formats=("html", "md"))
    files = bundle_files(run_dir)
    root = dest.stem
    manifest_lines = []
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            for path, arcname in files:
                data = path.read_bytes()
                manifest_lines.append(f"{hashlib.sha256(data).hexdigest()}  {arcname}")
                stored = path.suffix.lower() in STORED_SUFFIXES
                zf.writestr(
                    _info(f"{root}/{arcname}", path),
                    data,
                    compress_type=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED,
                )
            zf.writestr(_info(f"{root}/{MANIFEST}", None), "\n".join(manifest_lines) + "\n")
        checked = verify_bundle(tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest, checked


def _info(arcname: str, path: Path | None) -> zipfile.ZipInfo:
    import time

    mtime = path.stat().st_mtime if path is not None else time.time()
    info = zipfile.ZipInfo(arcname, date_time=time.localtime(max(mtime, 315532800))[:6])
    info.external_attr = 0o644 << 16
    return info


def verify_bundle(path: Path) -> int:
    """Check every file of a bundle against its manifest; returns how many were checked.

    Raises BundleError naming the first problem: no manifest, a file missing, a file
    not listed, or a checksum that differs.
    """
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise BundleError(f"{path}: not a readable zip ({exc})") from None
    with zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
        manifests = [n for n in names if n.endswith("/" + MANIFEST) and n.count("/") == 1]
        if len(manifests) != 1:
            raise BundleError(f"{path}: no {MANIFEST} in the bundle")
        root = manifests[0].split("/", 1)[0]
        expected: dict[str, str] = {}
        for line in zf.read(manifests[0]).decode("utf-8").splitlines():
            digest, sep, name = line.partition("  ")
            if not sep or len(digest) != 64:
                raise BundleError(f"{path}: malformed manifest line {line!r}")
            expected[f"{root}/{name}"] = digest
        present = set(names) - {manifests[0]}
        if missing := sorted(set(expected) - present):
            raise BundleError(f"{path}: {missing[0]} is in the manifest but not in the bundle")
        if extra := sorted(present - set(expected)):
            raise BundleError(f"{path}: {extra[0]} is in the bundle but not in the manifest")
        for name, digest in expected.items():
            try:
                data = zf.read(name)
            except (zipfile.BadZipFile, OSError) as exc:  # a CRC error: corrupted bytes
                raise BundleError(f"{path}: {name} cannot be read ({exc})") from None
            if hashlib.sha256(data).hexdigest() != digest:
                raise BundleError(f"{path}: {name} does not match its sha256 in the manifest")
    return len(expected)
