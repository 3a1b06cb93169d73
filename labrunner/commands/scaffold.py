"""``labrunner new NAME``: a ready-to-install lab plugin package from templates/new/."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path

from ..base.errors import UsageError
from ..base.names import NAME_PATTERN, RESERVED_NAMES, reserved_why
from ..base.version import __version__

#: template file -> path in the new package ({name}, {module} filled in)
FILES = {
    "pyproject.toml.j2": "pyproject.toml",
    "README.md.j2": "README.md",
    "lab.py.j2": "{module}/__init__.py",
    "test_lab.py.j2": "tests/test_{name}.py",
    "gitignore.j2": ".gitignore",
}


def template_dir() -> Path:
    return Path(str(resources.files("labrunner.templates") / "new"))


def check_name(name: str, installed: set[str]) -> None:
    if not NAME_PATTERN.match(name):
        raise UsageError(
            f"invalid lab name {name!r}: use lower-case letters, digits and '_', starting with a letter"
        )
    if name in RESERVED_NAMES:
        raise UsageError(f"invalid lab name {name!r}: {reserved_why(name)}")
    if name in installed:
        raise UsageError(f"a lab named {name!r} is already installed; choose another name")


def class_name(name: str) -> str:
    """``my_lab`` -> ``MyLab``, ``optics`` -> ``OpticsLab``: CamelCase, ending in ``Lab`` once."""
    camel = "".join(part.capitalize() for part in name.split("_"))
    return camel if camel.endswith("Lab") else camel + "Lab"


def create_lab_package(name: str, parent: Path, installed: set[str] | None = None) -> Path:
    """Write a new plugin package for lab ``name`` into ``parent/<name>`` and return its path.

    Everything is rendered into a temporary folder first and renamed into place,
    so a failure leaves nothing half-written.
    """
    import jinja2

    check_name(name, installed or set())
    target = Path(parent) / name
    if target.exists():
        raise UsageError(f"{target} already exists; choose another name or --dir")
    if not Path(parent).is_dir():
        raise UsageError(f"--dir {parent}: no such folder")
    values = {
        "name": name,
        "module": f"labrunner_{name}",
        "dist": f"labrunner-{name.replace('_', '-')}",
        "class_name": class_name(name),
        "title": name.replace("_", " ").capitalize(),
        "labrunner_version": __version__,
    }
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dir()),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # Python, TOML and Markdown files, not HTML
    )
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{name}."))
    try:
        for template, rel in FILES.items():
            path = tmp / rel.format(**values)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(env.get_template(template).render(**values), encoding="utf-8")
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def cmd_new(args: argparse.Namespace) -> int:
    from ..settings.plugins import load_plugins

    plugins = load_plugins([Path(p) for p in args.plugins_dir or []])
    target = create_lab_package(args.name, Path(args.dir), set(plugins.labs))
    print(f"created {target}")
    print("next:")
    print(f"  pip install -e {target}")
    print(f"  labrunner run {args.name}")
    print(f"  pytest {target / 'tests'}")
    return 0


def add_subcommand(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    new = sub.add_parser(
        "new",
        parents=parents,
        help="create a new lab plugin package",
        description="Create a ready-to-install lab plugin package NAME in DIR.",
    )
    new.add_argument("name", metavar="NAME", help="the lab's name (lower-case identifier)")
    new.add_argument("--dir", default=".", help="parent folder of the new package (default: .)")
    new.set_defaults(handler=cmd_new)
