"""What the command-line subcommands share: loading the plugins a command asks for."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def warn_problems(plugins: Any, quiet: bool = False) -> None:
    """Each problem of loading the plugins, as one warning line (none when ``quiet``)."""
    if quiet:
        return
    for problem in plugins.problems:
        print(f"labrunner: warning: {problem}", file=sys.stderr)


def load_plugins_for(args: argparse.Namespace) -> Any:
    """The plugins a command's ``--plugins-dir`` asks for; each problem is one warning line
    (none with ``-q``)."""
    from ..settings.plugins import load_plugins

    plugins = load_plugins([Path(p) for p in getattr(args, "plugins_dir", None) or []])
    warn_problems(plugins, getattr(args, "verbosity", 0) < 0)
    return plugins
