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
"""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

#: Marker for hook implementations in plugins.
hookimpl = pluggy.HookimplMarker("labrunner")

from .context import ExerciseRecorder, LabContext  # noqa: E402
from .lab import Lab, NoConfig  # noqa: E402

__all__ = ["ExerciseRecorder", "Lab", "LabContext", "NoConfig", "hookimpl", "__version__"]
