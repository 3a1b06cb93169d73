"""The zygote: one process that imports torch and labrunner's lab runtime once, then forks
a fresh worker for each lab (the forkserver idea), so a lab's worker starts in
milliseconds instead of paying ``import torch`` again.

Isolation stays: each lab still runs in its own process and its own process group, forked
from the zygote's clean state (the zygote never runs a lab, loads a plugin or touches a
global a lab could change), so nothing one lab does reaches the next.

The rule for CUDA: a process that has initialised CUDA cannot be forked safely. The zygote
imports torch but never initialises CUDA (it refuses to fork if it finds CUDA initialised),
and runs on a CUDA (or MPS) device start their workers with ``spawn`` all the same, so the
CUDA driver only ever starts in a fresh process. See :func:`labrunner.execution.worker.start_method`.

Protocol (a ``SOCK_SEQPACKET`` socket pair, one JSON object per packet): the parent sends
``{"op": "fork", "id": N}`` with the worker's end of a new socket pair attached; the zygote
answers ``{"op": "forked", "id": N, "pid": PID}`` (or ``{"op": "error", ...}``), and
``{"op": "exit", "pid": PID, "code": C}`` when a worker it forked ends (``C`` negative:
the signal that ended it). EOF on the socket (the parent is gone) ends the zygote and every
worker group it started.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from ..base.errors import LabrunnerError

_PACKET = 65536


# --------------------------------------------------------------------------- in the zygote


def zygote_main(fd: int) -> None:
    """The zygote's loop (``python -m labrunner.execution.workerproc zygote FD``)."""
    from .job import preload

    ctl = socket.socket(fileno=fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    try:
        preload()
    except Exception:  # each worker reports it when it imports again
        pass
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    live: set[int] = set()
    try:
        while True:
            ready, _, _ = select.select([ctl, wake_r], [], [])
            if wake_r in ready:
                try:
                    while os.read(wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
            _reap(ctl, live)
            if ctl in ready:
                try:
                    data, fds, _flags, _addr = socket.recv_fds(ctl, _PACKET, 4)
                except OSError:
                    data, fds = b"", []
                if not data:  # the parent is gone: so are its workers
                    break
                request = json.loads(data)
                if request.get("op") == "fork" and len(fds) == 1:
                    pid = _fork(fds[0], ctl, (wake_r, wake_w))
                    os.close(fds[0])
                    if pid:
                        live.add(pid)
                        _send(ctl, {"op": "forked", "id": request["id"], "pid": pid})
                    else:
                        _send(ctl, {"op": "error", "id": request["id"], "message": "CUDA is initialised"})
                else:
                    for extra in fds:
                        os.close(extra)
    finally:
        for pid in live:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass


def _send(ctl: socket.socket, message: dict[str, Any]) -> None:
    try:
        ctl.send(json.dumps(message).encode())
    except OSError:
        pass


def _reap(ctl: socket.socket, live: set[int]) -> None:
    """Report every worker that ended (waitpid), so the parent learns its exit status."""
    while live:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        live.discard(pid)
        _send(ctl, {"op": "exit", "pid": pid, "code": os.waitstatus_to_exitcode(status)})


def _fork(fd: int, ctl: socket.socket, wake: tuple[int, int]) -> int:
    """Fork a worker that talks over ``fd``; returns its pid (0: refused)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():  # never true: the zygote never uses CUDA
        return 0
    pid = os.fork()
    if pid == 0:  # the worker
        code = 70
        try:
            os.setpgid(0, 0)
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            ctl.close()
            for end in wake:
                os.close(end)
            from multiprocessing.connection import Connection

            from .job import worker_main

            worker_main(Connection(fd), imports=False)  # ends the process
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    try:
        os.setpgid(pid, pid)  # also here, so the group exists before the parent hears the pid
    except OSError:  # the child did it first, or has already ended
        pass
    return pid


# --------------------------------------------------------------------------- in the parent


class ZygoteError(LabrunnerError, RuntimeError):
    """The zygote cannot fork a worker (it ended, or refused)."""


class Zygote:
    """The parent's handle on a zygote process: ``fork()`` gives a new worker."""

    def __init__(self) -> None:
        from .job import child_environment

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._ctl = ours
        self.process = subprocess.Popen(
            [sys.executable, "-m", "labrunner.execution.workerproc", "zygote", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            env=child_environment(),
            start_new_session=True,  # the terminal's Ctrl-C and hang-up reach the parent only
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self._lock = threading.Lock()  # one fork request at a time
        self._cond = threading.Condition()
        self._replies: dict[int, dict[str, Any]] = {}
        self._exits: dict[int, int] = {}
        self._next = 0
        self.alive = True
        self._reader = threading.Thread(target=self._read, name="labrunner-zygote", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = self._ctl.recv(_PACKET)
            except OSError:
                data = b""
            with self._cond:
                if not data:
                    self.alive = False
                    self._cond.notify_all()
                    return
                message = json.loads(data)
                if message.get("op") == "exit":
                    self._exits[int(message["pid"])] = int(message["code"])
                else:
                    self._replies[int(message["id"])] = message
                self._cond.notify_all()

    def fork(self, timeout: float) -> tuple[ForkedProcess, socket.socket]:
        """A new worker and the parent's end of its socket."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with self._lock:
            self._next += 1
            ident = self._next
            try:
                socket.send_fds(
                    self._ctl, [json.dumps({"op": "fork", "id": ident}).encode()], [theirs.fileno()]
                )
            except OSError as exc:
                ours.close()
                raise ZygoteError(f"the zygote is gone ({exc})") from None
            finally:
                theirs.close()
        with self._cond:
            if not self._cond.wait_for(lambda: ident in self._replies or not self.alive, timeout):
                ours.close()
                raise ZygoteError(f"the zygote did not fork a worker within {timeout:g} s")
            reply = self._replies.pop(ident, None)
        if reply is None or reply.get("op") != "forked":
            ours.close()
            raise ZygoteError(f"the zygote cannot fork: {(reply or {}).get('message', 'it ended')}")
        return ForkedProcess(self, int(reply["pid"])), ours

    def exitcode(self, pid: int) -> int | None:
        with self._cond:
            return self._exits.get(pid)

    def wait_exit(self, pid: int, timeout: float) -> int | None:
        with self._cond:
            self._cond.wait_for(lambda: pid in self._exits or not self.alive, timeout)
            return self._exits.get(pid)

    def close(self) -> None:
        """End the zygote (and, with it, any worker still running)."""
        try:
            self._ctl.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._ctl.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class ForkedProcess:
    """A worker the zygote forked (the zygote, its parent, reports its exit status)."""

    def __init__(self, zygote: Zygote, pid: int) -> None:
        self.zygote = zygote
        self.pid = pid

    def poll(self) -> int | None:
        code = self.zygote.exitcode(self.pid)
        if code is None and not self.zygote.alive and not _exists(self.pid):
            return 1  # the zygote ended first: the worker's own status is lost
        return code

    def wait(self, timeout: float) -> int | None:
        code = self.zygote.wait_exit(self.pid, timeout)
        return code if code is not None else self.poll()


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return Path(f"/proc/{pid}").exists() or sys.platform != "linux"
