"""Downloads into the cache, with checksums; nothing half-written is ever left behind.

Labs use these for datasets, weights and images given as URLs. Tests point them
at a local HTTP server on 127.0.0.1; nothing in the test-suite touches the network.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .base.errors import LabrunnerError
from .base.hashing import file_digest, sha256_file, stable_hash

CHUNK = 1 << 20
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class DataError(LabrunnerError):
    """A download or a cached file that cannot be used (network, checksum, format)."""


def download(
    url: str, dest: Path, sha256: str | None = None, *, md5: str | None = None, timeout: float = 30.0
) -> Path:
    """Download ``url`` to ``dest`` unless a valid copy is already there.

    The file is written to a temporary name beside ``dest`` and renamed only
    after its sha256 matched ``sha256`` (when given). ``md5`` is for files whose
    only published checksum is an MD5 sum (older datasets); it is checked the
    same way. A mismatch or a network error raises :class:`DataError` and
    leaves no file at ``dest``.
    """
    dest = Path(dest)
    if (
        dest.is_file()
        and (sha256 is None or sha256_file(dest) == sha256.lower())
        and (md5 is None or file_digest(dest, "md5") == md5.lower())
    ):
        return dest
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise DataError(f"cannot download {url!r}: only http and https URLs are supported")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    digest_md5 = hashlib.md5(usedforsecurity=False)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (scheme checked)
                    for block in iter(lambda: response.read(CHUNK), b""):
                        digest.update(block)
                        digest_md5.update(block)
                        out.write(block)
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise DataError(f"cannot download {url}: {reason}") from None
        if sha256 is not None and digest.hexdigest() != sha256.lower():
            raise DataError(
                f"checksum mismatch for {url}: expected sha256 {sha256.lower()}, got {digest.hexdigest()}"
            )
        if md5 is not None and digest_md5.hexdigest() != md5.lower():
            raise DataError(
                f"checksum mismatch for {url}: expected md5 {md5.lower()}, got {digest_md5.hexdigest()}"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def cached_url(url: str, cache_dir: Path, sha256: str | None = None, *, timeout: float = 30.0) -> Path:
    """Fetch ``url`` once into ``cache_dir`` (a name derived from the URL) and return the path."""
    parts = urllib.parse.urlsplit(url)
    base = SAFE_NAME.sub("_", Path(parts.path).name or "download")[-80:]
    tag = stable_hash(url.encode(), 12)
    return download(url, Path(cache_dir) / f"{tag}-{base}", sha256, timeout=timeout)


def is_url(text: str) -> bool:
    """Whether ``text`` is an http or https URL (what :func:`download` fetches)."""
    return urllib.parse.urlsplit(str(text)).scheme in ("http", "https")
