"""Running one lab in a fresh worker process.

The parent (:mod:`.runner`) owns the run folder, run.json, the cache, the hooks and the
report. A worker runs one lab and writes its ``result.json`` into the lab's folder; the
parent reads it back. Whatever happens in the worker (an exception, ``sys.exit``,
``os._exit``, a signal, the out-of-memory killer, a time-out) cannot touch the parent or
the next lab, which starts in a new process with fresh global state.

:func:`~labrunner.execution.labrun.run_lab_job` is the whole job, a plain function of a
:class:`~labrunner.execution.labjob.LabJob` (or its JSON), so any executor can call it:
:class:`LocalWorker` runs it in a worker process that
:class:`WorkerStarter` started (forked from the zygote, :mod:`.zygote`, for CPU runs on
Linux; else a fresh ``python -m labrunner.execution.workerproc``), a cluster executor in a job.
Workers never import the user's ``__main__``; each leads its own process group, which
ends with it.
"""

from __future__ import annotations

import multiprocessing.connection
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..base.errors import UsageError
from ..base.progress import Bar, Reporter
from ..records.results import LabError
from .job import KILL, child_environment, job_setting
from .labjob import LabJob

#: Seconds a worker gets to save its result after Ctrl-C before it is killed.
INTERRUPT_GRACE_S = 20.0
#: Seconds a worker may take to start (imports, plugin loading) beyond ``--lab-timeout``.
STARTUP_GRACE_S = 300.0


@dataclass
class WorkerOutcome:
    """How a worker ended: its reply when it finished, else the error to record."""

    reply: dict[str, Any] | None = None
    error: LabError | None = None
    interrupted: bool = False
    facts: dict[str, Any] = field(default_factory=dict)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def exit_error(exitcode: int | None, timeout: float | None = None, timed_out: bool = False) -> LabError:
    """The error of a worker that ended without a reply, from its exit status."""
    if timed_out:
        return LabError("Timeout", f"the lab ran longer than --lab-timeout {timeout:g} s and was stopped")
    if exitcode is not None and exitcode < 0:
        name = _signal_name(-exitcode)
        hint = " (out of memory, or killed from outside)" if name == "SIGKILL" else ""
        message = f"the lab's worker process was killed by {name}{hint}"
        return LabError("WorkerKilled", message, details={"signal": name})
    status = "" if exitcode is None else f"with exit status {exitcode} "
    message = f"the lab's worker process ended {status}before the lab finished"
    return LabError("WorkerExited", message, details={"exit_code": exitcode})


# --------------------------------------------------------------------------- starting workers


#: ``LABRUNNER_WORKER_START``: ``spawn`` or ``zygote`` instead of the rule of :func:`start_method`.
START_ENV = "LABRUNNER_WORKER_START"


def can_fork() -> bool:
    """Whether workers may be forked from a zygote here: Linux (macOS's frameworks are not
    safe to use in a forked child that does not exec; Windows has no fork)."""
    return hasattr(os, "fork") and sys.platform.startswith("linux")


def start_method(device: str) -> str:
    """How this run starts its workers: ``zygote`` (forked from a process that imported
    torch once) for CPU runs on Linux; ``spawn`` (a fresh Python) for CUDA and MPS runs,
    whose driver must start in a fresh process, and where fork is unsafe.
    ``LABRUNNER_WORKER_START=spawn`` forces spawn."""
    forced = os.environ.get(START_ENV, "").strip()
    if forced not in ("", "spawn", "zygote"):
        raise UsageError(f"{START_ENV}={forced!r}: expected spawn or zygote")
    if forced == "spawn" or not can_fork():
        return "spawn"
    if forced == "zygote":
        return "zygote"
    return "zygote" if device == "cpu" else "spawn"


class SpawnedProcess:
    """A worker started as ``python -m labrunner.execution.workerproc worker FD``."""

    def __init__(self, popen: subprocess.Popen) -> None:
        self.popen = popen
        self.pid = popen.pid

    def poll(self) -> int | None:
        return self.popen.poll()

    def wait(self, timeout: float) -> int | None:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None


def _pidfd(pid: int) -> int | None:
    """A descriptor that turns readable when process ``pid`` ends (Linux), else None."""
    try:
        return os.pidfd_open(pid)  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return None


@dataclass
class StartedWorker:
    """A worker process waiting for its job, and the parent's end of its socket."""

    process: Any  # SpawnedProcess or zygote.ForkedProcess
    conn: multiprocessing.connection.Connection
    method: str = "spawn"
    sentinel: int | None = None

    def __post_init__(self) -> None:
        self.sentinel = _pidfd(self.process.pid)

    @property
    def exitcode(self) -> int | None:
        return self.process.poll()

    def is_alive(self) -> bool:
        return self.process.poll() is None

    def signal_group(self, signum: int) -> None:
        """Signal the worker's process group: the worker and every process the lab started
        (the worker leads its own group from the start)."""
        try:
            os.killpg(self.process.pid, signum)
        except OSError:
            pass

    def discard(self) -> None:
        """End the worker's whole group and release it (nothing it left can hold us)."""
        self.signal_group(KILL)
        self.process.wait(10)
        self.conn.close()
        if self.sentinel is not None:
            os.close(self.sentinel)
            self.sentinel = None


def spawn_worker() -> StartedWorker:
    """A fresh Python running labrunner's worker entry point (it imports torch, then waits)."""
    ours, theirs = socket.socketpair()
    try:
        popen = subprocess.Popen(
            [sys.executable, "-m", "labrunner.execution.workerproc", "worker", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            env=child_environment(),
            start_new_session=True,  # its own group: a terminal's Ctrl-C reaches the parent only
            stdin=subprocess.DEVNULL,
        )
    finally:
        theirs.close()
    return StartedWorker(SpawnedProcess(popen), multiprocessing.connection.Connection(ours.detach()))


class WorkerStarter:
    """Starts the workers of one run, by its :func:`start_method`; ``close()`` at the end."""

    def __init__(self, method: str = "spawn") -> None:
        self.method = method
        self._zygote: Any = None
        self._lock = threading.Lock()

    def start(self) -> StartedWorker:
        if self.method == "zygote":
            from .zygote import Zygote, ZygoteError

            with self._lock:
                if self._zygote is None or not self._zygote.alive:
                    self._zygote = Zygote()
                zygote = self._zygote
            try:
                process, sock = zygote.fork(STARTUP_GRACE_S)
            except ZygoteError:
                return spawn_worker()  # the run goes on, at spawn's speed
            conn = multiprocessing.connection.Connection(sock.detach())
            return StartedWorker(process, conn, "zygote")
        return spawn_worker()

    def close(self) -> None:
        with self._lock:
            zygote, self._zygote = self._zygote, None
        if zygote is not None:
            zygote.close()


class LocalWorker:
    """Runs one lab job in a fresh worker process and relays its progress."""

    def __init__(
        self, reporter: Reporter, timeout: float | None = None, on_running: Callable[[], None] | None = None
    ):
        self.reporter = reporter
        self.timeout = timeout
        #: Called once the lab's ``run`` has started (the local executor starts the next job's worker then).
        self.on_running = on_running
        self._bars: dict[int, Bar] = {}

    def run(self, job: LabJob, worker: StartedWorker | None = None) -> WorkerOutcome:
        """Run ``job`` in ``worker`` (a fresh spawned one when not given) and wait for its
        end: its reply, or its death. Then its process group is ended, whatever the lab left
        running; no descriptor a lab's child inherited can keep this waiting."""
        worker = worker or spawn_worker()
        outcome = WorkerOutcome()
        timed_out = False
        try:
            worker.conn.send(("job", job.to_json(), job_setting()))
            timed_out = self._pump(worker, outcome)
        except (BrokenPipeError, ConnectionResetError):  # it died before taking the job
            worker.process.wait(5)
        except KeyboardInterrupt:
            self._interrupt(worker, outcome)
            raise
        finally:
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()
            ended = outcome.reply is None and outcome.error is None and not timed_out
            exitcode = worker.process.wait(5) if ended else None
            worker.discard()
        if outcome.reply is None and outcome.error is None:
            outcome.error = exit_error(exitcode, self.timeout, timed_out)
        return outcome

    def _pump(self, worker: StartedWorker, outcome: WorkerOutcome) -> bool:
        """Relay messages until the worker replies or ends; True when it ran out of time.

        ``--lab-timeout`` counts from the moment the lab's ``run`` starts, not the worker's
        start-up (a busy machine may take seconds to import torch)."""
        receiver = worker.conn
        deadline = time.monotonic() + self.timeout + STARTUP_GRACE_S if self.timeout else None
        watched: list[Any] = [receiver] + ([worker.sentinel] if worker.sentinel is not None else [])
        tick = 0.5 if worker.sentinel is not None else 0.1
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                worker.signal_group(KILL)
                return True
            wait = tick if deadline is None else max(0.0, min(tick, deadline - time.monotonic()))
            ready = multiprocessing.connection.wait(watched, timeout=wait)
            if receiver in ready:
                try:
                    message = receiver.recv()
                except (EOFError, OSError):  # its end closed: it ended
                    worker.process.wait(5)
                    return False
                if message[0] == "running":
                    if self.timeout:
                        deadline = time.monotonic() + self.timeout
                    if self.on_running is not None:
                        self.on_running()
                self._handle(message, outcome)
                if message[0] in ("done", "failed"):
                    return False
                continue
            if worker.sentinel in ready and worker.exitcode is None:
                worker.process.wait(1)  # a zygote's report of the exit status follows the exit
            if worker.exitcode is not None:  # ended without a reply; take what it had sent
                for _ in range(100_000):
                    if not receiver.poll(0):
                        break
                    try:
                        message = receiver.recv()
                    except (EOFError, OSError):
                        break
                    self._handle(message, outcome)
                    if message[0] in ("done", "failed"):
                        break
                return False

    def _interrupt(self, worker: StartedWorker, outcome: WorkerOutcome) -> None:
        """Ctrl-C: let the worker save its result as interrupted, then stop it."""
        outcome.interrupted = True
        if worker.is_alive():
            worker.signal_group(signal.SIGINT)
        end = time.monotonic() + INTERRUPT_GRACE_S
        while worker.is_alive() and time.monotonic() < end and outcome.reply is None:
            try:
                if worker.conn.poll(0.2):
                    self._handle(worker.conn.recv(), outcome)
            except (EOFError, OSError):
                worker.process.wait(2)
                break
            except KeyboardInterrupt:  # a second Ctrl-C: stop waiting
                break

    def _handle(self, message: tuple, outcome: WorkerOutcome) -> None:
        kind = message[0]
        if kind == "log":
            self.reporter.log(message[1], message[2])
        elif kind == "open":
            self._bars[message[1]] = self.reporter.bar(message[2], total=message[3])
        elif kind in ("update", "close"):
            bar = self._bars.get(message[1])
            if bar is None:
                return
            bar.n = message[2]
            bar.postfix.update(message[3])
            if kind == "update":
                self.reporter._update(bar)
            else:
                bar.close()
                del self._bars[message[1]]
        elif kind == "done":
            outcome.reply = message[1]
            outcome.facts = dict(message[1].get("facts") or {})
        elif kind == "failed":
            outcome.error = message[1]
