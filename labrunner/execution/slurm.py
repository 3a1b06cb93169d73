"""Running lab jobs on a SLURM cluster, through submitit.

Each lab (and each seed of a sweep) becomes one SLURM job that calls the same
:func:`labrunner.execution.labrun.run_lab_job` as a local worker does, so a lab cannot tell where
it ran. The job writes its ``result.json`` into the lab's folder of the run folder, which
must be on a file system the compute nodes share with the submitting machine; submitit
keeps its own files (the pickled job, logs) under ``<run folder>/.slurm/``.

Options (``--executor-option KEY=VALUE`` or ``executor_options:`` in the config file):

=============  ==============================================================
``partition``  SLURM partition (``--partition``)
``time``       time limit in minutes, or ``H:MM:SS`` / ``D-HH:MM:SS`` (default 60)
``gpus``       GPUs per job (``--gpus-per-node``)
``cpus``       CPUs per job (``--cpus-per-task``)
``mem``        memory per job, as sbatch takes it (``16G``)
``account``    ``--account``
``qos``        ``--qos``
``constraint`` ``--constraint``
``setup``      a shell line run before the job (``module load cuda``); repeatable
``sbatch.K``   any other sbatch option ``--K=VALUE`` (``sbatch.mail-type=END``)
=============  ==============================================================
"""

from __future__ import annotations

import functools
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..base.errors import UsageError
from ..records.results import LabError
from ..settings.executor_options import slurm_parameters
from .labjob import LabJob

#: SLURM job states after which a job will not run again.
FINISHED_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "OUT_OF_MEMORY",
        "NODE_FAIL",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
    }
)
POLL_S = 1.0
#: Seconds cancelled jobs get to reach an end state before the run stops following them.
CANCEL_WAIT_S = 30.0
#: Polls a job may be missing from the queue, without a result or accounting, before it
#: counts as ended (a job can be missing for a moment between submission and the queue).
GONE_POLLS = 3


@functools.lru_cache(maxsize=1)
def accounting_problem() -> str | None:
    """Why ``sacct`` (SLURM's accounting, which submitit reads job states from) cannot tell
    a job's state here, or None when it can."""
    try:
        proc = subprocess.run(
            ["sacct", "-n", "-X", "-j", "1", "-o", "State"], capture_output=True, text=True, timeout=30
        )
    except FileNotFoundError:
        return "sacct is not installed"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"sacct did not answer ({type(exc).__name__})"
    if proc.returncode != 0:
        lines = [line.strip() for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
        return f"sacct fails: {lines[0] if lines else f'exit status {proc.returncode}'}"
    return None


def queue_state(job_id: str) -> str | None:
    """The job's state from ``squeue`` (which works without accounting, for as long as the
    controller remembers the job), or None when squeue does not list it."""
    try:
        proc = subprocess.run(
            ["squeue", "-h", "-j", str(job_id), "-o", "%T"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = proc.stdout.split() if proc.returncode == 0 else []
    return words[0] if words else None


def _job(job: dict[str, Any]) -> dict[str, Any]:
    """What a SLURM job runs: the lab job (a LabJob's JSON, checked on reading), as a local
    worker would."""
    from .labrun import run_lab_job

    return run_lab_job(job)


@dataclass
class SlurmJob:
    """One submitted lab job."""

    lab: str
    spec: Any  # the LabJob, or what a grading job was given
    job: Any  # submitit.Job
    state: str = "PENDING"
    outcome: dict[str, Any] | None = field(default=None)

    @property
    def job_id(self) -> str:
        return str(self.job.job_id)


class SlurmExecutor:
    """Submits lab jobs with submitit and follows them until they end."""

    name = "slurm"

    def __init__(self, folder: Path, options: dict[str, Any] | None = None):
        try:
            import submitit
        except ImportError:
            raise UsageError(
                "--executor slurm needs submitit: pip install 'labrunner[slurm]' (or pip install submitit)"
            ) from None
        self.folder = Path(folder)
        self.parameters = slurm_parameters(dict(options or {}))
        self._executor = submitit.SlurmExecutor(folder=str(self.folder / "%j"), max_num_timeout=0)
        #: When :meth:`cancel` was called (time.monotonic), or None.
        self.cancelled_at: float | None = None
        self._executor.update_parameters(**self.parameters)

    def submit(self, job: LabJob | dict[str, Any], call: Callable[[Any], Any] = _job) -> SlurmJob:
        """Submit one job: a lab job, run on a node from its JSON as a local worker runs it,
        or ``call(job)`` for another picklable ``job`` with a ``"lab"`` (a grading's
        re-execution); raises UsageError when sbatch refuses it."""
        lab = job.lab if isinstance(job, LabJob) else str(job["lab"])
        self._executor.update_parameters(job_name=f"labrunner-{lab}")
        try:
            handle = self._executor.submit(call, job.to_json() if isinstance(job, LabJob) else job)
        except Exception as exc:  # sbatch's own message: no partition, no cluster, ...
            message = str(exc).strip().splitlines()
            raise UsageError(f"SLURM refused the job of {lab}: {message[-1] if message else exc}") from None
        return SlurmJob(lab=lab, spec=job, job=handle)

    def follow(
        self,
        jobs: Iterable[SlurmJob],
        on_state: Callable[[SlurmJob], None] = lambda job: None,
    ) -> Iterable[SlurmJob]:
        """Yield each job as it ends (its ``outcome`` set), calling ``on_state`` on every
        change of state (PENDING, RUNNING, COMPLETED, FAILED, ...).

        Without SLURM's accounting (no ``sacct``) the state comes from ``squeue``; a job
        that neither lists any more and that left no result has ended. After :meth:`cancel`
        the jobs get :data:`CANCEL_WAIT_S` seconds to end, then are yielded as cancelled."""
        waiting = list(jobs)
        gone: dict[str, int] = {}
        while waiting:
            for job in list(waiting):
                state = self._state(job, gone)
                if state != job.state and state != "UNKNOWN":
                    job.state = state
                    on_state(job)
                cut = self.cancelled_at is not None and time.monotonic() - self.cancelled_at > CANCEL_WAIT_S
                ended = self._has_result(job) or job.state.split()[0] in FINISHED_STATES
                if ended or cut or gone.get(job.job_id, 0) >= GONE_POLLS:
                    job.outcome = self._outcome(job)
                    final = self._final_state(job)
                    if final != job.state:
                        job.state = final
                        on_state(job)
                    waiting.remove(job)
                    yield job
            if waiting:
                time.sleep(POLL_S)

    def _state(self, job: SlurmJob, gone: dict[str, int]) -> str:
        """The job's state: sacct's (through submitit), else squeue's; counts the polls
        where neither knows the job (``gone``)."""
        try:
            state = str(job.job.state)
        except Exception:
            state = "UNKNOWN"
        if state.split()[0] != "UNKNOWN":
            return state
        queued = queue_state(job.job_id)
        if queued is not None:
            gone.pop(job.job_id, None)
            return queued
        gone[job.job_id] = gone.get(job.job_id, 0) + 1
        return state

    @staticmethod
    def _has_result(job: SlurmJob) -> bool:
        try:
            return bool(job.job.paths.result_pickle.exists())
        except Exception:
            return False

    def cancel(self, jobs: Iterable[SlurmJob]) -> None:
        """Cancel the jobs that have not ended (Ctrl-C, SIGTERM); :meth:`follow` then
        stops waiting for them once they end, or after :data:`CANCEL_WAIT_S` seconds."""
        if self.cancelled_at is None:
            self.cancelled_at = time.monotonic()
        for job in jobs:
            if job.outcome is None:
                try:
                    job.job.cancel(check=False)
                except Exception:  # already gone
                    pass

    @staticmethod
    def _final_state(job: SlurmJob) -> str:
        """The state SLURM's accounting gives the ended job (it can lag behind the
        result file: a job that replied is COMPLETED)."""
        try:
            state = job.job.watcher.get_state(job.job_id, mode="force")
        except Exception:
            state = job.state
        if state.split()[0] not in FINISHED_STATES:
            state = job.state if job.state.split()[0] in FINISHED_STATES else ""
        if not state:
            state = "COMPLETED" if job.outcome and "reply" in job.outcome else "FAILED"
        return state

    def _outcome(self, job: SlurmJob) -> dict[str, Any]:
        """The job's reply, or the error to record for its lab (never waits: submitit's
        ``result()`` would wait for ever for a job that ended without a result)."""
        if not self._has_result(job):
            why = (
                ""
                if accounting_problem() is None
                else f"; SLURM's accounting cannot say more ({accounting_problem()})"
            )
            cancelled = self.cancelled_at is not None
            return {
                "error": LabError(
                    "SlurmJobCancelled" if cancelled else "SlurmJobFailed",
                    f"SLURM job {job.job_id} ended {job.state.split()[0]} without a result"
                    + (" (cancelled)" if cancelled else why),
                    details={"job_id": job.job_id, "state": job.state},
                )
            }
        try:
            return {"reply": job.job.result()}
        except Exception as exc:
            text = str(exc).strip()
            lines = [line for line in text.splitlines() if line.strip()]
            return {
                "error": LabError(
                    "SlurmJobFailed",
                    f"SLURM job {job.job_id} ended {job.state}: {lines[-1] if lines else type(exc).__name__}",
                    text[-4000:],
                    details={"job_id": job.job_id, "state": job.state},
                )
            }
