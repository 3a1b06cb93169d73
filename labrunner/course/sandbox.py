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
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .bwrap import CODE_MOUNT, SCRATCH_MOUNT, bwrap_command
from .isolation import BASE_UID, GIB, LABRUNNER_HOME, MIB, Isolation, Limits, first_line, setpriv_command

#: The environment variable naming the file descriptor the command writes its result to.
RESULT_FD_ENV = "LABRUNNER_RESULT_FD"


#: The most of a command's output kept (the end of it).
OUTPUT_TAIL = 16 * 1024


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
    base_env = _base_env(write_fd)
    if isolation.kind == "bubblewrap":
        inner = {**base_env, **_folders_env(Path(SCRATCH_MOUNT), CODE_MOUNT), **(env or {})}
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
        child_env, cwd = {"PATH": base_env["PATH"]}, "/"
    else:
        _make_scratch(scratch_dir, isolation, uid)
        child_env = {**base_env, **_folders_env(scratch_dir, str(code_dir)), **(env or {})}
        dropped = isolation.as_root and isolation.setpriv
        cmd = (setpriv_command(isolation.setpriv, uid) if dropped else []) + list(argv)
        cwd = str(scratch_dir)
    if isolation.kind == "none":
        preexec: Callable[[], None] = os.setsid
    else:
        nproc = _nproc_limit(isolation, limits)
        preexec = lambda: _set_limits(limits, nproc)  # noqa: E731
    return _run(cmd, child_env, cwd, preexec, read_fd, write_fd, limits, isolation)


def _base_env(write_fd: int) -> dict[str, str]:
    return {
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


def _folders_env(scratch: Path, code: str) -> dict[str, str]:
    """Home, temporary files and caches in the scratch folder; where the code is."""
    return {
        "HOME": str(scratch),
        "TMPDIR": str(scratch / "tmp"),
        "LABRUNNER_CACHE_DIR": str(scratch / "cache"),
        "MPLCONFIGDIR": str(scratch / "mpl"),
        "LABRUNNER_CODE": code,
        "LABRUNNER_SCRATCH": str(scratch),
    }


def _make_scratch(scratch_dir: Path, isolation: Isolation, uid: int) -> None:
    scratch_dir.mkdir(parents=True, exist_ok=True)
    for sub in ("tmp", "cache", "mpl"):
        (scratch_dir / sub).mkdir(exist_ok=True)
    if isolation.kind == "rlimits" and isolation.as_root and isolation.setpriv:
        _chown_tree(scratch_dir, uid)


def _nproc_limit(isolation: Isolation, limits: Limits) -> int:
    # RLIMIT_NPROC counts every process of the user: a uid of its own counts the command's
    # alone; the grader's own uid (not root) already runs some, which the limit must allow.
    if isolation.as_root and isolation.setpriv:
        return limits.processes
    return limits.processes + _user_threads(os.getuid())


def _run(
    cmd: list[str],
    child_env: dict[str, str],
    cwd: str,
    preexec: Callable[[], None],
    read_fd: int,
    write_fd: int,
    limits: Limits,
    isolation: Isolation,
) -> SandboxResult:
    """Start the command, read its output and result pipe in bounded memory, and kill its
    whole process group when it ends or its time is up."""
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
            preexec_fn=preexec,
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
    last = first_line(output) if output.strip() else "no output"
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
