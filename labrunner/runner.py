"""Running labs: for each selected lab, take its result from the cache or run it, and
keep run.json up to date; nothing else.

Devices and seeding live in :mod:`.devices`, versions and git in :mod:`.environment`,
the cache in :mod:`.cache`, settings in :mod:`.config`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import shutil
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .cache import ResultCache, cache_key, cache_root, source_hash
from .config import RunSettings, config_as_dict, load_run_config, resolve_lab_config, resolve_settings
from .context import LabContext
from .devices import check_device_syntax, resolve_device, seed_everything, set_threads
from .environment import environment, git_info
from .errors import UsageError, describe_exception
from .lab import Lab
from .plugins import Plugins
from .progress import Reporter
from .results import LabResult, write_atomic
from .runfolder import RunInfo, complete_run, find_run_dir, new_run_dir, point_latest

if TYPE_CHECKING:
    from .executors import Executor
    from .progress import Bar
    from .worker import WorkerPool

__all__ = [
    "RunSettings",
    "cache_key",
    "cache_root",
    "check_device_syntax",
    "environment",
    "execute",
    "exit_status",
    "find_run_dir",
    "format_summary",
    "git_info",
    "new_run_dir",
    "point_latest",
    "resolve_device",
    "resolve_settings",
    "run_lab",
    "seed_everything",
]


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).astimezone().isoformat(timespec="seconds")


# --------------------------------------------------------------------------- one lab


def status_of(result: LabResult) -> str:
    return "passed" if all(c.passed for c in result.checks) else "failed"


def error_record(exc: BaseException, tb: str = "") -> dict[str, str]:
    """A lab's ``error``: type, one-line message and traceback, whatever ``str(exc)`` does."""
    described = describe_exception(exc)
    message = described.partition(": ")[2] if ": " in described else ""
    return {"type": type(exc).__name__, "message": message, "traceback": tb}


def run_lab(
    lab: Lab,
    config: Any,
    *,
    out_dir: Path,
    device: str = "cpu",
    seed: int = 0,
    profile: str = "quick",
    deterministic: bool = False,
    reporter: Reporter | None = None,
    key: str = "",
    cache_dir: Path | None = None,
    state_dir: Path | None = None,
    threads: int | None = None,
) -> LabResult:
    """Run one lab into ``out_dir`` and save ``result.json`` there.

    An exception inside the lab (``SystemExit`` included) becomes status ``error`` with its
    traceback; KeyboardInterrupt is saved as ``interrupted`` and raised again.
    """
    import torch

    reporter = reporter or Reporter()
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    cfg_dict = config_as_dict(config)
    key = key or cache_key(lab, cfg_dict, seed, device, deterministic, source_hash(lab))
    result = LabResult(
        lab=lab.name,
        title=lab.title,
        version=lab.version,
        profile=profile,
        seed=seed,
        device=device,
        cache_key=key,
        config=cfg_dict,
        started=now_iso(),
        part=lab.part,
        order=lab.order,
    )
    root = cache_root()
    ctx = LabContext(
        result,
        config,
        device=torch.device(device),
        seed=seed,
        profile=profile,
        out_dir=out_dir,
        cache_dir=cache_dir or root / "labs" / lab.name,
        state_dir=state_dir or root / "state" / lab.name / key,
        reporter=reporter,
        deterministic=deterministic,
    )
    set_threads(threads)
    seed_everything(seed, deterministic)
    start = time.perf_counter()
    interrupted = False
    fallbacks: list[str] = []
    try:
        reporter.lab_running(lab.name)
        with nondeterministic_operations(fallbacks, enabled=deterministic):
            lab.run(ctx)
        result.status = status_of(result)
    except KeyboardInterrupt:
        interrupted = True
        result.status = "interrupted"
        result.error = {"type": "KeyboardInterrupt", "message": "interrupted by the user", "traceback": ""}
    except (Exception, SystemExit) as exc:  # a lab's sys.exit() ends the lab, not the run
        result.status = "error"
        result.error = error_record(exc, traceback.format_exc())
    if fallbacks:
        names = ", ".join(f"`{name}`" for name in fallbacks)
        result.notes.append(
            f"With `--deterministic`, PyTorch has no deterministic implementation of {names} on "
            f"{device}: {'it' if len(fallbacks) == 1 else 'they'} ran as usual, so repeated runs can "
            "differ in the last digits of what depends on them."
        )
    result.duration_s = round(time.perf_counter() - start, 3)
    result.finished = now_iso()
    _save_result(result, out_dir / "result.json")
    if interrupted:
        raise KeyboardInterrupt
    return result


#: How PyTorch words the warning of an operation without a deterministic implementation
#: (``torch.use_deterministic_algorithms(True, warn_only=True)``).
_NONDETERMINISTIC = " does not have a deterministic implementation"


@contextlib.contextmanager
def nondeterministic_operations(found: list[str], *, enabled: bool = True) -> Iterator[list[str]]:
    """Collect into ``found`` the operations PyTorch warns have no deterministic
    implementation (on CUDA: scatter_add, index_add, some pooling backward passes, ...);
    every other warning is shown as usual."""
    if not enabled:
        yield found
        return
    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        text = str(message)
        if _NONDETERMINISTIC in text:
            name = text.split(_NONDETERMINISTIC, 1)[0].strip()
            if name not in found:
                found.append(name)
            return
        original(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("always", message=f".*{_NONDETERMINISTIC}")
            yield found
    finally:
        warnings.showwarning = original


def _save_result(result: LabResult, path: Path) -> None:
    """Save ``result``; if what the lab recorded cannot be saved, save the error instead."""
    try:
        result.save(path)
    except Exception as exc:
        result.exercises = []
        result.metrics = {}
        result.notes = []
        result.status = "error"
        result.error = error_record(exc, traceback.format_exc())
        result.error["message"] = f"the lab's records cannot be saved: {result.error['message']}"
        result.save(path)


# --------------------------------------------------------------------------- a whole run


def execute(
    settings: RunSettings, plugins: Plugins, reporter: Reporter
) -> tuple[Path, list[LabResult], bool]:
    """Run every selected lab; returns (run folder, results, interrupted).

    run.json is rewritten (atomically) after each lab and once more at the end, also when
    Ctrl-C arrives at any point, so it always lists exactly the labs that finished.
    """
    default_warn = plugins.warn
    plugins.warn = lambda message: reporter.log(message, "warning")
    if settings.isolation == "none":  # else each worker sets them: torch stays out of this process
        set_threads(settings.threads)
    cache = ResultCache(warn=plugins.warn)
    run_dir = new_run_dir(settings.out)
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
    _save_run_info(run_dir, run_info)
    write_atomic(run_dir / "config.yaml", _config_yaml(settings))
    plugins.run_started(
        run_dir=run_dir, labs=[lab.name for lab in settings.labs], settings=settings.as_dict()
    )
    results: list[LabResult] = []
    interrupted = False
    labs_bar = reporter.bar("labs", total=len(settings.labs))
    pool = None
    if settings.isolation == "process" and not uses_jobs(settings):
        from .worker import WorkerPool

        pool = WorkerPool()
    try:
        if uses_jobs(settings):
            results, interrupted = _run_jobs(settings, plugins, reporter, cache, run_dir, run_info, labs_bar)
        for index, lab in enumerate([] if uses_jobs(settings) else settings.labs):
            later = settings.labs[index + 1 :]
            result, interrupted = _one_lab(
                lab, settings, plugins, reporter, cache, run_dir, run_info, pool, later
            )
            results.append(result)
            plugins.lab_finished(lab=lab, result=result)
            labs_bar.update(1)
            reporter.log(f"{lab.name}: {result.status} in {result.duration_s:.1f} s")
            if interrupted:
                break
    except KeyboardInterrupt:  # between labs, or while a finished lab was being stored
        interrupted = True
    finally:
        if pool is not None:
            pool.close()
        labs_bar.close()
        cache.close()
        run_info["status"] = "interrupted" if interrupted else "finished"
        if settings.detach and run_info.get("jobs") and not interrupted:
            run_info["status"] = "submitted"
        run_info["finished"] = None if run_info["status"] == "submitted" else now_iso()
        _save_run_info(run_dir, run_info)
    interrupted = _complete(run_dir, settings, plugins, reporter, cache) or interrupted
    plugins.run_finished(run_dir=run_dir, results=results)
    plugins.warn = default_warn
    return run_dir, results, interrupted


def _one_lab(
    lab: Lab,
    settings: RunSettings,
    plugins: Plugins,
    reporter: Reporter,
    cache: ResultCache,
    run_dir: Path,
    run_info: dict[str, Any],
    pool: WorkerPool | None = None,
    later: list[Lab] | None = None,
    *,
    out_dir: Path | None = None,
    executor: Executor | None = None,
    record: Callable[[Lab, LabResult, dict[str, Any]], None] | None = None,
) -> tuple[LabResult, bool]:
    """Take one lab from the cache or run it, and list it in run.json; returns
    (result, interrupted). ``later`` are the labs still to come (whether one of them will
    need a worker decides if the next worker starts while this lab runs).

    With an ``executor`` (``--jobs``, ``--executor``, ``--seeds``) the lab runs as one of
    its jobs into ``out_dir``, and ``record(lab, result, facts)`` lists it in run.json."""
    config = settings.configs[lab.name]
    out_dir = out_dir or run_dir / lab.name
    key = cache_key(
        lab, config_as_dict(config), settings.seed, settings.device, settings.deterministic, source_hash(lab)
    )
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
                        lab,
                        settings,
                        plugins,
                        reporter,
                        cache,
                        key,
                        out_dir,
                        None,
                        lambda: None,
                        executor,
                        bar,
                    )
                elif pool is not None and lab.name in plugins.lab_plugin:

                    def start_next() -> None:
                        if any(_will_run(other, settings, cache) for other in later or []):
                            pool.prepare()

                    result, interrupted, facts = _run_in_worker(
                        lab, settings, plugins, reporter, cache, key, out_dir, pool, start_next
                    )
                    _complete_environment(run_info, facts)
                else:
                    result, interrupted = _run_here(lab, settings, reporter, cache, key, out_dir)
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
        run_info["labs"].append(
            {
                "lab": lab.name,
                "status": result.status,
                "duration_s": result.duration_s,
                "cached": result.cached,
            }
        )
        _save_run_info(run_dir, run_info)
        if not result.cached and result.status in ("passed", "failed"):
            cache.put(lab.name, key, out_dir)
    return result, interrupted


def _run_here(
    lab: Lab, settings: RunSettings, reporter: Reporter, cache: ResultCache, key: str, out_dir: Path
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
        )
    except KeyboardInterrupt:
        return LabResult.load(out_dir / "result.json"), True
    return result, False


def lab_job_spec(
    lab: Lab, settings: RunSettings, plugins: Plugins, cache: ResultCache, key: str, out_dir: Path
) -> dict[str, Any]:
    """The JSON-serialisable description of one lab's run that a worker executes
    (:func:`labrunner.worker.run_lab_job`)."""
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
    }


def _run_in_worker(
    lab: Lab,
    settings: RunSettings,
    plugins: Plugins,
    reporter: Reporter,
    cache: ResultCache,
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

    spec = lab_job_spec(lab, settings, plugins, cache, key, out_dir)
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


# --------------------------------------------------------------------------- lab jobs


JOBS_FILE = "jobs.json"


def uses_jobs(settings: RunSettings) -> bool:
    """Whether labs run as jobs of an executor: ``--executor`` other than local, ``--jobs``
    other than 1, or a seed sweep."""
    return settings.executor != "local" or settings.jobs != 1 or bool(settings.seeds)


def _gpu_count(device: str) -> int:
    if not device.startswith("cuda"):
        return 0
    import torch  # already imported by resolve_device to answer a CUDA device

    return int(torch.cuda.device_count())


class _Jobs:
    """The lab jobs of one run (labs times seeds) and their listing in run.json: a lab is
    listed once every seed of it has ended; a sweep's first seed is linked into the lab's
    folder and its summary written (:mod:`.sweep`). Called from several threads."""

    def __init__(
        self,
        run_dir: Path,
        run_info: dict[str, Any],
        labs: list[str],
        seeds: list[int],
        sweep: bool,
        on_listed: Callable[[str, LabResult], None] = lambda name, result: None,
    ) -> None:
        self.run_dir = run_dir
        self.run_info = run_info
        self.seeds = seeds
        self.sweep = sweep
        self.on_listed = on_listed
        self.lock = threading.RLock()
        self.done: dict[str, dict[int, LabResult]] = {name: {} for name in labs}
        self.listed = {entry["lab"] for entry in run_info["labs"]}

    def out_dir(self, lab: str, seed: int) -> Path:
        from .sweep import seed_dir

        return seed_dir(self.run_dir / lab, seed) if self.sweep else self.run_dir / lab

    def record(self, lab: str, seed: int, result: LabResult, facts: dict[str, Any]) -> None:
        with self.lock:
            _complete_environment(self.run_info, facts)
            self.done.setdefault(lab, {})[seed] = result
            if len(self.done[lab]) == len(self.seeds):
                self.list_lab(lab)

    def list_lab(self, lab: str) -> None:
        """List ``lab`` in run.json with the seeds that ended (all of them, unless Ctrl-C)."""
        with self.lock:
            if lab in self.listed or not self.done.get(lab):
                return
            self.listed.add(lab)
            results = [self.done[lab][s] for s in self.seeds if s in self.done[lab]]
            if self.sweep:
                _gather_sweep(self.run_dir / lab, lab, results)
            self.run_info["labs"].append(
                {
                    "lab": lab,
                    "status": results[0].status,
                    "duration_s": round(sum(r.duration_s for r in results), 3),
                    "cached": all(r.cached for r in results),
                }
            )
            _save_run_info(self.run_dir, self.run_info)
            self.on_listed(lab, results[0])

    def results(self, labs: list[str]) -> list[LabResult]:
        """Every job's result, in the order of the labs, then of the seeds."""
        return [self.done[lab][s] for lab in labs for s in self.seeds if s in self.done.get(lab, {})]


def _gather_sweep(lab_dir: Path, lab: str, results: list[LabResult]) -> None:
    """``<lab>/``: the first seed's files (hard links) beside ``seeds/``, and sweep.json."""
    from .runfolder import link_tree
    from .sweep import SEEDS_DIR, SWEEP_FILE, seed_dir, summarize_sweep

    for child in lab_dir.iterdir() if lab_dir.is_dir() else []:
        if child.name != SEEDS_DIR:
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    link_tree(seed_dir(lab_dir, results[0].seed), lab_dir)
    summarize_sweep(lab, results).save(lab_dir / SWEEP_FILE)


def _run_jobs(
    settings: RunSettings,
    plugins: Plugins,
    reporter: Reporter,
    cache: ResultCache,
    run_dir: Path,
    run_info: dict[str, Any],
    labs_bar: Bar,
) -> tuple[list[LabResult], bool]:
    """Run every lab (once per seed of a sweep) as jobs of the run's executor, up to its
    slots at a time; returns (results, interrupted). Ctrl-C cancels the jobs still running;
    what ended is kept and listed."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    from .executors import DevicePool, ExecutorContext, SerialReporter, fair_threads

    shared = SerialReporter(reporter)
    labs = {lab.name: lab for lab in settings.labs}

    def listed(name: str, result: LabResult) -> None:
        plugins.lab_finished(lab=labs[name], result=result)
        labs_bar.update(1)
        shared.log(f"{name}: {result.status} in {result.duration_s:.1f} s")

    seeds = settings.seeds or [settings.seed]
    jobs = _Jobs(run_dir, run_info, list(labs), seeds, bool(settings.seeds), listed)
    tasks = [(lab, seed) for lab in settings.labs for seed in seeds]
    gpus = _gpu_count(settings.device)
    context = ExecutorContext(
        run_dir=run_dir,
        options=dict(settings.executor_options),
        jobs=len(tasks),
        parallel=settings.jobs,
        lab_timeout=settings.lab_timeout,
        device=settings.device,
        gpus=gpus,
    )
    executor = plugins.executors()[settings.executor].build(context)
    local = executor.name == "local"
    threads = fair_threads(settings.threads, min(executor.slots, len(tasks))) if local else settings.threads
    devices = DevicePool(settings.device, gpus, settings.device_requested) if local else None
    if settings.detach:
        try:
            _submit_detached(settings, plugins, shared, cache, run_dir, run_info, executor, jobs, tasks)
        finally:
            executor.close()
        return jobs.results(list(labs)), False
    shared.log(f"{len(tasks)} lab jobs, {executor.slots} at a time ({executor.name} executor)")

    def one(lab: Lab, seed: int) -> bool:
        # one lab per GPU, unless the lab says it can share one (``shares_gpu = True``)
        pooled = devices is not None and not getattr(lab, "shares_gpu", False)
        device = devices.take() if pooled else settings.device
        try:
            task = dataclasses.replace(settings, seed=seed, threads=threads, device=device)
            _result, stop = _one_lab(
                lab,
                task,
                plugins,
                shared,
                cache,
                run_dir,
                run_info,
                out_dir=jobs.out_dir(lab.name, seed),
                executor=executor,
                record=lambda lab, result, facts: jobs.record(lab.name, seed, result, facts),
            )
            return stop
        finally:
            if pooled:
                devices.give(device)

    interrupted = False
    threads_pool = ThreadPoolExecutor(max_workers=executor.slots, thread_name_prefix="labrunner-job")
    pending = {threads_pool.submit(one, lab, seed) for lab, seed in tasks}
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
    if pending:  # Ctrl-C (or a failure): no new job starts, the running ones are cancelled
        for future in pending:
            future.cancel()
        executor.cancel()
        try:
            wait(pending)
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting
            pass
    threads_pool.shutdown(wait=False, cancel_futures=True)
    executor.close()
    for name in labs:  # labs cut short by Ctrl-C: listed with the seeds that ended
        jobs.list_lab(name)
    if failure is not None:
        raise failure
    return jobs.results(list(labs)), interrupted


def _submit_detached(
    settings: RunSettings,
    plugins: Plugins,
    reporter: Reporter,
    cache: ResultCache,
    run_dir: Path,
    run_info: dict[str, Any],
    executor: Executor,
    jobs: _Jobs,
    tasks: list[tuple[Lab, int]],
) -> None:
    """``--detach``: submit every job that is not cached and record them in jobs.json and
    run.json (``labrunner status RUN_DIR`` collects them as they end)."""
    submitted: list[dict[str, Any]] = []
    try:
        for lab, seed in tasks:
            task = dataclasses.replace(settings, seed=seed)
            out_dir = jobs.out_dir(lab.name, seed)
            config = config_as_dict(task.configs[lab.name])
            key = cache_key(lab, config, seed, task.device, task.deterministic, source_hash(lab))
            with cache.lock(lab.name, key):
                result = None if settings.force else cache.get(lab.name, key, out_dir)
            if result is not None:
                reporter.log(f"{lab.name} (seed {seed}): reused cached result ({result.status}, key {key})")
                jobs.record(lab.name, seed, result, {})
                continue
            ident = executor.submit(lab_job_spec(lab, task, plugins, cache, key, out_dir))
            submitted.append(
                {
                    "lab": lab.name,
                    "seed": seed,
                    "out_dir": out_dir.relative_to(run_dir).as_posix(),
                    "cache_key": key,
                    "executor": executor.name,
                    **{k: str(v) for k, v in ident.items()},
                }
            )
            reporter.log(f"{lab.name} (seed {seed}): submitted as job {ident.get('job_id', '?')}")
    finally:  # what was submitted is recorded, even when a later submission failed
        run_info["jobs"] = submitted
        run_info["seeds"] = jobs.seeds
        write_atomic(run_dir / JOBS_FILE, json.dumps({"jobs": submitted, "seeds": jobs.seeds}, indent=2))


def read_jobs(run_dir: Path) -> list[dict[str, Any]]:
    """The jobs ``run --detach`` submitted (jobs.json of the run folder; none without it)."""
    from .results import json_object, read_json_file

    path = Path(run_dir) / JOBS_FILE
    if not path.is_file():
        return []
    data = json_object(read_json_file(path), str(path))
    jobs = data.get("jobs")
    if not isinstance(jobs, list) or not all(
        isinstance(j, dict) and isinstance(j.get("lab"), str) for j in jobs
    ):
        raise UsageError(f"{path}: jobs: expected a list of jobs")
    return jobs


def collect_jobs(run_dir: Path) -> tuple[list[dict[str, Any]], str]:
    """A detached run: each job with its state (SLURM's accounting, through submitit);
    the labs whose jobs have all ended are listed in run.json (and stored in the cache),
    and the run is ``finished`` once every job has ended. Returns (jobs, run status)."""
    from .runfolder import RunInfo

    run_dir = Path(run_dir)
    info = RunInfo.load(run_dir / "run.json")
    jobs = read_jobs(run_dir)
    run_info = info.to_json()
    if info.status != "submitted" or not jobs:
        for job in jobs:
            job["state"] = _job_state(run_dir, job)
        return jobs, info.status
    seeds = [int(s) for s in run_info.get("seeds") or [info.settings.get("seed", 0)]]
    labs = list(info.selected)
    book = _Jobs(run_dir, run_info, labs, seeds, len(seeds) > 1)
    for job in jobs:
        job["state"] = _job_state(run_dir, job)
        out_dir = _inside_run(run_dir, str(job.get("out_dir", "")))
        if job["state"].split()[0] not in _ended_states() or job["lab"] in book.listed:
            continue
        result = _ended_job_result(job, out_dir, info)
        book.done.setdefault(job["lab"], {})[int(job["seed"])] = result
        if result.status in ("passed", "failed") and job.get("cache_key"):
            cache = ResultCache()
            with cache.lock(job["lab"], job["cache_key"]):
                cache.put(job["lab"], job["cache_key"], out_dir)
            cache.close()
    for lab in labs:  # cached at submission, or every seed ended now
        with book.lock:
            pending = [j for j in jobs if j["lab"] == lab and j["state"].split()[0] not in _ended_states()]
            if not pending:
                for seed in seeds:
                    if seed not in book.done.setdefault(lab, {}):
                        path = book.out_dir(lab, seed) / "result.json"
                        if path.is_file():
                            book.done[lab][seed] = LabResult.load(path)
                book.list_lab(lab)
    if all(j["state"].split()[0] in _ended_states() for j in jobs):
        run_info["status"] = "finished"
        run_info["finished"] = now_iso()
    _save_run_info(run_dir, run_info)
    return jobs, run_info["status"]


def _ended_states() -> frozenset[str]:
    from .slurm import FINISHED_STATES

    return FINISHED_STATES


def _inside_run(run_dir: Path, rel: str) -> Path:
    """A job's folder, refused when jobs.json would lead outside the run folder."""
    path = (run_dir / rel).resolve()
    if not rel or not path.is_relative_to(run_dir.resolve()):
        raise UsageError(f"{run_dir / JOBS_FILE}: out_dir {rel!r} is not inside the run folder")
    return path


def _job_state(run_dir: Path, job: dict[str, Any]) -> str:
    """The job's SLURM state (sacct through submitit), or UNKNOWN."""
    if job.get("executor", "slurm") != "slurm":
        return "UNKNOWN"
    try:
        import submitit

        folder = Path(job.get("folder") or run_dir / ".slurm")
        return str(submitit.SlurmJob(folder=folder / "%j", job_id=str(job["job_id"])).state)
    except Exception:
        return "UNKNOWN"


def _ended_job_result(job: dict[str, Any], out_dir: Path, info: Any) -> LabResult:
    """The result an ended job wrote, or an error result saved for a job that wrote none."""
    path = out_dir / "result.json"
    if path.is_file():
        try:
            return LabResult.load(path)
        except (OSError, ValueError):
            pass
    result = LabResult(
        lab=job["lab"],
        title=job["lab"],
        version="",
        status="error",
        profile=str(info.settings.get("profile", "")),
        seed=int(job["seed"]),
        device=str(info.settings.get("device", "cpu")),
        cache_key=str(job.get("cache_key", "")),
        finished=now_iso(),
        error={
            "type": "SlurmJobFailed",
            "message": f"SLURM job {job.get('job_id')} ended {job['state']} without a result",
            "traceback": "",
        },
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    result.save(path)
    return result


def _will_run(lab: Lab, settings: RunSettings, cache: ResultCache) -> bool:
    """Whether ``lab`` will need a worker in this run (no cache entry for it, or --force)."""
    if settings.force or not cache.usable:
        return True
    config = config_as_dict(settings.configs[lab.name])
    key = cache_key(lab, config, settings.seed, settings.device, settings.deterministic, source_hash(lab))
    return not (cache.entry(lab.name, key) / "result.json").is_file()


def _complete_environment(run_info: dict[str, Any], facts: dict[str, Any]) -> None:
    """Fill run.json's torch facts from the first worker that reports them."""
    env = run_info["environment"]
    for name in ("torch_threads", "gpu"):
        if env.get(name) is None and facts.get(name) is not None:
            env[name] = facts[name]


def _save_run_info(run_dir: Path, run_info: dict[str, Any]) -> None:
    """Write run.json through its typed model (checked as every reader checks it)."""
    RunInfo.from_json(run_info).save(run_dir / "run.json")


def _complete(
    run_dir: Path, settings: RunSettings, plugins: Plugins, reporter: Reporter, cache: ResultCache
) -> bool:
    """List every installed lab in the run folder (runfolder.complete_run): a lab not
    selected comes from its cache entry for its current settings, else from the newest
    earlier run, else is "not run". Returns True when Ctrl-C arrived meanwhile."""
    installed = {name: lab.title for name, lab in plugins.labs.items()}
    try:
        added = complete_run(
            run_dir, installed, cached=lambda name: _cached_entry(plugins.labs[name], settings, cache)
        )
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


def _cached_entry(lab: Lab, settings: RunSettings, cache: ResultCache) -> Path | None:
    """The cache entry of an installed lab that was not selected, for the config it would
    run with now (defaults, profile, config file), this seed and device; or None."""
    try:
        file_cfg = load_run_config(Path(settings.config_file) if settings.config_file else None)
        layers = [(file_cfg.source, file_cfg.labs[lab.name])] if lab.name in file_cfg.labs else []
        config = config_as_dict(resolve_lab_config(lab, settings.profile, layers))
    except UsageError:  # its config cannot be resolved (e.g. no such profile): nothing cached
        return None
    key = cache_key(lab, config, settings.seed, settings.device, settings.deterministic, source_hash(lab))
    entry = cache.entry(lab.name, key)
    return entry if cache.usable and (entry / "result.json").is_file() else None


def _config_yaml(settings: RunSettings) -> str:
    import yaml

    return yaml.safe_dump(settings.resolved_config(), sort_keys=False)


def exit_status(results: list[LabResult], interrupted: bool) -> int:
    if interrupted:
        return 130
    return 0 if all(r.status == "passed" for r in results) else 1


def format_summary(results: list[LabResult]) -> str:
    lines = []
    swept = {r.lab for r in results if sum(o.lab == r.lab for o in results) > 1}
    for r in results:
        checks = r.checks
        passed = sum(c.passed for c in checks)
        cached = " (cached)" if r.cached else ""
        name = f"{r.lab} seed {r.seed}" if r.lab in swept else r.lab
        lines.append(
            f"  {name:<16} {r.status:<11} {passed}/{len(checks)} checks  {r.duration_s:7.1f} s{cached}"
        )
    return "\n".join(lines)
