"""Executors: where lab jobs run.

An executor takes lab jobs (:class:`labrunner.execution.labjob.LabJob` records) and runs each
with :func:`labrunner.execution.labrun.run_lab_job` somewhere: ``local`` in worker processes on this
machine, ``slurm`` as jobs on a SLURM cluster (:mod:`.slurm`). The runner keeps the run
folder, run.json, the cache and the hooks; an executor only runs jobs and tells how each
ended (a :class:`~labrunner.execution.worker.WorkerOutcome`).

Executors are registered through the ``register_executors(register)`` hook, the built-in
ones exactly like a plugin's (see docs/plugins.md), so Ray or dask-jobqueue can be added
without touching the core. :meth:`Executor.run` is called from several threads at once,
one per lab job running, up to :attr:`Executor.slots` of them.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..base.errors import UsageError, describe_exception
from ..base.progress import Bar, Reporter
from ..settings.executor_options import ExecutorInfo
from ..settings.plugins import call_with
from .labjob import LabJob


@dataclass
class ExecutorContext:
    """What an executor is built with."""

    run_dir: Path
    #: ``--executor-option`` values and ``executor_options:`` of the config file.
    options: dict[str, Any]
    #: Lab jobs this run has to run (labs times seeds, cached ones left out).
    jobs: int
    #: ``--jobs``: how many at a time (``None``: the executor's own choice).
    parallel: int | None
    #: ``--lab-timeout`` seconds, or None.
    lab_timeout: float | None = None
    #: The run's device, and the CUDA GPUs this machine has (0 without CUDA).
    device: str = "cpu"
    gpus: int = 0
    #: Of the jobs, those that will run (the others have a cached result); None: all of them.
    to_run: int | None = None


class Executor:
    """The interface every executor implements."""

    name = ""
    #: How many lab jobs run at the same time.
    slots = 1
    #: Whether ``--detach`` works (the jobs outlive this process).
    detachable = False

    def run(self, job: LabJob, reporter: Reporter, bar: Bar | None = None) -> Any:
        """Run one lab job and wait for its end; returns a WorkerOutcome. ``bar`` is the
        lab's progress bar in the parent (an executor may show the job's state there)."""
        raise NotImplementedError

    def cancel(self) -> None:
        """Stop every job still running (Ctrl-C), and every job ``submit`` submitted; their
        ``run`` calls then return."""

    def submit(self, job: LabJob) -> dict[str, Any]:
        """``--detach``: submit one job and return what identifies it (``{"job_id": ...}``)."""
        raise UsageError(f"--detach needs an executor whose jobs outlive this process, not {self.name!r}")

    def close(self) -> None:
        """Release what the executor holds (called once, at the end of the run)."""


class SerialReporter(Reporter):
    """The run's reporter shared by the threads that follow lab jobs at the same time:
    every call reaches the wrapped reporter under one lock."""

    def __init__(self, inner: Reporter) -> None:
        super().__init__(inner.stream, inner.verbosity)
        self.inner = inner
        self._lock = threading.RLock()

    def log(self, message: str, level: str = "info") -> None:
        with self._lock:
            self.inner.log(message, level)

    def lab_running(self, name: str) -> None:
        with self._lock:
            self.inner.lab_running(name)

    def _open(self, bar: Bar) -> int:
        with self._lock:
            return self.inner._open(bar)

    def _update(self, bar: Bar) -> None:
        with self._lock:
            self.inner._update(bar)

    def _close(self, bar: Bar) -> None:
        with self._lock:
            self.inner._close(bar)

    def stop(self) -> None:
        with self._lock:
            self.inner.stop()


# --------------------------------------------------------------------------- local


class LocalExecutor(Executor):
    """Lab jobs in fresh worker processes on this machine, ``slots`` at a time, started by
    ``starter`` (forked from a zygote for CPU runs, spawned otherwise). While a lab runs, the
    worker of the next job starts, as long as more of the ``expected`` jobs are to come, so
    that only the first lab waits for its worker."""

    name = "local"

    def __init__(
        self, slots: int, lab_timeout: float | None = None, starter: Any = None, expected: int = 0
    ) -> None:
        from .worker import WorkerStarter

        self.slots = max(1, slots)
        self.lab_timeout = lab_timeout
        self.starter = starter or WorkerStarter()
        self.expected = expected
        self._given = 0  # workers handed to jobs so far
        self._spare: Any = None  # a StartedWorker waiting for the next job
        self._running: dict[int, Any] = {}  # id -> StartedWorker
        self._lock = threading.Lock()
        self._cancelled = threading.Event()

    def run(self, job: LabJob, reporter: Reporter, bar: Bar | None = None) -> Any:
        from .worker import LocalWorker, WorkerOutcome

        if self._cancelled.is_set():
            return WorkerOutcome(interrupted=True)
        worker = self._take()
        with self._lock:
            self._running[id(worker)] = worker
        try:
            if self._cancelled.is_set():  # Ctrl-C while it started
                worker.signal_group(signal.SIGINT)
            outcome = LocalWorker(reporter, self.lab_timeout, on_running=self._start_next).run(job, worker)
        finally:
            with self._lock:
                self._running.pop(id(worker), None)
        if self._cancelled.is_set():
            outcome.interrupted = True
        return outcome

    def _take(self) -> Any:
        """The spare worker when it is still alive, else a new one."""
        with self._lock:
            worker, self._spare = self._spare, None
            self._given += 1
        if worker is not None and worker.is_alive():
            return worker
        if worker is not None:
            worker.discard()
        return self.starter.start()

    def _start_next(self) -> None:
        """A lab started running: start the next job's worker now, if a job will need it."""
        with self._lock:
            if self._spare is None and self._given < self.expected and not self._cancelled.is_set():
                self._spare = self.starter.start()

    def cancel(self) -> None:
        """SIGINT to every worker: each saves its lab as interrupted and ends (workers are
        in their own process group, so the terminal's Ctrl-C reaches only the parent)."""
        self._cancelled.set()
        with self._lock:
            workers = list(self._running.values())
        for worker in workers:
            worker.signal_group(signal.SIGINT)
        killer = threading.Timer(_grace_s(), self._kill_left)
        killer.daemon = True
        killer.start()

    def _kill_left(self) -> None:
        from .job import KILL

        with self._lock:
            workers = list(self._running.values())
        for worker in workers:
            worker.signal_group(KILL)

    def close(self) -> None:
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            spare.discard()
        self.starter.close()


def _grace_s() -> float:
    from .worker import INTERRUPT_GRACE_S

    return INTERRUPT_GRACE_S


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: a container's or ``taskset``'s
    limit), not every core of the machine."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_average() -> float | None:
    """The machine's load average over the last minute, or None where there is none."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def _cpu_times(cpus: set[int]) -> tuple[float, float] | None:
    """(busy, total) clock ticks of ``cpus`` since boot, from /proc/stat; None without it."""
    busy = total = 0.0
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            for line in stat:
                name, *fields = line.split()
                if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cpus:
                    continue
                ticks = [float(field) for field in fields[:8]]
                total += sum(ticks)
                busy += sum(ticks) - ticks[3] - ticks[4]  # less idle and iowait
    except (OSError, ValueError, IndexError):
        return None
    return (busy, total) if total else None


def busy_cores(window: float = 0.2) -> float | None:
    """How many of the cores this process may use other work keeps busy now: their busy
    share over ``window`` seconds (this process sleeps meanwhile), in cores; None where
    /proc/stat is missing (macOS, Windows)."""
    try:
        cpus = set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None
    before = _cpu_times(cpus)
    if before is None:
        return None
    time.sleep(window)
    after = _cpu_times(cpus)
    if after is None or after[1] <= before[1]:
        return None
    return len(cpus) * (after[0] - before[0]) / (after[1] - before[1])


def other_load() -> float | None:
    """The load other work puts on the cores now: the one-minute load average, but no more
    than the cores busy over a short sample. The load average alone trails by a minute, so
    a run started just after another (or a benchmark's previous run) would count the
    finished run's load as other work and run one lab at a time on an idle machine; a short
    sample alone would count a burst. Work that is both sustained and present counts."""
    average, now = load_average(), busy_cores()
    if average is None or now is None:
        return average if now is None else now
    return min(average, now)


@dataclass(frozen=True)
class CpuPlan:
    """How a local run uses the CPU: ``slots`` labs at a time, ``threads`` torch threads
    each, with ``slots * threads`` never above the ``cores`` the run may use."""

    cores: int
    load: float | None
    slots: int
    threads: int

    @property
    def slowdown(self) -> float:
        """How much longer the labs are expected to take than on an idle machine: the
        runnable threads (other work's load, plus ours) shared over the cores."""
        if self.load is None:
            return 1.0
        return max(1.0, (self.load + self.slots * self.threads) / self.cores)

    def busy_note(self) -> str | None:
        """One line for a machine that other work keeps busy, or None."""
        if self.slowdown < BUSY_SLOWDOWN:
            return None
        return (
            f"this machine is busy (other work's load {self.load:.1f} on the {self.cores} cores this run "
            f"may use): expect the labs to take about {self.slowdown:.1f}x as long as on an idle machine "
            f"({self.slots} at a time, {self.threads} thread{'s' if self.threads > 1 else ''} each)"
        )


#: The expected slowdown from which a run says that the machine is busy.
BUSY_SLOWDOWN = 1.5


def plan_cpu(
    parallel: int | None,
    jobs: int,
    threads: int | None,
    device: str = "cpu",
    gpus: int = 0,
    *,
    cores: int | None = None,
    load: float | None | bool = True,
) -> CpuPlan:
    """Slots and threads for ``jobs`` lab jobs on this machine's free cores.

    ``parallel`` is ``--jobs`` (None: ``auto``, as many as the free cores allow, one per GPU
    on CUDA); ``threads`` is ``--threads`` (None: the free cores shared among the slots).
    Free cores are the cores the run may use (its affinity) less the load other work puts
    on them (:func:`other_load`, rounded down). ``--jobs N`` and ``--threads T`` are kept as
    far as ``N * T`` fits the cores."""
    cores = cores or usable_cores()
    if load is True:
        load = other_load()
    others = 0 if load is None else min(cores - 1, max(0, int(load)))
    free = cores - others
    if parallel is None:
        slots = min(jobs, free)
        if device.startswith("cuda"):
            slots = min(slots, max(1, gpus))
    else:
        slots = min(parallel, max(1, jobs))
    slots = max(1, min(slots, cores // (threads or 1)))
    if threads is None:
        threads = max(1, free // slots)
    return CpuPlan(cores=cores, load=None if load is None else float(load), slots=slots, threads=threads)


def local_slots(parallel: int | None, jobs: int, device: str, gpus: int) -> int:
    """``--jobs N`` for the local executor; ``None`` (``auto``): what the free cores
    allow, and at most one lab per GPU when the labs run on CUDA (see :func:`plan_cpu`).
    A given ``N`` does not depend on the load, so the load is measured only for ``auto``."""
    return plan_cpu(parallel, jobs, None, device, gpus, load=True if parallel is None else None).slots


class DevicePool:
    """CUDA devices handed to labs running in parallel, one lab per GPU (round robin over
    the free ones; a lab waits for a free GPU): every GPU for ``cuda`` or ``auto``, the one
    named for ``cuda:N``. Without CUDA every lab gets the run's device."""

    def __init__(self, device: str, gpus: int, device_requested: str = "auto") -> None:
        self.device = device
        self._free: queue.Queue[str] | None = None
        if device.startswith("cuda") and gpus > 0:
            self._free = queue.Queue()
            named = ":" in device_requested
            for name in [device] if named else [f"cuda:{index}" for index in range(gpus)]:
                self._free.put(name)

    def take(self) -> str:
        return self.device if self._free is None else self._free.get()

    def give(self, device: str) -> None:
        if self._free is not None:
            self._free.put(device)


def gpu_count(device: str) -> int:
    """The CUDA GPUs of this machine when the run's device is a CUDA one, else 0."""
    if not device.startswith("cuda"):
        return 0
    import torch  # already imported by resolve_device to answer a CUDA device

    return int(torch.cuda.device_count())


def fair_threads(threads: int | None, slots: int) -> int | None:
    """Torch CPU threads for each of ``slots`` labs running at once: ``--threads`` when
    given, else a fair share of the cores this run may use (``None``, torch's own choice,
    for one lab)."""
    if threads is not None or slots <= 1:
        return threads
    return max(1, usable_cores() // slots)


# --------------------------------------------------------------------------- slurm


class SlurmJobsExecutor(Executor):
    """Each lab job a SLURM job (submitit); all of them are submitted at once, and SLURM
    decides when each runs. The job's state is shown beside the lab's bar."""

    name = "slurm"
    detachable = True

    def __init__(self, context: ExecutorContext) -> None:
        from .slurm import SlurmExecutor

        self.slurm = SlurmExecutor(context.run_dir / ".slurm", context.options)
        self.slots = max(1, context.parallel or context.jobs)
        self._jobs: list[Any] = []
        self._lock = threading.Lock()
        self._cancelled = threading.Event()

    def run(self, job: LabJob, reporter: Reporter, bar: Bar | None = None) -> Any:
        from .worker import WorkerOutcome

        if self._cancelled.is_set():
            return WorkerOutcome(interrupted=True)
        submitted = self.slurm.submit(job)
        with self._lock:
            self._jobs.append(submitted)
        if self._cancelled.is_set():  # Ctrl-C or SIGTERM while it was being submitted
            self.slurm.cancel([submitted])
        reporter.log(f"{job.lab} (seed {job.seed}): SLURM job {submitted.job_id} submitted")

        def on_state(j: Any) -> None:
            if bar is not None:
                bar.update(0, job=f"{j.job_id} {j.state.split()[0].lower()}")
            reporter.log(f"{job.lab} (seed {job.seed}): SLURM job {j.job_id} {j.state}", "debug")

        for ended in self.slurm.follow([submitted], on_state=on_state):
            outcome = ended.outcome or {}
            if "reply" in outcome:
                reply = outcome["reply"]
                return WorkerOutcome(reply=reply, facts=dict(reply.get("facts") or {}))
            return WorkerOutcome(error=outcome.get("error"), interrupted=self._cancelled.is_set())
        return WorkerOutcome(interrupted=True)  # pragma: no cover - follow yields every job

    def cancel(self) -> None:
        self._cancelled.set()
        with self._lock:
            jobs = list(self._jobs)
        self.slurm.cancel(jobs)

    def submit(self, job: LabJob) -> dict[str, Any]:
        submitted = self.slurm.submit(job)
        with self._lock:  # so that cancel() reaches it, should the submission stop half-way
            self._jobs.append(submitted)
        return {"job_id": submitted.job_id, "folder": str(self.slurm.folder)}


# --------------------------------------------------------------------------- registry


def _build_local(context: ExecutorContext) -> Executor:
    from .worker import WorkerStarter, start_method

    slots = local_slots(context.parallel, context.jobs, context.device, context.gpus)
    expected = context.jobs if context.to_run is None else context.to_run
    return LocalExecutor(slots, context.lab_timeout, WorkerStarter(start_method(context.device)), expected)


def builtin_executors(register: Callable[..., None]) -> None:
    """The built-in executors, registered like a plugin's."""
    register("local", _build_local, "worker processes on this machine, --jobs at a time")
    register(
        "slurm",
        SlurmJobsExecutor,
        "one SLURM job per lab and seed (submitit); pip install 'labrunner[slurm]'",
    )


def registered_executors(plugins: Any) -> dict[str, ExecutorInfo]:
    """The executors: the built-in ``local`` and ``slurm``, then those ``plugins`` registered
    (``register_executors``); name -> :class:`~labrunner.settings.executor_options.ExecutorInfo`.
    A plugin may not replace a built-in one."""
    found: dict[str, ExecutorInfo] = {}
    plugin = "labrunner"

    def register(name: str, build: Callable[..., Any], description: str = "") -> None:
        if not isinstance(name, str) or not name.isidentifier():
            plugins.warn(f"plugin {plugin!r}: executor name {name!r} is not a plain name; skipped")
        elif name in found:
            plugins.warn(
                f"plugin {plugin!r}: executor {name!r} is already registered by {found[name].plugin!r}"
            )
        else:
            found[name] = ExecutorInfo(name, build, description, plugin)

    builtin_executors(register)
    caller = plugins.pm.hook.register_executors
    for impl in reversed(caller.get_hookimpls()):
        plugin = impl.plugin_name
        try:
            call_with(impl.function, register=register)
        except Exception as exc:
            plugins.warn(f"plugin {plugin!r}: hook register_executors raised {describe_exception(exc)}")
    return found
