"""`labrunner submit`: a zip of report and results with a sha256 manifest, verified."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import zipfile

import pytest
from conftest import run_cli
from test_report import make_run

from labrunner.base.errors import UsageError
from labrunner.course.bundle import MANIFEST, BundleError, make_bundle, verify_bundle
from labrunner.records.results import write_json


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
        "code/code.json",  # the labs of make_run are not installed: no code, code.json says so
        MANIFEST,
    } == inside
    assert count == len(inside) - 1
    zf = zipfile.ZipFile(dest)
    manifest = zf.read(f"ada-hw2/{MANIFEST}").decode().splitlines()
    for line in manifest:
        digest, name = line.split("  ", 1)
        data = zf.read(f"ada-hw2/{name}") if name.startswith("code/") else (run_dir / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest
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
    proc = run_cli("submit", str(run_dir), "-o", "hw.zip", cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "hw.zip" in proc.stdout and "verified" in proc.stdout
    proc = run_cli("submit", "--verify", "hw.zip", cwd=tmp_path, timeout=120)
    assert proc.returncode == 0 and "files match the manifest" in proc.stdout
    if shutil.which("sha256sum") is None:
        return
    # the manifest works with the standard tool, on an unpacked copy
    zipfile.ZipFile(tmp_path / "hw.zip").extractall(tmp_path / "unpacked")
    sha = subprocess.run(
        ["sha256sum", "--quiet", "-c", MANIFEST], cwd=tmp_path / "unpacked" / "hw", capture_output=True
    )
    assert sha.returncode == 0, sha.stdout


# --------------------------------------------------------------------------- what is handed in


def _edit(path, change):
    data = json.loads(path.read_text())
    change(data)
    write_json(path, data)


def test_an_incomplete_run_is_not_handed_in(cli, tmp_path):
    run_dir = make_run(tmp_path)
    _edit(run_dir / "run.json", lambda d: d["settings"]["labs"].append("rnn_lm"))
    status, out, err = cli("submit", str(run_dir), "-o", str(tmp_path / "hw.zip"))
    assert status == 1 and not (tmp_path / "hw.zip").exists()
    assert err.splitlines() == [
        f"labrunner: error: {run_dir}: incomplete run: no result for lab rnn_lm "
        "(run the labs again to finish it)"
    ]
    _edit(run_dir / "run.json", lambda d: d.update(status="interrupted"))
    status, out, err = cli("submit", str(run_dir), "-o", str(tmp_path / "hw.zip"), "--partial")
    assert status == 1 and "run.json says the run is interrupted, not finished" in err


def test_labs_not_run_need_partial(cli, tmp_path):
    run_dir = make_run(tmp_path)
    _edit(
        run_dir / "run.json",
        lambda d: d["labs"].extend(
            {"lab": name, "status": "not run", "title": name.title(), "origin": {"kind": "not run"}}
            for name in ("attention", "rnn_lm")
        ),
    )
    status, out, err = cli("submit", str(run_dir), "-o", str(tmp_path / "hw.zip"))
    assert status == 1 and not (tmp_path / "hw.zip").exists()
    assert "labs not run: attention, rnn_lm (run them with 'labrunner run attention rnn_lm'" in err
    assert "--partial" in err and len(err.splitlines()) == 1
    status, out, err = cli("submit", str(run_dir), "-o", str(tmp_path / "hw.zip"), "--partial")
    assert status == 0, err
    assert verify_bundle(tmp_path / "hw.zip") > 0


def test_stand_ins_need_allow_stand_ins_and_are_named(cli, tmp_path):
    run_dir = make_run(tmp_path)
    path = run_dir / "lab0" / "result.json"
    _edit(
        path, lambda d: d["exercises"][0].update(fidelity="stand-in", fidelity_reason="no ImageNet weights")
    )
    status, out, err = cli("submit", str(run_dir), "-o", str(tmp_path / "hw.zip"))
    assert status == 1 and not (tmp_path / "hw.zip").exists()
    assert "exercises on a stand-in, not the assignment's material: lab0: 1. Sums" in err
    assert "--allow-stand-ins" in err and len(err.splitlines()) == 1
    status, out, err = cli("submit", str(run_dir), "-o", str(tmp_path / "hw.zip"), "--allow-stand-ins")
    assert status == 0, err


# --------------------------------------------------------------------------- hostile bundles


def _zip(path, entries):
    """A zip of (name, bytes) entries, written as given (duplicates included)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in entries:
                zf.writestr(name, data)
    return path


def _manifest(*names_data):
    return "".join(f"{hashlib.sha256(d).hexdigest()}  {n}\n" for n, d in names_data).encode()


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (
            [("s/../evil.txt", b"x"), ("s/MANIFEST.sha256", _manifest(("../evil.txt", b"x")))],
            "a name with '..'",
        ),
        ([("/s/x.txt", b"x"), ("s/MANIFEST.sha256", _manifest(("x.txt", b"x")))], "is an absolute name"),
        ([("s/a.txt", b"x"), ("s/MANIFEST.sha256", _manifest(("../../a.txt", b"x")))], "lists '../../a.txt'"),
        ([("s/a.txt", b"x"), ("s/MANIFEST.sha256", _manifest(("/etc/a.txt", b"x")))], "an absolute name"),
        (
            [("s/a.txt", b"x"), ("s/a.txt", b"y"), ("s/MANIFEST.sha256", _manifest(("a.txt", b"x")))],
            "appears twice",
        ),
        (
            [("s/a.txt", b"x"), ("s/MANIFEST.sha256", _manifest(("a.txt", b"x"), ("a.txt", b"x")))],
            "lists 'a.txt' twice",
        ),
        ([("s/MANIFEST.sha256", b"")], "MANIFEST.sha256 lists no files"),
        ([("s/a.txt", b"x"), ("s/MANIFEST.sha256", b"x" * 200 + b"\n")], "malformed manifest line 'xxxx"),
    ],
)
def test_verify_rejects_unsafe_names_duplicates_and_empty_manifests(tmp_path, entries, message):
    path = _zip(tmp_path / "s.zip", entries)
    with pytest.raises(BundleError, match=message) as info:
        verify_bundle(path)
    assert "\n" not in str(info.value) and len(str(info.value)) < 300


def test_a_corrupt_zip_is_one_line(cli, tmp_path):
    dest, _ = make_bundle(make_run(tmp_path), tmp_path / "s.zip")
    data = bytearray(dest.read_bytes())
    broken = tmp_path / "broken.zip"
    for cut in (data[: len(data) // 2], data[:-30], data[:100] + bytes(200) + data[300:]):
        broken.write_bytes(bytes(cut))
        status, out, err = cli("submit", "--verify", str(broken))
        assert status == 1 and len(err.splitlines()) == 1 and err.startswith(f"labrunner: error: {broken}:")
    status, out, err = cli("submit", "--verify", str(tmp_path / "missing.zip"))
    assert status == 2 and "no such file" in err


def _bomb(path, size, name="s/zeros.bin"):
    """A zip holding ``size`` zero bytes (a few hundred KB compressed), written in chunks."""
    digest = hashlib.sha256()
    block = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open(name, "w", force_zip64=True) as fh:
            for _ in range(size // len(block)):
                fh.write(block)
                digest.update(block)
        zf.writestr("s/MANIFEST.sha256", f"{digest.hexdigest()}  zeros.bin\n")
    return path


def test_verify_reads_a_zip_bomb_in_bounded_memory(tmp_path):
    import tracemalloc

    path = _bomb(tmp_path / "bomb.zip", 48 << 20)
    assert path.stat().st_size < 1 << 20  # 48 MB of zeros in well under 1 MB
    tracemalloc.start()
    try:
        assert verify_bundle(path) == 1  # within the default limits: hashed in chunks
        with pytest.raises(BundleError, match=r"zeros.bin' is larger than 16777216 bytes uncompressed"):
            verify_bundle(path, max_entry_bytes=16 << 20)
        with pytest.raises(BundleError, match="the files are larger than 1048576 bytes"):
            verify_bundle(path, max_total_bytes=1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB"


@pytest.mark.slow
def test_the_bundle_holds_the_code_each_lab_ran(cli, workdir, tmp_path):
    """`submit` packs the source of each lab that ran, listed in the manifest with code.json
    saying which class is the lab and whether it is the code the run used."""
    from conftest import TEST_PLUGINS

    status, _, _ = cli("run", "counter", "--profile", "smoke", "--isolation", "none")
    assert status == 0
    status, out, err = cli("submit", "--partial", "-o", "hw.zip")
    assert status == 0, err
    assert "warning" not in err
    zf = zipfile.ZipFile(workdir / "hw.zip")
    code = json.loads(zf.read("hw/code/code.json"))["labs"]
    assert set(code) == {"counter"}
    counter = code["counter"]
    assert counter["package"] == "core_labs.py" and counter["class"] == "CounterLab"
    assert counter["matches_run"] is True
    source = (TEST_PLUGINS / "core_labs.py").read_bytes()
    assert zf.read("hw/code/counter/core_labs.py") == source
    assert counter["files"] == {"core_labs.py": hashlib.sha256(source).hexdigest()}
    manifest = zf.read(f"hw/{MANIFEST}").decode()
    assert f"{hashlib.sha256(source).hexdigest()}  code/counter/core_labs.py" in manifest
    assert verify_bundle(workdir / "hw.zip") == len(manifest.splitlines())

    # The installed code changed after the run: packed as it is now, flagged, with a warning.
    edited = tmp_path / "edited"
    edited.mkdir()
    (edited / "core_labs.py").write_bytes(source + b"\n# edited after the run\n")
    from labrunner.cli import main

    status = main(["submit", "--partial", "--plugins-dir", str(edited), "-o", "hw2.zip"])
    assert status == 0
    code = json.loads(zipfile.ZipFile(workdir / "hw2.zip").read("hw2/code/code.json"))["labs"]
    assert code["counter"]["matches_run"] is False


def _symlink_entry(name: str, target: str, mode: int = 0o120777) -> tuple[zipfile.ZipInfo, bytes]:
    """A zip entry that unzip (and Python's shutil.unpack_archive on some versions) unpacks
    as a symbolic link: its Unix mode says S_IFLNK and its data is the link's target."""
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix
    info.external_attr = mode << 16
    return info, target.encode()


def _zip_infos(path, entries):
    """A zip of (name or ZipInfo, bytes) entries."""
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return path


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (_symlink_entry("s/report.html", "/etc/passwd"), "'s/report.html' is a symbolic link"),
        (_symlink_entry("s/report.html", "../../outside.html"), "'s/report.html' is a symbolic link"),
        (_symlink_entry("s/report.html", "x", mode=0o010644), "'s/report.html' is not a plain file"),
    ],
)
def test_verify_refuses_symbolic_links_and_special_files(cli, tmp_path, entry, message):
    """A symlink entry listed in the manifest with the sha256 of its target text would
    verify as a file; unpacked, report.html would point outside the bundle."""
    from labrunner.course.bundle import UnsafeBundle

    info, data = entry
    path = _zip_infos(
        tmp_path / "s.zip", [(info, data), ("s/MANIFEST.sha256", _manifest(("report.html", data)))]
    )
    with pytest.raises(UnsafeBundle, match=re.escape(message)):
        verify_bundle(path)
    status, out, err = cli("submit", "--verify", str(path))
    assert status == 2 and out == "" and len(err.splitlines()) == 1 and message in err


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("report.html", "REPORT.html"),  # case
        ("figures/Straße.png", "figures/STRASSE.png"),  # case folding beyond lower()
        ("figures/caf\u00e9.png", "figures/cafe\u0301.png"),  # NFC and NFD
        ("figures/\ufb01g.png", "figures/fig.png"),  # NFKC: the ligature fi
        ("figures/x\u2460.png", "figures/x1.png"),  # NFKC: circled digit one
    ],
)
def test_verify_refuses_names_that_collide_ignoring_case_or_normalisation(cli, tmp_path, first, second):
    from labrunner.course.bundle import UnsafeBundle

    entries = [(f"s/{first}", b"a"), (f"s/{second}", b"b")]
    manifest = _manifest((first, b"a"), (second, b"b"))
    path = _zip(tmp_path / "s.zip", [*entries, ("s/MANIFEST.sha256", manifest)])
    with pytest.raises(
        UnsafeBundle, match="are one name on a file system that ignores case or normalises Unicode"
    ):
        verify_bundle(path)
    status, out, err = cli("submit", "--verify", str(path))
    assert status == 2 and out == "" and len(err.splitlines()) == 1
    assert repr(f"s/{first}") in err and repr(f"s/{second}") in err


def test_a_bundle_labrunner_writes_has_no_links_and_verifies(tmp_path):
    dest, _ = make_bundle(make_run(tmp_path), tmp_path / "s.zip")
    for info in zipfile.ZipFile(dest).infolist():
        assert (info.external_attr >> 16) & 0o170000 in (0, 0o100000)
    assert verify_bundle(dest) > 0


@pytest.mark.parametrize(
    ("file", "inside"), [("report.html", "report.html/x.png"), ("figures", "FIGURES/a.png")]
)
def test_verify_refuses_a_name_that_is_both_a_file_and_a_folder(cli, tmp_path, file, inside):
    from labrunner.course.bundle import UnsafeBundle

    entries = [(f"s/{file}", b"a"), (f"s/{inside}", b"b")]
    path = _zip(
        tmp_path / "s.zip", [*entries, ("s/MANIFEST.sha256", _manifest((file, b"a"), (inside, b"b")))]
    )
    with pytest.raises(UnsafeBundle, match=re.escape(f"'s/{file}' is a file, and a folder for 's/{inside}'")):
        verify_bundle(path)
    assert cli("submit", "--verify", str(path))[0] == 2
