from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEST_PLUGINS = Path(__file__).parent / "plugins"
BAD_PLUGINS = Path(__file__).parent / "plugins_bad"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working folder with a private cache, loading only the test plugins."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("LABRUNNER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LABRUNNER_PLUGINS", "core_labs")
    return work


@pytest.fixture
def cli(workdir: Path, capsys: pytest.CaptureFixture):
    """Run the CLI in-process with the test plugins; returns (status, stdout, stderr)."""
    from labrunner.cli import main

    def run(*args: str, plugins: bool = True) -> tuple[int, str, str]:
        argv = list(args)
        if plugins and argv and argv[0] not in ("--help", "--version"):
            argv[1:1] = ["--plugins-dir", str(TEST_PLUGINS)]
        status = main(argv)
        out, err = capsys.readouterr()
        return status, out, err

    return run


def run_subprocess(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, **kw):
    """Run ``python -m labrunner ...`` (or a -c program) in a fresh interpreter."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=300, **kw
    )
