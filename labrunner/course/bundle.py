"""``labrunner submit``: a zip of the report and the results, verified after writing.

The zip holds one folder named after it: report.html, report.md (+ figures/),
report.pdf when there is one, run.json, config.yaml, each lab's folder
(result.json and figures), the code of each lab that ran (``code/<lab>/``: the
source files of the plugin package or module that defines it, with ``code.json``
saying which class is the lab and whether the code is the one the run used), plus
``MANIFEST.sha256`` listing the sha256 of every other file in ``sha256sum`` format (``cd NAME && sha256sum -c MANIFEST.sha256``
checks an unpacked copy). After writing, the zip is opened again and every file is
checked against the manifest before it replaces NAME.zip.

A run is handed in only when it is complete (run.json finished, a result for every lab
it lists), has no lab "not run" (unless ``partial``), labs that all ran with one profile
and seed (unless ``allow_mixed``) and no exercise on a stand-in (unless ``allow_stand_ins``). Verifying reads a zip in bounded memory: entries are
streamed and hashed in chunks, and their sizes are capped.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import stat
import sys
import time
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ..base.errors import LabrunnerError, UsageError
from ..records.runfolder import RunData, load_run
from ..report.render import render_report

MANIFEST = "MANIFEST.sha256"
#: The bundle's description of the labs' code (under ``code/``).
CODE_JSON = "code/code.json"
#: Already compressed: stored as is, which is faster and no bigger.
STORED_SUFFIXES = {".png", ".jpg", ".jpeg", ".pdf", ".zip", ".gz", ".pt"}
#: What verifying accepts at most: one file, all files together, the number of files,
#: and the manifest (a submission is a few MB; these bound a hostile zip's cost).
MAX_ENTRY_BYTES = 256 * 1024 * 1024
MAX_TOTAL_BYTES = 1024 * 1024 * 1024
MAX_ENTRIES = 20_000
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
CHUNK = 1 << 20


class BundleError(LabrunnerError):
    """A bundle whose contents do not match its manifest, or that cannot be read."""


class UnsafeBundle(BundleError):
    """A bundle with an entry that cannot be unpacked safely: an absolute name or one with
    '..', a symbolic link or other special file, or two names that are one file on a
    file system that ignores case or normalises Unicode. ``labrunner submit --verify``
    exits with status 2 (bad input) for these, 1 for a bundle that does not verify."""


class NotSubmittable(LabrunnerError):
    """A run that cannot be handed in as it is (incomplete, labs not run, stand-ins)."""


def submission_problem(
    run: RunData, *, partial: bool = False, allow_stand_ins: bool = False, allow_mixed: bool = False
) -> str:
    """Why ``run`` cannot be handed in, as one line, or "" when it can."""
    if run.incomplete:
        return f"{run.run_dir}: incomplete run: {run.incomplete} (run the labs again to finish it)"
    if run.not_run and not partial:
        names = ", ".join(run.not_run)
        return (
            f"{run.run_dir}: labs not run: {names} (run them with 'labrunner run {' '.join(run.not_run)}', "
            "or pass --partial to hand in without them)"
        )
    consistency = run.consistency
    if consistency.mixed and not allow_mixed:
        return (
            f"{run.run_dir}: labs differ in profile or seed: {consistency.describe()} (run them again with "
            "one profile and seed, or pass --allow-mixed to hand them in as they are)"
        )
    if run.failed_seeds and not partial:
        names = "; ".join(
            f"{lab}: " + ", ".join(f"seed {seed} ({status})" for seed, status in seeds.items())
            for lab, seeds in run.failed_seeds.items()
        )
        return (
            f"{run.run_dir}: seeds of a sweep without a passing result: {names} (their measurements are "
            "missing from the sweep's tables; run them again, or pass --partial to hand in without them)"
        )
    if run.stand_ins and not allow_stand_ins:
        by_lab: dict[str, list[str]] = {}
        for lab, title, _reason in run.stand_ins:
            by_lab.setdefault(lab, []).append(title)
        names = "; ".join(f"{lab}: {', '.join(titles)}" for lab, titles in by_lab.items())
        return (
            f"{run.run_dir}: exercises on a stand-in, not the assignment's material: {names} "
            "(pass --allow-stand-ins to hand them in as stand-ins)"
        )
    return ""


def bundle_files(run_dir: Path) -> list[tuple[Path, str]]:
    """The files a submission holds, as (file, path inside the bundle folder), sorted."""
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    files: list[tuple[Path, str]] = []
    for name in ("report.html", "report.md", "report.pdf", "run.json", "config.yaml"):
        path = run_dir / name
        if path.is_symlink():
            raise UsageError(f"{path}: a symbolic link; a run folder holds its own files only")
        if path.is_file():
            files.append((path, name))
    folders = ["figures"] + [lab.lab for lab in run.labs]
    for folder in folders:
        top = run_dir / folder
        if top.is_symlink():
            raise UsageError(f"{top}: a symbolic link; a run folder holds its own files only")
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


def make_bundle(
    run_dir: Path,
    dest: Path,
    *,
    partial: bool = False,
    allow_stand_ins: bool = False,
    allow_mixed: bool = False,
    plugins: Any = None,
    warn: Any = None,
) -> tuple[Path, int]:
    """Write the submission zip ``dest`` for a run folder; returns (path, files checked).

    Renders report.html and report.md first when the run has none. The code of each lab
    that ran comes from ``plugins`` (default: the installed ones); ``warn`` (a callable)
    gets one line per lab whose installed code is not the code the run used, or that is
    not installed (its code is then left out, and ``code.json`` says so). Raises
    UsageError for a bad run folder or destination, NotSubmittable for a run that
    cannot be handed in as it is (see :func:`submission_problem`), BundleError when
    the written zip does not verify (then ``dest`` is left untouched).
    """
    run_dir = Path(run_dir)
    dest = Path(dest)
    if dest.suffix.lower() != ".zip":
        raise UsageError(f"-o {dest}: the bundle name must end in .zip")
    if not dest.parent.is_dir():
        what = "not a folder" if dest.parent.exists() else "no such folder"
        raise UsageError(f"-o {dest}: {what}: {dest.parent}")
    if dest.is_dir():
        raise UsageError(f"-o {dest}: a folder; give the name of the zip to write (NAME.zip)")
    if dest.exists() and not dest.is_file():
        raise UsageError(f"-o {dest}: not a regular file; give the name of the zip to write (NAME.zip)")
    run = load_run(run_dir)  # a clear error before anything is written
    problem = submission_problem(
        run, partial=partial, allow_stand_ins=allow_stand_ins, allow_mixed=allow_mixed
    )
    if problem:
        raise NotSubmittable(problem)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:  # the destination can be written: found out before anything is rendered
        tmp.open("xb").close()
    except OSError as exc:
        raise UsageError(f"-o {dest}: cannot write there ({exc.strerror or exc})") from None
    try:
        if not (run_dir / "report.html").is_file() or not (run_dir / "report.md").is_file():
            render_report(run_dir, formats=("html", "md"))
        try:
            return _write_bundle(run_dir, run, dest, tmp, plugins, warn)
        except BundleError:
            raise
        except OSError as exc:  # a full disk, a folder that became unwritable meanwhile
            raise UsageError(f"-o {dest}: cannot write the zip ({exc.strerror or exc})") from None
    finally:
        tmp.unlink(missing_ok=True)


def _write_bundle(
    run_dir: Path, run: RunData, dest: Path, tmp: Path, plugins: Any, warn: Any
) -> tuple[Path, int]:
    """Write the zip into ``tmp`` (the run's files and its labs' code), verify it, and
    rename it to ``dest``."""
    files = bundle_files(run_dir)
    code_files, code_info = lab_code(run, plugins, warn)
    root = dest.stem
    manifest_lines = []
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for path, arcname in files:
            stored = path.suffix.lower() in STORED_SUFFIXES
            info = _info(f"{root}/{arcname}", path)
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            digest = hashlib.sha256()
            with open(path, "rb") as src, zf.open(info, "w", force_zip64=True) as out:
                for block in iter(lambda src=src: src.read(CHUNK), b""):
                    digest.update(block)
                    out.write(block)
            manifest_lines.append(f"{digest.hexdigest()}  {arcname}")
        for arcname, data in code_files + [(CODE_JSON, _code_json(code_info))]:
            zf.writestr(_info(f"{root}/{arcname}", None), data)
            manifest_lines.append(f"{hashlib.sha256(data).hexdigest()}  {arcname}")
        zf.writestr(_info(f"{root}/{MANIFEST}", None), "\n".join(manifest_lines) + "\n")
    checked = verify_bundle(tmp)
    os.replace(tmp, dest)
    return dest, checked


def _code_json(info: dict[str, Any]) -> bytes:
    return (json.dumps({"labs": info}, indent=2, sort_keys=True) + "\n").encode()


def lab_code(run: RunData, plugins: Any = None, warn: Any = None) -> tuple[list[tuple[str, bytes]], dict]:
    """The code of each lab of ``run`` that ran: (path in the bundle, bytes) for every source
    file, and per lab what ``code.json`` says of it (``package``: the folder or module file
    under ``code/<lab>/`` that a plugins folder loads, ``class``, ``files`` with their
    sha256, ``matches_run``: whether the installed code has the source hash in the lab's
    cache key, that is, is the code the run used)."""
    from ..authoring.labfiles import cache_key, source_hash

    if plugins is None:
        from ..settings.plugins import load_plugins

        plugins = load_plugins()
    files: list[tuple[str, bytes]] = []
    info: dict[str, Any] = {}
    deterministic = bool(run.settings.get("deterministic", False))
    for result in run.labs:
        if result.status == "not run":
            continue
        lab = plugins.labs.get(result.lab)
        if lab is None:
            info[result.lab] = {"installed": False}
            if warn:
                warn(f"{result.lab}: the lab is not installed, so its code is not in the bundle")
            continue
        unit, package, sources = _code_unit(lab)
        key = cache_key(lab, result.config, result.seed, result.device, deterministic, source_hash(lab))
        matches = key == result.cache_key
        if not matches and warn:
            warn(
                f"{result.lab}: the installed code is not the code this run used "
                "(run the lab again before handing in, or the grader cannot reproduce it)"
            )
        listed = {}
        for path in sources:
            rel = f"{package}/{path.relative_to(unit).as_posix()}" if unit.is_dir() else package
            data = path.read_bytes()
            files.append((f"code/{result.lab}/{rel}", data))
            listed[rel] = hashlib.sha256(data).hexdigest()
        info[result.lab] = {
            "installed": True,
            "package": package,
            "module": type(lab).__module__,
            "class": type(lab).__qualname__,
            "version": lab.version,
            "source_hash": source_hash(lab),
            "matches_run": matches,
            "files": listed,
        }
    return files, info


def _code_unit(lab: Any) -> tuple[Path, str, list[Path]]:
    """(the package folder or module file that defines ``lab``, its name as a plugin,
    its source files)."""
    from ..authoring.labfiles import lab_source_files

    sources = lab_source_files(lab)
    module = sys.modules[type(lab).__module__]
    if not sources:
        raise UsageError(f"lab {lab.name!r}: its code cannot be found (module {module.__name__})")
    if len(sources) == 1 and not getattr(module, "__path__", None) and Path(module.__file__) == sources[0]:
        return sources[0], sources[0].name, sources
    unit = Path(os.path.commonpath([p.parent for p in sources]))
    while not (unit / "__init__.py").is_file() and unit != unit.parent:
        unit = unit.parent
    return unit, unit.name, [p for p in sources if p.is_relative_to(unit)]


def _info(arcname: str, path: Path | None) -> zipfile.ZipInfo:
    mtime = path.stat().st_mtime if path is not None else time.time()
    info = zipfile.ZipInfo(arcname, date_time=time.localtime(max(mtime, 315532800))[:6])
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _name_problem(name: str) -> str:
    """Why an entry name cannot be unpacked safely, or ""."""
    if not name or "\\" in name or "\x00" in name:
        return "an unsafe name"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "an absolute name"
    if ".." in name.split("/"):
        return "a name with '..'"
    if posixpath.normpath(name) != name.rstrip("/"):
        return "a name that is not normalised"
    return ""


def _kind_problem(info: zipfile.ZipInfo) -> str:
    """Why an entry is not a plain file or folder (its Unix mode says a symbolic link, a
    device, a pipe), or ""."""
    mode = info.external_attr >> 16
    if stat.S_IFMT(mode) == 0 or stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return ""
    return "a symbolic link" if stat.S_ISLNK(mode) else "not a plain file (a device, pipe or socket)"


def _folded(name: str) -> str:
    """The name as a file system that ignores case and normalises Unicode sees it (NFKC
    after case folding, which also covers NFC and NFD): two entries with the same folded
    name would be unpacked into one file."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def _chunks(stream: IO[bytes], limit: int, name: str, path: Path) -> Iterator[bytes]:
    """The bytes of one entry in chunks, stopping with BundleError past ``limit``."""
    seen = 0
    while block := stream.read(CHUNK):
        seen += len(block)
        if seen > limit:
            raise BundleError(f"{path}: {_show(name)} is larger than {limit} bytes uncompressed")
        yield block


def _show(name: str) -> str:
    return repr(name if len(name) <= 80 else name[:80] + "…")


def verify_bundle(
    path: Path,
    *,
    max_entry_bytes: int = MAX_ENTRY_BYTES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
) -> int:
    """Check every file of a bundle against its manifest; returns how many were checked.

    Raises BundleError (one line) naming the first problem: not a readable zip, an entry
    that cannot be unpacked safely (:class:`UnsafeBundle`: a name that is absolute, has
    '..' or appears twice, also ignoring case and Unicode normalisation, a symbolic link
    or other special file), no manifest or an empty one, a file
    missing, a file not listed, a file larger than ``max_entry_bytes`` (or all of them
    than ``max_total_bytes``) uncompressed, or a checksum that differs. Entries are read
    in chunks, so memory stays small whatever the zip claims or holds.
    """
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise BundleError(f"{path}: not a readable zip ({_one_line(exc)})") from None
    try:
        with zf:
            return _verify(zf, Path(path), max_entry_bytes, max_total_bytes)
    except BundleError:
        raise
    except (
        OSError,
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        NotImplementedError,
        RuntimeError,
        ValueError,
        UnicodeDecodeError,
    ) as exc:  # corrupt data, an unsupported compression, an encrypted entry
        raise BundleError(f"{path}: corrupt zip ({type(exc).__name__}: {_one_line(exc)})") from None


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def _verify(zf: zipfile.ZipFile, path: Path, max_entry_bytes: int, max_total_bytes: int) -> int:
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES:
        raise BundleError(f"{path}: {len(infos)} entries (at most {MAX_ENTRIES})")
    seen: dict[str, str] = {}  # folded name -> the entry's name
    total = 0
    for info in infos:
        problem = _name_problem(info.filename) or _kind_problem(info)
        if problem:
            raise UnsafeBundle(f"{path}: {_show(info.filename)} is {problem}")
        folded = _folded(info.filename)
        if folded in seen:
            if seen[folded] == info.filename:
                raise UnsafeBundle(f"{path}: {_show(info.filename)} appears twice")
            raise UnsafeBundle(
                f"{path}: {_show(seen[folded])} and {_show(info.filename)} are one name on a file system "
                "that ignores case or normalises Unicode"
            )
        seen[folded] = info.filename
    folders = {}  # every folder an entry lies in (folded) -> one such entry
    for info in infos:
        parts = info.filename.rstrip("/").split("/")
        for depth in range(1, len(parts)):
            folders.setdefault(_folded("/".join(parts[:depth])), info.filename)
    for info in infos:
        folded = _folded(info.filename)
        if not info.is_dir() and folded in folders:
            raise UnsafeBundle(
                f"{path}: {_show(info.filename)} is a file, and a folder for {_show(folders[folded])}"
            )
        if info.file_size > max_entry_bytes:
            raise BundleError(
                f"{path}: {_show(info.filename)} is larger than {max_entry_bytes} bytes uncompressed"
            )
        total += info.file_size
        if total > max_total_bytes:
            raise BundleError(f"{path}: the files are larger than {max_total_bytes} bytes uncompressed")
    files = {info.filename: info for info in infos if not info.is_dir()}
    manifests = [n for n in files if n.endswith("/" + MANIFEST) and n.count("/") == 1]
    if len(manifests) != 1:
        raise BundleError(f"{path}: no {MANIFEST} in the bundle")
    root = manifests[0].split("/", 1)[0]
    with zf.open(files[manifests[0]]) as fh:
        text = b"".join(_chunks(fh, MAX_MANIFEST_BYTES, manifests[0], path)).decode("utf-8")
    expected: dict[str, str] = {}
    for line in text.splitlines():
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise BundleError(f"{path}: malformed manifest line {_show(line)}")
        if _name_problem(name):
            raise UnsafeBundle(f"{path}: the manifest lists {_show(name)}, {_name_problem(name)}")
        if f"{root}/{name}" in expected:
            raise BundleError(f"{path}: the manifest lists {_show(name)} twice")
        expected[f"{root}/{name}"] = digest
    if not expected:
        raise BundleError(f"{path}: {MANIFEST} lists no files")
    present = set(files) - {manifests[0]}
    if missing := sorted(set(expected) - present):
        raise BundleError(f"{path}: {missing[0]} is in the manifest but not in the bundle")
    if extra := sorted(present - set(expected)):
        raise BundleError(f"{path}: {extra[0]} is in the bundle but not in the manifest")
    read = 0
    for name, digest in expected.items():
        sha = hashlib.sha256()
        try:
            with zf.open(files[name]) as fh:
                for block in _chunks(fh, max_entry_bytes, name, path):
                    read += len(block)
                    if read > max_total_bytes:
                        raise BundleError(
                            f"{path}: the files are larger than {max_total_bytes} bytes uncompressed"
                        )
                    sha.update(block)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:  # a CRC error: corrupted bytes
            raise BundleError(f"{path}: {name} cannot be read ({_one_line(exc)})") from None
        if sha.hexdigest() != digest:
            raise BundleError(f"{path}: {name} does not match its sha256 in the manifest")
    return len(expected)
