"""Downloads against a local HTTP server: checksums, atomicity, caching."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from labrunner.data import DataError, cached_url, download, sha256_file
from labrunner.testing import serve_folder


@pytest.fixture
def server(tmp_path: Path):
    """Serve tmp_path/www on 127.0.0.1; yields (base URL, folder, request counter)."""
    www = tmp_path / "www"
    www.mkdir()
    with serve_folder(www) as (url, hits):
        yield url, www, hits


def test_download_verifies_and_caches(server, tmp_path):
    base, www, hits = server
    payload = b"hello labrunner\n" * 1000
    (www / "data.txt").write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    dest = tmp_path / "cache" / "data.txt"
    assert download(f"{base}/data.txt", dest, digest) == dest
    assert dest.read_bytes() == payload
    assert sha256_file(dest) == digest
    download(f"{base}/data.txt", dest, digest)
    assert len(hits) == 1  # the valid cached copy is reused


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    base, www, hits = server
    (www / "data.txt").write_bytes(b"tampered")
    dest = tmp_path / "cache" / "data.txt"
    with pytest.raises(DataError, match="checksum mismatch for .*data.txt: expected sha256 0000"):
        download(f"{base}/data.txt", dest, "0" * 64)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []


def test_missing_file_and_bad_scheme(server, tmp_path):
    base, www, hits = server
    with pytest.raises(DataError, match="cannot download"):
        download(f"{base}/missing.txt", tmp_path / "x")
    assert not (tmp_path / "x").exists()
    with pytest.raises(DataError, match="only http and https"):
        download("file:///etc/passwd", tmp_path / "y")


def test_cached_url_names_are_safe(server, tmp_path):
    base, www, hits = server
    (www / "img.png").write_bytes(b"png")
    path = cached_url(f"{base}/img.png?x=../../etc", tmp_path / "cache")
    assert path.parent == tmp_path / "cache"
    assert path.name.endswith("-img.png")
    assert cached_url(f"{base}/img.png?x=../../etc", tmp_path / "cache") == path
    assert len(hits) == 1
