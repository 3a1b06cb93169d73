"""The ``grade`` subcommand; the grading modules are imported by its handler."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..course.grade import Grading

_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)


def parse_size(text: str, option: str) -> int:
    """``512M``, ``8G``, ``1.5GiB``, ``4096`` (bytes) as a number of bytes."""
    from ..base.errors import UsageError

    match = _SIZE.match(text)
    if not match:
        raise UsageError(f"{option} {text!r}: a size such as 512M or 8G")
    scale = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}[match.group(2).upper()]
    value = int(float(match.group(1)) * scale)
    if value <= 0:
        raise UsageError(f"{option} {text!r}: must be above 0")
    return value


def _sandbox_options(grade: argparse.ArgumentParser) -> None:
    """How ``grade`` re-executes a lab: the sandbox, its limits, threads, tolerances, uids."""
    grade.add_argument(
        "--sandbox",
        choices=("auto", "bubblewrap", "rlimits"),
        default="auto",
        help="auto (default): bubblewrap when it works, else resource limits only (said loudly)",
    )
    grade.add_argument(
        "--timeout", type=float, default=600.0, metavar="S", help="wall-clock limit per lab (600)"
    )
    grade.add_argument("--memory", default="8G", metavar="SIZE", help="address-space limit per lab (8G)")
    grade.add_argument(
        "--max-processes", type=int, default=256, metavar="N", help="processes and threads (256)"
    )
    grade.add_argument(
        "--max-file-size", default="256M", metavar="SIZE", help="largest file a lab writes (256M)"
    )
    grade.add_argument(
        "--scratch", default="1G", metavar="SIZE", help="size of the writable scratch folder (1G)"
    )
    grade.add_argument(
        "--threads", type=int, default=1, metavar="N", help="torch threads per re-execution (1)"
    )
    grade.add_argument(
        "--rtol", type=float, default=1e-6, help="relative tolerance of metric comparisons (1e-6)"
    )
    grade.add_argument(
        "--atol", type=float, default=1e-9, help="absolute tolerance of metric comparisons (1e-9)"
    )
    grade.add_argument(
        "--uid-base",
        type=int,
        default=61000,
        metavar="UID",
        help="first uid of the sandbox users, one per job (61000)",
    )


def add_subcommand(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    grade = subparsers.add_parser(
        "grade",
        parents=parents,
        help="grade a class's submission zips: gradebook, results.json, feedback, cohort page",
        description="Verify each submission zip, score its checks, optionally re-execute each lab's code "
        "in a sandbox (no network, unprivileged, resource limits) with the instructor's hidden checks, "
        "compare the re-executed results with the submitted ones, and write gradebook.csv, a "
        "Gradescope results.json and a feedback page per student, and a cohort page into one folder. "
        "Exit status 0 when every submission graded cleanly, 1 when one is flagged, failed or invalid.",
    )
    grade.add_argument(
        "submissions", nargs="+", type=Path, metavar="ZIP_OR_DIR", help="zips, or folders of zips"
    )
    grade.add_argument("-o", "--out", type=Path, required=True, metavar="DIR", help="the grading folder")
    grade.add_argument(
        "--lab-package",
        action="append",
        default=[],
        metavar="PKG",
        help="the instructor's lab package (folder or importable name) whose hidden checks run on each "
        "student's code; repeatable",
    )
    grade.add_argument(
        "--rerun",
        metavar="PROFILE",
        help="re-execute each lab in the sandbox at PROFILE (smoke, quick, full), or 'submitted' "
        "(each lab's own profile and settings: measurements are compared)",
    )
    grade.add_argument("--rerun-labs", metavar="LAB,...", help="re-execute only these labs")
    grade.add_argument("--jobs", default="1", metavar="N", help="submissions at a time (auto: one per core)")
    grade.add_argument(
        "--executor",
        choices=("local", "slurm"),
        default="local",
        help="where re-executions run: local (default, --jobs at a time) or slurm (one job per lab "
        "of a submission, sandboxed on its node; the grading folder must be on a shared file system)",
    )
    grade.add_argument(
        "--executor-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a SLURM option for the re-execution jobs, as `run` takes it (partition=gpu, time=30, "
        "cpus=2, mem=8G, ...); repeatable",
    )
    grade.add_argument("--regrade", action="store_true", help="grade again submissions graded before")
    _sandbox_options(grade)
    grade.set_defaults(handler=cmd_grade)


def cmd_grade(args: argparse.Namespace) -> int:
    from ..base.progress import make_reporter
    from ..course.grade import grade

    opts = _grade_options(args)
    reporter = make_reporter(args.verbosity)
    bars: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = reporter.bar(stage, total=total)
        bar.update(1)
        if done == total:
            bar.close()

    def warn(line: str) -> None:
        print(f"labrunner: warning: {line}", file=sys.stderr)

    try:
        grading = grade(args.submissions, opts, progress=progress, warn=warn)
    finally:
        reporter.stop()
    _print_grading(grading, args.verbosity)
    return grading.exit_status


def _grade_options(args: argparse.Namespace) -> Any:
    """The checked options of ``grade`` as a :class:`~labrunner.course.grade.GradeOptions`."""
    from ..base.errors import UsageError
    from ..course.grade import GradeOptions, default_jobs
    from ..course.isolation import Limits

    if args.jobs == "auto":
        jobs = default_jobs()
    elif args.jobs.isdigit() and int(args.jobs) >= 1:
        jobs = int(args.jobs)
    else:
        raise UsageError(f"--jobs {args.jobs!r}: a number of at least 1, or auto")
    if args.timeout <= 0 or args.max_processes < 1 or args.threads < 1:
        raise UsageError("--timeout, --max-processes and --threads must be positive")
    if not 1000 <= args.uid_base <= 2**31 - 1000:
        raise UsageError(f"--uid-base {args.uid_base}: a uid from 1000 up, not a system user's")
    if not (args.rtol >= 0 and args.atol >= 0):
        raise UsageError("--rtol and --atol must be at least 0")
    from ..settings.executor_options import parse_executor_options, slurm_parameters

    executor_options = parse_executor_options(args.executor_option)
    if executor_options and args.executor != "slurm":
        raise UsageError("--executor-option: only with --executor slurm")
    slurm_parameters(dict(executor_options))  # a bad option is one line now, not per job
    if args.executor == "slurm" and args.rerun is None:
        raise UsageError("--executor slurm: only re-executions run on the cluster; add --rerun PROFILE")
    limits = Limits(
        memory=parse_size(args.memory, "--memory"),
        processes=args.max_processes,
        file_size=parse_size(args.max_file_size, "--max-file-size"),
        scratch=parse_size(args.scratch, "--scratch"),
        wall=args.timeout,
    )
    return GradeOptions(
        out=args.out,
        lab_packages=tuple(args.lab_package),
        rerun=args.rerun,
        rerun_labs=tuple(x for x in (args.rerun_labs or "").split(",") if x),
        jobs=jobs,
        regrade=args.regrade,
        sandbox=args.sandbox,
        limits=limits,
        rtol=args.rtol,
        atol=args.atol,
        threads=args.threads,
        uid_base=args.uid_base,
        executor=args.executor,
        executor_options=executor_options,
    )


def _print_grading(grading: Grading, verbosity: int) -> None:
    """Each submission that did not grade cleanly, the isolation, and the totals."""
    counts: dict[str, int] = {}
    for record in grading.records:
        counts[record.status] = counts.get(record.status, 0) + 1
        if record.status != "graded" and verbosity >= 0:
            not_reproduced = [
                f"{lab}: not reproduced ({len(e.differences)} differences)"
                for lab, e in record.labs.items()
                if e.differences
            ]
            why = record.error or "; ".join([*(record.errors or ()), *not_reproduced, *record.flags])
            print(f"  {record.student:<24} {record.status:<8} {why}")
    if grading.isolation is not None:
        print(f"isolation: {grading.isolation.description}")
        if grading.isolation.warning:
            print(f"WARNING: {grading.isolation.warning}")
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    reused = (
        f" ({grading.reused} unchanged since the last grading, not graded again)" if grading.reused else ""
    )
    print(f"graded {len(grading.records)} submissions: {summary}{reused}")
    print(f"gradebook: {grading.out / 'gradebook.csv'}  cohort: {grading.out / 'cohort.html'}")
