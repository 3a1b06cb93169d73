"""Hook specifications: everything a plugin can implement.

Every hook is documented in docs/plugins.md; a test fails when one is not.
Implement a hook with ``@labrunner.hookimpl`` and the same argument names
(a subset is fine).

Hooks are called in the ``labrunner`` process, never in a lab's worker, through the
typed methods of :class:`labrunner.settings.plugins.Plugins` (``plugins.lab_started(...)``): each
implementation on its own, so one that raises is reported as a warning naming its plugin
and the others, and the run, go on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from ..records.results import LabResult
    from .lab import Lab

hookspec = pluggy.HookspecMarker("labrunner")

# ---------------------------------------------------------------------------------------
# Registering things
# ---------------------------------------------------------------------------------------


@hookspec
def register_labs(register: Callable[[Lab], None]) -> None:
    """Register labs by calling ``register(lab)`` once for each (a Lab instance or subclass).

    Called once, when plugins are loaded. Keep this cheap: do not import torch here.
    """


@hookspec
def register_report_formats(register: Callable[[str, Callable[..., Path], str], None]) -> None:
    """Register extra report formats with ``register(name, render, description)``.

    ``render(run, out_dir)`` receives the loaded run (a ``labrunner.records.runfolder.RunData``,
    built from the saved files) and the folder to write into, and returns the path
    of the file it wrote. Selected with ``labrunner report --format NAME``.
    """


@hookspec
def register_executors(register: Callable[..., None]) -> None:
    """Register executors (where lab jobs run) with ``register(name, build, description)``.

    ``build(context)`` receives a ``labrunner.execution.executors.ExecutorContext`` (run folder,
    ``--executor-option`` values, number of jobs, ``--jobs``) and returns an object with
    the methods of ``labrunner.execution.executors.Executor`` (``run``, ``cancel``, ``submit``,
    ``close``). Selected with ``labrunner run --executor NAME``; the built-in ``local``
    and ``slurm`` are registered through the same ``register``.
    """


# ---------------------------------------------------------------------------------------
# Observing a run
# ---------------------------------------------------------------------------------------


@hookspec
def run_started(run_dir: Path, labs: list[str], settings: dict[str, Any]) -> None:
    """Called once before the first lab runs, with the run folder, the lab names in
    order, and the run settings (profile, device, seed, ...)."""


@hookspec
def lab_started(lab: Lab, config: Any, out_dir: Path) -> None:
    """Called before a lab runs (or is taken from the cache), with its resolved config
    and its output folder."""


@hookspec
def lab_finished(lab: Lab, result: LabResult) -> None:
    """Called after a lab ends, whatever its status, with its saved result."""


@hookspec
def run_finished(run_dir: Path, results: list[LabResult]) -> None:
    """Called once after the last lab, before the report is rendered."""
