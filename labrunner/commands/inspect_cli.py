"""The commands that run no lab: ``status`` (the jobs of a detached run), ``list`` (the
installed labs), ``plugins`` and ``config`` (the resolved settings)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .common import load_plugins_for


def add_subcommands(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Register ``status``, ``list`` and ``plugins`` on the CLI's subparsers."""
    status = sub.add_parser(
        "status",
        parents=parents,
        help="show the jobs of a run (detached SLURM runs) and collect those that ended",
        description="Show each job of a run submitted with --detach (state from SLURM's accounting) "
        "and list the labs whose jobs ended in run.json (the run is finished once every job has ended).",
    )
    status.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="run folder (default: reports/latest)")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=cmd_status)

    lst = sub.add_parser(
        "list",
        parents=parents,
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
        parents=parents,
        help="list loaded plugins and skipped ones",
        description="List the loaded plugins (name, version, where it was found, module, hooks "
        "and labs), the plugins skipped with the reason, and the executors labs can run on.",
    )
    plg.add_argument("--json", action="store_true", help="machine-readable output")
    plg.set_defaults(handler=cmd_plugins)


def cmd_status(args: argparse.Namespace) -> int:
    from ..execution.detached import collect_jobs
    from ..records.folders import find_run_dir

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

    from ..authoring.lab import profile_names

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
    from ..records.results import jsonable
    from ..settings.describe import describe_settings, kind_label

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

    from ..records.results import jsonable

    if field.default is not dataclasses.MISSING:
        return jsonable(field.default)
    return jsonable(field.default_factory())


def cmd_plugins(args: argparse.Namespace) -> int:
    import dataclasses

    from ..execution.executors import registered_executors

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

    from ..api import prepare_options
    from ..settings.describe import describe_settings, flow, setting_comment
    from ..settings.options import RunOptions

    plugins = load_plugins_for(args)
    settings = prepare_options(RunOptions.from_args(args), plugins=plugins, writes=False)[1]
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
