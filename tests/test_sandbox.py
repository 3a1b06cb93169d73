"""The grading sandbox's command line and limits (running code in it: test_grade_cohort.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import labrunner
from labrunner.base.errors import UsageError
from labrunner.commands.grade_cli import parse_size
from labrunner.course.bwrap import CODE_MOUNT, SCRATCH_MOUNT, bwrap_command
from labrunner.course.isolation import Isolation, Limits, detect_isolation


def _isolation(as_root=True):
    return Isolation("bubblewrap", as_root, "bubblewrap", bwrap="/usr/bin/bwrap", setpriv="/usr/bin/setpriv")


def _pairs(cmd, option):
    return [
        cmd[i + 1 : i + 3] if option.endswith("bind") else cmd[i + 1]
        for i, c in enumerate(cmd)
        if c == option
    ]


def test_the_sandbox_sees_no_network_no_home_and_writes_only_its_scratch(tmp_path, monkeypatch):
    checkout = tmp_path / "checkout"  # a folder on sys.path, shown read-only ...
    hidden = checkout / "grading"  # ... holding the grading folder, which must be hidden
    hidden.mkdir(parents=True)
    monkeypatch.syspath_prepend(str(checkout))
    cmd = bwrap_command(
        _isolation(),
        ["python", "-m", "labrunner.course.rerun"],
        code_dir=tmp_path / "code",
        scratch_dir=tmp_path / "scratch",
        limits=Limits(scratch=64 * 1024**2),
        env={"HOME": SCRATCH_MOUNT},
        hide=[hidden, tmp_path / "subs"],
        uid=61005,
    )
    assert {"--unshare-net", "--unshare-pid", "--unshare-ipc", "--die-with-parent", "--new-session"} <= set(
        cmd
    )
    assert "--unshare-user" not in cmd  # as root: setpriv drops to the uid instead
    assert cmd[cmd.index("--clearenv") + 1 : cmd.index("--clearenv") + 3] == ["--tmpfs", "/"]
    writable = _pairs(cmd, "--bind")
    assert writable == []  # nothing of the host is writable
    read_only = [dst for _src, dst in _pairs(cmd, "--ro-bind")]
    assert CODE_MOUNT in read_only and str(checkout.resolve()) in read_only
    assert not any(p in ("/", "/root", "/home", "/tmp", str(tmp_path)) for p in read_only)
    assert str(hidden.resolve()) in _pairs(cmd, "--tmpfs")
    assert str(Path(labrunner.__file__).resolve().parent.parent) in read_only
    # the sandbox's /tmp is mounted before the read-only folders: a checkout in the host's
    # /tmp (tmp_path here) stays visible instead of being covered by it
    tmpfs_at = next(i for i in range(len(cmd) - 1) if cmd[i : i + 2] == ["--tmpfs", "/tmp"])
    assert all(
        tmpfs_at < i for i in range(len(cmd) - 2) if cmd[i] == "--ro-bind" and cmd[i + 1].startswith("/tmp/")
    )
    assert ["--chmod", "0755", "/tmp"] not in [cmd[i : i + 3] for i in range(len(cmd) - 2)]
    i = cmd.index(SCRATCH_MOUNT)
    assert cmd[i - 1] == "--tmpfs" and cmd[i - 3 : i - 1] == ["--size", str(64 * 1024**2)]
    tail = cmd[cmd.index("--") + 1 :]
    assert tail[0] == "/usr/bin/setpriv" and "--reuid=61005" in tail and "--no-new-privs" in tail
    assert tail[-3:] == ["python", "-m", "labrunner.course.rerun"]


def test_without_root_the_sandbox_needs_a_user_namespace(tmp_path):
    cmd = bwrap_command(
        _isolation(as_root=False),
        ["true"],
        code_dir=tmp_path,
        scratch_dir=tmp_path,
        limits=Limits(),
        env={},
        hide=[],
        uid=61000,
    )
    assert "--unshare-user" in cmd and "/usr/bin/setpriv" not in cmd


def test_asking_for_rlimits_says_it_is_not_a_sandbox():
    isolation = detect_isolation("rlimits")
    assert isolation.kind == "rlimits" and isolation.warning.startswith("NOT SANDBOXED")
    assert "resource limits only" in isolation.description


def test_a_missing_bubblewrap_is_said_or_refused(monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "bwrap" else real_which(name))
    isolation = detect_isolation("auto")
    assert isolation.kind == "rlimits" and "bubblewrap (bwrap) is not installed" in isolation.warning
    with pytest.raises(UsageError, match="--sandbox bubblewrap: bubblewrap"):
        detect_isolation("bubblewrap")


@pytest.mark.parametrize(
    "text, value", [("512M", 512 * 1024**2), ("8G", 8 * 1024**3), ("1.5GiB", 1536 * 1024**2), ("4096", 4096)]
)
def test_sizes(text, value):
    assert parse_size(text, "--memory") == value


@pytest.mark.parametrize("text", ["lots", "0", "-1G", "8X"])
def test_bad_sizes_are_one_line(text):
    with pytest.raises(UsageError, match="--memory"):
        parse_size(text, "--memory")
