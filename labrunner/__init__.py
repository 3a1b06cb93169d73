"""labrunner: an educational lab runner for deep-learning coursework.

Plugin authors need only what this module exports::

    import labrunner

    class MyLab(labrunner.Lab):
        ...

    @labrunner.hookimpl
    def register_labs(register):
        register(MyLab())
"""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

#: Marker for hook implementations in plugins.
hookimpl = pluggy.HookimplMarker("labrunner")

from .context import LabContext  # noqa: E402
from .lab import Lab, NoConfig  # noqa: E402

__all__ = ["Lab", "LabContext", "NoConfig", "hookimpl", "__version__"]
