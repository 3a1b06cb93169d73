"""The ``report``, ``check``, ``submit``, ``diff`` and ``clean`` subcommands.

Only argparse is needed to register them; the report, grading and bundle modules
are imported by the handlers, so ``labrunner --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

RUN_DIR_HELP = "a run folder (default: the latest run, reports/latest)"


def add_subcommands(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Register ``report``, ``check``, ``submit``, ``diff`` and ``clean`` on the CLI's subparsers."""
    _add_report_and_check(subparsers, parents)
    _add_submit(subparsers, parents)
    _add_diff_and_clean(subparsers, parents)


def _add_report_and_check(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """``report`` and ``check``: render a run folder, check its results."""
    report = subparsers.add_parser(
        "report",
        parents=parents,
        help="render the report of a run again, from its saved results",
        description=(
            "Render report.html (self-contained) and report.md (+ figures/) of a run from its "
            "saved files, without running anything; --pdf also prints report.pdf with headless Chromium."
        ),
    )
    report.add_argument("run_dir", nargs="?", type=Path, metavar="RUN_DIR", help=RUN_DIR_HELP)
    report.add_argument("--pdf", action="store_true", help="also write report.pdf (needs Chromium)")
    report.add_argument(
        "--format",
        action="append",
        default=[],
        metavar="NAME",
        help="also render format NAME (pdf, or one a plugin adds); repeatable",
    )
    report.add_argument(
        "--template-dir", type=Path, metavar="DIR", help="templates here override the built-in ones"
    )
    report.add_argument("--author", help="student name on the report (overrides the config's report.author)")
    report.add_argument("--list-formats", action="store_true", help="list the report formats and exit")
    report.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help="a seed sweep (run --seeds): the report of seed N alone, in RUN_DIR/seeds/N/",
    )
    report.set_defaults(handler=cmd_report)

    check = subparsers.add_parser(
        "check",
        parents=parents,
        help="print each lab's checks with points; exit 0 only when all pass",
        description="Print every check of a run with its points and the total, and say when the "
        "labs ran with different profiles or seeds. "
        "Exit status 0 when every lab passed, 1 otherwise; an incomplete run (not finished, "
        "or a lab it lists without a result) never passes: one line says what is missing.",
    )
    check.add_argument("run_dir", nargs="?", type=Path, metavar="RUN_DIR", help=RUN_DIR_HELP)
    check.add_argument("--json", action="store_true", help="machine-readable output for graders")
    check.set_defaults(handler=cmd_check)


def _add_submit(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """``submit``: the verified zip to hand in."""
    submit = subparsers.add_parser(
        "submit",
        parents=parents,
        help="pack the report, results and the labs' code into a verified zip",
        description="Pack report.html, report.md, figures, run.json, every lab's results and the "
        "code of every lab that ran (for grading) into a zip with a sha256 manifest, then re-open it and verify every file. An incomplete run is "
        "refused; so are labs not run (unless --partial), labs that ran with different profiles or "
        "seeds (unless --allow-mixed) and exercises on a stand-in (unless --allow-stand-ins).",
    )
    submit.add_argument("run_dir", nargs="?", type=Path, metavar="RUN_DIR", help=RUN_DIR_HELP)
    submit.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="NAME.zip",
        help="the zip to write (default: submission-<run>.zip)",
    )
    submit.add_argument("--verify", type=Path, metavar="ZIP", help="only verify an existing bundle")
    submit.add_argument(
        "--partial", action="store_true", help="hand in even though some installed labs were never run"
    )
    submit.add_argument(
        "--allow-stand-ins",
        action="store_true",
        help="hand in exercises that ran on a stand-in (shown as such) instead of the assignment's material",
    )
    submit.add_argument(
        "--allow-mixed",
        action="store_true",
        help="hand in labs that ran with different profiles or seeds (the report shows each lab's)",
    )
    submit.set_defaults(handler=cmd_submit)


def _add_diff_and_clean(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """``diff`` and ``clean``: compare two runs, prune old ones."""
    diff = subparsers.add_parser(
        "diff",
        parents=parents,
        help="what changed between two runs: settings, metrics and claims",
        description="Compare two runs lab by lab: status and code, settings (profile, seeds, device "
        "and each setting), metrics and claims; only what differs is shown (--all shows everything). "
        "A RUN is a run folder, or the name of one in --out (e.g. 20261202-184000, latest).",
    )
    diff.add_argument("run_a", metavar="RUN_A", help="the first run (A)")
    diff.add_argument("run_b", metavar="RUN_B", help="the second run (B)")
    diff.add_argument("--json", action="store_true", help="machine-readable output")
    diff.add_argument("--all", action="store_true", help="also show what did not change")
    diff.add_argument(
        "--out",
        type=Path,
        default=Path("reports"),
        metavar="DIR",
        help="where run names are looked up (default: reports)",
    )
    diff.set_defaults(handler=cmd_diff)

    clean = subparsers.add_parser(
        "clean",
        parents=parents,
        help="remove old run folders, keeping the newest N",
        description="Remove all but the newest N run folders of the out folder. The run 'latest' "
        "points to is always kept, so is a run still running (its lock is held) or whose SLURM jobs "
        "were not collected, and nothing but run folders (with a run.json) is touched.",
    )
    clean.add_argument("--keep", type=int, required=True, metavar="N", help="how many run folders to keep")
    clean.add_argument(
        "--out", type=Path, default=Path("reports"), metavar="DIR", help="the out folder (default: reports)"
    )
    clean.add_argument("--dry-run", action="store_true", help="only print what would be removed")
    clean.set_defaults(handler=cmd_clean)


def _run_dir(args: argparse.Namespace) -> Path:
    from ..records.folders import find_run_dir

    return find_run_dir(args.run_dir)


def cmd_report(args: argparse.Namespace) -> int:
    from ..report.render import BUILTIN_FORMATS, available_formats, render_report

    # Plugins are loaded only for formats they add: re-rendering imports no lab code.
    needs_plugins = args.list_formats or any(f not in BUILTIN_FORMATS for f in args.format)
    plugins = _plugins(args) if needs_plugins else None
    if args.list_formats:
        for name, description in available_formats(plugins).items():
            print(f"{name:<12} {description}")
        return 0
    formats = ["html", "md"] + (["pdf"] if args.pdf else []) + list(args.format)
    run_dir = _run_dir(args)
    if getattr(args, "seed", None) is not None:
        from ..records.folders import seed_view

        run_dir = seed_view(run_dir, args.seed)
    for path in render_report(
        run_dir, template_dir=args.template_dir, author=args.author, formats=formats, plugins=plugins
    ):
        print(f"report: {path}")
    return 0


def _plugins(args: argparse.Namespace) -> Any:
    """The loaded plugins (for report formats they add); their problems are warned about."""
    from .common import load_plugins_for

    return load_plugins_for(args)


def cmd_check(args: argparse.Namespace) -> int:
    from ..api import load
    from ..report.grading import format_grades

    grades = load(_run_dir(args)).check()
    if args.json:
        print(json.dumps(grades, indent=2, ensure_ascii=False, default=str))
    elif not grades["incomplete"]:
        print(format_grades(grades, verbose=getattr(args, "verbosity", 0) > 0))
    if grades["incomplete"]:
        print(f"labrunner: {grades['run_dir']}: incomplete run: {grades['incomplete']}", file=sys.stderr)
    return 0 if grades["passed"] else 1


def cmd_submit(args: argparse.Namespace) -> int:
    from ..api import Run
    from ..base.errors import UsageError
    from ..course.bundle import BundleError, NotSubmittable, UnsafeBundle, verify_bundle

    try:
        if args.verify is not None:
            if not args.verify.is_file():
                raise UsageError(f"--verify {args.verify}: no such file")
            count = verify_bundle(args.verify)
            print(f"{args.verify}: {count} files match the manifest")
            return 0
        run_dir = _run_dir(args)
        dest = args.output or Path(f"submission-{run_dir.resolve().name}.zip")
        run = Run(run_dir, plugins=_plugins(args))
        path = run.submit(
            dest,
            partial=args.partial,
            allow_stand_ins=args.allow_stand_ins,
            allow_mixed=args.allow_mixed,
            warn=lambda line: print(f"labrunner: warning: {line}", file=sys.stderr),
        )
    except (BundleError, NotSubmittable) as exc:
        print(f"labrunner: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UnsafeBundle) else 1
    print(f"bundle: {path} ({run.bundle_files} files, verified against its sha256 manifest)")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from ..report.rundiff import format_markdown, load_pair

    diff = load_pair(args.run_a, args.run_b, args.out)
    if args.json:
        print(json.dumps(diff.to_json(everything=args.all), indent=2, ensure_ascii=False, default=str))
    else:
        sys.stdout.write(format_markdown(diff, everything=args.all))
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    from ..base.errors import UsageError
    from ..records.folders import clean_runs

    if args.keep < 1:
        raise UsageError(f"--keep must be at least 1, got {args.keep}")
    skipped: list[tuple[Path, str]] = []
    removed = clean_runs(args.out, keep=args.keep, dry_run=args.dry_run, skipped=skipped)
    verb = "would remove" if args.dry_run else "removed"
    for path in removed:
        print(f"{verb}: {path}")
    for path, why in skipped:
        print(f"kept: {path} ({why})")
    print(f"{verb} {len(removed)} run folder{'s' if len(removed) != 1 else ''}, kept the newest {args.keep}")
    return 0
