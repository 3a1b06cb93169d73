"""The bubblewrap command line of a sandbox: new namespaces, the system and Python read-only,
the submission's code read-only at ``/sandbox/code``, a size-limited scratch tmpfs as the only
writable place, and the folders it must not see covered."""

from __future__ import annotations

import os
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

from ..records.files import is_inside
from .isolation import LABRUNNER_HOME, MIB, Isolation, Limits, namespace_args, setpriv_command

#: Where the code and the scratch folder are inside a bubblewrap sandbox.
CODE_MOUNT = "/sandbox/code"
SCRATCH_MOUNT = "/sandbox/scratch"


#: The system folders a sandbox sees, read-only (those that exist).
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")


def _readonly_paths(hide: Sequence[Path]) -> list[Path]:
    """The folders Python and labrunner need, read-only: the interpreter's prefixes, its
    library folders and every folder on sys.path (not the working folder), except any that
    is itself inside a hidden folder."""
    paths: set[Path] = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        paths.add(Path(sysconfig.get_paths()[key]))
    paths |= {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix), Path(sys.executable).parent}
    paths.add(LABRUNNER_HOME)
    cwd = Path.cwd().resolve()
    for entry in sys.path:
        if entry and Path(entry).resolve() != cwd:
            paths.add(Path(entry))
    found = []
    for path in paths:
        try:
            path = path.resolve()
        except OSError:
            continue
        if path.exists() and not any(is_inside(path, h) for h in hide) and not is_inside(path, Path("/proc")):
            found.append(path)
    # The outermost folders only: a folder inside another one is already there.
    found.sort(key=lambda p: len(p.parts))
    outer: list[Path] = []
    for path in found:
        if not any(is_inside(path, o) for o in outer):
            outer.append(path)
    return outer


def bwrap_command(
    isolation: Isolation,
    argv: Sequence[str],
    *,
    code_dir: Path,
    scratch_dir: Path,
    limits: Limits,
    env: dict[str, str],
    hide: Sequence[Path],
    uid: int,
) -> list[str]:
    """The bwrap command line that runs ``argv`` with ``code_dir`` at /sandbox/code
    (read-only) and a scratch tmpfs at /sandbox/scratch (the only writable folder)."""
    cmd = [isolation.bwrap, *namespace_args(isolation.as_root), "--die-with-parent", "--new-session"]
    cmd += ["--clearenv", "--tmpfs", "/"]
    for name in SYSTEM_DIRS:
        path = Path(name)
        if path.is_symlink():
            cmd += ["--symlink", os.readlink(path), name]
        elif path.is_dir():
            cmd += ["--ro-bind", name, name]
    # The sandbox's own /tmp, before the folders bound read-only: one of them may lie in the
    # host's /tmp (labrunner installed from a checkout there), and a tmpfs mounted after it
    # would cover it.
    cmd += ["--perms", "1777", "--size", str(64 * MIB), "--tmpfs", "/tmp"]
    bound = [Path(d) for d in SYSTEM_DIRS]
    made: set[Path] = set()
    for path in _readonly_paths(hide):
        if not any(is_inside(path, d) for d in bound):
            cmd += ["--ro-bind", str(path), str(path)]
            bound.append(path)
            made |= set(path.parents) - {Path("/")}
    # Folders bwrap made on the way to a bound one copy the host's mode (/root is 0700):
    # the unprivileged user must be able to pass through them.
    for folder in sorted(made - set(bound) - {Path("/tmp")}, key=lambda p: len(p.parts)):
        if not any(is_inside(folder, b) for b in bound):
            cmd += ["--chmod", "0755", str(folder)]
    # A hidden folder that lies inside one shown read-only (the grading folder inside a
    # checkout that holds labrunner) is covered with an empty folder.
    for path in hide:
        if path.exists() and any(is_inside(path, p) for p in _readonly_paths([])):
            cmd += ["--tmpfs", str(path.resolve())]
    cmd += ["--dev", "/dev", "--proc", "/proc"]
    cmd += ["--perms", "0755", "--dir", str(Path(CODE_MOUNT).parent)]
    cmd += ["--ro-bind", str(code_dir), CODE_MOUNT]
    cmd += ["--perms", "0777", "--size", str(limits.scratch), "--tmpfs", SCRATCH_MOUNT]
    cmd += ["--chdir", SCRATCH_MOUNT]
    for key, value in env.items():
        cmd += ["--setenv", key, value]
    cmd += ["--"]
    if isolation.as_root and isolation.setpriv:
        cmd += setpriv_command(isolation.setpriv, uid)
    return cmd + list(argv)
