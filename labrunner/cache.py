"""The persistent cache: where it lives, the one stable hash, and the results store.

Layout under the cache root::

    results/<lab>/<key>/    a finished lab's folder (result.json and its figures)
    labs/<lab>/             ctx.cache_dir: datasets, weights, shared by runs of the lab
    state/<lab>/<key>/      ctx.state_dir: checkpoints of one exact config and seed
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .results import LabResult

if TYPE_CHECKING:
    from .lab import Lab

ENV_CACHE = "LABRUNNER_CACHE_DIR"
#: The files of a lab package that decide its results: code, templates, texts.
SOURCE_SUFFIXES = (".py", ".j2", ".md")


def cache_root() -> Path:
    """``$LABRUNNER_CACHE_DIR``, else the platform's user cache folder (platformdirs:
    ``$XDG_CACHE_HOME/labrunner`` or ``~/.cache/labrunner`` on Linux, ``~/Library/Caches``
    on macOS, ``%LOCALAPPDATA%`` on Windows)."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("labrunner", appauthor=False))


def stable_hash(value: Any, length: int = 16) -> str:
    """The hex sha256 of ``value`` (bytes as they are, anything else as canonical JSON),
    cut to ``length`` characters: the same on every machine and Python version."""
    if not isinstance(value, bytes):
        value = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(value).hexdigest()[:length]


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
    from .data import sha256_file

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


class ResultCache:
    """Finished labs' folders, stored by lab name and cache key."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else cache_root()

    def entry(self, lab: str, key: str) -> Path:
        return self.root / "results" / lab / key

    def lab_cache_dir(self, lab: str) -> Path:
        return self.root / "labs" / lab

    def state_dir(self, lab: str, key: str) -> Path:
        return self.root / "state" / lab / key

    def get(self, lab: str, key: str, out_dir: Path) -> LabResult | None:
        """Copy the cached folder of ``lab`` into ``out_dir`` and return its result, or None."""
        cached = self.entry(lab, key)
        if not (cached / "result.json").is_file():
            return None
        try:
            result = LabResult.load(cached / "result.json")
        except (OSError, ValueError, TypeError):
            return None
        if out_dir.exists():
            shutil.rmtree(out_dir)
        shutil.copytree(cached, out_dir)
        result.cached = True
        result.save(out_dir / "result.json")
        return result

    def put(self, lab: str, key: str, out_dir: Path) -> None:
        """Store a finished lab's folder."""
        target = self.entry(lab, key)
        tmp = target.with_name(f".{key}.{os.getpid()}.tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        shutil.copytree(out_dir, tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
