"""Running one lab in a fresh worker process.

The parent (:mod:`.runner`) owns the run folder, run.json, the cache, the hooks and the
report. A worker runs one lab and writes its ``result.json`` into the lab's folder; the
parent reads it back. Whatever happens in the worker (an exception, ``sys.exit``,
``os._exit``, a signal, the out-of-memory killer, a time-out) cannot touch the parent or
the next lab, which starts in a new process with fresh global state.

:func:`run_lab_job` is the whole job, a plain function of a JSON-serialisable spec, so
any executor can call it: :class:`LocalWorker` runs it in a worker process that
:class:`WorkerStarter` started (forked from the zygote, :mod:`.zygote`, for CPU runs on
Linux; else a fresh ``python -m labrunner.workerproc``), a cluster executor in a job.
Workers never import the user's ``__main__``; each leads its own process group, which
ends with it.
"""

from __future__ import annotations

import multiprocessing.connection
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from .errors import UsageError, describe_exception
from .progress import Bar, Reporter

#: Keys of the spec :func:`run_lab_job` takes.
SPEC_KEYS = (
    "lab",  # the lab's name
    "plugin",  # the plugin that registers it
    "plugins_dirs",  # --plugins-dir folders, to find a lab that lives in one
    "config",  # the resolved config, as a dict (config_as_dict)
    "profile",
    "seed",
    "device",  # a resolved device name ("cpu", "cuda:0")
    "deterministic",
    "threads",  # torch CPU threads, or None
    "out_dir",  # the lab's folder in the run folder
    "cache_dir",  # ctx.cache_dir
    "state_dir",  # ctx.state_dir
    "cache_key",
    "run",  # the name of the run folder (the result's provenance)
)
#: Seconds a worker gets to save its result after Ctrl-C before it is killed.
INTERRUPT_GRACE_S = 20.0
#: Seconds a worker may take to start (imports, plugin loading) beyond ``--lab-timeout``.
STARTUP_GRACE_S = 300.0
#: The signal that stops a worker for good (Windows has no SIGKILL).
KILL = getattr(signal, "SIGKILL", signal.SIGTERM)
#: Least seconds between two progress messages of one bar.
PROGRESS_INTERVAL_S = 0.1


# --------------------------------------------------------------------------- the job


def run_lab_job(spec: dict[str, Any], reporter: Reporter | None = None) -> dict[str, Any]:
    """Run the lab described by ``spec`` (see :data:`SPEC_KEYS`) into ``spec["out_dir"]``.

    Returns ``{"status": ..., "result": <path of result.json>, "facts": {...}}``; the lab's
    errors are in its result.json. Raises only when the lab cannot be found or started.
    """
    from .config import resolve_lab_config
    from .environment import torch_facts
    from .plugins import load_plugins
    from .runner import run_lab

    missing = [key for key in SPEC_KEYS if key not in spec]
    if missing:
        raise ValueError(f"lab job spec lacks {', '.join(missing)}")
    plugins = load_plugins([Path(p) for p in spec["plugins_dirs"]], only={spec["plugin"]})
    lab = plugins.labs.get(spec["lab"])
    if lab is None:
        problems = "; ".join(str(p) for p in plugins.problems) or "it does not register it"
        raise LookupError(f"lab {spec['lab']!r} not found in plugin {spec['plugin']!r}: {problems}")
    config = resolve_lab_config(lab, spec["profile"], [("the lab job", spec["config"])])
    out_dir = Path(spec["out_dir"])
    try:
        result = run_lab(
            lab,
            config,
            out_dir=out_dir,
            device=spec["device"],
            seed=spec["seed"],
            profile=spec["profile"],
            deterministic=spec["deterministic"],
            reporter=reporter,
            key=spec["cache_key"],
            cache_dir=Path(spec["cache_dir"]),
            state_dir=Path(spec["state_dir"]),
            threads=spec["threads"],
            run=spec["run"],
        )
        status = result.status
    except KeyboardInterrupt:  # saved as "interrupted" by run_lab
        status = "interrupted"
    return {"status": status, "result": str(out_dir / "result.json"), "facts": torch_facts(spec["device"])}


# --------------------------------------------------------------------------- in the worker


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
    import labrunner.runner  # noqa: F401

    try:
        import numpy  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        pass


def worker_main(conn: multiprocessing.connection.Connection, imports: bool = True) -> None:
    """The worker process: wait for ``("job", spec, setting)``, run it, send ``("done",
    reply)`` or ``("failed", error)``, then end with its whole process group (whatever the
    lab started: a forked child, a daemon). One job per process; never returns."""
    if hasattr(os, "setpgrp") and os.getpgrp() != os.getpid():
        os.setpgrp()  # a terminal's Ctrl-C reaches only the parent, which forwards it once
    broken: dict[str, Any] | None = None
    if imports:
        try:
            preload()
        except Exception as exc:  # reported as the job's error once the job arrives
            broken = {**_error(exc), "traceback": traceback.format_exc()}
        except KeyboardInterrupt:
            _end(1)
    try:
        _kind, spec, setting = conn.recv()
    except (EOFError, OSError, KeyboardInterrupt, ValueError):  # a spare no longer needed
        _end(0)
    try:
        _take_setting(setting)
        _watch_parent(conn)
        if broken is not None:
            message: tuple = ("failed", broken)
        else:
            message = ("done", run_lab_job(spec, PipeReporter(conn)))
    except BaseException as exc:
        message = ("failed", {**_error(exc), "traceback": traceback.format_exc()})
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


def _error(exc: BaseException) -> dict[str, Any]:
    described = describe_exception(exc)
    return {"type": type(exc).__name__, "message": described.partition(": ")[2]}


# --------------------------------------------------------------------------- in the parent


@dataclass
class WorkerOutcome:
    """How a worker ended: its reply when it finished, else the error to record."""

    reply: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    interrupted: bool = False
    facts: dict[str, Any] = field(default_factory=dict)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def exit_error(exitcode: int | None, timeout: float | None = None, timed_out: bool = False) -> dict[str, Any]:
    """The error of a worker that ended without a reply, from its exit status."""
    if timed_out:
        return {
            "type": "Timeout",
            "message": f"the lab ran longer than --lab-timeout {timeout:g} s and was stopped",
            "traceback": "",
        }
    if exitcode is not None and exitcode < 0:
        name = _signal_name(-exitcode)
        hint = " (out of memory, or killed from outside)" if name == "SIGKILL" else ""
        return {
            "type": "WorkerKilled",
            "message": f"the lab's worker process was killed by {name}{hint}",
            "traceback": "",
            "signal": name,
        }
    return {
        "type": "WorkerExited",
        "message": "the lab's worker process ended "
        + ("" if exitcode is None else f"with exit status {exitcode} ")
        + "before the lab finished",
        "traceback": "",
        "exit_code": exitcode,
    }


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


def child_environment() -> dict[str, str]:
    """The environment of a worker (or zygote) process: this one's, with labrunner's own
    folder on PYTHONPATH and this process's import path (the worker restores it)."""
    import json

    here = str(Path(__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH", "")
    return {
        **os.environ,
        "PYTHONPATH": here + (os.pathsep + path if path else ""),
        "LABRUNNER_SYS_PATH": json.dumps(sys.path),
    }


class SpawnedProcess:
    """A worker started as ``python -m labrunner.workerproc worker FD``."""

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
            [sys.executable, "-m", "labrunner.workerproc", "worker", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            env=child_environment(),
            start_new_session=True,  # its own group: a terminal's Ctrl-C reaches the parent only
            stdin=subprocess.DEVNULL,
        )
    finally:
        theirs.close()
    return StartedWorker(SpawnedProcess(popen), multiprocessing.connection.Connection(ours.detach()))


#: Kept for callers of the earlier name.
start_worker = spawn_worker


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


class WorkerPool:
    """Fresh workers, one per lab, with at most one spare started ahead: while a lab runs,
    the next lab's worker starts, so only the first lab waits for it."""

    def __init__(self, starter: WorkerStarter | None = None) -> None:
        self.starter = starter or WorkerStarter()
        self._spare: StartedWorker | None = None

    def take(self) -> StartedWorker:
        worker, self._spare = self._spare, None
        if worker is not None and worker.is_alive():
            return worker
        if worker is not None:
            worker.discard()
        return self.starter.start()

    def prepare(self) -> None:
        """Start the spare now (call it when another lab will need a worker)."""
        if self._spare is None:
            self._spare = self.starter.start()

    def close(self) -> None:
        if self._spare is not None:
            self._spare.discard()
            self._spare = None
        self.starter.close()


class LocalWorker:
    """Runs one lab job in a fresh worker process and relays its progress."""

    def __init__(
        self, reporter: Reporter, timeout: float | None = None, on_running: Callable[[], None] | None = None
    ):
        self.reporter = reporter
        self.timeout = timeout
        #: Called once the lab's ``run`` has started (the runner starts the next worker then).
        self.on_running = on_running
        self._bars: dict[int, Bar] = {}

    def run(self, spec: dict[str, Any], worker: StartedWorker | None = None) -> WorkerOutcome:
        """Run ``spec`` in ``worker`` (a fresh spawned one when not given) and wait for its
        end: its reply, or its death. Then its process group is ended, whatever the lab left
        running; no descriptor a lab's child inherited can keep this waiting."""
        worker = worker or spawn_worker()
        outcome = WorkerOutcome()
        timed_out = False
        try:
            worker.conn.send(("job", spec, job_setting()))
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
