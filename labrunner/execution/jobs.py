"""Labs as jobs: several labs (and each seed of a sweep) at a time in local worker
processes or on an executor such as SLURM, and the jobs a detached run left to collect
(``labrunner status``). :func:`labrunner.execution.runner.execute` hands its labs to :func:`run_jobs`
when the run asks for more than one job at a time, a sweep, or another executor.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..authoring.lab import Lab
from ..base.errors import UsageError, describe_exception
from ..records.cache import ResultCache
from ..records.folders import RunLock
from ..records.results import LabError, LabResult, write_atomic
from ..records.runfolder import RunInfo
from ..records.sweep import worst_status
from ..settings.config import RunSettings
from .labrun import now_iso
from .onelab import RunState, complete_environment, lab_job_spec, lab_key, run_one_lab, save_run_info

if TYPE_CHECKING:
    from concurrent.futures import Future

    from ..base.progress import Bar
    from .executors import Executor

JOBS_FILE = "jobs.json"


def uses_jobs(settings: RunSettings) -> bool:
    """Whether labs run as jobs of an executor: ``--executor`` other than local, ``--jobs``
    other than 1, or a seed sweep."""
    return settings.executor != "local" or settings.jobs != 1 or bool(settings.seeds)


def gpu_count(device: str) -> int:
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

    def save_info(self) -> None:
        save_run_info(self.run_dir, self.run_info)

    def out_dir(self, lab: str, seed: int) -> Path:
        from ..records.sweep import seed_dir

        return seed_dir(self.run_dir / lab, seed) if self.sweep else self.run_dir / lab

    def record(self, lab: str, seed: int, result: LabResult, facts: dict[str, Any]) -> None:
        with self.lock:
            complete_environment(self.run_info, facts)
            self.done.setdefault(lab, {})[seed] = result
            if len(self.done[lab]) == len(self.seeds):
                self.list_lab(lab)

    def list_lab(self, lab: str) -> None:
        """List ``lab`` in run.json with the seeds that ended (all of them, unless Ctrl-C);
        its status is the worst of its seeds': a sweep with a seed that failed did not pass."""
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
                    "status": worst_status([r.status for r in results]),
                    "duration_s": round(sum(r.duration_s for r in results), 3),
                    "cached": all(r.cached for r in results),
                }
            )
            self.save_info()
            self.on_listed(lab, results[0])

    def results(self, labs: list[str]) -> list[LabResult]:
        """Every job's result, in the order of the labs, then of the seeds."""
        return [self.done[lab][s] for lab in labs for s in self.seeds if s in self.done.get(lab, {})]


def _gather_sweep(lab_dir: Path, lab: str, results: list[LabResult]) -> None:
    """``<lab>/``: copies of the first seed's files beside ``seeds/``, and sweep.json."""
    from ..records.files import copy_tree
    from ..records.sweep import SEEDS_DIR, SWEEP_FILE, seed_dir, summarize_sweep

    for child in lab_dir.iterdir() if lab_dir.is_dir() else []:
        if child.name != SEEDS_DIR:
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    copy_tree(seed_dir(lab_dir, results[0].seed), lab_dir)
    summarize_sweep(lab, results).save(lab_dir / SWEEP_FILE)


def run_jobs(state: RunState, labs_bar: Bar) -> tuple[list[LabResult], bool]:
    """Run every lab (once per seed of a sweep) as jobs of the run's executor, up to its
    slots at a time; returns (results, interrupted). Ctrl-C cancels the jobs still running;
    what ended is kept and listed."""
    from concurrent.futures import ThreadPoolExecutor

    from .executors import DevicePool, ExecutorContext, SerialReporter, fair_threads, registered_executors

    settings, plugins, run_dir = state.settings, state.plugins, state.run_dir
    shared = SerialReporter(state.reporter)
    state = dataclasses.replace(state, reporter=shared)  # the jobs' threads log one at a time
    labs = {lab.name: lab for lab in settings.labs}

    def listed(name: str, result: LabResult) -> None:
        plugins.lab_finished(lab=labs[name], result=result)
        labs_bar.update(1)
        shared.log(f"{name}: {result.status} {result.took()}")

    seeds = settings.seeds or [settings.seed]
    jobs = _Jobs(run_dir, state.run_info, list(labs), seeds, bool(settings.seeds), listed)
    tasks = [(lab, seed) for lab in settings.labs for seed in seeds]
    gpus = gpu_count(settings.device)
    context = ExecutorContext(
        run_dir=run_dir,
        options=dict(settings.executor_options),
        jobs=len(tasks),
        parallel=settings.jobs,
        lab_timeout=settings.lab_timeout,
        device=settings.device,
        gpus=gpus,
    )
    executor = registered_executors(plugins)[settings.executor].build(context)
    local = executor.name == "local"
    threads = fair_threads(settings.threads, min(executor.slots, len(tasks))) if local else settings.threads
    devices = DevicePool(settings.device, gpus, settings.device_requested) if local else None
    if settings.detach:
        try:
            _submit_detached(state, executor, jobs, tasks)
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
            _result, stop = run_one_lab(
                state,
                lab,
                task,
                out_dir=jobs.out_dir(lab.name, seed),
                executor=executor,
                record=lambda lab, result, facts: jobs.record(lab.name, seed, result, facts),
            )
            return stop
        finally:
            if pooled:
                devices.give(device)

    threads_pool = ThreadPoolExecutor(max_workers=executor.slots, thread_name_prefix="labrunner-job")
    pending = {threads_pool.submit(one, lab, seed) for lab, seed in tasks}
    interrupted, failure = _wait_for_jobs(pending, executor)
    threads_pool.shutdown(wait=False, cancel_futures=True)
    executor.close()
    for name in labs:  # labs cut short by Ctrl-C: listed with the seeds that ended
        jobs.list_lab(name)
    if failure is not None:
        raise failure
    return jobs.results(list(labs)), interrupted


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


def _submit_detached(state: RunState, executor: Executor, jobs: _Jobs, tasks: list[tuple[Lab, int]]) -> None:
    """``--detach``: submit every job that is not cached and record them in jobs.json and
    run.json (``labrunner status RUN_DIR`` collects them as they end).

    A submission that stops half-way (Ctrl-C, or a job the scheduler refuses) cancels the
    jobs it had submitted: nothing would collect them, since the run did not become
    ``submitted``. They stay listed in jobs.json, marked ``cancelled``."""
    settings, reporter, cache, run_dir = state.settings, state.reporter, state.cache, state.run_dir
    submitted: list[dict[str, Any]] = []
    try:
        for lab, seed in tasks:
            task = dataclasses.replace(settings, seed=seed)
            out_dir = jobs.out_dir(lab.name, seed)
            key = lab_key(lab, task)
            with cache.lock(lab.name, key):
                result = None if settings.force else cache.get(lab.name, key, out_dir)
            if result is not None:
                reporter.log(f"{lab.name} (seed {seed}): reused cached result ({result.status}, key {key})")
                jobs.record(lab.name, seed, result, {})
                continue
            ident = executor.submit(lab_job_spec(lab, task, state.plugins, cache, key, out_dir, run_dir.name))
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
    except BaseException:
        if submitted:
            executor.cancel()
            for job in submitted:
                job["cancelled"] = True
            reporter.log(
                f"submission stopped: cancelled the {len(submitted)} job(s) already submitted", "warning"
            )
        raise
    finally:  # what was submitted is recorded, even when a later submission failed
        state.run_info["jobs"] = submitted
        state.run_info["seeds"] = jobs.seeds
        write_atomic(run_dir / JOBS_FILE, json.dumps({"jobs": submitted, "seeds": jobs.seeds}, indent=2))


def read_jobs(run_dir: Path) -> list[dict[str, Any]]:
    """The jobs ``run --detach`` submitted (jobs.json of the run folder; none without it),
    read through the typed reader (:class:`~labrunner.records.runfolder.JobsFile`): a lab name, seed,
    folder, cache key or job id that is not what labrunner writes is a one-line RunFileError
    before any path is built from it."""
    from ..records.runfolder import JobsFile

    run_dir = Path(run_dir)
    if not (run_dir / JOBS_FILE).is_file() and not (run_dir / JOBS_FILE).is_symlink():
        return []
    info = RunInfo.load(run_dir / "run.json")
    return [job.to_json() for job in JobsFile.load(run_dir, info.selected).jobs]


def collect_jobs(run_dir: Path) -> tuple[list[dict[str, Any]], str]:
    """A detached run: each job with its state (SLURM's accounting, through submitit);
    the labs whose jobs have all ended are listed in run.json (and stored in the cache),
    and the run is ``finished`` once every job has ended. Returns (jobs, run status)."""

    run_dir = Path(run_dir)
    info = RunInfo.load(run_dir / "run.json")
    jobs = read_jobs(run_dir)
    run_info = info.to_json()
    if info.status != "submitted" or not jobs:
        for job in jobs:
            job["state"] = _job_state(run_dir, job)
        return jobs, info.status
    lock = RunLock(run_dir)  # collecting writes into the run folder: clean leaves it alone meanwhile
    if not lock.acquire():
        raise UsageError(f"{run_dir}: another labrunner process is using this run; try again when it ends")
    try:
        return _collect(run_dir, info, jobs, run_info)
    finally:
        lock.release()


def _collect(
    run_dir: Path, info: RunInfo, jobs: list[dict[str, Any]], run_info: dict[str, Any]
) -> tuple[list[dict[str, Any]], str]:
    seeds = [int(s) for s in run_info.get("seeds") or [info.settings.get("seed", 0)]]
    labs = list(info.selected)
    book = _Jobs(run_dir, run_info, labs, seeds, len(seeds) > 1)
    for job in jobs:
        job["state"] = _job_state(run_dir, job)
        out_dir = _inside_run(run_dir, str(job.get("out_dir", "")))
        if job["state"].split()[0] not in _ended_states() or job["lab"] in book.listed:
            continue
        result = _ended_job_result(job, out_dir, info, run_dir.name)
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
    book.save_info()
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
    """The job's SLURM state: sacct's (SLURM's accounting, through submitit), else
    squeue's; a job that left its result counts as COMPLETED. Otherwise ``UNKNOWN``, with
    the reason in brackets (no accounting, submitit missing, ...)."""
    executor = job.get("executor", "slurm")
    if executor != "slurm":
        return f"UNKNOWN (a job of the {executor!r} executor; labrunner can follow SLURM jobs only)"
    try:
        import submitit
    except ImportError:
        return "UNKNOWN (submitit is not installed: pip install 'labrunner[slurm]')"
    from .slurm import accounting_problem, queue_state

    folder = Path(job.get("folder") or run_dir / ".slurm")
    job_id = str(job.get("job_id", ""))
    try:
        handle = submitit.SlurmJob(folder=folder / "%j", job_id=job_id)
        state = str(handle.state)
        finished = handle.paths.result_pickle.exists()
    except Exception as exc:
        return f"UNKNOWN (submitit cannot read the job: {describe_exception(exc)})"
    if state.split()[0] != "UNKNOWN":
        return state
    queued = queue_state(job_id)
    if queued is not None:
        return queued
    problem = accounting_problem()
    if finished:
        return "COMPLETED" + (f" (from the result it left; {problem})" if problem else "")
    why = problem or "sacct does not know the job"
    return f"UNKNOWN (not in the queue any more, and {why})"


def _ended_job_result(job: dict[str, Any], out_dir: Path, info: Any, run_name: str = "") -> LabResult:
    """The result an ended job wrote, or an error result saved for a job that wrote none or
    one that cannot be read (the error says why)."""
    path = out_dir / "result.json"
    what = "without a result"
    if path.is_file():
        try:
            return LabResult.load(path)
        except (OSError, ValueError) as exc:  # RunFileError is a ValueError
            what = f"with a result.json that cannot be read ({describe_exception(exc)})"
    result = LabResult.new(
        job["lab"],
        job["lab"],
        profile=str(info.settings.get("profile", "")),
        seed=int(job["seed"]),
        device=str(info.settings.get("device", "cpu")),
        cache_key=str(job.get("cache_key", "")),
        run=run_name,
    )
    result.finished = now_iso()
    result.stop(LabError("SlurmJobFailed", f"SLURM job {job.get('job_id')} ended {job['state']} {what}"))
    out_dir.mkdir(parents=True, exist_ok=True)
    result.save(path)
    return result
