"""Progress and log output of a run: live bars on a terminal, plain lines elsewhere.

A lab never prints: it calls ``ctx.log`` and ``ctx.progress``, which end up here.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO


class Bar:
    """One progress bar, from ``ctx.progress``; use it as a context manager, or iterate over
    it. ``desc``, ``total`` (None when unknown) and ``n`` (the steps done) are attributes."""

    def __init__(self, reporter: Reporter, desc: str, total: int | None, iterable=None):
        self.reporter = reporter
        self.desc = desc
        self.total = total
        self.n = 0
        self.postfix: dict[str, Any] = {}
        self.iterable = iterable
        self.closed = False
        self.started = time.perf_counter()
        self.depth = reporter._open(self)

    def update(self, n: int = 1, **postfix: Any) -> None:
        """Advance by ``n`` steps; keyword arguments are shown beside the bar (loss=...)."""
        self.n += n
        if postfix:
            self.postfix.update(postfix)
        self.reporter._update(self)

    def close(self) -> None:
        """End the bar (the ``with`` block and the loop do it); closing twice does nothing."""
        if not self.closed:
            self.closed = True
            self.reporter._close(self)

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Any]:
        try:
            for item in self.iterable:
                yield item
                self.update()
        finally:
            self.close()

    def postfix_text(self) -> str:
        """The values given to ``update``, as shown beside the bar (``loss=0.1234``)."""
        parts = []
        for key, value in self.postfix.items():
            if isinstance(value, float):
                value = f"{value:.4g}"
            parts.append(f"{key}={value}")
        return " ".join(parts)


class QuietBar:
    """What :func:`quiet_progress` returns: a :class:`Bar` that shows and keeps nothing but
    its count (``desc``, ``total``, ``n``), for a measurement run without a context."""

    def __init__(self, iterable: Iterable | None = None, total: int | None = None, desc: str = ""):
        self.iterable, self.total, self.desc, self.n = iterable, total, desc, 0

    def update(self, n: int = 1, **postfix: Any) -> None:
        self.n += n

    def close(self) -> None:
        pass

    def __enter__(self) -> QuietBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("a progress bar without items is not iterable: give it an iterable")
        for item in self.iterable:
            yield item
            self.n += 1


def quiet_progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "") -> QuietBar:
    """``ctx.progress`` for code run without a context: a lab's ``measure_*`` function takes
    ``progress=quiet_progress`` as its default, and the lab passes ``ctx.progress``. The same
    two uses, ``for x in progress(xs, desc=...)`` and ``with progress(total=n, desc=...) as
    bar: bar.update()``, show nothing."""
    return QuietBar(iterable, total, desc)


class Reporter:
    """Silent reporter (``-q``): keeps nothing on screen but warnings."""

    def __init__(self, stream: TextIO | None = None, verbosity: int = 0):
        self.stream = stream or sys.stderr
        self.verbosity = verbosity
        self.bars: list[Bar] = []
        self.prefix = ""

    def bar(self, desc: str = "", total: int | None = None, iterable: Iterable | None = None) -> Bar:
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        return Bar(self, desc, total, iterable)

    def log(self, message: str, level: str = "info") -> None:
        if level == "warning":
            self._write(f"warning: {message}")

    def lab_running(self, name: str) -> None:
        """Called when a lab's ``run`` starts, after its imports and seeding (a worker
        tells its parent, whose ``--lab-timeout`` counts from here)."""

    def _write(self, line: str) -> None:
        print(f"{self.prefix}{line}", file=self.stream, flush=True)

    def _open(self, bar: Bar) -> int:
        self.bars.append(bar)
        return len(self.bars) - 1

    def _update(self, bar: Bar) -> None:
        pass

    def _close(self, bar: Bar) -> None:
        if bar in self.bars:
            self.bars.remove(bar)

    def stop(self) -> None:
        for bar in list(self.bars):
            bar.close()


class PlainReporter(Reporter):
    """Plain log lines, for CI and pipes: a line when a bar starts, every 10 % or
    ten seconds, and when it ends."""

    interval_s = 10.0

    def log(self, message: str, level: str = "info") -> None:
        if level == "debug" and self.verbosity < 1:
            return
        self._write(message if level == "info" else f"{level}: {message}")

    def _open(self, bar: Bar) -> int:
        depth = super()._open(bar)
        bar._last_pct = -1  # type: ignore[attr-defined]
        bar._last_t = bar.started  # type: ignore[attr-defined]
        if self.verbosity >= 1 or depth == 0:
            self._write(f"{'  ' * depth}{bar.desc} ...")
        return depth

    def _update(self, bar: Bar) -> None:
        now = time.perf_counter()
        pct = int(100 * bar.n / bar.total) // 10 * 10 if bar.total else -1
        due = now - bar._last_t >= self.interval_s  # type: ignore[attr-defined]
        if (pct > bar._last_pct and bar.total) or due:  # type: ignore[attr-defined]
            if self.verbosity >= 1 or bar.depth <= 1 or due:
                total = f"/{bar.total}" if bar.total else ""
                self._write(f"{'  ' * bar.depth}{bar.desc}: {bar.n}{total} {bar.postfix_text()}".rstrip())
            bar._last_pct, bar._last_t = pct, now  # type: ignore[attr-defined]

    def _close(self, bar: Bar) -> None:
        super()._close(bar)
        if self.verbosity >= 1 or bar.depth == 0:
            took = time.perf_counter() - bar.started
            self._write(f"{'  ' * bar.depth}{bar.desc}: done in {took:.1f} s {bar.postfix_text()}".rstrip())


class RichReporter(Reporter):
    """Live, nested progress bars on a terminal (rich)."""

    def __init__(self, stream: TextIO | None = None, verbosity: int = 0):
        super().__init__(stream, verbosity)
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = Console(file=self.stream)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[postfix]}"),
            console=self.console,
            transient=False,
        )
        self.progress.start()
        self.tasks: dict[int, Any] = {}

    def log(self, message: str, level: str = "info") -> None:
        if level == "debug" and self.verbosity < 1:
            return
        style = {"warning": "yellow", "error": "red"}.get(level, "")
        text = message if level == "info" else f"{level}: {message}"
        self.progress.console.print(f"{self.prefix}{text}", style=style, markup=False, highlight=False)

    def _open(self, bar: Bar) -> int:
        depth = super()._open(bar)
        self.tasks[id(bar)] = self.progress.add_task("  " * depth + bar.desc, total=bar.total, postfix="")
        return depth

    def _update(self, bar: Bar) -> None:
        task = self.tasks.get(id(bar))
        if task is not None:
            self.progress.update(task, completed=bar.n, postfix=bar.postfix_text())

    def _close(self, bar: Bar) -> None:
        super()._close(bar)
        task = self.tasks.pop(id(bar), None)
        if task is not None:
            # Keep only the outermost bars on screen once they finish.
            if bar.depth > 0:
                self.progress.remove_task(task)
            else:
                self.progress.update(task, completed=bar.total or bar.n, postfix=bar.postfix_text())

    def stop(self) -> None:
        super().stop()
        self.progress.stop()


def make_reporter(verbosity: int = 0, stream: TextIO | None = None) -> Reporter:
    """The reporter for the given verbosity (-1 quiet, 0 normal, 1 verbose)."""
    stream = stream or sys.stderr
    if verbosity < 0:
        return Reporter(stream, verbosity)
    if stream.isatty():
        return RichReporter(stream, verbosity)
    return PlainReporter(stream, verbosity)
