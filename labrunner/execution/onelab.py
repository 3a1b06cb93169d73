"""One lab of a run: its result from the cache, or the lab run in this process
(``--isolation none``) or in a worker; the run's shared state (:class:`RunState`) and the
lab job's spec."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..authoring.lab import Lab
from ..authoring.labfiles import cache_key, source_hash
from ..base.errors import UsageError, describe_exception
from ..base.progress import Reporter
from ..records.cache import ResultCache
from ..records.results import LabError, LabResult
from ..records.runfolder import RunInfo
from ..settings.config import RunSettings
from ..settings.labconfig import config_as_dict
from ..settings.plugins import Plugins
from .labrun import now_iso, run_lab, started_result

if TYPE_CHECKING:
    from ..base.progress import Bar
    from .executors import Executor
    from .worker import WorkerPool


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


def run_one_lab(
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
                    result, interrupted, facts = run_in_worker(
                        state, lab, settings, key, out_dir, None, lambda: None, executor, bar
                    )
                elif pool is not None and lab.name in plugins.lab_plugin:

                    def start_next() -> None:
                        if any(will_run(other, settings, cache) for other in later or []):
                            pool.prepare()

                    result, interrupted, facts = run_in_worker(
                        state, lab, settings, key, out_dir, pool, start_next
                    )
                    complete_environment(state.run_info, facts)
                else:
                    result, interrupted = run_here(
                        lab, settings, reporter, cache, key, out_dir, state.run_dir.name
                    )
            finally:
                bar.close()
            if result.status == "error":
                reporter.log(f"{lab.name}: error: {result.error}", "error")
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


def run_here(
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
    (:func:`labrunner.execution.job.run_lab_job`); ``run_name`` is the run folder's name."""
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


def run_in_worker(
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
        outcome = WorkerOutcome(error=LabError("JobRefused", LabError.from_exception(exc).message))
    except KeyboardInterrupt:
        interrupted = True
        outcome = WorkerOutcome(interrupted=True)
    if outcome.reply is not None:
        try:
            result = LabResult.load(Path(outcome.reply["result"]))
            return result, interrupted or result.status == "interrupted", outcome.facts
        except (OSError, ValueError, TypeError, KeyError) as exc:
            message = f"the worker's result.json cannot be read: {describe_exception(exc)}"
            outcome.error = LabError.from_exception(exc).with_message(message)
    if interrupted and (out_dir / "result.json").is_file():  # saved by the worker as it stopped
        try:
            return LabResult.load(out_dir / "result.json"), True, {}
        except (OSError, ValueError, TypeError):
            pass
    config = config_as_dict(settings.configs[lab.name])
    result = started_result(
        lab,
        config,
        settings.profile,
        settings.seed,
        settings.device,
        key,
        source_hash(lab),
        state.run_dir.name,
    )
    result.started, result.finished = started, now_iso()
    result.duration_s = round(time.perf_counter() - start, 3)
    if interrupted:
        result.stop(LabError.interrupted())
    else:
        result.stop(outcome.error or LabError("WorkerError", "the worker ended without a reply or an error"))
    out_dir.mkdir(parents=True, exist_ok=True)
    result.save(out_dir / "result.json")
    return result, interrupted, {}


def will_run(lab: Lab, settings: RunSettings, cache: ResultCache) -> bool:
    """Whether ``lab`` will need a worker in this run (no cache entry for it, or --force)."""
    if settings.force or not cache.usable:
        return True
    return not (cache.entry(lab.name, lab_key(lab, settings)) / "result.json").is_file()


def complete_environment(run_info: dict[str, Any], facts: dict[str, Any]) -> None:
    """Fill run.json's torch facts from the first worker that reports them."""
    env = run_info["environment"]
    for name in ("torch_threads", "gpu"):
        if env.get(name) is None and facts.get(name) is not None:
            env[name] = facts[name]
