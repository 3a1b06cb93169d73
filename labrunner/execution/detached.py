"""Detached runs (``labrunner run --detach``): the jobs submitted without waiting, recorded in
jobs.json (:class:`~labrunner.records.runfolder.JobsFile`, written and read through its
typed model), and ``labrunner status``, which follows them and lists the labs whose jobs
ended in run.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..authoring.lab import Lab
from ..base.errors import UsageError, describe_exception
from ..records.cache import ResultCache
from ..records.folders import RunLock
from ..records.results import LabError, LabResult
from ..records.runfolder import JobRecord, JobsFile, RunInfo
from .executors import Executor
from .labrun import now_iso
from .runstate import RunBook, RunState

JOBS_FILE = "jobs.json"


def submit_detached(state: RunState, executor: Executor, tasks: list[tuple[Lab, int]]) -> None:
    """``--detach``: submit every job that is not cached and record them in jobs.json and
    run.json (``labrunner status RUN_DIR`` collects them as they end).

    A submission that stops half-way (Ctrl-C, or a job the scheduler refuses) cancels the
    jobs it had submitted: nothing would collect them, since the run did not become
    ``submitted``. They stay listed in jobs.json, marked ``cancelled``."""
    settings, reporter, cache, run_dir = state.settings, state.reporter, state.cache, state.run_dir
    submitted: list[JobRecord] = []
    try:
        for lab, seed in tasks:
            job = state.job(lab, seed, settings.device, settings.threads)
            out_dir = Path(job.out_dir)
            with cache.lock(lab.name, job.cache_key):
                result = None if settings.force else cache.get(lab.name, job.cache_key, out_dir)
            if result is not None:
                reporter.log(
                    f"{lab.name} (seed {seed}): reused cached result ({result.status}, key {job.cache_key})"
                )
                state.book.record(lab.name, seed, result, {})
                continue
            ident = executor.submit(job)
            submitted.append(
                JobRecord(
                    lab=lab.name,
                    seed=seed,
                    out_dir=out_dir.relative_to(run_dir.resolve()).as_posix(),
                    cache_key=job.cache_key,
                    executor=executor.name,
                    job_id=str(ident.get("job_id", "")),
                    folder=str(ident.get("folder", "")),
                )
            )
            reporter.log(f"{lab.name} (seed {seed}): submitted as job {ident.get('job_id', '?')}")
    except BaseException:
        if submitted:
            executor.cancel()
            for record in submitted:
                record.cancelled = True
            reporter.log(
                f"submission stopped: cancelled the {len(submitted)} job(s) already submitted", "warning"
            )
        raise
    finally:  # what was submitted is recorded, even when a later submission failed
        jobs = JobsFile(jobs=submitted, seeds=list(settings.seeds))
        state.book.run_info.extra.update(jobs.to_json())
        jobs.save(run_dir)


def read_jobs(run_dir: Path, info: RunInfo | None = None) -> list[JobRecord]:
    """The jobs ``run --detach`` submitted (jobs.json of the run folder; none without it),
    read through the typed reader (:class:`~labrunner.records.runfolder.JobsFile`): a lab name, seed,
    folder, cache key or job id that is not what labrunner writes is a one-line RunFileError
    before any path is built from it. ``info``: the run's run.json, when the caller has read it."""
    run_dir = Path(run_dir)
    if not (run_dir / JOBS_FILE).is_file() and not (run_dir / JOBS_FILE).is_symlink():
        return []
    info = info or RunInfo.load(run_dir / "run.json")
    return JobsFile.load(run_dir, info.selected).jobs


def collect_jobs(run_dir: Path) -> tuple[list[dict[str, Any]], str]:
    """A detached run: each job (as jobs.json lists it) with its ``state`` (SLURM's
    accounting, through submitit); the labs whose jobs have all ended are listed in run.json
    (and stored in the cache), and the run is ``finished`` once every job has ended.
    Returns (jobs, run status)."""
    run_dir = Path(run_dir)
    info = RunInfo.load(run_dir / "run.json")
    jobs = read_jobs(run_dir, info)
    if info.status != "submitted" or not jobs:
        return [{**job.to_json(), "state": _job_state(run_dir, job)} for job in jobs], info.status
    lock = RunLock(run_dir)  # collecting writes into the run folder: clean leaves it alone meanwhile
    if not lock.acquire():
        raise UsageError(f"{run_dir}: another labrunner process is using this run; try again when it ends")
    try:
        return _collect(run_dir, info, jobs)
    finally:
        lock.release()


def _collect(run_dir: Path, info: RunInfo, jobs: list[JobRecord]) -> tuple[list[dict[str, Any]], str]:
    seeds = [int(s) for s in info.extra.get("seeds") or [info.settings.get("seed", 0)]]
    labs = list(info.selected)
    book = RunBook(run_dir, info, labs, seeds, len(seeds) > 1)
    states = {id(job): _job_state(run_dir, job) for job in jobs}

    def ended(job: JobRecord) -> bool:
        return states[id(job)].split()[0] in _ended_states()

    for job in jobs:
        out_dir = _inside_run(run_dir, job.out_dir)
        if not ended(job) or job.lab in book.listed:
            continue
        result = _ended_job_result(job, states[id(job)], out_dir, info, run_dir.name)
        book.done.setdefault(job.lab, {})[job.seed] = result
        if result.status in ("passed", "failed") and job.cache_key:
            cache = ResultCache()
            with cache.lock(job.lab, job.cache_key):
                cache.put(job.lab, job.cache_key, out_dir)
            cache.close()
    for lab in labs:  # cached at submission, or every seed ended now
        with book.lock:
            if all(ended(job) for job in jobs if job.lab == lab):
                for seed in seeds:
                    path = book.out_dir(lab, seed) / "result.json"
                    if seed not in book.done.setdefault(lab, {}) and path.is_file():
                        book.done[lab][seed] = LabResult.load(path)
                book.list_lab(lab)
    if all(ended(job) for job in jobs):
        info.status = "finished"
        info.finished = now_iso()
    book.save()
    return [{**job.to_json(), "state": states[id(job)]} for job in jobs], info.status


def _ended_states() -> frozenset[str]:
    from .slurm import FINISHED_STATES

    return FINISHED_STATES


def _inside_run(run_dir: Path, rel: str) -> Path:
    """A job's folder, refused when jobs.json would lead outside the run folder."""
    path = (run_dir / rel).resolve()
    if not rel or not path.is_relative_to(run_dir.resolve()):
        raise UsageError(f"{run_dir / JOBS_FILE}: out_dir {rel!r} is not inside the run folder")
    return path


def _job_state(run_dir: Path, job: JobRecord) -> str:
    """The job's SLURM state: sacct's (SLURM's accounting, through submitit), else
    squeue's; a job that left its result counts as COMPLETED. Otherwise ``UNKNOWN``, with
    the reason in brackets (no accounting, submitit missing, ...)."""
    if job.executor != "slurm":
        return f"UNKNOWN (a job of the {job.executor!r} executor; labrunner can follow SLURM jobs only)"
    try:
        import submitit
    except ImportError:
        return "UNKNOWN (submitit is not installed: pip install 'labrunner[slurm]')"
    from .slurm import accounting_problem, queue_state

    folder = Path(job.folder or run_dir / ".slurm")
    try:
        handle = submitit.SlurmJob(folder=folder / "%j", job_id=job.job_id)
        state = str(handle.state)
        finished = handle.paths.result_pickle.exists()
    except Exception as exc:
        return f"UNKNOWN (submitit cannot read the job: {describe_exception(exc)})"
    if state.split()[0] != "UNKNOWN":
        return state
    queued = queue_state(job.job_id)
    if queued is not None:
        return queued
    problem = accounting_problem()
    if finished:
        return "COMPLETED" + (f" (from the result it left; {problem})" if problem else "")
    why = problem or "sacct does not know the job"
    return f"UNKNOWN (not in the queue any more, and {why})"


def _ended_job_result(job: JobRecord, state: str, out_dir: Path, info: Any, run_name: str = "") -> LabResult:
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
        job.lab,
        job.lab,
        profile=str(info.settings.get("profile", "")),
        seed=job.seed,
        device=str(info.settings.get("device", "cpu")),
        cache_key=job.cache_key,
        run=run_name,
    )
    result.finished = now_iso()
    result.stop(LabError("SlurmJobFailed", f"SLURM job {job.job_id} ended {state} {what}"))
    out_dir.mkdir(parents=True, exist_ok=True)
    result.save(path)
    return result
