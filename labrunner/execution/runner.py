"""A run: every selected lab, once per seed, taken from the cache or run as a job of the
run's executor, with run.json kept up to date; nothing else.

There is one path for every run. The executor is the in-process one for ``--isolation
none`` (:class:`InProcessExecutor`), else the registered one the run names: ``local``
(worker processes on this machine; a sequential run is the local executor with one slot),
``slurm``, or a plugin's. Jobs run up to the executor's slots at a time: with one slot in
this thread, with more in threads that each follow one job. Each job is a
:class:`~labrunner.execution.labjob.LabJob`, run wherever it runs by
:func:`labrunner.execution.labrun.run_lab_job`.

What the steps share and run.json's book are in :mod:`.runstate`; ``--detach`` and
``labrunner status`` in :mod:`.detached`; executors in :mod:`.executors`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..authoring.lab import Lab
from ..authoring.labfiles import copy_answers, source_hash
from ..base.devices import set_threads
from ..base.environment import environment
from ..base.errors import UsageError, describe_exception
from ..base.progress import Reporter
from ..base.version import __version__
from ..records.cache import ResultCache
from ..records.folders import RunLock, complete_run, new_run_dir
from ..records.results import LabError, LabResult, write_atomic
from ..records.runinfo import RunInfo
from ..settings.config import RunSettings
from ..settings.labconfig import config_as_dict
from ..settings.plugins import Plugins
from .executors import Executor
from .labjob import LabJob
from .labrun import now_iso, run_lab_job, started_result
from .runstate import RunBook, RunState

if TYPE_CHECKING:
    from concurrent.futures import Future

    from ..base.progress import Bar
    from .executors import DevicePool


# --------------------------------------------------------------------------- a whole run


def execute(
    settings: RunSettings, plugins: Plugins, reporter: Reporter, *, hold: contextlib.ExitStack | None = None
) -> tuple[Path, list[LabResult], bool]:
    """Run every selected lab; returns (run folder, results, interrupted).

    run.json is rewritten (atomically) after each lab and once more at the end, also when
    Ctrl-C arrives at any point, so it always lists exactly the labs that finished.
    The run folder's lock (:class:`~labrunner.records.folders.RunLock`) is held from before run.json
    is written until the run ends, or, with ``hold``, until the caller closes that stack
    (after rendering the report): ``labrunner clean`` never removes a locked run.
    """
    default_warn = plugins.warn
    from .worker import start_method

    start_method(settings.device)  # LABRUNNER_WORKER_START checked before anything is written
    settings = _fit_cpu(settings, reporter)

    plugins.warn = lambda message: reporter.log(message, "warning")
    if settings.isolation == "none":  # else each worker sets them: torch stays out of this process
        set_threads(settings.threads)
    cache = ResultCache(warn=plugins.warn)
    run_dir = new_run_dir(settings.out)
    lock = RunLock(run_dir)
    lock.acquire(blocking=True)  # a new folder: nobody else holds it
    try:
        with contextlib.ExitStack() as own:
            (hold if hold is not None else own).callback(lock.release)
            return _execute(settings, plugins, reporter, cache, run_dir)
    finally:
        plugins.warn = default_warn


def _execute(
    settings: RunSettings, plugins: Plugins, reporter: Reporter, cache: ResultCache, run_dir: Path
) -> tuple[Path, list[LabResult], bool]:
    run_info = RunInfo(
        labrunner=__version__,
        status="running",
        started=now_iso(),
        settings=settings.as_dict(),
        environment=environment(settings.device, settings.threads),
        config={name: config_as_dict(cfg) for name, cfg in settings.configs.items()},
    )
    labs_bar = reporter.bar("labs", total=len(settings.labs))
    labs = {lab.name: lab for lab in settings.labs}

    def listed(name: str, result: LabResult) -> None:
        plugins.lab_finished(lab=labs[name], result=result)
        labs_bar.update(1)
        reporter.log(f"{name}: {result.status} {result.took()}")

    book = RunBook(run_dir, run_info, list(labs), list(settings.seeds), settings.sweep, listed)
    state = RunState(settings, plugins, reporter, cache, run_dir, book)
    book.save()
    write_atomic(run_dir / "config.yaml", _config_yaml(settings))
    plugins.run_started(run_dir=run_dir, labs=list(labs), settings=settings.as_dict())
    interrupted = False
    ended = False  # stays False when an error ends the run (a job the scheduler refused at submission)
    try:
        interrupted = run_jobs(state)
        ended = True
    except KeyboardInterrupt:  # between labs, or while a finished lab was being stored
        interrupted = True
    finally:
        labs_bar.close()
        cache.close()
        cut_short = interrupted or not ended
        run_info.status = "interrupted" if cut_short else "finished"
        if settings.detach and run_info.extra.get("jobs") and not cut_short:
            run_info.status = "submitted"
        run_info.finished = None if run_info.status == "submitted" else now_iso()
        book.save()
    interrupted = _complete(state) or interrupted
    results = book.results()
    copy_answers(run_dir, settings.labs, results, warn=plugins.warn)
    plugins.run_finished(run_dir=run_dir, results=results)
    return run_dir, results, interrupted


def _fit_cpu(settings: RunSettings, reporter: Reporter) -> RunSettings:
    """A local run in workers: labs at a time (``--jobs auto``) and threads (unless
    ``--threads``) from the cores the run may use and the load, so that threads x labs at a
    time never exceed the cores; a busy machine is named once, with the slowdown to expect."""
    from .executors import gpu_count, plan_cpu

    if settings.executor != "local" or settings.isolation != "process" or settings.detach:
        return settings
    tasks = len(settings.labs) * len(settings.seeds)
    gpus = gpu_count(settings.device) if settings.jobs != 1 else 0
    plan = plan_cpu(settings.jobs, tasks, settings.threads, settings.device, gpus)
    if settings.jobs is not None and plan.slots < settings.jobs and plan.slots < tasks:
        reporter.log(
            f"--jobs {settings.jobs}: this run may use {plan.cores} cores, so {plan.slots} "
            f"lab{'s' if plan.slots > 1 else ''} at a time with {plan.threads} thread(s) each"
        )
    note = plan.busy_note()
    if note:
        reporter.log(note, "warning")
    return dataclasses.replace(settings, threads=plan.threads, jobs=plan.slots)


def _complete(state: RunState) -> bool:
    """List every installed lab in the run folder (folders.complete_run): a lab not
    selected shows its most recent result from an earlier run, whatever its settings,
    else is "not run". Returns True when Ctrl-C arrived meanwhile."""
    plugins, reporter = state.plugins, state.reporter
    installed = {name: lab.title for name, lab in plugins.labs.items()}
    try:
        added = complete_run(state.run_dir, installed)
    except KeyboardInterrupt:
        return True
    except (OSError, UsageError) as exc:  # the run itself is complete and saved
        reporter.log(f"other installed labs not added to the report: {exc}", "warning")
        return False
    for entry in added:
        origin = entry.origin or {}
        where = origin.get("run") or origin.get("kind", "")
        reporter.log(
            f"{entry.lab}: not selected; shown {'as not run' if entry.status == 'not run' else 'from ' + where}"
        )
    return False


def _config_yaml(settings: RunSettings) -> str:
    import yaml

    return yaml.safe_dump(settings.resolved_config(), sort_keys=False)


# --------------------------------------------------------------------------- the jobs


class InProcessExecutor(Executor):
    """``--isolation none``: each lab job in this process, one at a time (debugging a lab,
    notebooks); the labs are the run's own, already loaded."""

    name = "in-process"

    def __init__(self, labs: dict[str, Lab]) -> None:
        self.labs = labs

    def run(self, job: LabJob, reporter: Reporter, bar: Bar | None = None) -> Any:
        from .worker import WorkerOutcome

        reply = run_lab_job(job, reporter, lab=self.labs[job.lab])
        return WorkerOutcome(reply=reply, facts=dict(reply.get("facts") or {}))


def build_executor(state: RunState, tasks: list[tuple[Lab, int]], gpus: int) -> Executor:
    """The run's executor: in this process for ``--isolation none``, else the registered one
    it names, told how many jobs there are and how many of them will run (not cached)."""
    from .executors import ExecutorContext, registered_executors

    settings = state.settings
    if settings.isolation == "none":
        return InProcessExecutor({lab.name: lab for lab in settings.labs})
    context = ExecutorContext(
        run_dir=state.run_dir,
        options=dict(settings.executor_options),
        jobs=len(tasks),
        parallel=settings.jobs,
        lab_timeout=settings.lab_timeout,
        device=settings.device,
        gpus=gpus,
        to_run=sum(state.will_run(lab, seed) for lab, seed in tasks),
    )
    return registered_executors(state.plugins)[settings.executor].build(context)


def run_jobs(state: RunState) -> bool:
    """Run every lab (once per seed of a sweep) as jobs of the run's executor, up to its
    slots at a time, or submit them (``--detach``); returns whether the run was interrupted.
    Ctrl-C cancels the jobs still running; what ended is kept and listed."""
    from .executors import DevicePool, SerialReporter, fair_threads, gpu_count

    settings = state.settings
    tasks = [(lab, seed) for lab in settings.labs for seed in settings.seeds]
    gpus = gpu_count(settings.device)
    executor = build_executor(state, tasks, gpus)
    try:
        if settings.detach:
            from .detached import submit_detached

            submit_detached(state, executor, tasks)
            return False
        local = executor.name == "local"
        slots = min(executor.slots, len(tasks))
        threads = fair_threads(settings.threads, slots) if local else settings.threads
        devices = DevicePool(settings.device, gpus, settings.device_requested) if local else None
        if slots > 1:  # the jobs' threads log one at a time
            state = dataclasses.replace(state, reporter=SerialReporter(state.reporter))
        if executor.name != InProcessExecutor.name and (slots > 1 or settings.sweep or not local):
            state.reporter.log(
                f"{len(tasks)} lab jobs, {executor.slots} at a time ({executor.name} executor)"
            )
        if slots <= 1:
            return _one_at_a_time(state, executor, tasks, devices, threads)
        return _in_threads(state, executor, longest_first(tasks, settings.profile), devices, threads)
    finally:
        executor.close()
        state.book.list_all()  # labs cut short by Ctrl-C: listed with the seeds that ended


def longest_first(tasks: list[tuple[Lab, int]], profile: str) -> list[tuple[Lab, int]]:
    """``tasks`` with the labs expected to take longest first (``Lab.expected_s`` of the
    profile), the others after them in their order: with several slots, a long lab started
    last would run alone at the end. run.json and the report keep the labs' order."""
    return sorted(
        tasks, key=lambda task: -float((getattr(task[0], "expected_s", None) or {}).get(profile, 0))
    )


def _one_at_a_time(
    state: RunState,
    executor: Executor,
    tasks: list[tuple[Lab, int]],
    devices: DevicePool | None,
    threads: int | None,
) -> bool:
    """One slot: each job in this thread (Ctrl-C reaches it here), until one is interrupted."""
    return any(run_task(state, executor, lab, seed, devices, threads) for lab, seed in tasks)


def _in_threads(
    state: RunState,
    executor: Executor,
    tasks: list[tuple[Lab, int]],
    devices: DevicePool | None,
    threads: int | None,
) -> bool:
    """Several slots: each job followed by a thread of its own, up to the slots at a time."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=executor.slots, thread_name_prefix="labrunner-job")
    pending = {pool.submit(run_task, state, executor, lab, seed, devices, threads) for lab, seed in tasks}
    interrupted, failure = _wait_for_jobs(pending, executor)
    pool.shutdown(wait=False, cancel_futures=True)
    if failure is not None:
        raise failure
    return interrupted


def _wait_for_jobs(pending: set[Future], executor: Executor) -> tuple[bool, BaseException | None]:
    """Wait for the jobs' futures (each True when its lab was interrupted); returns
    (interrupted, the first failure of labrunner itself). Ctrl-C, an interrupted lab or a
    failure starts no new job and cancels the running ones."""
    from concurrent.futures import FIRST_COMPLETED, wait

    interrupted = False
    failure: BaseException | None = None
    try:
        while pending and not interrupted:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in done:
                if future.exception() is not None:
                    failure = failure or future.exception()
                elif future.result():
                    interrupted = True
            if failure is not None:
                break
    except KeyboardInterrupt:
        interrupted = True
    if pending:
        for future in pending:
            future.cancel()
        executor.cancel()
        try:
            wait(pending)
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting
            pass
    return interrupted, failure


# --------------------------------------------------------------------------- one job


def run_task(
    state: RunState, executor: Executor, lab: Lab, seed: int, devices: DevicePool | None, threads: int | None
) -> bool:
    """``lab`` with ``seed``: its result from the cache, or the lab run as a job of
    ``executor`` (on a GPU of its own from ``devices``, unless the lab says it can share one:
    ``shares_gpu = True``), listed in run.json and then stored in the cache. Returns whether
    it was interrupted."""
    settings, plugins, reporter, cache = state.settings, state.plugins, state.reporter, state.cache
    pooled = devices is not None and not getattr(lab, "shares_gpu", False)
    device = devices.take() if pooled else settings.device
    try:
        job = state.job(lab, seed, device, threads)
        plugins.lab_started(lab=lab, config=settings.configs[lab.name], out_dir=Path(job.out_dir))
        interrupted, facts = False, {}

        def waiting() -> None:
            reporter.log(
                f"{lab.name}: waiting for another run computing the same result (key {job.cache_key})"
            )

        with cache.lock(lab.name, job.cache_key, waiting):
            result = None if settings.force else cache.get(lab.name, job.cache_key, Path(job.out_dir))
            if result is not None:
                reporter.log(
                    f"{lab.name}: reused cached result ({result.status}, key {job.cache_key}); --force reruns it"
                )
            else:
                result, interrupted, facts = _run(state, executor, lab, job)
            # the lab is listed before it is stored: Ctrl-C while storing keeps run.json right
            state.book.record(lab.name, seed, result, facts)
            if not result.cached and result.status in ("passed", "failed"):
                cache.put(lab.name, job.cache_key, Path(job.out_dir))
        return interrupted
    finally:
        if pooled:
            devices.give(device)


def _run(
    state: RunState, executor: Executor, lab: Lab, job: LabJob
) -> tuple[LabResult, bool, dict[str, Any]]:
    """Run ``job`` on ``executor`` with the lab's progress bar; returns (result, interrupted,
    the worker's torch facts)."""
    reporter = state.reporter
    if state.settings.force:
        state.cache.clear_state(lab.name, job.cache_key)
    reporter.log(f"{lab.name}: running ({job.profile} profile, {job.device})")
    bar = reporter.bar(lab.name, total=None)
    try:
        result, interrupted, facts = dispatch(executor, lab, job, reporter, bar)
    finally:
        bar.close()
    if result.status == "error":
        reporter.log(f"{lab.name}: error: {result.error}", "error")
    return result, interrupted, facts


def dispatch(
    executor: Executor, lab: Lab, job: LabJob, reporter: Reporter, bar: Bar | None = None
) -> tuple[LabResult, bool, dict[str, Any]]:
    """Run ``job`` on ``executor`` and read its result back; a job that ended any other way
    (its worker died, the scheduler refused it, Ctrl-C) gets an error result saved for it
    here. Returns (result, interrupted, the worker's torch facts)."""
    from .worker import WorkerOutcome

    started, start = now_iso(), time.perf_counter()
    try:
        outcome = executor.run(job, reporter, bar)
    except UsageError as exc:  # the executor refused the job (sbatch: no such partition, ...)
        outcome = WorkerOutcome(error=LabError("JobRefused", LabError.from_exception(exc).message))
    except KeyboardInterrupt:  # one slot: Ctrl-C reached this thread while the job ran
        executor.cancel()
        outcome = WorkerOutcome(interrupted=True)
    interrupted = outcome.interrupted
    if outcome.reply is not None:
        try:
            result = LabResult.load(job.result_path)
            return result, interrupted or result.status == "interrupted", outcome.facts
        except (OSError, ValueError, TypeError, KeyError) as exc:
            message = f"the worker's result.json cannot be read: {describe_exception(exc)}"
            outcome.error = LabError.from_exception(exc).with_message(message)
    if interrupted and job.result_path.is_file():  # saved by the worker as it stopped
        try:
            return LabResult.load(job.result_path), True, {}
        except (OSError, ValueError, TypeError):
            pass
    result = started_result(
        lab, dict(job.config), job.profile, job.seed, job.device, job.cache_key, source_hash(lab), job.run,
        job.changed,
    )  # fmt: skip
    result.started, result.finished = started, now_iso()
    result.duration_s = round(time.perf_counter() - start, 3)
    if interrupted:
        result.stop(LabError.interrupted())
    else:
        result.stop(outcome.error or LabError("WorkerError", "the worker ended without a reply or an error"))
    Path(job.out_dir).mkdir(parents=True, exist_ok=True)
    result.save(job.result_path)
    return result, interrupted, {}


# --------------------------------------------------------------------------- the outcome


def exit_status(results: list[LabResult], interrupted: bool) -> int:
    """0 when every lab passed, 1 otherwise; 128 + the signal that interrupted the run
    (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP)."""
    if interrupted:
        from ..base.stopping import interrupted_status

        return interrupted_status()
    return 0 if all(r.status == "passed" for r in results) else 1


def format_summary(results: list[LabResult]) -> str:
    lines = []
    swept = {r.lab for r in results if sum(o.lab == r.lab for o in results) > 1}
    for r in results:
        checks = r.checks
        passed = sum(c.passed for c in checks)
        name = f"{r.lab} seed {r.seed}" if r.lab in swept else r.lab
        took = "  cached (ran earlier)" if r.cached else f"{r.duration_s:7.1f} s"
        lines.append(f"  {name:<16} {r.status:<11} {passed}/{len(checks)} checks  {took}")
    return "\n".join(lines)
