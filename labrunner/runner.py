"""Running labs: for each selected lab, take its result from the cache or run it, and
keep run.json up to date; nothing else.

Running one lab in this process lives in :mod:`.labrun`, devices and seeding in
:mod:`.devices`, versions and git in :mod:`.environment`, the cache in :mod:`.cache`,
settings in :mod:`.config`, several labs at a time and jobs on an executor in :mod:`.jobs`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .answers import copy_answers
from .cache import ResultCache, cache_key, cache_root, source_hash
from .config import RunSettings, config_as_dict, resolve_settings
from .devices import check_device_syntax, resolve_device, seed_everything, set_threads
from .environment import environment, git_info
from .errors import UsageError, describe_exception
from .folders import RunLock, complete_run, find_run_dir, new_run_dir, point_latest
from .lab import Lab
from .labrun import changed_settings, error_record, now_iso, run_lab
from .plugins import Plugins
from .progress import Reporter
from .results import LabResult, write_atomic
from .runfolder import RunInfo

if TYPE_CHECKING:
    from .executors import Executor
    from .progress import Bar
    from .worker import WorkerPool

__all__ = [
    "RunSettings",
    "RunState",
    "cache_key",
    "cache_root",
    "check_device_syntax",
    "environment",
    "execute",
    "exit_status",
    "find_run_dir",
    "format_summary",
    "git_info",
    "lab_key",
    "new_run_dir",
    "point_latest",
    "resolve_device",
    "resolve_settings",
    "run_lab",
    "seed_everything",
]


@dataclasses.dataclass
class RunState:
    """What the steps of one run share: the run's settings, the plugins and their hooks,
    where progress goes, the result cache, and the run folder with its run.json
    (``run_info``, rewritten after each lab). A lab job's own settings (its seed, threads
    and device) are passed beside it."""

    settings: RunSettings
    plugins: Plugins
    reporter: Reporter
    cache: ResultCache
    run_dir: Path
    run_info: dict[str, Any]

    def save_info(self) -> None:
        save_run_info(self.run_dir, self.run_info)


def save_run_info(run_dir: Path, run_info: dict[str, Any]) -> None:
    """Write run.json through its typed model (checked as every reader checks it)."""
    RunInfo.from_json(run_info).save(run_dir / "run.json")


def lab_key(lab: Lab, settings: RunSettings, config: dict[str, Any] | None = None) -> str:
    """The cache key of ``lab`` under ``settings``: its config there (or ``config``), seed,
    device, determinism and the hash of its source files."""
    if config is None:
        config = config_as_dict(settings.configs[lab.name])
    return cache_key(lab, config, settings.seed, settings.device, settings.deterministic, source_hash(lab))


# --------------------------------------------------------------------------- a whole run


def execute(
    settings: RunSettings, plugins: Plugins, reporter: Reporter, *, hold: contextlib.ExitStack | None = None
) -> tuple[Path, list[LabResult], bool]:
    """Run every selected lab; returns (run folder, results, interrupted).

    run.json is rewritten (atomically) after each lab and once more at the end, also when
    Ctrl-C arrives at any point, so it always lists exactly the labs that finished.
    The run folder's lock (:class:`~labrunner.folders.RunLock`) is held from before run.json
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
            result, interrupted = _one_lab(state, lab, settings, pool, later)
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
    from .jobs import _gpu_count, uses_jobs

    if settings.executor != "local" or settings.isolation != "process" or settings.detach:
        return settings
    parallel = settings.jobs if uses_jobs(settings) else 1
    tasks = len(settings.labs) * len(settings.seeds or [settings.seed])
    gpus = _gpu_count(settings.device) if parallel != 1 else 0
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


def _one_lab(
    state: RunState,
    lab: Lab,
    settings: RunSettings,
    pool: WorkerPool | None = None,
    later: list[Lab] | None = None,
    *,
    out_dir: Path | None = None,
    executor: Executor | None = None,
    record: Callable[[Lab, LabResult, dict[str, Any]], None] | None = None,
) -> tuple[LabResult, bool]:
    """Take one lab from the cache or run it, and list it in run.json; returns
    (result, interrupted). ``settings`` are the lab job's (the run's, or with its own seed,
    threads and device); ``later`` are the labs still to come (whether one of them will
    need a worker decides if the next worker starts while this lab runs).

    With an ``executor`` (``--jobs``, ``--executor``, ``--seeds``) the lab runs as one of
    its jobs into ``out_dir``, and ``record(lab, result, facts)`` lists it in run.json."""
    plugins, reporter, cache = state.plugins, state.reporter, state.cache
    config = settings.configs[lab.name]
    out_dir = out_dir or state.run_dir / lab.name
    key = lab_key(lab, settings)
    plugins.lab_started(lab=lab, config=config, out_dir=out_dir)
    interrupted = False
    facts: dict[str, Any] = {}

    def waiting() -> None:
        reporter.log(f"{lab.name}: waiting for another run computing the same result (key {key})")

    with cache.lock(lab.name, key, waiting):
        result = None if settings.force else cache.get(lab.name, key, out_dir)
        if result is not None:
            reporter.log(f"{lab.name}: reused cached result ({result.status}, key {key}); --force reruns it")
        else:
            if settings.force:
                cache.clear_state(lab.name, key)
            reporter.log(f"{lab.name}: running ({settings.profile} profile, {settings.device})")
            bar = reporter.bar(lab.name, total=None)
            try:
                if executor is not None:
                    result, interrupted, facts = _run_in_worker(
                        state, lab, settings, key, out_dir, None, lambda: None, executor, bar
                    )
                elif pool is not None and lab.name in plugins.lab_plugin:

                    def start_next() -> None:
                        if any(_will_run(other, settings, cache) for other in later or []):
                            pool.prepare()

                    result, interrupted, facts = _run_in_worker(
                        state, lab, settings, key, out_dir, pool, start_next
                    )
                    _complete_environment(state.run_info, facts)
                else:
                    result, interrupted = _run_here(
                        lab, settings, reporter, cache, key, out_dir, state.run_dir.name
                    )
            finally:
                bar.close()
            if result.status == "error":
                reporter.log(f"{lab.name}: error: {result.error['type']}: {result.error['message']}", "error")
        # the lab is listed before it is stored: Ctrl-C while storing keeps run.json right
        if record is not None:
            record(lab, result, facts)
            if not result.cached and result.status in ("passed", "failed"):
                cache.put(lab.name, key, out_dir)
            return result, interrupted
        state.run_info["labs"].append(
            {
                "lab": lab.name,
                "status": result.status,
                "duration_s": result.duration_s,
                "cached": result.cached,
            }
        )
        state.save_info()
        if not result.cached and result.status in ("passed", "failed"):
            cache.put(lab.name, key, out_dir)
    return result, interrupted


def _run_here(
    lab: Lab,
    settings: RunSettings,
    reporter: Reporter,
    cache: ResultCache,
    key: str,
    out_dir: Path,
    run_name: str = "",
) -> tuple[LabResult, bool]:
    """``--isolation none``: run the lab in this process (debugging, notebooks)."""
    try:
        result = run_lab(
            lab,
            settings.configs[lab.name],
            out_dir=out_dir,
            device=settings.device,
            seed=settings.seed,
            profile=settings.profile,
            deterministic=settings.deterministic,
            reporter=reporter,
            key=key,
            cache_dir=cache.lab_cache_dir(lab.name),
            state_dir=cache.state_dir(lab.name, key),
            run=run_name,
        )
    except KeyboardInterrupt:
        return LabResult.load(out_dir / "result.json"), True
    return result, False


def lab_job_spec(
    lab: Lab,
    settings: RunSettings,
    plugins: Plugins,
    cache: ResultCache,
    key: str,
    out_dir: Path,
    run_name: str = "",
) -> dict[str, Any]:
    """The JSON-serialisable description of one lab's run that a worker executes
    (:func:`labrunner.worker.run_lab_job`); ``run_name`` is the run folder's name."""
    return {
        "lab": lab.name,
        "plugin": plugins.lab_plugin[lab.name],
        "plugins_dirs": list(settings.plugins_dirs),
        "config": config_as_dict(settings.configs[lab.name]),
        "profile": settings.profile,
        "seed": settings.seed,
        "device": settings.device,
        "deterministic": settings.deterministic,
        "threads": settings.threads,
        "out_dir": str(Path(out_dir).resolve()),
        "cache_dir": str(cache.lab_cache_dir(lab.name).resolve()),
        "state_dir": str(cache.state_dir(lab.name, key).resolve()),
        "cache_key": key,
        "run": run_name,
    }


def _run_in_worker(
    state: RunState,
    lab: Lab,
    settings: RunSettings,
    key: str,
    out_dir: Path,
    pool: WorkerPool | None,
    start_next: Callable[[], None],
    executor: Executor | None = None,
    bar: Bar | None = None,
) -> tuple[LabResult, bool, dict[str, Any]]:
    """``--isolation process``: run the lab in a fresh worker (or as a job of
    ``executor``) and read its result back; a worker that ended any other way gets an
    error result saved for it here."""
    from .worker import LocalWorker, WorkerOutcome

    reporter = state.reporter
    spec = lab_job_spec(lab, settings, state.plugins, state.cache, key, out_dir, state.run_dir.name)
    started = now_iso()
    start = time.perf_counter()
    interrupted = False
    try:
        if executor is not None:
            outcome = executor.run(spec, reporter, bar)
            interrupted = outcome.interrupted
        else:
            assert pool is not None
            outcome = LocalWorker(reporter, settings.lab_timeout, on_running=start_next).run(
                spec, pool.take()
            )
    except UsageError as exc:  # the executor refused the job (sbatch: no such partition, ...)
        outcome = WorkerOutcome(error={**error_record(exc), "type": "JobRefused"})
    except KeyboardInterrupt:
        interrupted = True
        outcome = WorkerOutcome(interrupted=True)
    if outcome.reply is not None:
        try:
            result = LabResult.load(Path(outcome.reply["result"]))
            return result, interrupted or result.status == "interrupted", outcome.facts
        except (OSError, ValueError, TypeError, KeyError) as exc:
            outcome.error = {
                **error_record(exc),
                "message": f"the worker's result.json cannot be read: {describe_exception(exc)}",
            }
    if interrupted and (out_dir / "result.json").is_file():  # saved by the worker as it stopped
        try:
            return LabResult.load(out_dir / "result.json"), True, {}
        except (OSError, ValueError, TypeError):
            pass
    result = LabResult(
        lab=lab.name,
        title=lab.title,
        version=lab.version,
        profile=settings.profile,
        seed=settings.seed,
        device=settings.device,
        cache_key=key,
        config=config_as_dict(settings.configs[lab.name]),
        changed=changed_settings(lab, settings.profile, config_as_dict(settings.configs[lab.name])),
        code_hash=source_hash(lab),
        run=state.run_dir.name,
        started=started,
        finished=now_iso(),
        duration_s=round(time.perf_counter() - start, 3),
        part=lab.part,
        order=lab.order,
    )
    if interrupted:
        result.status = "interrupted"
        result.error = {"type": "KeyboardInterrupt", "message": "interrupted by the user", "traceback": ""}
    else:
        result.status = "error"
        result.error = outcome.error or {"type": "WorkerError", "message": "unknown", "traceback": ""}
    out_dir.mkdir(parents=True, exist_ok=True)
    result.save(out_dir / "result.json")
    return result, interrupted, {}


def _will_run(lab: Lab, settings: RunSettings, cache: ResultCache) -> bool:
    """Whether ``lab`` will need a worker in this run (no cache entry for it, or --force)."""
    if settings.force or not cache.usable:
        return True
    return not (cache.entry(lab.name, lab_key(lab, settings)) / "result.json").is_file()


def _complete_environment(run_info: dict[str, Any], facts: dict[str, Any]) -> None:
    """Fill run.json's torch facts from the first worker that reports them."""
    env = run_info["environment"]
    for name in ("torch_threads", "gpu"):
        if env.get(name) is None and facts.get(name) is not None:
            env[name] = facts[name]


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
        from .stopping import interrupted_status

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
