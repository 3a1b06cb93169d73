"""The ``labrunner`` command line.

Only argparse and the small core modules are imported at start-up; torch,
torchvision and matplotlib are imported when a lab runs, so ``--help``,
``list`` and ``plugins`` stay fast.
"""

from __future__ import annotations

import argparse
import json
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


def _settings(args: argparse.Namespace, plugins: Any, check_device: bool) -> Any:
    from .api import prepare_options

    return prepare_options(options_of(args), plugins=plugins, writes=check_device)[1]


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


def cmd_status(args: argparse.Namespace) -> int:
    from .execution.detached import collect_jobs
    from .records.folders import find_run_dir

    run_dir = find_run_dir(Path(args.run_dir) if args.run_dir else None)
    jobs, status = collect_jobs(run_dir)
    if args.json:
        print(json.dumps({"run_dir": str(run_dir), "status": status, "jobs": jobs}, indent=2))
        return 0
    print(f"{run_dir}: {status}")
    if not jobs:
        print("  no jobs (the labs ran in this machine's processes)")
    for job in jobs:
        seed = f" seed {job['seed']}" if job.get("seed") is not None else ""
        state = job.get("state", "?") + (
            " (cancelled: the submission stopped)" if job.get("cancelled") else ""
        )
        print(f"  {job['lab']:<16}{seed:<9} job {job.get('job_id', '?'):<10} {state}")
    if status == "submitted":
        print(
            "some jobs have not ended: run labrunner status again later, or labrunner report to see what ended"
        )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    import dataclasses

    from .authoring.lab import profile_names

    plugins = load_plugins_for(args)
    rows = []
    for name, lab in plugins.labs.items():
        rows.append(
            {
                "name": name,
                "title": lab.title,
                "version": lab.version,
                "plugin": plugins.lab_plugin[name],
                "description": lab.description,
                "part": lab.part,
                "order": lab.order,
                "profiles": profile_names(lab),
                "config": {f.name: _default(f) for f in dataclasses.fields(lab.Config)},
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if not rows:
        print("no labs installed")
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        part = f"{r['part']} · " if r["part"] and not r["title"].startswith(r["part"]) else ""
        print(f"{r['name']:<{width}}  {part}{r['title']}  (v{r['version']}, plugin {r['plugin']})")
        if args.verbosity < 0:
            continue
        pad = " " * (width + 2)
        if r["description"]:
            print(f"{pad}{r['description']}")
        print(f"{pad}profiles: {', '.join(r['profiles'])}")
        described = args.settings or args.verbosity > 0
        for line in _setting_lines(r["config"], plugins.labs[r["name"]], described):
            print(f"{pad}{line}")
    return 0


def _setting_lines(defaults: dict[str, Any], lab: Any, described: bool = False) -> list[str]:
    """'settings:' then one line per setting: its default and what each profile sets, and
    with ``described``, its type, bounds and description."""
    from .records.results import jsonable
    from .settings.describe import describe_settings, kind_label

    if not defaults:
        return ["settings: none"]
    infos = {info.name: info for info in describe_settings(lab)} if described else {}
    width = max(len(name) for name in defaults)
    lines = ["settings (default, then each profile's value):"]
    for name, value in defaults.items():
        by_profile = [f"{p} {json.dumps(jsonable(o[name]))}" for p, o in lab.profiles.items() if name in o]
        extra = f"  ({', '.join(by_profile)})" if by_profile else ""
        info = infos.get(name)
        if info is not None:
            extra += f"  # {kind_label(info)}" + (f" — {info.description}" if info.description else "")
        lines.append(f"  {name:<{width}} = {json.dumps(value)}{extra}")
    return lines


def _default(field: Any) -> Any:
    import dataclasses

    from .records.results import jsonable

    if field.default is not dataclasses.MISSING:
        return jsonable(field.default)
    return jsonable(field.default_factory())


def cmd_plugins(args: argparse.Namespace) -> int:
    import dataclasses

    from .execution.executors import registered_executors

    plugins = load_plugins_for(args)
    infos = list(plugins.infos.values())
    if args.json:
        data = {
            "plugins": [dataclasses.asdict(i) for i in infos],
            "skipped": [{"plugin": p.plugin, "message": p.message} for p in plugins.problems],
            "executors": [
                {"name": e.name, "plugin": e.plugin, "description": e.description}
                for e in registered_executors(plugins).values()
            ],
        }
        print(json.dumps(data, indent=2))
        return 0
    for info in infos:
        version = f" {info.version}" if info.version else ""
        print(f"{info.name}{version}  [{info.source}]")
        print(f"    module: {info.module}")
        print(f"    hooks:  {', '.join(info.hooks) or '-'}")
        print(f"    labs:   {', '.join(info.labs) or '-'}")
    for problem in plugins.problems:
        print(f"{problem.plugin}  [skipped] {problem.message}")
    executors = registered_executors(plugins)
    print(f"executors: {', '.join(f'{e.name} ({e.plugin})' for e in executors.values())}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    import yaml

    from .settings.describe import describe_settings, flow, setting_comment

    plugins = load_plugins_for(args)
    settings = _settings(args, plugins, check_device=False)
    resolved = settings.resolved_config()
    labs = resolved.pop("labs")
    out = [
        f"# the resolved settings (profile {settings.profile}), as a config file; after each setting:",
        "# its type and bounds, its default, and what it is (labrunner list --settings shows every profile)",
        yaml.safe_dump(resolved, sort_keys=False).rstrip("\n"),
        "labs:",
    ]
    for lab in settings.labs:
        values = labs[lab.name]
        infos = describe_settings(lab)
        if not infos:
            out.append(f"  {lab.name}: {{}}")
            continue
        out.append(f"  {lab.name}:")
        shown = {info.name: f"{info.name}: {flow(values[info.name])}" for info in infos}
        width = min(max(len(text) for text in shown.values()), 40)
        for info in infos:
            out.append(f"    {shown[info.name]:<{width}}  # {setting_comment(info, values[info.name])}")
    sys.stdout.write("\n".join(out) + "\n")
    return 0


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
        help="labs at a time (default 1; auto: what the cores and GPUs allow)",
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


def _add_inspection_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """``status``, ``list``, ``plugins`` and ``config``: commands that run no lab."""
    status = sub.add_parser(
        "status",
        parents=[common],
        help="show the jobs of a run (detached SLURM runs) and collect those that ended",
        description="Show each job of a run submitted with --detach (state from SLURM's accounting) "
        "and list the labs whose jobs ended in run.json (the run is finished once every job has ended).",
    )
    status.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="run folder (default: reports/latest)")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=cmd_status)

    lst = sub.add_parser(
        "list",
        parents=[common],
        help="list installed labs, their profiles and settings",
        description="List the installed labs: name, title, version and plugin, a one-line "
        "description, the profiles, and each setting's default with what each profile sets it to. "
        "--settings (or -v) adds each setting's type, bounds and description; -q lists the labs only.",
    )
    lst.add_argument(
        "--settings", action="store_true", help="also each setting's type, bounds and description"
    )
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    lst.set_defaults(handler=cmd_list)

    plg = sub.add_parser(
        "plugins",
        parents=[common],
        help="list loaded plugins and skipped ones",
        description="List the loaded plugins (name, version, where it was found, module, hooks "
        "and labs), the plugins skipped with the reason, and the executors labs can run on.",
    )
    plg.add_argument("--json", action="store_true", help="machine-readable output")
    plg.set_defaults(handler=cmd_plugins)

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
    _add_inspection_commands(sub, common)
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
