"""Running labs: for each selected lab, take its result from the cache or run it, and
keep run.json up to date; nothing else.

Running one lab in this process lives in :mod:`.labrun`, devices and seeding in
:mod:`.devices`, versions and git in :mod:`.environment`, the cache in :mod:`.cache`,
settings in :mod:`.config`, several labs at a time and jobs on an executor in :mod:`.jobs`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..authoring.labfiles import copy_answers
from ..base.devices import set_threads
from ..base.environment import environment
from ..base.errors import UsageError
from ..base.progress import Reporter
from ..base.version import __version__
from ..records.cache import ResultCache
from ..records.folders import RunLock, complete_run, new_run_dir
from ..records.results import LabResult, write_atomic
from ..settings.config import RunSettings
from ..settings.labconfig import config_as_dict
from ..settings.plugins import Plugins
from .labrun import now_iso
from .onelab import RunState, run_one_lab

if TYPE_CHECKING:
    pass


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
    with contextlib.ExitStack() as own:
        (hold if hold is not None else own).callback(lock.release)
        return _execute(settings, plugins, reporter, cache, run_dir, default_warn)


def _execute(
    settings: RunSettings,
    plugins: Plugins,
    reporter: Reporter,
    cache: ResultCache,
    run_dir: Path,
    default_warn: Callable[[str], None],
) -> tuple[Path, list[LabResult], bool]:
    from .jobs import run_jobs, uses_jobs  # labs as jobs (parallel, sweeps, executors)

    run_info: dict[str, Any] = {
        "labrunner": __version__,
        "status": "running",
        "started": now_iso(),
        "finished": None,
        "settings": settings.as_dict(),
        "environment": environment(settings.device, settings.threads),
        "labs": [],
        "config": {name: config_as_dict(cfg) for name, cfg in settings.configs.items()},
    }
    state = RunState(settings, plugins, reporter, cache, run_dir, run_info)
    state.save_info()
    write_atomic(run_dir / "config.yaml", _config_yaml(settings))
    plugins.run_started(
        run_dir=run_dir, labs=[lab.name for lab in settings.labs], settings=settings.as_dict()
    )
    results: list[LabResult] = []
    interrupted = False
    labs_bar = reporter.bar("labs", total=len(settings.labs))
    pool = None
    if settings.isolation == "process" and not uses_jobs(settings):
        from .worker import WorkerPool, WorkerStarter, start_method

        pool = WorkerPool(WorkerStarter(start_method(settings.device)))
    ended = False  # stays False when an error ends the run (a job the scheduler refused at submission)
    try:
        if uses_jobs(settings):
            results, interrupted = run_jobs(state, labs_bar)
        for index, lab in enumerate([] if uses_jobs(settings) else settings.labs):
            later = settings.labs[index + 1 :]
            result, interrupted = run_one_lab(state, lab, settings, pool, later)
            results.append(result)
            plugins.lab_finished(lab=lab, result=result)
            labs_bar.update(1)
            reporter.log(f"{lab.name}: {result.status} {result.took()}")
            if interrupted:
                break
        ended = True
    except KeyboardInterrupt:  # between labs, or while a finished lab was being stored
        interrupted = True
    finally:
        if pool is not None:
            pool.close()
        labs_bar.close()
        cache.close()
        cut_short = interrupted or not ended
        run_info["status"] = "interrupted" if cut_short else "finished"
        if settings.detach and run_info.get("jobs") and not cut_short:
            run_info["status"] = "submitted"
        run_info["finished"] = None if run_info["status"] == "submitted" else now_iso()
        state.save_info()
    interrupted = _complete(state) or interrupted
    copy_answers(run_dir, settings.labs, results, warn=plugins.warn)
    plugins.run_finished(run_dir=run_dir, results=results)
    plugins.warn = default_warn
    return run_dir, results, interrupted


def _fit_cpu(settings: RunSettings, reporter: Reporter) -> RunSettings:
    """A local run in workers: labs at a time (``--jobs auto``) and threads (unless
    ``--threads``) from the cores the run may use and the load, so that threads x labs at a
    time never exceed the cores; a busy machine is named once, with the slowdown to expect."""
    from .executors import plan_cpu
    from .jobs import gpu_count, uses_jobs

    if settings.executor != "local" or settings.isolation != "process" or settings.detach:
        return settings
    parallel = settings.jobs if uses_jobs(settings) else 1
    tasks = len(settings.labs) * len(settings.seeds or [settings.seed])
    gpus = gpu_count(settings.device) if parallel != 1 else 0
    plan = plan_cpu(parallel, tasks, settings.threads, settings.device, gpus)
    if settings.jobs is not None and plan.slots < settings.jobs and plan.slots < tasks:
        reporter.log(
            f"--jobs {settings.jobs}: this run may use {plan.cores} cores, so {plan.slots} "
            f"lab{'s' if plan.slots > 1 else ''} at a time with {plan.threads} thread(s) each"
        )
    note = plan.busy_note()
    if note:
        reporter.log(note, "warning")
    jobs = plan.slots if uses_jobs(settings) else 1
    return dataclasses.replace(settings, threads=plan.threads, jobs=jobs)


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
