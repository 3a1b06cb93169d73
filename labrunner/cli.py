"""The ``labrunner`` command line.

Only argparse and the small core modules are imported at start-up; torch,
torchvision and matplotlib are imported when a lab runs, so ``--help``,
``list`` and ``plugins`` stay fast.
"""

from __future__ import annotations

import argparse
import os
import sys
import typing
from pathlib import Path
from typing import Any

from .base.errors import LabrunnerError, UsageError
from .base.version import __version__
from .commands.common import load_plugins_for
from .precision import PRECISIONS


def options_of(args: argparse.Namespace) -> Any:
    """The options of ``run`` / ``config``: one :class:`~labrunner.settings.options.RunOptions`."""
    from .settings.options import RunOptions

    return RunOptions.from_args(args)


# --------------------------------------------------------------------------- commands


def cmd_run(args: argparse.Namespace) -> int:
    from .api import run_options as run_with
    from .base.progress import make_reporter
    from .execution.runner import exit_status, format_summary

    plugins = load_plugins_for(args)
    reporter = make_reporter(args.verbosity)
    try:
        result = run_with(options_of(args), plugins=plugins, reporter=reporter, report=False)
    finally:
        reporter.stop()
    run_dir, results, interrupted = result.path, result.results, result.interrupted
    out = sys.stdout
    print(f"\nrun folder: {_shown(run_dir)}", file=out)
    if result.settings.detach and not interrupted:
        from .execution.detached import read_jobs

        jobs = read_jobs(run_dir)
        for job in jobs:
            print(f"  {job.lab:<16} seed {job.seed:<5} job {job.job_id or '?'}", file=out)
        print(f"submitted {len(jobs)} jobs; see them with: labrunner status {_shown(run_dir)}", file=out)
        return 0
    print(format_summary(results), file=out)
    status = exit_status(results, interrupted)
    try:
        for path in result.render(author=args.author):
            print(f"report: {_shown(path)}", file=out)
    except Exception as exc:  # the results are saved: `labrunner report` can render them again
        print(f"labrunner: error: rendering the report failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        status = status or 1
    _note_mixed(result)
    if interrupted:
        print("interrupted: finished labs are kept; run the same command again to resume", file=sys.stderr)
    return status


def _note_mixed(result: Any) -> None:
    """One line on stderr when the run's report mixes profiles or seeds (labs carried over
    from earlier runs that ran with other ones), so it is seen before hand-in."""
    try:
        consistency = result.reload().data.consistency
    except UsageError:  # the run folder cannot be read back: rendering said so already
        return
    if consistency.mixed:
        print(
            f"labrunner: note: the report mixes profiles or seeds: {consistency.describe()} "
            "(labs not run now show their most recent result; `labrunner run all` with one "
            "profile and seed makes the run consistent)",
            file=sys.stderr,
        )


def _shown(path: Path) -> Path:
    """``path`` relative to the working folder when it lies below it, as the user typed it."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


# --------------------------------------------------------------------------- parser


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments get one line and exit status 2, like every other bad input (argparse
    would print the whole usage first); subcommand parsers inherit the class. A parser's
    ``missing_hint`` replaces argparse's line for missing positional arguments."""

    missing_hint = ""

    def error(self, message: str) -> typing.NoReturn:
        if self.missing_hint and message.startswith("the following arguments are required"):
            message = self.missing_hint
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see '{self.prog} --help')\n")


#: Where a help text shows a ``--set`` example, generated from the installed labs when shown.
SET_EXAMPLE = "{set_example}"


class ExampleHelpFormatter(argparse.HelpFormatter):
    """Fills :data:`SET_EXAMPLE` in help texts with a real setting of an installed lab, only
    when help is shown (loading plugins imports no lab code beyond their registration)."""

    def _expand_help(self, action: argparse.Action) -> str:
        text = super()._expand_help(action)
        if SET_EXAMPLE in text:
            text = text.replace(SET_EXAMPLE, _set_example())
        return text


def _set_example() -> str:
    from .settings.describe import example_setting

    try:
        return example_setting() or "LAB.KEY=VALUE"
    except Exception:  # help must show even when a plugin is broken
        return "LAB.KEY=VALUE"


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--plugins-dir",
        action="append",
        metavar="DIR",
        help="also load plugins (*.py files and packages) from DIR; repeatable",
    )
    common.add_argument(
        "-q",
        "--quiet",
        dest="verbosity",
        action="store_const",
        const=-1,
        default=0,
        help="print only errors and the summary",
    )
    common.add_argument(
        "-v",
        "--verbose",
        dest="verbosity",
        action="store_const",
        const=1,
        help="print more (nested progress, debug lines)",
    )
    return common


def _config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", help="smoke, quick (default) or full")
    parser.add_argument(
        "--config", metavar="PATH", help="config file (default: ./labrunner.yaml when present)"
    )
    parser.add_argument(
        "--set",
        action="append",
        metavar="LAB.KEY=VALUE",
        help=f"override one setting, value in YAML (e.g. {SET_EXAMPLE}); repeatable",
    )


def _add_run(sub: Any, common: argparse.ArgumentParser) -> None:
    """``labrunner run``."""
    run = sub.add_parser(
        "run",
        parents=[common],
        help="run labs and render the report",
        description="Run labs ('all' for every installed lab) and render the report.",
        epilog="Start with: labrunner run all   (labrunner list shows the installed labs)",
        formatter_class=ExampleHelpFormatter,
    )
    run.missing_hint = "name the labs to run, or 'all' for every installed lab: labrunner run all"
    run.add_argument("labs", nargs="+", metavar="LAB", help="lab names, or 'all' for every installed lab")
    _config_options(run)
    run.add_argument("--device", help="auto (default: CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    run.add_argument("--seed", type=int, help="seed for random, numpy and torch (default 0)")
    run.add_argument("--deterministic", action="store_true", help="use deterministic algorithms only")
    run.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="forward passes in fp32, or under autocast to bf16 / fp16 (CUDA only), for labs with a precision setting",
    )
    run.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads for torch (default: torch's choice; 1 helps on a busy 2-core machine)",
    )
    run.add_argument("--out", metavar="DIR", help="where run folders go (default: reports)")
    run.add_argument("--force", action="store_true", help="rerun labs even when a cached result matches")
    run.add_argument("--author", help="student name on the report")
    _execution_options(run)
    run.set_defaults(handler=cmd_run)


def _execution_options(run: argparse.ArgumentParser) -> None:
    """Where and how ``run``'s labs execute: isolation, time-out, executor, jobs, seeds, detach."""
    run.add_argument(
        "--isolation",
        choices=("process", "none"),
        default="process",
        help="process (default): each lab in a fresh worker process; none: in this process (debugging)",
    )
    run.add_argument(
        "--lab-timeout",
        type=float,
        metavar="SECONDS",
        help="stop a lab that runs longer than this and record it as an error (needs --isolation process)",
    )
    run.add_argument(
        "--executor",
        metavar="NAME",
        help="where labs run: local (default, worker processes here) or slurm (one job per lab and seed)",
    )
    run.add_argument(
        "--jobs",
        metavar="N",
        help="labs at a time (default auto on a CPU: what the free cores allow; 1 on a GPU)",
    )
    run.add_argument(
        "--executor-option",
        action="append",
        metavar="KEY=VALUE",
        help="executor setting, e.g. partition=gpu, gpus=1, time=2:00:00 (slurm); repeatable",
    )
    run.add_argument("--seeds", metavar="SEEDS", help="a seed sweep: each lab once per seed (0-4, or 0,2,5)")
    run.add_argument(
        "--detach",
        action="store_true",
        help="submit the jobs and return (--executor slurm); then labrunner status RUN_DIR",
    )


def _add_config(sub: Any, common: argparse.ArgumentParser) -> None:
    """``config``: the resolved settings, as a config file."""
    from .commands.inspect_cli import cmd_config

    cfg = sub.add_parser(
        "config",
        parents=[common],
        help="print the resolved settings, each with its type, bounds, default and description",
        description="Print the settings a run would use (lab defaults < profile < config file < "
        "--set), as a config file: one line per setting, with its type, bounds, default and what "
        "it is in a comment. Nothing runs and nothing is written.",
        formatter_class=ExampleHelpFormatter,
    )
    cfg.add_argument("labs", nargs="*", metavar="LAB", help="lab names (default: all)")
    _config_options(cfg)
    cfg.set_defaults(handler=cmd_config)


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = OneLineParser(
        prog="labrunner",
        description="Run deep-learning labs and render a report you can hand in.",
        epilog="Start with: labrunner run all   (then open reports/latest/report.html)",
    )
    parser.add_argument("--version", action="version", version=f"labrunner {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_run(sub, common)
    from .commands.inspect_cli import add_subcommands as add_inspection

    add_inspection(sub, [common])
    _add_config(sub, common)
    from .commands.report_cli import add_subcommands

    add_subcommands(sub, [common])

    from .commands.scaffold import add_subcommand as add_new

    add_new(sub, [common])
    from .commands.grade_cli import add_subcommand as add_grade

    add_grade(sub, [common])

    from .course.assign import add_subcommand as add_assign

    add_assign(sub, [common])
    return parser


class PipeSafeStdout:
    """``sys.stdout`` for the length of a command: when the reader of a pipe goes away
    (``labrunner run LAB | head``, ``| true``), the rest of the output is dropped instead
    of raising BrokenPipeError, so the command still completes (a run still writes its
    run folder and report) and exits with its own status, not 0 and not a traceback."""

    def __init__(self, stream: Any):
        self._stream = stream
        self.closed_pipe = False

    def write(self, text: str) -> int:
        if not self.closed_pipe:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._drop()
        return len(text)

    def flush(self) -> None:
        if not self.closed_pipe:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._drop()

    def _drop(self) -> None:
        self.closed_pipe = True
        try:  # what is still buffered, and Python's flush at exit, go nowhere
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    stdout = sys.stdout
    sys.stdout = PipeSafeStdout(stdout)
    try:
        return int(args.handler(args) or 0)
    except LabrunnerError as exc:  # bad input, or a plugin, bundle or file that cannot be used
        print(f"labrunner: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        from .base.stopping import interrupted_status

        print("labrunner: interrupted", file=sys.stderr)
        return interrupted_status(exc)
    finally:
        sys.stdout.flush()
        sys.stdout = stdout
