"""The worker process's side: :func:`worker_main` waits for one lab job from the parent
(:mod:`labrunner.execution.worker`), runs it with
:func:`labrunner.execution.labrun.run_lab_job` (the one function that runs a lab job, wherever
it runs), sends the reply and ends with its whole process group.
"""

from __future__ import annotations

import multiprocessing.connection
import os
import select
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, NoReturn

from ..base.errors import describe_exception
from ..base.progress import Bar, Reporter
from ..records.results import LabError

#: The signal that stops a worker for good (Windows has no SIGKILL).
KILL = getattr(signal, "SIGKILL", signal.SIGTERM)


#: Least seconds between two progress messages of one bar.
PROGRESS_INTERVAL_S = 0.1


class PipeReporter(Reporter):
    """The worker's reporter: sends bars and log lines to the parent's reporter."""

    def __init__(self, conn: multiprocessing.connection.Connection):
        super().__init__()
        self.conn = conn
        self._sent: dict[int, float] = {}

    def _send(self, message: tuple) -> None:
        try:
            self.conn.send(message)
        except (OSError, ValueError):  # the parent is gone; the watchdog ends this process
            pass

    def log(self, message: str, level: str = "info") -> None:
        self._send(("log", str(message), level))

    def lab_running(self, name: str) -> None:
        self._send(("running", name))

    def _open(self, bar: Bar) -> int:
        depth = super()._open(bar)
        self._send(("open", id(bar), str(bar.desc), bar.total))
        self._sent[id(bar)] = 0.0
        return depth

    def _update(self, bar: Bar) -> None:
        now = time.monotonic()
        if now - self._sent.get(id(bar), 0.0) >= PROGRESS_INTERVAL_S or bar.n == bar.total:
            self._sent[id(bar)] = now
            self._send(("update", id(bar), bar.n, _plain(bar.postfix)))

    def _close(self, bar: Bar) -> None:
        super()._close(bar)
        self._sent.pop(id(bar), None)
        self._send(("close", id(bar), bar.n, _plain(bar.postfix)))


def _plain(postfix: dict[str, Any]) -> dict[str, Any]:
    """Postfix values as plain numbers or text, whatever a lab put there."""
    out: dict[str, Any] = {}
    for key, value in postfix.items():
        if not isinstance(value, (int, float, str, bool)):
            try:
                value = float(value)
            except Exception:
                value = describe_exception(TypeError(type(value).__name__))
        out[str(key)] = value
    return out


def preload() -> None:
    """What every lab needs: labrunner's lab runtime and torch (a spawned worker imports it
    while it waits for its job; the zygote imports it once for every worker it forks)."""
    from ..settings import plugins  # noqa: F401
    from . import labrun  # noqa: F401

    try:
        import numpy  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        pass


def worker_main(conn: multiprocessing.connection.Connection, imports: bool = True) -> None:
    """The worker process: wait for ``("job", job, setting)`` (``job``: a
    :class:`~labrunner.execution.labjob.LabJob`'s JSON), run it, send ``("done",
    reply)`` or ``("failed", error)``, then end with its whole process group (whatever the
    lab started: a forked child, a daemon). One job per process; never returns."""
    if hasattr(os, "setpgrp") and os.getpgrp() != os.getpid():
        os.setpgrp()  # a terminal's Ctrl-C reaches only the parent, which forwards it once
    broken: LabError | None = None
    if imports:
        try:
            preload()
        except Exception as exc:  # reported as the job's error once the job arrives
            broken = LabError.from_exception(exc, traceback.format_exc())
        except KeyboardInterrupt:
            _end(1)
    try:
        _kind, job, setting = conn.recv()
    except (EOFError, OSError, KeyboardInterrupt, ValueError):  # a spare no longer needed
        _end(0)
    try:
        _take_setting(setting)
        _watch_parent(conn)
        if broken is not None:
            message: tuple = ("failed", broken)
        else:
            from .labrun import run_lab_job

            message = ("done", run_lab_job(job, PipeReporter(conn)))
    except BaseException as exc:
        message = ("failed", LabError.from_exception(exc, traceback.format_exc()))
    _flush()
    try:
        conn.send(message)
    except (OSError, ValueError):
        pass
    _end(0)


def job_setting() -> dict[str, Any]:
    """What a worker takes from the parent beside the job: its working folder, environment
    and import path (a zygote's worker was forked from a process started earlier)."""
    return {"cwd": os.getcwd(), "environ": dict(os.environ), "sys_path": list(sys.path)}


def _take_setting(setting: dict[str, Any]) -> None:
    os.environ.clear()
    os.environ.update(setting["environ"])
    os.environ["LABRUNNER_WORKER"] = "1"
    sys.path[:] = setting["sys_path"]
    try:
        os.chdir(setting["cwd"])
    except OSError:
        pass


def _watch_parent(conn: multiprocessing.connection.Connection) -> None:
    """End this worker's process group when the parent dies (its end of the socket closes:
    the parent sends nothing after the job, so the socket turning readable means EOF)."""

    def watch() -> None:
        try:
            select.select([conn.fileno()], [], [])
        except (OSError, ValueError):
            return
        _end(1)

    threading.Thread(target=watch, name="labrunner-parent-watch", daemon=True).start()


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def _end(code: int) -> NoReturn:
    """End the worker and every process of its group (what the lab left running)."""
    _flush()
    if hasattr(os, "killpg") and os.getpgrp() == os.getpid():
        try:
            os.killpg(os.getpid(), KILL)
        except OSError:
            pass
    os._exit(code)


def child_environment() -> dict[str, str]:
    """The environment of a worker (or zygote) process: this one's, with labrunner's own
    folder on PYTHONPATH, this process's import path (the worker restores it) and
    matplotlib's non-interactive Agg backend (a lab saves figures, it never opens a window;
    labs do not choose a backend themselves)."""
    import json

    here = str(Path(__file__).resolve().parents[2])  # the folder that holds labrunner/
    path = os.environ.get("PYTHONPATH", "")
    return {
        **os.environ,
        "PYTHONPATH": here + (os.pathsep + path if path else ""),
        "LABRUNNER_SYS_PATH": json.dumps(sys.path),
        "MPLBACKEND": "Agg",
    }
