"""labrunner: an educational lab runner for deep-learning coursework.

Plugin authors need only what this module exports (``__all__``; the reference is
docs/api.md)::

    import labrunner

    class MyLab(labrunner.Lab):
        ...

        def run(self, ctx: labrunner.LabContext[MyConfig]) -> None:
            with ctx.exercise("1. Title", question="...") as ex:   # a labrunner.ExerciseRecorder
                ...

    @labrunner.hookimpl
    def register_labs(register):
        register(MyLab())

Test helpers (``run_lab``, ``assert_checks_pass``, ...) are in :mod:`labrunner.testing`,
which needs pytest and is not imported here.

Notebooks and scripts run labs with :func:`labrunner.run` and open saved runs with
:func:`labrunner.load` (:mod:`labrunner.api`; the reference is docs/python-api.md)::

    run = labrunner.run("all", profile="quick")
    run.labs["rnn_lm"].metrics
"""

from __future__ import annotations

import pluggy

#: Marker for hook implementations in plugins.
hookimpl = pluggy.HookimplMarker("labrunner")

from .api import Run, load, run  # noqa: E402
from .authoring.context import ExerciseRecorder, LabContext, exercise_function  # noqa: E402
from .authoring.lab import Lab, NoConfig  # noqa: E402
from .base.errors import LabrunnerError, UsageError  # noqa: E402
from .base.progress import quiet_progress  # noqa: E402
from .base.version import __version__  # noqa: E402

__all__ = [
    "ExerciseRecorder",
    "Lab",
    "LabContext",
    "LabrunnerError",
    "NoConfig",
    "Run",
    "UsageError",
    "exercise_function",
    "hookimpl",
    "load",
    "quiet_progress",
    "run",
    "__version__",
]
