"""What a lab sees while it runs (:class:`LabContext`): its config, device, seed, folders,
progress and log, and the exercises it opens, each recorded by an
:class:`~labrunner.authoring.recorder.ExerciseRecorder`.

The recorder, the stubs of solution regions (:func:`exercise_function`) and the answer
templates (:func:`render_markdown`) have modules of their own; they are importable from here
too, where lab authors and plugins find them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Generic, TypeVar

from ..base.filters import FILTERS
from ..base.progress import Bar, Reporter
from ..records.jsonfiles import number
from ..records.results import LabResult
from .recorder import ExerciseRecorder
from .recording import Recording, new_exercise
from .stubs import exercise_function
from .templates import render_markdown

#: Also importable from here: the recorder, the stub decorator, the answer templates and
#: their filters.
__all__ = ["FILTERS", "ConfigT", "ExerciseRecorder", "LabContext", "exercise_function", "render_markdown"]

#: The type of a lab's config, so that a lab can write ``ctx: LabContext[MyConfig]``.
ConfigT = TypeVar("ConfigT")


class LabContext(Generic[ConfigT]):
    """Given to ``Lab.run``; annotate it as ``LabContext[MyConfig]`` so that ``ctx.config``
    has the config's type. Attributes:

    - ``config``: the resolved, validated config (a frozen instance of ``Lab.Config``).
    - ``device``: a ``torch.device`` (the run's ``--device``).
    - ``seed``: the run's seed (an int); ``rng`` is a ``numpy.random.Generator``
      (``numpy.random.default_rng(seed)``) and ``torch_generator()`` a ``torch.Generator``
      seeded with it. random, numpy and torch are also seeded before ``run`` starts.
    - ``profile``: ``smoke``, ``quick``, ``full`` or a lab-defined profile name.
    - ``out_dir``: this lab's folder in the run (use ``ex.figure`` rather than writing here).
    - ``cache_dir``: a persistent folder shared by runs of this lab (weights, datasets).
    - ``state_dir``: a persistent folder for this exact config and seed (checkpoints to
      resume an interrupted run).
    - ``deterministic``: whether ``--deterministic`` was given.
    - ``claims``: every claim recorded so far in the lab, by name (what templates see).
    """

    def __init__(
        self,
        result: LabResult,
        config: ConfigT,
        *,
        device: Any,
        seed: int,
        profile: str,
        out_dir: Path,
        cache_dir: Path,
        state_dir: Path,
        reporter: Reporter,
        deterministic: bool = False,
    ):
        self.result = result
        self._recording = Recording(result, config, out_dir)
        self.config = config
        self.device = device
        self.seed = seed
        self.profile = profile
        self.out_dir = Path(out_dir)
        self.cache_dir = Path(cache_dir)
        self.state_dir = Path(state_dir)
        self.deterministic = deterministic
        self._reporter = reporter
        self._rng = None
        #: Every claim recorded so far in this lab, by name: what answer templates branch on.
        self.claims: dict[str, bool] = self._recording.claims

    @property
    def name(self) -> str:
        """The lab's name."""
        return self.result.lab

    @property
    def rng(self):
        """A ``numpy.random.Generator`` (``numpy.random.default_rng(seed)``), created on first
        use and then shared by the whole run of the lab."""
        if self._rng is None:
            import numpy as np

            self._rng = np.random.default_rng(self.seed)
        return self._rng

    def torch_generator(self, device: Any = None, offset: int = 0):
        """A new ``torch.Generator`` on ``device`` (default: CPU) seeded with ``seed + offset``.
        Each call starts a fresh stream: use different offsets for independent draws, and
        draw on the CPU then ``.to(ctx.device)`` so that numbers do not depend on the device."""
        import torch

        gen = torch.Generator(device=device or "cpu")
        gen.manual_seed(self.seed + offset)
        return gen

    def exercise(
        self,
        title: str,
        question: str = "",
        *,
        fidelity: str = "assignment",
        reason: str = "",
        points: float | None = None,
        bonus: bool = False,
    ) -> ExerciseRecorder:
        """Open the next exercise; exercises appear in the report in this order.

        ``fidelity`` is ``"assignment"`` (the assignment's own material) or ``"stand-in"``
        (with the ``reason``); ``ex.stand_in(reason)`` sets it later. It is the default of the
        exercise's checks, claims, figures and tables, each of which can carry its own
        (``ex.claim(..., fidelity="stand-in", reason=...)``); the report derives the
        exercise's fidelity from them ("partly stand-in" when they differ).

        ``points`` is what the assignment gives this exercise (``points=8``), ``bonus=True``
        when those points are a bonus; leave ``points`` out when the assignment gives none.
        The report and ``labrunner check`` show them beside the checks passed, and
        ``labrunner grade`` scores the exercise out of them. A check's own ``points`` only
        weigh the checks against each other.
        """
        ex = new_exercise(title, question, fidelity=fidelity, reason=reason, points=points, bonus=bonus)
        return ExerciseRecorder(self._recording, self._recording.open_exercise(ex))

    def note(self, template: str, **values: Any) -> None:
        """A Markdown note shown at the top of the lab's section (for example which
        model or data the lab fell back to); a template like an answer's."""
        self.result.notes.append(render_markdown(template, **self._recording.template_values(values)))

    def metric(self, name: str, value: Any) -> Any:
        """Record a lab-level number in the flat ``metrics`` map."""
        value = number(value)
        self._recording.add_metric(name, value)
        return value

    def log(self, message: str, level: str = "info") -> None:
        """A line of output (``info``, ``debug``, ``warning``); labs never print."""
        self._reporter.log(f"[{self.name}] {message}", level)

    def progress(self, iterable: Iterable | None = None, *, total: int | None = None, desc: str = "") -> Bar:
        """A progress bar, nested under the lab's bar: ``for x in ctx.progress(xs, desc=...)``
        or ``with ctx.progress(total=n, desc=...) as bar: bar.update(loss=...)``."""
        return self._reporter.bar(desc or self.name, total=total, iterable=iterable)

    def file(self, name: str) -> Path:
        """A path for an extra output file in the lab's folder: ``name`` is a plain file name
        (letters, digits, ``_``, ``-``, ``.``; no folders), unique in the lab. The lab writes
        the file itself; it is kept in the run folder but not shown in the report."""
        return self._recording.new_file(name, name)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context of a forward pass at the config's ``precision`` setting on ``ctx.device``:
        ``with ctx.autocast(): logits = model(x)`` runs under ``torch.autocast`` to bf16 or fp16,
        and as it is for fp32 (see [labrunner.precision](#labrunnerprecision)). A ValueError
        when the config has no ``precision`` setting or the device cannot run it."""
        from .. import precision

        if not hasattr(self.config, "precision"):
            raise ValueError(f"ctx.autocast(): the config of lab {self.name!r} has no precision setting")
        return precision.autocast(self.config.precision, self.device)
