"""Files a run folder takes from elsewhere (the cache, an earlier run, a seed's folder):
always its own copies, never hard links, and sha256 manifests that say whether a folder
still holds what was written into it.

A user opens and edits the files of a run folder (an editor rewrites result.json in
place); a hard link would carry that edit into the cache and every other run sharing the
file. A copy is cheap: a reflink where the file system can (Btrfs, XFS, APFS through
``copy_file_range``: the blocks are shared copy-on-write, the files are not), else the
kernel's in-place copy, else a plain read and write.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path
from typing import IO

from ..base.hashing import sha256_file
from .jsonfiles import RunFileError, write_atomic

CHUNK = 1 << 20
#: A folder's manifest: the sha256 of each of its other files (``sha256sum -c`` format).
MANIFEST = "MANIFEST.sha256"
#: ``FICLONE`` (linux/fs.h): make the target share the source's blocks copy-on-write.
FICLONE = 0x40049409


def copy_file(source: Path, target: Path, *, mode: int = 0o644) -> None:
    """Give ``target`` the bytes of ``source`` as a file of its own (a reflink where the
    file system can, else a copy), replacing what was at ``target``; its permissions are
    ``mode``. Never writes through an existing file or link at ``target``."""
    target = Path(target)
    target.unlink(missing_ok=True)
    with open(source, "rb") as src, open(target, "xb") as dst:  # "x": a new file, not a link's target
        if not _reflink(src, dst):
            _copy_bytes(src, dst)
    os.chmod(target, mode)


def _reflink(src: IO[bytes], dst: IO[bytes]) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import fcntl

        fcntl.ioctl(dst.fileno(), FICLONE, src.fileno())
    except (OSError, ImportError):  # another file system, or one without reflinks
        return False
    return True


def _copy_bytes(src: IO[bytes], dst: IO[bytes]) -> None:
    size = os.fstat(src.fileno()).st_size
    copy_range = getattr(os, "copy_file_range", None)
    if copy_range is not None and size:
        try:  # in the kernel (and a reflink on file systems whose copy_file_range makes one)
            done = 0
            while done < size:
                n = copy_range(src.fileno(), dst.fileno(), size - done)
                if n == 0:
                    break
                done += n
            return
        except OSError:  # not supported here: start again with a plain copy
            src.seek(0)
            dst.seek(0)
            dst.truncate()
    shutil.copyfileobj(src, dst, CHUNK)


def copy_tree(src: Path, dst: Path, *, skip: frozenset[str] = frozenset()) -> int:
    """Give ``dst`` copies of the files of ``src`` (:func:`copy_file`). Links, hidden files
    and the top-level names in ``skip`` are left out. Returns how many files were copied."""
    src, dst = Path(src), Path(dst)
    copied = 0
    for dirpath, dirnames, filenames in os.walk(src):  # does not follow links
        here = Path(dirpath)
        rel = here.relative_to(src)
        top = rel == Path(".")
        dirnames[:] = [
            d
            for d in dirnames
            if not d.startswith(".") and not (here / d).is_symlink() and not (top and d in skip)
        ]
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in filenames:
            source = here / name
            if name.startswith(".") or source.is_symlink() or (top and name in skip):
                continue
            copy_file(source, dst / rel / name)
            copied += 1
    return copied


def is_inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies inside it, after resolving links."""
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def tree_files(root: Path, *, skip: frozenset[str] = frozenset()) -> dict[str, Path]:
    """Every entry below ``root`` that is not a folder, by its POSIX path relative to
    ``root`` (hidden ones and links included, so nothing added goes unseen), except the
    top-level names in ``skip``."""
    root = Path(root)
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):  # does not follow links
        here = Path(dirpath)
        rel = here.relative_to(root)
        links = [d for d in dirnames if (here / d).is_symlink()]
        dirnames[:] = [d for d in dirnames if d not in links]
        for name in [*filenames, *links]:
            if rel == Path(".") and name in skip:
                continue
            found[(rel / name).as_posix()] = here / name
    return found


def write_manifest(root: Path, name: str) -> dict[str, str]:
    """Write ``root/name``: the sha256 of every other file below ``root``, in
    ``sha256sum`` format (``cd root && sha256sum -c name`` checks it); returns the digests."""
    digests = {
        rel: sha256_file(path) for rel, path in sorted(tree_files(root, skip=frozenset({name})).items())
    }
    write_atomic(Path(root) / name, "".join(f"{digest}  {rel}\n" for rel, digest in digests.items()))
    return digests


def manifest_problem(root: Path, name: str) -> str:
    """Why the files below ``root`` no longer match the manifest ``root/name`` (a file
    changed, missing, added, a link), or "" when every file matches."""
    root = Path(root)
    manifest = root / name
    if manifest.is_symlink() or not manifest.is_file():
        return f"no {name}"
    expected: dict[str, str] = {}
    try:
        text = manifest.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return f"{name} cannot be read ({exc})"
    for line in text.splitlines():
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or not rel:
            return f"{name} has a malformed line"
        expected[rel] = digest
    present = tree_files(root, skip=frozenset({name}))
    for rel in sorted(set(expected) - set(present)):
        return f"{rel} is missing"
    for rel in sorted(set(present) - set(expected)):
        return f"{rel} was added"
    for rel, digest in expected.items():
        path = present[rel]
        try:
            if path.is_symlink() or not stat.S_ISREG(path.lstat().st_mode):
                return f"{rel} is no longer a plain file"
            if sha256_file(path) != digest:
                return f"{rel} no longer matches its sha256"
        except OSError as exc:
            return f"{rel} cannot be read ({exc.strerror or exc})"
    return ""


def make_read_only(root: Path) -> None:
    """Make every file below ``root`` read-only (r--r--r--); folders stay as they are."""
    for path in tree_files(root).values():
        if not path.is_symlink():
            os.chmod(path, 0o444)


def remove_tree(path: Path) -> None:
    """Remove a folder whose files may be read-only (a cache entry), as far as possible."""

    def retry(function, name, _exc):  # Windows refuses to delete a read-only file
        try:
            os.chmod(name, stat.S_IWRITE | stat.S_IREAD)
            function(name)
        except OSError:
            pass

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=retry)
    else:
        shutil.rmtree(path, onerror=retry)


def discard_tree(path: Path) -> None:
    """Move a folder out of the way in one rename (readers see it whole or not at all), then
    delete it; nothing happens when it cannot be moved (already gone)."""
    trash = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        os.replace(path, trash)
    except OSError:
        return
    remove_tree(trash)


def inside_folder(run_dir: Path, rel: str) -> Path:
    """``run_dir / rel``, refused when it or a folder on the way from the run folder is a
    symbolic link, or when it resolves outside the run folder."""
    path = Path(run_dir)
    for part in Path(rel).parts:
        path = path / part
        if path.is_symlink():
            raise RunFileError(f"{path}: a symbolic link; a run folder holds its own files only")
    root = Path(os.path.realpath(run_dir))
    resolved = Path(os.path.realpath(path))
    if root not in resolved.parents:
        raise RunFileError(f"{path}: resolves outside the run folder")
    return path
