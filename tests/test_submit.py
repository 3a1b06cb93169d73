"""`labrunner submit`: a zip of report and results with a sha256 manifest, verified."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile

import pytest
from test_report import make_run

from labrunner.bundle import MANIFEST, BundleError, make_bundle, verify_bundle
from labrunner.errors import UsageError


def test_bundle_contents_and_manifest(tmp_path):
    run_dir = make_run(tmp_path)
    (run_dir / "lab0" / ".result.json.tmp").write_text("half-written")  # never packed
    dest = tmp_path / "ada-hw2.zip"
    path, count = make_bundle(run_dir, dest)  # renders the report first: the run has none
    assert path == dest and (run_dir / "report.html").is_file()
    names = zipfile.ZipFile(dest).namelist()
    assert all(n.startswith("ada-hw2/") for n in names)
    inside = {n.split("/", 1)[1] for n in names}
    assert {
        "report.html",
        "report.md",
        "figures/lab0/fig0.png",
        "run.json",
        "config.yaml",
        "lab0/result.json",
        "lab0/figures/fig0.png",
        "counter/result.json",
        "crashing/result.json",
        MANIFEST,
    } == inside
    assert count == len(inside) - 1
    zf = zipfile.ZipFile(dest)
    manifest = zf.read(f"ada-hw2/{MANIFEST}").decode().splitlines()
    for line in manifest:
        digest, name = line.split("  ", 1)
        assert hashlib.sha256((run_dir / name).read_bytes()).hexdigest() == digest
    assert verify_bundle(dest) == count
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def _rewrite(src, dest, change):
    """Copy a zip, letting ``change(name, data)`` return new bytes or None to drop a file."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w") as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info.filename, data)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda n, d: d + b"x" if n.endswith("run.json") else d, "does not match its sha256"),
        (lambda n, d: None if n.endswith("counter/result.json") else d, "not in the bundle"),
        (lambda n, d: None if n.endswith(MANIFEST) else d, "no MANIFEST.sha256"),
    ],
)
def test_verify_detects_tampering(tmp_path, change, message):
    dest, _ = make_bundle(make_run(tmp_path), tmp_path / "s.zip")
    bad = tmp_path / "bad.zip"
    _rewrite(dest, bad, change)
    with pytest.raises(BundleError, match=message):
        verify_bundle(bad)


def test_verify_detects_an_unlisted_file(tmp_path):
    dest, _ = make_bundle(make_run(tmp_path), tmp_path / "s.zip")
    with zipfile.ZipFile(dest, "a") as zf:
        zf.writestr("s/extra.txt", "sneaked in")
    with pytest.raises(BundleError, match="extra.txt is in the bundle but not in the manifest"):
        verify_bundle(dest)


def test_bad_destination(tmp_path):
    run_dir = make_run(tmp_path)
    with pytest.raises(UsageError, match="must end in .zip"):
        make_bundle(run_dir, tmp_path / "s.tar")
    with pytest.raises(UsageError, match="no such folder"):
        make_bundle(run_dir, tmp_path / "missing" / "s.zip")


def test_cli_submit(tmp_path):
    run_dir = make_run(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "labrunner", "submit", str(run_dir), "-o", "hw.zip"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "hw.zip" in proc.stdout and "verified" in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "labrunner", "submit", "--verify", "hw.zip"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and "files match the manifest" in proc.stdout
    if shutil.which("sha256sum") is None:
        return
    # the manifest works with the standard tool, on an unpacked copy
    zipfile.ZipFile(tmp_path / "hw.zip").extractall(tmp_path / "unpacked")
    sha = subprocess.run(
        ["sha256sum", "--quiet", "-c", MANIFEST], cwd=tmp_path / "unpacked" / "hw", capture_output=True
    )
    assert sha.returncode == 0, sha.stdout
