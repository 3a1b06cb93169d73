"""Re-executing the labs of submissions for grading: each lab's code (the student's package,
with the instructor's hidden checks transplanted in when the instructor's lab package is given,
:func:`labrunner.course.markers.transplant`) run again in the sandbox
(:mod:`labrunner.course.sandbox`) at the grading profile, ``--jobs`` at a time on this machine
or as one SLURM job each."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import shutil
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..base.errors import UsageError
from ..records.results import LabResult, RunFileError
from .gradeoptions import SUBMITTED, GradeOptions
from .graderecords import Rerun, RerunSpec, Submission
from .isolation import Isolation, detect_isolation
from .sandbox import run_sandboxed

Progress = Callable[[str, int, int], None]


def prepare_rerun(
    record: Submission, lab: str, opts: GradeOptions, packages: dict[str, Path]
) -> tuple[Path, RerunSpec] | str:
    """The code folder for re-executing ``lab`` of a submission (the student's package, with
    the instructor's hidden checks transplanted in when ``packages`` has the lab), and its
    spec; or why it cannot be re-executed."""
    entry = record.labs[lab]
    info, submitted = entry.code, entry.submitted
    if not info.get("installed") or not info.get("package"):
        return "the zip holds no code for this lab"
    root = Path(record.folder or "")
    student_code = root / "submitted" / "code" / lab / info["package"]
    if not student_code.exists():
        return f"the zip lacks code/{lab}/{info['package']}"
    code_dir = root / "rerun" / lab / "code"
    if code_dir.exists():
        shutil.rmtree(code_dir)
    code_dir.mkdir(parents=True)
    plugin = Path(info["package"]).stem
    transplanted = ""
    if lab in packages and student_code.is_dir():
        from .assign import transplant_package

        try:
            transplant_package(packages[lab], student_code, code_dir / packages[lab].name)
            plugin = packages[lab].name
            transplanted = "yes"
        except UsageError as exc:
            return f"the student's solution regions cannot be put into the instructor's code: {exc}"
    elif student_code.is_dir():
        shutil.copytree(student_code, code_dir / plugin)
    else:
        shutil.copy2(student_code, code_dir / info["package"])
    if opts.rerun == SUBMITTED:
        profile, config = submitted.get("profile") or "quick", submitted.get("config") or {}
    else:
        profile, config = opts.rerun or "", {}
    spec = RerunSpec(lab, plugin, profile, submitted.get("seed", 0), config, opts.threads, transplanted)
    (code_dir / "spec.json").write_text(json.dumps(spec.job_json(), indent=2), encoding="utf-8")
    return code_dir, spec


def rerun_lab(
    record: Submission,
    lab: str,
    opts: GradeOptions,
    isolation: Isolation,
    packages: dict[str, Path],
    hide: Sequence[Path],
    slot: int,
) -> Rerun:
    """Re-execute one lab of a submission in the sandbox; returns what happened."""
    prepared = prepare_rerun(record, lab, opts, packages)
    if isinstance(prepared, str):
        return Rerun.failed(prepared)
    code_dir, spec = prepared
    scratch = code_dir.parent / "scratch"
    outcome = run_sandboxed(
        [sys.executable, "-m", "labrunner.course.rerun"],
        isolation=isolation,
        code_dir=code_dir,
        scratch_dir=scratch,
        limits=opts.limits,
        hide=hide,
        slot=slot,
        uid_base=opts.uid_base,
    )
    shutil.rmtree(scratch, ignore_errors=True)
    ran = Rerun("error", outcome.reason, round(outcome.elapsed_s, 3), outcome.output[-4000:], spec)
    if not outcome.payload or outcome.timed_out:
        return ran if ran.reason else dataclasses.replace(ran, reason="the re-execution returned no result")
    try:
        data = json.loads(outcome.payload)
        if isinstance(data, dict) and "rerun_error" in data:
            return dataclasses.replace(ran, reason=f"the lab cannot be loaded: {data['rerun_error']}")
        result = LabResult.from_json(data, f"{lab} (re-executed)")
    except (ValueError, RunFileError) as exc:
        return dataclasses.replace(ran, reason=f"the re-execution returned no readable result ({exc})")
    if result.lab != lab:
        return dataclasses.replace(ran, reason=f"the re-execution returned lab {result.lab!r}, not {lab!r}")
    if outcome.returncode != 0:
        return ran
    if result.status == "error" and result.error:
        why = f"the lab raised {result.error}"
        return dataclasses.replace(ran, reason=why, result=result.to_json())
    return dataclasses.replace(ran, status="done", reason="", result=result.to_json())


def rerun_all(
    records: list[Submission],
    opts: GradeOptions,
    isolation: Isolation,
    packages: dict[str, Path],
    hide: list[Path],
    progress: Progress | None,
) -> list[Submission]:
    """The submissions with their labs re-executed (those of ``opts.rerun_labs``, or all):
    here, ``opts.jobs`` at a time, or as SLURM jobs."""
    tasks = [
        (i, lab)
        for i, record in enumerate(records)
        for lab in record.labs
        if not opts.rerun_labs or lab in opts.rerun_labs
    ]
    if opts.executor == "slurm":
        outcomes = _rerun_on_slurm(records, tasks, opts, packages, hide, progress)
    else:
        outcomes = _rerun_here(records, tasks, opts, isolation, packages, hide, progress)
    done = list(records)
    for (i, lab), outcome in outcomes.items():
        done[i] = done[i].with_lab(lab, dataclasses.replace(done[i].labs[lab], rerun=outcome))
    return done


def _rerun_here(
    records: list[Submission],
    tasks: list[tuple[int, str]],
    opts: GradeOptions,
    isolation: Isolation,
    packages: dict[str, Path],
    hide: list[Path],
    progress: Progress | None,
) -> dict[tuple[int, str], Rerun]:
    """Each task in a thread of its own, ``opts.jobs`` at a time, each with a job slot (and so
    a sandbox uid) no other running task has."""
    slots = list(range(max(1, opts.jobs)))
    lock = threading.Lock()
    outcomes: dict[tuple[int, str], Rerun] = {}

    def one(task: tuple[int, str]) -> None:
        i, lab = task
        with lock:
            slot = slots.pop()
        try:
            try:
                outcome = rerun_lab(records[i], lab, opts, isolation, packages, hide, slot)
            except Exception as exc:  # a grading failure stays that student's
                outcome = Rerun.failed(f"grading failed: {type(exc).__name__}: {exc}")
        finally:
            with lock:
                slots.append(slot)
        with lock:
            outcomes[task] = outcome
            if progress:
                progress("re-execute", len(outcomes), len(tasks))

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, opts.jobs)) as pool:
        list(pool.map(one, tasks))
    return outcomes


def slurm_rerun_job(spec: dict[str, Any]) -> dict[str, Any]:
    """What one SLURM job of a grading runs on its node: the re-execution of one lab of one
    submission, in the sandbox the node offers (detected there, as ``--sandbox`` asks); its
    reply is the :class:`~.graderecords.Rerun` as JSON."""
    import socket

    opts: GradeOptions = spec["opts"]
    isolation = detect_isolation(opts.sandbox)
    outcome = rerun_lab(
        spec["record"], spec["lab"], opts, isolation, spec["packages"], spec["hide"], spec["slot"]
    )
    outcome = dataclasses.replace(
        outcome,
        where=f"SLURM job on {socket.gethostname()}, {isolation.description}",
        isolation_warning=isolation.warning or None,
    )
    return outcome.to_json()


def _rerun_on_slurm(
    records: list[Submission],
    tasks: list[tuple[int, str]],
    opts: GradeOptions,
    packages: dict[str, Path],
    hide: list[Path],
    progress: Progress | None,
) -> dict[tuple[int, str], Rerun]:
    """Each task a SLURM job (submitit keeps its files in ``<out>/.slurm/``); waits for all
    of them. A job that ends without a readable result is that submission's grading error;
    Ctrl-C cancels the jobs not yet ended."""
    from ..execution.slurm import SlurmExecutor

    executor = SlurmExecutor(Path(opts.out) / ".slurm", opts.executor_options)
    jobs = []
    outcomes: dict[tuple[int, str], Rerun] = {}
    try:
        for slot, (i, lab) in enumerate(tasks):
            spec = {
                "lab": lab,
                "task": i,
                "record": records[i],
                "opts": opts,
                "packages": packages,
                "hide": hide,
                # a uid of its own per task: jobs on one node never share a sandbox user
                "slot": slot,
            }
            jobs.append(executor.submit(spec, slurm_rerun_job))
        for done, job in enumerate(executor.follow(jobs), 1):
            outcomes[(job.spec["task"], job.lab)] = _slurm_outcome(job)
            if progress:
                progress("re-execute", done, len(tasks))
    except BaseException:
        executor.cancel(jobs)
        list(executor.follow([j for j in jobs if j.outcome is None]))  # until they end (bounded)
        raise
    return outcomes


def _slurm_outcome(job: Any) -> Rerun:
    """The re-execution a SLURM job replied, read back (checked), or why there is none."""
    reply = (job.outcome or {}).get("reply")
    if isinstance(reply, dict):
        try:
            return Rerun.from_json(reply, f"the reply of SLURM job {job.job_id}")
        except RunFileError as exc:
            return Rerun.failed(f"grading failed: {exc}")
    error = (job.outcome or {}).get("error") or {}
    message = error.get("message") or f"SLURM job {job.job_id} returned no result"
    return Rerun.failed(f"grading failed: {message}")
