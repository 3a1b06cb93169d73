"""The persistent cache: where it lives, the one stable hash, and the results store.

Layout under the cache root::

    results/<lab>/<key>/    a finished lab's folder (result.json and its figures), read-only,
                            with MANIFEST.sha256: the sha256 of each of its files
    labs/<lab>/             ctx.cache_dir: datasets, weights, shared by runs of the lab
    state/<lab>/<key>/      ctx.state_dir: checkpoints of one exact config and seed
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..base.errors import LabrunnerError, describe_exception
from .files import (
    MANIFEST,
    copy_tree,
    discard_tree,
    make_read_only,
    manifest_problem,
    remove_tree,
    write_manifest,
)
from .jsonfiles import RunFileError, check_lab_name, short
from .parts import FigureRecord
from .results import LabResult

if TYPE_CHECKING:
    pass

ENV_CACHE = "LABRUNNER_CACHE_DIR"
#: A cache key: what :func:`stable_hash` returns (hex), and nothing else becomes a path.
KEY_PATTERN = re.compile(r"^[0-9a-f]{16,64}$")


def cache_root() -> Path:
    """``$LABRUNNER_CACHE_DIR``, else the platform's user cache folder (platformdirs:
    ``$XDG_CACHE_HOME/labrunner`` or ``~/.cache/labrunner`` on Linux, ``~/Library/Caches``
    on macOS, ``%LOCALAPPDATA%`` on Windows)."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("labrunner", appauthor=False))


def check_cache_key(key: Any, where: str) -> str:
    """A cache key (hex digits, as :func:`cache_key` makes them), before it becomes part of
    a path; raises RunFileError (a UsageError) naming ``where``."""
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise RunFileError(f"{where}: invalid cache key {short(key)} (expected 16 to 64 hex digits)")
    return key


class InvalidEntry(LabrunnerError):
    """A cache entry that cannot be used as it is; it is discarded and the lab reruns."""


def validate_entry(entry: Path, lab: str, key: str) -> LabResult:
    """The result stored in ``entry``, checked against its files and their sha256
    manifest; raises :class:`InvalidEntry`."""
    problem = manifest_problem(entry, MANIFEST)
    if problem:
        if problem == f"no {MANIFEST}":
            raise InvalidEntry(f"no {MANIFEST} (stored by an earlier labrunner, or damaged)")
        raise InvalidEntry(f"{problem} (the entry changed after it was stored)")
    path = entry / "result.json"
    if path.is_symlink() or not path.is_file():
        raise InvalidEntry("no result.json")
    try:
        result = LabResult.load(path)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InvalidEntry(f"unreadable result.json ({describe_exception(exc)})") from None
    if result.lab != lab or result.cache_key != key:
        raise InvalidEntry(f"it holds lab {result.lab!r} with key {result.cache_key!r}")
    if result.status not in ("passed", "failed"):
        raise InvalidEntry(f"status {result.status!r} is not a finished lab")
    base = entry.resolve()
    for ex in result.exercises:
        for record in ex.records:
            if not isinstance(record, FigureRecord):
                continue
            rel = record.path
            figure = entry / rel
            if figure.is_symlink() or not figure.resolve().is_relative_to(base) or not figure.is_file():
                raise InvalidEntry(f"figure {rel!r} is missing")
    for path in entry.rglob("*"):
        if path.is_symlink():
            raise InvalidEntry(f"{path.relative_to(entry).as_posix()} is a symbolic link")
    return result


#: Temporary entries older than this are left by a run that died; they are removed.
STALE_TMP_S = 3600.0


class ResultCache:
    """Finished labs' folders, stored by lab name and cache key, safe to share between
    runs at the same time, and never changed by what a user does to a run folder.

    An entry is content-addressed and immutable: its files are copies (never links to a
    run folder's files), read-only, and listed with their sha256 in its MANIFEST.sha256;
    before an entry is used, every file is checked against the manifest. A run folder
    gets copies of an entry's files (reflinks where the file system can).
    Each entry is written into a temporary folder and renamed into place whole, under a
    per-entry lock (filelock) that readers take too; leftover temporary folders of runs
    that died are removed. A cache folder that cannot be used gives one warning and the
    run goes on without it (``ctx.cache_dir`` and ``ctx.state_dir`` then point into a
    temporary folder removed by :meth:`close`). An entry that fails validation is
    discarded with a warning and the lab runs again.
    """

    def __init__(self, root: Path | None = None, warn: Callable[[str], None] | None = None):
        self.root = Path(root) if root is not None else cache_root()
        self.warn = warn or (lambda message: print(f"labrunner: warning: {message}", file=sys.stderr))
        self.usable = True
        self._fallback: Path | None = None
        try:
            (self.root / "results").mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe."):
                pass
        except OSError as exc:
            self._disable(exc)

    # -- where things go (a lab name and a key are checked before they become a path)
    def entry(self, lab: str, key: str) -> Path:
        return self.root / "results" / check_lab_name(lab, "lab") / check_cache_key(key, "cache key")

    def lab_cache_dir(self, lab: str) -> Path:
        return self._base() / "labs" / check_lab_name(lab, "lab")

    def state_dir(self, lab: str, key: str) -> Path:
        return self._base() / "state" / check_lab_name(lab, "lab") / check_cache_key(key, "cache key")

    def clear_state(self, lab: str, key: str) -> None:
        """Forget the checkpoints of one lab and key (``--force`` retrains from scratch)."""
        shutil.rmtree(self.state_dir(lab, key), ignore_errors=True)

    def close(self) -> None:
        """Remove the temporary stand-in folder of an unusable cache, if any."""
        if self._fallback is not None:
            shutil.rmtree(self._fallback, ignore_errors=True)
            self._fallback = None

    def _base(self) -> Path:
        if self.usable:
            return self.root
        if self._fallback is None:
            self._fallback = Path(tempfile.mkdtemp(prefix="labrunner-uncached-"))
        return self._fallback

    def _disable(self, exc: BaseException) -> None:
        if self.usable:
            self.usable = False
            self.warn(
                f"cache folder {self.root} is not usable ({describe_exception(exc)}); "
                "running without the cache (set LABRUNNER_CACHE_DIR to a writable folder)"
            )

    # -- locking
    @contextlib.contextmanager
    def lock(self, lab: str, key: str, waiting: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold the lock of one entry: one run at a time computes, stores or reads it."""
        if not self.usable:
            yield
            return
        from filelock import FileLock, Timeout

        path = self.root / "locks" / check_lab_name(lab, "lab") / f"{check_cache_key(key, 'cache key')}.lock"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(path))
            try:
                lock.acquire(timeout=1.0)
            except Timeout:
                if waiting is not None:
                    waiting()
                lock.acquire()
        except OSError as exc:
            self._disable(exc)
            yield
            return
        try:
            yield
        finally:
            lock.release()

    # -- entries
    def verified(self, lab: str, key: str) -> LabResult | None:
        """The result of the entry of ``lab`` and ``key`` when there is one and every file
        of it matches its manifest; an entry that does not is discarded with one warning
        (the lab then runs again). None when there is no usable entry."""
        if not self.usable:
            return None
        cached = self.entry(lab, key)
        if not cached.exists():
            return None
        try:
            return validate_entry(cached, lab, key)
        except InvalidEntry as exc:
            self.warn(f"cached result of {lab} (key {key}) discarded: {exc}; the lab runs again")
            discard_tree(cached)
            return None

    def get(self, lab: str, key: str, out_dir: Path) -> LabResult | None:
        """Copy the cached folder of ``lab`` into ``out_dir`` and return its result, or
        None when there is none (or it was invalid and has been discarded)."""
        result = self.verified(lab, key)
        if result is None:
            return None
        cached = self.entry(lab, key)
        try:
            if out_dir.exists():
                shutil.rmtree(out_dir)
            copy_tree(cached, out_dir, skip=frozenset({MANIFEST}))  # the run folder's own copies
        except OSError as exc:
            self.warn(f"cached result of {lab} (key {key}) cannot be read ({describe_exception(exc)})")
            shutil.rmtree(out_dir, ignore_errors=True)
            return None
        result.cached = True
        result.save(out_dir / "result.json")
        return result

    def put(self, lab: str, key: str, out_dir: Path) -> None:
        """Store a finished lab's folder: copied into a temporary folder, its manifest
        written and its files made read-only, then renamed into place whole. Call it
        holding :meth:`lock`."""
        if not self.usable:
            return
        target = self.entry(lab, key)
        tmp: Path | None = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._clean_stale(target.parent)
            tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{key}.", suffix=".tmp"))
            copy_tree(out_dir, tmp)
            write_manifest(tmp, MANIFEST)
            make_read_only(tmp)
            if target.exists():
                discard_tree(target)
            os.replace(tmp, target)
            tmp = None
        except OSError as exc:
            self._disable(exc)
        finally:
            if tmp is not None:  # an error, or Ctrl-C while copying: no half entry stays
                remove_tree(tmp)

    def _clean_stale(self, folder: Path) -> None:
        now = time.time()
        for path in folder.glob(".*.tmp"):
            try:
                if now - path.stat().st_mtime > STALE_TMP_S:
                    remove_tree(path)
            except OSError:
                pass
