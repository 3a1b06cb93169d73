"""``labrunner grade``: a class's submission zips to a gradebook, re-executed in a sandbox.

For each zip: verify it against its manifest and read the run and the labs' code out of it
(:mod:`.submissions`); with ``rerun``, run each lab's code again in the sandbox at the grading
profile, with the instructor's hidden checks transplanted into the student's code when the
instructor's lab package is given (:mod:`.reexecute`); score it and compare the re-executed
measurements, claims and checks with the submitted ones (:mod:`.scoring`). The records are
:mod:`.graderecords`; the outputs (:mod:`.gradeout`) go into one grading folder. A graded zip
(same sha256, same options) is not graded again unless ``regrade``: its record is read back
from the grading folder's state.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..base.errors import UsageError
from ..base.hashing import sha256_file
from ..records.files import is_inside
from ..records.results import RunFileError, write_atomic
from .gradeoptions import SUBMITTED, GradeOptions
from .graderecords import Submission
from .isolation import Isolation, detect_isolation
from .reexecute import rerun_all
from .scoring import finish_record
from .submissions import find_submissions, read_submission

#: The grading folder's own files: what resuming reads back.
STATE_DIR = ".state"
WORK_DIR = ".work"

Progress = Callable[[str, int, int], None]


@dataclass
class Grading:
    """The outcome of a batch: each submission's record, the isolation that was in force,
    how many were taken from an earlier grading, and the grading folder."""

    records: list[Submission]
    out: Path
    isolation: Isolation | None
    reused: int = 0
    written: list[Path] = field(default_factory=list)

    @property
    def exit_status(self) -> int:
        return 0 if all(r.status == "graded" for r in self.records) else 1


def grade(
    inputs: Sequence[Path],
    opts: GradeOptions,
    *,
    progress: Progress | None = None,
    warn: Callable[[str], None] | None = None,
) -> Grading:
    """Grade the zips ``inputs`` (files or folders of zips) into ``opts.out``; see the
    module's docstring. ``progress(stage, done, total)`` is called as submissions finish."""
    from .gradeout import write_outputs

    zips = find_submissions(inputs)
    out = Path(opts.out)
    _check_request(zips, out, opts)
    packages = _instructor_labs(opts.lab_packages)
    if packages and warn and opts.rerun is None:
        warn(
            "--lab-package: the hidden checks run on the students' code only when it is re-executed (--rerun)"
        )
    isolation = None
    if opts.rerun is not None:
        isolation = detect_isolation(opts.sandbox)
        if isolation.warning and warn:
            warn(isolation.warning)
    out.mkdir(parents=True, exist_ok=True)
    (out / STATE_DIR).mkdir(exist_ok=True)
    (out / WORK_DIR).mkdir(exist_ok=True)
    key = opts.key()
    states = [out / STATE_DIR / f"{sha256_file(z)}-{key}.json" for z in zips]
    jobs = [
        (str(z), str(out / WORK_DIR), str(state), opts.regrade) for z, state in zip(zips, states, strict=True)
    ]
    read = _read_all(jobs, opts.jobs, progress)
    records = [record for record, _reused in read]
    if opts.rerun is not None and isolation is not None:
        pending = [i for i, r in enumerate(records) if not r.scored and r.status == "read"]
        hide = [out.resolve(), *{z.resolve().parent for z in zips}]
        redone = rerun_all([records[i] for i in pending], opts, isolation, packages, hide, progress)
        for i, record in zip(pending, redone, strict=True):
            records[i] = record
    for i, state in enumerate(states):
        if not records[i].scored:
            records[i] = dataclasses.replace(
                finish_record(records[i], opts),
                isolation=isolation.description if isolation else "not re-executed",
                isolation_warning=isolation.warning if isolation else "",
            )
            write_atomic(state, json.dumps(records[i].to_json(), default=str).encode())
    records = _unique_students(records)
    grading = Grading(records=records, out=out, isolation=isolation, reused=sum(r for _, r in read))
    grading.written = write_outputs(grading, opts)
    return grading


def _check_request(zips: list[Path], out: Path, opts: GradeOptions) -> None:
    """A grading folder that is a folder with no submission inside it, a rerun profile that
    is a name: else one line."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: not a folder")
    if (
        opts.rerun is not None
        and opts.rerun != SUBMITTED
        and not re.fullmatch(r"[a-z][a-z0-9_]*", opts.rerun)
    ):
        raise UsageError(f"--rerun {opts.rerun!r}: a profile name (smoke, quick, full) or 'submitted'")
    for z in zips:
        if is_inside(z, out):
            raise UsageError(f"{z}: a submission inside the grading folder {out}")


def _read_job(args: tuple[str, str, str, bool]) -> tuple[Submission, bool]:
    """One submission: read back from its state when it was graded before with the same
    options (and the state reads back whole), else verified and read from its zip."""
    zip_path, work, state_file, regrade = args
    state = Path(state_file)
    if not regrade and state.is_file():
        try:
            return Submission.from_json(json.loads(state.read_text(encoding="utf-8")), str(state)), True
        except (ValueError, RunFileError):
            pass  # graded again
    return read_submission(Path(zip_path), Path(work)), False


def _read_all(
    jobs: list[tuple[str, str, str, bool]], processes: int, progress: Progress | None
) -> list[tuple[Submission, bool]]:
    """Verify and read each submission (``processes`` at a time), in order; each with
    whether it was taken from an earlier grading."""
    records: list[tuple[Submission, bool]] = []
    if processes > 1 and len(jobs) > 1:
        import multiprocessing

        # spawn: the parent may run threads (the progress display), which fork would copy mid-lock
        pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=processes, mp_context=multiprocessing.get_context("spawn")
        )
        mapped = pool.map(_read_job, jobs, chunksize=max(1, min(16, len(jobs) // (4 * processes))))
    else:
        pool, mapped = None, map(_read_job, jobs)
    try:
        for i, record in enumerate(mapped, 1):
            records.append(record)
            if progress:
                progress("verify", i, len(jobs))
    finally:
        if pool is not None:
            pool.shutdown()
    return records


def _unique_students(records: list[Submission]) -> list[Submission]:
    """Two zips of one student: each keeps a row, told apart by its zip's digest, and flagged."""
    by_id: dict[str, int] = {}
    for record in records:
        by_id[record.student] = by_id.get(record.student, 0) + 1
    unique = []
    for record in records:
        n = by_id[record.student]
        if n > 1:
            note = f"{n} submissions for {record.student}"
            record = dataclasses.replace(record, student=f"{record.student}-{record.zip_sha256[:8]}")
            record = record.flagged(note)
        unique.append(record)
    return unique


def _instructor_labs(specs: Sequence[str]) -> dict[str, Path]:
    """lab name -> the folder of the instructor's package that registers it."""
    from ..authoring.lab import validate_lab
    from ..settings.plugins import Plugins
    from .assign import locate_package

    found: dict[str, Path] = {}
    for spec in specs:
        root = locate_package(spec)
        plugins = Plugins(only={root.name})
        plugins.load_dir(root)
        if plugins.problems:
            raise UsageError(f"--lab-package {spec}: {plugins.problems[0]}")
        for name, lab in plugins.labs.items():
            validate_lab(lab)
            found[name] = root
        if not plugins.labs:
            raise UsageError(f"--lab-package {spec}: registers no lab")
    return found


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
