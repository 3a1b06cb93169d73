"""Signals that stop a run: Ctrl-C (SIGINT), SIGTERM (``kill``, ``timeout``, a scheduler)
and SIGHUP (a closed terminal) all take the same path. While a run is in progress,
SIGTERM and SIGHUP raise :class:`Terminated`, a ``KeyboardInterrupt``, so every place that
handles Ctrl-C handles them: running labs are stopped (local workers) or cancelled (SLURM
jobs), run.json says ``interrupted``, and the run can be resumed. The exit status is
``128 + the signal``: 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

#: The signals turned into :class:`Terminated` while a run is in progress.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))

_last = signal.SIGINT


class Terminated(KeyboardInterrupt):
    """A run stopped by a signal other than SIGINT."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _handler(signum: int, _frame: object) -> None:
    global _last
    _last = signum
    raise Terminated(signum)


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`Terminated` inside the block (main thread only;
    a handler the program installed itself is left alone)."""
    global _last
    _last = signal.SIGINT
    installed: dict[int, object] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) in (signal.SIG_DFL, None):
                installed[signum] = signal.signal(signum, _handler)
    try:
        yield
    finally:
        for signum, previous in installed.items():
            signal.signal(signum, previous)  # type: ignore[arg-type]


def interrupted_status(exc: BaseException | None = None) -> int:
    """The exit status of an interrupted run: 128 + the signal that stopped it."""
    if isinstance(exc, Terminated):
        return 128 + exc.signum
    if exc is not None:
        return 128 + signal.SIGINT
    return 128 + int(_last)
