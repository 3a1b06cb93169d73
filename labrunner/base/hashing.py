"""Stable hashes: of a value (canonical JSON) and of a file's bytes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

#: Bytes read at a time.
CHUNK = 1 << 20


def stable_hash(value: Any, length: int = 16) -> str:
    """The hex sha256 of ``value`` (bytes as they are, anything else as canonical JSON),
    cut to ``length`` characters: the same on every machine and Python version."""
    if not isinstance(value, bytes):
        value = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(value).hexdigest()[:length]


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes (read in chunks) with ``algorithm`` ("sha256", "md5")."""
    digest = hashlib.new(algorithm, usedforsecurity=False) if algorithm == "md5" else hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    """The sha256 hex digest of a file."""
    return file_digest(path, "sha256")
