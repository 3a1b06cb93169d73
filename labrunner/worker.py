"""Running one lab in a fresh worker process.

The parent (:mod:`.runner`) owns the run folder, run.json, the cache, the hooks and the
report. A worker runs one lab and writes its ``result.json`` into the lab's folder; the
parent reads it back. Whatever happens in the worker (an exception, ``sys.exit``,
``os._exit``, a signal, the out-of-memory killer, a time-out) cannot touch the parent or
the next lab, which starts in a new process with fresh global state.

:func:`run_lab_job` is the whole job, a plain function of a JSON-serialisable spec, so
any executor can call it: :class:`LocalWorker` runs it in a process started with
``spawn`` (fork is unsafe with CUDA and threads), a cluster executor can run it in a job.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import describe_exception
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


def _watch_parent() -> None:
    """End this worker when the parent dies (nothing else would stop an orphan)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="labrunner-parent-watch", daemon=True).start()


def _preload() -> None:
    """What every lab needs, imported while the worker waits for its job (a spare worker
    starts while the previous lab runs, so this time is hidden)."""
    import labrunner.runner  # noqa: F401

    try:
        import torch  # noqa: F401
    except ImportError:
        pass


def worker_main(conn: multiprocessing.connection.Connection) -> None:
    """The worker process: wait for ``("job", spec)``, run it, then send ``("done", reply)``
    or ``("failed", error)``. One job per process."""
    if hasattr(os, "setpgrp"):
        # A terminal's Ctrl-C then reaches only the parent, which forwards it once.
        os.setpgrp()
    _watch_parent()
    broken: dict[str, Any] | None = None
    try:
        _preload()
    except Exception as exc:  # reported as the job's error once the job arrives
        broken = {**_error(exc), "traceback": traceback.format_exc()}
    except KeyboardInterrupt:
        return
    try:
        _kind, spec = conn.recv()
    except (EOFError, OSError, KeyboardInterrupt):  # a spare the parent no longer needs
        return
    try:
        if broken is not None:
            message: tuple = ("failed", broken)
        else:
            message = ("done", run_lab_job(spec, PipeReporter(conn)))
    except BaseException as exc:
        message = ("failed", {**_error(exc), "traceback": traceback.format_exc()})
    try:
        conn.send(message)
    finally:
        conn.close()


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
        "message": f"the lab's worker process ended with exit status {exitcode} before the lab finished",
        "traceback": "",
        "exit_code": exitcode,
    }


def _signal_group(process: multiprocessing.process.BaseProcess, signum: int) -> None:
    """Signal the worker and the processes it started (its own process group), or the
    worker alone where it has no group of its own yet."""
    if process.pid is None:
        return
    try:
        if hasattr(os, "killpg") and os.getpgid(process.pid) == process.pid:
            os.killpg(process.pid, signum)
            return
    except OSError:
        pass
    try:
        if signum == KILL:
            process.kill()
        else:
            os.kill(process.pid, signum)
    except OSError:
        pass


@dataclass
class StartedWorker:
    """A worker process waiting for its job, and the parent's end of its pipe."""

    process: multiprocessing.process.BaseProcess
    conn: multiprocessing.connection.Connection

    def discard(self) -> None:
        if self.process.is_alive():
            _signal_group(self.process, KILL)
        self.process.join()
        self.conn.close()


def start_worker() -> StartedWorker:
    """Start a fresh worker process with ``spawn`` (it imports torch, then waits)."""
    context = multiprocessing.get_context("spawn")
    conn, child_conn = context.Pipe(duplex=True)
    process = context.Process(target=worker_main, args=(child_conn,), name="labrunner-worker", daemon=True)
    process.start()
    child_conn.close()  # the worker holds the only other end: EOF means it is gone
    return StartedWorker(process, conn)


class WorkerPool:
    """Fresh workers, one per lab, with at most one spare started ahead: while a lab runs,
    the next lab's worker starts (Python, torch), so only the first lab waits for it."""

    def __init__(self) -> None:
        self._spare: StartedWorker | None = None

    def take(self) -> StartedWorker:
        worker, self._spare = self._spare, None
        if worker is not None and worker.process.is_alive():
            return worker
        if worker is not None:
            worker.discard()
        return start_worker()

    def prepare(self) -> None:
        """Start the spare now (call it when another lab will need a worker)."""
        if self._spare is None:
            self._spare = start_worker()

    def close(self) -> None:
        if self._spare is not None:
            self._spare.discard()
            self._spare = None


class LocalWorker:
    """Runs one lab job in a fresh process (``spawn``) and relays its progress."""

    def __init__(
        self, reporter: Reporter, timeout: float | None = None, on_running: Callable[[], None] | None = None
    ):
        self.reporter = reporter
        self.timeout = timeout
        #: Called once the lab's ``run`` has started (the runner starts the next worker then).
        self.on_running = on_running
        self._bars: dict[int, Bar] = {}

    def run(self, spec: dict[str, Any], worker: StartedWorker | None = None) -> WorkerOutcome:
        """Run ``spec`` in ``worker`` (a fresh one when not given) and wait for its end."""
        worker = worker or start_worker()
        process, receiver = worker.process, worker.conn
        outcome = WorkerOutcome()
        timed_out = False
        try:
            receiver.send(("job", spec))
            timed_out = self._pump(receiver, process, outcome)
        except (BrokenPipeError, ConnectionResetError):  # it died before taking the job
            process.join(5)
        except KeyboardInterrupt:
            self._interrupt(receiver, process, outcome)
            raise
        finally:
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()
            worker.discard()
        if outcome.reply is None and outcome.error is None:
            outcome.error = exit_error(process.exitcode, self.timeout, timed_out)
        return outcome

    def _pump(self, receiver, process, outcome: WorkerOutcome) -> bool:
        """Relay messages until the worker ends; returns True when it ran out of time.

        ``--lab-timeout`` counts from the moment the lab's ``run`` starts, not the worker's
        start-up (a busy machine may take seconds to import torch)."""
        deadline = time.monotonic() + self.timeout + STARTUP_GRACE_S if self.timeout else None
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                _signal_group(process, KILL)
                return True
            wait = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
            ready = multiprocessing.connection.wait([receiver, process.sentinel], timeout=wait)
            if receiver in ready:
                try:
                    message = receiver.recv()
                except EOFError:
                    process.join(5)
                    return False
                if message[0] == "running":
                    if self.timeout:
                        deadline = time.monotonic() + self.timeout
                    if self.on_running is not None:
                        self.on_running()
                self._handle(message, outcome)
                continue
            if process.sentinel in ready:  # ended; a child of the lab may hold the pipe open
                while receiver.poll():
                    try:
                        self._handle(receiver.recv(), outcome)
                    except EOFError:
                        break
                return False

    def _interrupt(self, receiver, process, outcome: WorkerOutcome) -> None:
        """Ctrl-C: let the worker save its result as interrupted, then stop it."""
        outcome.interrupted = True
        if process.is_alive():
            _signal_group(process, signal.SIGINT)
        end = time.monotonic() + INTERRUPT_GRACE_S
        while process.is_alive() and time.monotonic() < end:
            try:
                if receiver.poll(0.2):
                    self._handle(receiver.recv(), outcome)
            except (EOFError, OSError):
                process.join(2)
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
