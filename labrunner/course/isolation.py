"""What isolation a machine gives untrusted code (:func:`detect_isolation`) and what the code
may use (:class:`Limits`); running it is :mod:`.sandbox`, bubblewrap's command line
:mod:`.bwrap`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

#: The folder that holds the labrunner package (on a sandboxed process's PYTHONPATH).
LABRUNNER_HOME = Path(__file__).resolve().parents[2]
#: The first uid of the unprivileged users (one per job slot) when running as root.
BASE_UID = 61000
GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True)
class Limits:
    """What a sandboxed command may use. ``memory``: address space in bytes (RLIMIT_AS);
    ``processes``: processes and threads of its user (RLIMIT_NPROC); ``file_size``: the
    largest file it may write (RLIMIT_FSIZE); ``scratch``: the size of its writable folder;
    ``open_files``; ``wall``: seconds before the whole sandbox is killed; ``cpu``: CPU
    seconds (RLIMIT_CPU; default twice ``wall``); ``payload``: the most bytes of result."""

    memory: int = 8 * GIB
    processes: int = 256
    file_size: int = 256 * MIB
    scratch: int = 1 * GIB
    open_files: int = 1024
    wall: float = 600.0
    cpu: int | None = None
    payload: int = 64 * MIB

    def describe(self) -> str:
        return (
            f"memory {self.memory / GIB:g} GiB, {self.processes} processes, files up to "
            f"{self.file_size / MIB:g} MiB, scratch {self.scratch / MIB:g} MiB, {self.wall:g} s"
        )


@dataclass(frozen=True)
class Isolation:
    """What isolation is in force: ``kind`` is ``"bubblewrap"`` or ``"rlimits"``;
    ``as_root``: whether commands are dropped from root to an unprivileged uid;
    ``description`` is one line for the output and the feedback; ``warning`` is "" when the
    sandbox is complete, else what is missing."""

    kind: str
    as_root: bool
    description: str
    warning: str = ""
    bwrap: str = ""
    setpriv: str = ""


def detect_isolation(mode: str = "auto") -> Isolation:
    """The isolation this machine gives: ``mode`` is ``auto`` (bubblewrap when it works, else
    resource limits only), ``bubblewrap`` (an error when it does not work) or ``rlimits``."""
    as_root = os.geteuid() == 0
    if mode == "none":  # a plain worker process, for measuring the sandbox's cost only
        return Isolation("none", as_root, "none (benchmark only)", "NOT SANDBOXED: no isolation at all")
    setpriv = shutil.which("setpriv") or "" if as_root else ""
    user = "an unprivileged uid per job" if as_root and setpriv else "the current user"
    if as_root and not setpriv:
        user = "root (setpriv is missing: no unprivileged user)"
    bwrap = shutil.which("bwrap") or ""
    why_not = ""
    if mode in ("auto", "bubblewrap"):
        if not bwrap:
            why_not = "bubblewrap (bwrap) is not installed (apt-get install bubblewrap)"
        else:
            probe = subprocess.run(
                [bwrap, *namespace_args(as_root), "--ro-bind", "/", "/", "--", "true"],
                capture_output=True,
                text=True,
                timeout=30,
            )
            if probe.returncode != 0:
                why_not = f"bwrap cannot create namespaces here ({first_line(probe.stderr)})"
        if not why_not:
            return Isolation(
                "bubblewrap",
                as_root,
                f"bubblewrap sandbox: no network, own PID namespace, read-only system, scratch only "
                f"writable; runs as {user}; resource limits",
                "" if as_root and setpriv or not as_root else "commands run as root inside the sandbox",
                bwrap=bwrap,
                setpriv=setpriv,
            )
        if mode == "bubblewrap":
            from ..base.errors import UsageError

            raise UsageError(f"--sandbox bubblewrap: {why_not}")
    if as_root and setpriv and not _can_run_python_as(setpriv, BASE_UID):
        setpriv = ""
        user = f"root (an unprivileged user cannot run {sys.executable})"
    warning = (
        f"NOT SANDBOXED: {why_not or 'resource limits only were asked for'}; student code runs with "
        f"resource limits only, as {user}, with the network and the machine's files it can reach"
    )
    return Isolation("rlimits", as_root, f"resource limits only, as {user}", warning, setpriv=setpriv)


def _can_run_python_as(setpriv: str, uid: int) -> bool:
    """Whether an unprivileged ``uid`` can start this Python and import labrunner (outside a
    sandbox it meets the host's permissions: an interpreter under /root is out of reach)."""
    probe = subprocess.run(
        [*setpriv_command(setpriv, uid), sys.executable, "-c", "import labrunner"],
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(LABRUNNER_HOME)},
        cwd="/",
        timeout=60,
    )
    return probe.returncode == 0


def namespace_args(as_root: bool) -> list[str]:
    # As root, bwrap sets up the namespaces itself and setpriv drops to an unprivileged uid;
    # as another user it needs a user namespace (and the command keeps that user's uid).
    args = ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if not as_root:
        args.append("--unshare-user")
    return args


def setpriv_command(setpriv: str, uid: int) -> list[str]:
    return [
        setpriv,
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--no-new-privs",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
    ]


def first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no message"
