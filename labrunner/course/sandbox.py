"""Running untrusted code (a student's lab, re-executed for grading) in a sandbox.

With bubblewrap (``bwrap``, Debian's ``bubblewrap``) the command runs in new network, PID,
IPC and UTS namespaces: no network at all, no other process visible, the system and Python
read-only and nothing else of the machine's files (no home, no /tmp, no other student's
folder), the submission's code read-only, and a scratch folder as the only writable place
(a size-limited tmpfs). When labrunner runs as root, the command runs as an unprivileged
user (a uid of its own per job slot, via ``setpriv``) with no capabilities. Without bwrap,
or where it cannot create namespaces, only the resource limits and the unprivileged user
are in force: :func:`detect_isolation` says so in one line, which grading shows in its
output and in every student's feedback.

In every mode the command gets resource limits (address space, processes, file size, open
files, CPU time, set with ``setrlimit`` before it starts) and a wall-clock time-out that
kills its whole process group (and, with bwrap, its PID namespace). What it writes to the
result pipe (file descriptor ``LABRUNNER_RESULT_FD``) comes back as ``payload``, read
in bounded memory; its output comes back as the last lines.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..records.files import is_inside

#: The environment variable naming the file descriptor the command writes its result to.
RESULT_FD_ENV = "LABRUNNER_RESULT_FD"
#: The folder that holds the labrunner package (on a sandboxed process's PYTHONPATH).
LABRUNNER_HOME = Path(__file__).resolve().parents[2]
#: Where the code and the scratch folder are inside a bubblewrap sandbox.
CODE_MOUNT = "/sandbox/code"
SCRATCH_MOUNT = "/sandbox/scratch"
#: The first uid of the unprivileged users (one per job slot) when running as root.
BASE_UID = 61000
#: The system folders a sandbox sees, read-only (those that exist).
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
#: The most of a command's output kept (the end of it).
OUTPUT_TAIL = 16 * 1024
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
                [bwrap, *_namespace_args(as_root), "--ro-bind", "/", "/", "--", "true"],
                capture_output=True,
                text=True,
                timeout=30,
            )
            if probe.returncode != 0:
                why_not = f"bwrap cannot create namespaces here ({_first_line(probe.stderr)})"
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
        [*_setpriv(setpriv, uid), sys.executable, "-c", "import labrunner"],
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(LABRUNNER_HOME)},
        cwd="/",
        timeout=60,
    )
    return probe.returncode == 0


def _namespace_args(as_root: bool) -> list[str]:
    # As root, bwrap sets up the namespaces itself and setpriv drops to an unprivileged uid;
    # as another user it needs a user namespace (and the command keeps that user's uid).
    args = ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if not as_root:
        args.append("--unshare-user")
    return args


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no message"


@dataclass
class SandboxResult:
    """How a sandboxed command ended. ``reason`` is "" when it exited 0, else one line:
    the exit status, the signal, the limit it hit or the time-out."""

    returncode: int | None
    timed_out: bool
    elapsed_s: float
    output: str
    payload: bytes
    payload_overflow: bool = False
    reason: str = ""
    isolation: str = ""
    extra: dict[str, str] = field(default_factory=dict)


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
    cmd = [isolation.bwrap, *_namespace_args(isolation.as_root), "--die-with-parent", "--new-session"]
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
        cmd += _setpriv(isolation.setpriv, uid)
    return cmd + list(argv)


def _setpriv(setpriv: str, uid: int) -> list[str]:
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


def _user_threads(uid: int) -> int:
    """How many processes and threads ``uid`` runs now (what RLIMIT_NPROC counts)."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/status", encoding="ascii", errors="replace") as fh:
                    fields = dict(line.split(":", 1) for line in fh if ":" in line)
                if int(fields["Uid"].split()[0]) == uid:
                    count += int(fields["Threads"])
            except (OSError, KeyError, ValueError):
                continue
    return count


def _set_limits(limits: Limits, nproc: int) -> None:
    """In the child, before exec: a session of its own (so the time-out kills the whole
    group) and the resource limits."""
    os.setsid()
    cpu = limits.cpu if limits.cpu is not None else int(2 * limits.wall) + 10
    for which, value in (
        (resource.RLIMIT_AS, limits.memory),
        (resource.RLIMIT_NPROC, nproc),
        (resource.RLIMIT_FSIZE, limits.file_size),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(which, (value, value))


def run_sandboxed(
    argv: Sequence[str],
    *,
    isolation: Isolation,
    code_dir: Path,
    scratch_dir: Path,
    limits: Limits,
    env: dict[str, str] | None = None,
    hide: Sequence[Path] = (),
    slot: int = 0,
    uid_base: int = BASE_UID,
) -> SandboxResult:
    """Run ``argv`` (a command that finds its input in the code folder, ``$LABRUNNER_CODE``)
    under ``isolation`` and ``limits``; returns how it ended, its output's end and what it
    wrote to its result pipe. ``scratch_dir`` is a host folder used as the writable place
    without bubblewrap (with it the scratch folder is a tmpfs); ``hide``: folders it must
    not see (the submissions, the grading folder). The unprivileged uid is ``uid_base + slot``."""
    code_dir, scratch_dir = Path(code_dir).resolve(), Path(scratch_dir).resolve()
    uid = uid_base + slot
    read_fd, write_fd = os.pipe()
    base_env = {
        # labrunner itself, wherever it is installed (an editable checkout included)
        "PYTHONPATH": str(LABRUNNER_HOME),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        "MPLBACKEND": "Agg",
        RESULT_FD_ENV: str(write_fd),
    }
    if isolation.kind == "bubblewrap":
        inner = {
            **base_env,
            "HOME": SCRATCH_MOUNT,
            "TMPDIR": f"{SCRATCH_MOUNT}/tmp",
            "LABRUNNER_CACHE_DIR": f"{SCRATCH_MOUNT}/cache",
            "MPLCONFIGDIR": f"{SCRATCH_MOUNT}/mpl",
            "LABRUNNER_CODE": CODE_MOUNT,
            "LABRUNNER_SCRATCH": SCRATCH_MOUNT,
            **(env or {}),
        }
        cmd = bwrap_command(
            isolation,
            argv,
            code_dir=code_dir,
            scratch_dir=scratch_dir,
            limits=limits,
            env=inner,
            hide=hide,
            uid=uid,
        )
        child_env = {"PATH": base_env["PATH"]}
        cwd = "/"
    else:
        scratch_dir.mkdir(parents=True, exist_ok=True)
        for sub in ("tmp", "cache", "mpl"):
            (scratch_dir / sub).mkdir(exist_ok=True)
        if isolation.kind == "rlimits" and isolation.as_root and isolation.setpriv:
            _chown_tree(scratch_dir, uid)
        child_env = {
            **base_env,
            "HOME": str(scratch_dir),
            "TMPDIR": str(scratch_dir / "tmp"),
            "LABRUNNER_CACHE_DIR": str(scratch_dir / "cache"),
            "MPLCONFIGDIR": str(scratch_dir / "mpl"),
            "LABRUNNER_CODE": str(code_dir),
            "LABRUNNER_SCRATCH": str(scratch_dir),
            **(env or {}),
        }
        cmd = (_setpriv(isolation.setpriv, uid) if isolation.as_root and isolation.setpriv else []) + list(
            argv
        )
        cwd = str(scratch_dir)
    # RLIMIT_NPROC counts every process of the user: a uid of its own counts the command's
    # alone; the grader's own uid (not root) already runs some, which the limit must allow.
    nproc = (
        limits.processes
        if isolation.as_root and isolation.setpriv
        else limits.processes + _user_threads(os.getuid())
    )
    start = time.perf_counter()
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=child_env,
            cwd=cwd,
            pass_fds=(write_fd,),
            preexec_fn=os.setsid if isolation.kind == "none" else lambda: _set_limits(limits, nproc),
        )
    finally:
        os.close(write_fd)
    output = _Tail(OUTPUT_TAIL)
    payload = _Bounded(limits.payload)
    readers = [
        threading.Thread(target=_drain, args=(proc.stdout, output.add), daemon=True),
        threading.Thread(target=_drain_fd, args=(read_fd, payload.add), daemon=True),
    ]
    for reader in readers:
        reader.start()
    timed_out = False
    try:
        proc.wait(timeout=limits.wall)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        _kill_group(proc)
        proc.wait()
    for reader in readers:
        reader.join(timeout=10)
    elapsed = time.perf_counter() - start
    text = output.text()
    return SandboxResult(
        returncode=proc.returncode,
        timed_out=timed_out,
        elapsed_s=elapsed,
        output=text,
        payload=payload.data(),
        payload_overflow=payload.overflow,
        reason=_reason(proc.returncode, timed_out, limits, text, payload.overflow),
        isolation=isolation.description,
    )


def _chown_tree(folder: Path, uid: int) -> None:
    for dirpath, _dirnames, filenames in os.walk(folder):
        os.chown(dirpath, uid, uid)
        for name in filenames:
            os.chown(os.path.join(dirpath, name), uid, uid, follow_symlinks=False)


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the command's process group (its session): with bwrap that ends its PID
    namespace, and so every process in it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _reason(returncode: int | None, timed_out: bool, limits: Limits, output: str, overflow: bool) -> str:
    if timed_out:
        return f"timed out after {limits.wall:g} s (wall-clock limit): killed"
    if overflow:
        return f"wrote more than {limits.payload} bytes of result"
    if returncode == 0:
        return ""
    if returncode is not None and returncode < 0:
        signum = -returncode
        name = signal.Signals(signum).name if signum in signal.Signals._value2member_map_ else str(signum)
        if signum == signal.SIGXFSZ:
            return f"killed by {name}: a file larger than {limits.file_size / MIB:g} MiB (file-size limit)"
        if signum == signal.SIGXCPU:
            return f"killed by {name}: CPU-time limit"
        return f"killed by {name}"
    hints = {
        "MemoryError": f"out of memory (limit {limits.memory / GIB:g} GiB)",
        "No space left on device": f"the scratch folder is full (limit {limits.scratch / MIB:g} MiB)",
        "Disk quota exceeded": f"the scratch folder is full (limit {limits.scratch / MIB:g} MiB)",
        "File too large": f"a file larger than {limits.file_size / MIB:g} MiB (file-size limit)",
        "Resource temporarily unavailable": f"too many processes (limit {limits.processes})",
        "can't start new thread": f"too many processes or threads (limit {limits.processes})",
    }
    for needle, hint in hints.items():
        if needle in output:
            return f"exit status {returncode}: {hint}"
    last = _first_line(output) if output.strip() else "no output"
    return f"exit status {returncode}: {last}"


class _Tail:
    """The last ``limit`` bytes written to it."""

    def __init__(self, limit: int):
        self.limit = limit
        self.buf = bytearray()
        self.dropped = 0

    def add(self, block: bytes) -> None:
        self.buf += block
        if len(self.buf) > 2 * self.limit:
            self.dropped += len(self.buf) - self.limit
            del self.buf[: len(self.buf) - self.limit]

    def text(self) -> str:
        data = bytes(self.buf[-self.limit :])
        head = "[... earlier output cut ...]\n" if self.dropped or len(self.buf) > self.limit else ""
        return head + data.decode("utf-8", "replace")


class _Bounded:
    """At most ``limit`` bytes; past that it keeps reading but remembers the overflow."""

    def __init__(self, limit: int):
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0
        self.overflow = False

    def add(self, block: bytes) -> None:
        if self.size + len(block) > self.limit:
            self.overflow = True
            return
        self.parts.append(block)
        self.size += len(block)

    def data(self) -> bytes:
        return b"" if self.overflow else b"".join(self.parts)


def _drain(stream, add) -> None:
    while block := stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536):
        add(block)


def _drain_fd(fd: int, add) -> None:
    try:
        while block := os.read(fd, 65536):
            add(block)
    finally:
        os.close(fd)
