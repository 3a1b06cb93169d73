"""Fixtures shared by the whole suite, and what keeps the checkout clean.

Tests never write into the source tree: no byte code is written while the suite runs (in
this process and in every subprocess a test starts), pytest's and hypothesis's caches
(``.pytest_cache``, ``.hypothesis``) go to a scratch folder outside the checkout, and at the end of the session compares ``git status --porcelain --ignored``
with what it was at the start: a new ignored file (byte code, build output, a report) fails
the run, a new untracked file is reported (``LABRUNNER_TREE_CHECK=0`` turns the comparison off).
"""

from __future__ import annotations

import getpass
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import configuration as hypothesis_configuration

ROOT = Path(__file__).resolve().parent.parent
TEST_PLUGINS = Path(__file__).parent / "plugins"
BAD_PLUGINS = Path(__file__).parent / "plugins_bad"


# --------------------------------------------------------------------------- a clean checkout


def _scratch_dir() -> Path:
    """A per-user folder outside the checkout for the caches the suite keeps between runs
    (pytest's ``--lf`` data, hypothesis examples), private to this user: one that is a link,
    another user's or writable by others is not used, and a fresh one is made instead."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "user"
    path = Path(tempfile.gettempdir()) / f"labrunner-tests-{user}"
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:  # checked below: a folder, or a link or a file in its place
        pass
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        return Path(tempfile.mkdtemp(prefix=f"labrunner-tests-{user}-"))
    return path


SCRATCH = Path(os.environ.setdefault("LABRUNNER_TEST_SCRATCH", str(_scratch_dir())))
# No byte code is written from here on, in this process and in subprocesses (which inherit
# os.environ; child_env passes it on in a replaced environment), so no __pycache__ appears in
# the checkout. Installed packages still load the byte code pip compiled for them. (A
# PYTHONPYCACHEPREFIX hides that byte code: the first session with one compiles torch and
# the standard library again, 5.6 s more to collect the fast tier here, for 2.3 s less in
# each later session.)
BYTECODE_ENV = {"PYTHONDONTWRITEBYTECODE": "1"}
os.environ.update(BYTECODE_ENV)
sys.dont_write_bytecode = True


# hypothesis keeps its example database and constants cache in ./.hypothesis unless told
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(SCRATCH / "hypothesis"))
hypothesis_configuration.set_hypothesis_home_dir(os.environ["HYPOTHESIS_STORAGE_DIRECTORY"])

_TREE = pytest.StashKey[set]()
#: Written by tools, not by the tests (ruff's cache, editors); left out of the comparison.
TOOL_PATHS = (".ruff_cache/", ".benchmarks/")


def tree_state() -> set[str] | None:
    """Untracked and ignored files of the checkout (``git status --porcelain --ignored``,
    file by file), or None where this is not a git checkout or git is missing."""
    if not (ROOT / ".git").exists():
        return None
    try:
        proc = subprocess.run(
            ["git", "status", "--porcelain", "-z", "--ignored=traditional", "--untracked-files=all"],
            cwd=ROOT,
            capture_output=True,
            timeout=60,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    entries = proc.stdout.decode("utf-8", "replace").split("\0")
    return {e for e in entries if e[:3] in ("?? ", "!! ") and not e[3:].startswith(TOOL_PATHS)}


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("LABRUNNER_TREE_CHECK", "1") != "0":
        session.config.stash[_TREE] = tree_state()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """New ignored files (byte code, build output, reports) fail the session; new untracked
    files are listed as a warning only, since they may be someone's work in progress."""
    before = session.config.stash.get(_TREE, None)
    if before is None:
        return
    new = sorted((tree_state() or set()) - before)
    ignored = [e for e in new if e.startswith("!! ")]
    untracked = [e for e in new if e.startswith("?? ")]
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and new:
        title = "the tests wrote into the source tree" if ignored else "new untracked files in the checkout"
        reporter.write_sep("=", title, red=bool(ignored), yellow=not ignored)
        shown = "\n".join(f"  {e}" for e in (ignored + untracked)[:20])
        reporter.write_line(
            f"{len(new)} new file(s) in {ROOT} (git status --porcelain --ignored):\n{shown}\n"
            "Tests write under tmp_path. New ignored files fail the run; LABRUNNER_TREE_CHECK=0 "
            "skips the comparison."
        )
    if ignored:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --------------------------------------------------------------------------- `from conftest import`

_THIS = sys.modules[__name__]


def pytest_plugin_registered(plugin: object, manager: pytest.PytestPluginManager) -> None:
    """Keep ``conftest`` naming this module: a conftest.py in a sub-folder of tests/ is
    imported under the same module name and would replace it for the test modules that
    write ``from conftest import TEST_PLUGINS`` (pytest still holds the other one's fixtures)."""
    if getattr(plugin, "__name__", None) == "conftest" and plugin is not _THIS:
        sys.modules["conftest"] = _THIS


# --------------------------------------------------------------------------- fixtures


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


def lab_saved(root: Path, lab: str) -> bool:
    """Whether a run folder under ``root/reports`` holds ``lab``'s result.json: the lab has
    finished (a run writes it when the lab ends, before the run does)."""
    return any(root.glob(f"reports/2*/{lab}/result.json"))


def subprocess_env(env: dict[str, str] | None = None, unset: Iterable[str] = ()) -> dict[str, str]:
    """This process's environment with ``env`` added (or overriding) and the names in
    ``unset`` removed, writing no byte code (so a child writes no ``__pycache__`` into the
    checkout)."""
    full = {**os.environ, **(env or {}), **BYTECODE_ENV}
    for name in unset:
        full.pop(name, None)
    return full


def labrunner_argv(*args: str, prefix: Sequence[str] = ()) -> list[str]:
    """The command line ``python -m labrunner ARGS`` in this interpreter, after ``prefix``
    (``without_root_powers()``): for a test that starts it itself (``subprocess.Popen``)."""
    return [*prefix, sys.executable, "-m", "labrunner", *args]


def run_subprocess(
    *args: str,
    env: dict[str, str] | None = None,
    unset: Iterable[str] = (),
    cwd: Path | None = None,
    timeout: float = 300,
    **kw: Any,
) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS`` (``-m labrunner ...``, ``-c PROGRAM``) in a fresh interpreter and
    capture its output as text; the environment is :func:`subprocess_env` (``env``, ``unset``)."""
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=subprocess_env(env, unset),
        cwd=cwd,
        timeout=timeout,
        **kw,
    )


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    unset: Iterable[str] = (),
    cwd: Path | None = None,
    timeout: float = 300,
    prefix: Sequence[str] = (),
    **kw: Any,
) -> subprocess.CompletedProcess[str]:
    """Run the command line ``labrunner ARGS`` in a fresh interpreter (``python -m
    labrunner``), as a user would; returns the completed process (``returncode``, ``stdout``,
    ``stderr`` as text). ``env`` and ``unset`` change this process's environment for it
    (:func:`subprocess_env`); ``prefix`` goes before the interpreter (``without_root_powers()``);
    the rest (``input=``) goes to :func:`subprocess.run`. The in-process ``cli`` fixture is
    faster: use this where the test needs a process of its own (signals, exit status, imports)."""
    return subprocess.run(
        labrunner_argv(*args, prefix=prefix),
        capture_output=True,
        text=True,
        env=subprocess_env(env, unset),
        cwd=cwd,
        timeout=timeout,
        **kw,
    )


def installed_plugin(site: Path, name: str, source: str, version: str = "1.0") -> dict[str, str]:
    """Install a plugin into ``site`` the way pip would leave it, without pip: the
    distribution ``labrunner-NAME-plugin`` (dist-info metadata) whose ``labrunner`` entry
    point ``NAME`` is the module ``labrunner_NAME_plugin`` holding ``source`` (dedented).
    Returns the environment under which a subprocess loads it (``PYTHONPATH`` and the
    allow-list ``LABRUNNER_PLUGINS=NAME``)."""
    module = f"labrunner_{name}_plugin"
    dist = site / f"{module}-{version}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: labrunner-{name}-plugin\nVersion: {version}\n"
    )
    (dist / "entry_points.txt").write_text(f"[labrunner]\n{name} = {module}\n")
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    return {"PYTHONPATH": str(site), "LABRUNNER_PLUGINS": name}


#: Sentences in the Penn Treebank's style: lower case, ``<unk>`` for rare words, N for numbers.
PTB_SENTENCES = ("the army said N <unk>", "a taxpayer sold the army", "the company said N")


def write_ptb_folder(
    folder: Path,
    names: Mapping[str, str] | None = None,
    *,
    lines: Mapping[str, int] | None = None,
    text: Mapping[str, str] | None = None,
) -> Path:
    """Write a corpus folder in the Penn Treebank's format (one sentence a line, words split
    by spaces) and return it: for each split (train, valid, test) the file ``names[split]``
    (default ``SPLIT.txt``; ``ptb.SPLIT.txt`` is the real corpus's naming) holding
    ``text[split]`` if given, else the first ``lines[split]`` lines (default 120 for train,
    30 for the others) of :data:`PTB_SENTENCES` repeated."""
    names = names or {split: f"{split}.txt" for split in ("train", "valid", "test")}
    counts = {"train": 120, "valid": 30, "test": 30, **(lines or {})}
    folder.mkdir(parents=True, exist_ok=True)
    for split, name in names.items():
        if text and split in text:
            body = text[split]
        else:
            body = "".join(f"{PTB_SENTENCES[i % len(PTB_SENTENCES)]}\n" for i in range(counts[split]))
        (folder / name).write_text(body, encoding="utf-8")
    return folder


def adam_reference(
    start: Any, loss: Callable[[Any], Any], *, lr: float, steps: int, project: Callable[[Any], Any]
) -> Any:
    """The reference an optimiser under test must match: ``steps`` steps of
    ``torch.optim.Adam`` (default betas and eps) on ``loss(x)`` from the tensor ``start``,
    ``project(x)`` applied in place after each step (a box such as the valid pixels);
    returns the last ``x``, detached."""
    import torch

    x = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    for _ in range(steps):
        value = loss(x)
        opt.zero_grad()
        value.backward()
        opt.step()
        with torch.no_grad():
            project(x)
    return x.detach()


def child_env(**values: str) -> dict[str, str]:
    """A minimal environment for a subprocess that must not see this one (``PATH``-less tests),
    still writing no byte code, so the child writes nothing into the checkout."""
    return {**BYTECODE_ENV, **values}


def without_root_powers() -> list[str]:
    """A command prefix under which root meets file permissions like anyone (setpriv drops
    its capabilities); empty for other users. Skips the test where setpriv is missing."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root and setpriv is not installed")
    return ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]
