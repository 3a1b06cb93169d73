"""The Python API: what ``labrunner run``, ``report``, ``check`` and ``submit`` do, as
functions for notebooks and scripts. The command line is a thin layer over these.

In a notebook::

    import labrunner
    run = labrunner.run("all", profile="quick")     # same layers, cache, run folder, report
    run                                             # the report, inline
    run.labs["rnn_lm"].metrics["valid_ppl"]

Errors are exceptions: a bad setting raises :class:`labrunner.UsageError` with the one
line the command line prints; nothing here calls ``sys.exit``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .base.errors import UsageError
from .settings.arguments import PARAMETERS, check_arguments
from .settings.options import RunOptions

__all__ = ["ExerciseView", "LabView", "Run", "load", "run"]


def in_notebook() -> bool:
    """True inside a Jupyter kernel (Colab included)."""
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return shell is not None and shell.__class__.__name__ in ("ZMQInteractiveShell", "Shell")


def _reporter(verbosity: int) -> Any:
    from .base.progress import PlainReporter, RichReporter, make_reporter

    if verbosity >= 0 and in_notebook():
        try:
            import ipywidgets  # noqa: F401  (rich's live display in Jupyter needs it)
        except ImportError:
            return PlainReporter(sys.stdout, verbosity)
        return RichReporter(sys.stdout, verbosity)
    return make_reporter(verbosity)


def prepare(
    labs: str | Iterable[str] = "all",
    *,
    profile: str | None = None,
    device: str | None = None,
    seed: int | None = None,
    settings: Mapping[str, Any] | None = None,
    set: str | Sequence[str] = (),
    config: str | Path | None = None,
    out: str | Path | None = None,
    force: bool = False,
    deterministic: bool | None = None,
    threads: int | None = None,
    isolation: str | None = None,
    lab_timeout: float | None = None,
    author: str | None = None,
    plugins_dir: str | Path | Sequence[str | Path] = (),
    executor: str | None = None,
    jobs: int | str | None = None,
    executor_options: Mapping[str, Any] | None = None,
    seeds: str | Sequence[int] | None = None,
    detach: bool = False,
    precision: str | None = None,
    writes: bool = True,
    plugins: Any = None,
) -> tuple[Any, Any]:
    """Load the plugins and resolve every setting of a run; returns (plugins, settings).
    Raises UsageError and writes nothing when any input is bad."""
    checked = check_arguments("labrunner.prepare", {k: v for k, v in locals().items() if k in PARAMETERS})
    return prepare_options(RunOptions.from_values(checked), plugins=plugins, writes=writes)


def prepare_options(options: RunOptions, *, plugins: Any = None, writes: bool = True) -> tuple[Any, Any]:
    """:func:`prepare` for options already built (by the command line, or by :func:`run`):
    load the plugins unless given, and resolve the settings (``writes``: the run will run, so
    its device and output folder are checked)."""
    from .execution.executors import registered_executors
    from .settings.plugins import load_plugins
    from .settings.resolve import resolve_run

    if plugins is None:
        plugins = load_plugins([Path(p) for p in options.plugins_dir])
    executors = list(registered_executors(plugins))
    return plugins, resolve_run(plugins, options, check_device=writes, executors=executors)


# --------------------------------------------------------------------------- run and load


def run(
    labs: str | Iterable[str] = "all",
    *,
    profile: str | None = None,
    device: str | None = None,
    seed: int | None = None,
    settings: Mapping[str, Any] | None = None,
    out: str | Path | None = None,
    force: bool = False,
    isolation: str | None = None,
    deterministic: bool | None = None,
    threads: int | None = None,
    lab_timeout: float | None = None,
    config: str | Path | None = None,
    author: str | None = None,
    plugins_dir: str | Path | Sequence[str | Path] = (),
    set: str | Sequence[str] = (),
    executor: str | None = None,
    jobs: int | str | None = None,
    executor_options: Mapping[str, Any] | None = None,
    seeds: str | Sequence[int] | None = None,
    detach: bool = False,
    precision: str | None = None,
    verbosity: int = 0,
    report: bool = True,
    reporter: Any = None,
    plugins: Any = None,
) -> Run:
    """Run labs as ``labrunner run`` does and return the :class:`Run`.

    ``labs`` is ``"all"``, a lab name or a list of names; ``settings`` changes lab
    settings (``{"rnn_lm.epochs": 4}`` or ``{"rnn_lm": {"epochs": 4}}``, Python values);
    ``set`` takes ``--set`` strings (YAML values). Unset options come from the config file
    (``config``, else ``./labrunner.yaml``) and the defaults: the ``quick`` profile, the
    best device, seed 0, ``reports/`` as the output folder, each lab in its own worker
    process (``isolation="none"`` runs labs in this process, for debugging a lab).

    Interrupting (Ctrl-C, or the notebook's interrupt button) stops the run as the
    command line does: finished labs are kept and the returned run has
    ``interrupted == True``; running the same call again resumes.
    """
    checked = check_arguments("labrunner.run", {k: v for k, v in locals().items() if k in PARAMETERS})
    options = RunOptions.from_values(checked)
    return run_options(options, verbosity=verbosity, report=report, reporter=reporter, plugins=plugins)


def run_options(
    options: RunOptions, *, verbosity: int = 0, report: bool = True, reporter: Any = None, plugins: Any = None
) -> Run:
    """:func:`run` for options already built (by the command line)."""
    from .execution.runner import execute

    plugins, resolved = prepare_options(options, plugins=plugins)
    own_reporter = reporter is None
    reporter = reporter or _reporter(verbosity)
    from .base.stopping import stop_signals

    with contextlib.ExitStack() as hold:  # the run folder stays locked while its report renders
        try:
            with stop_signals():  # SIGTERM and SIGHUP stop the run as Ctrl-C does
                run_dir, results, interrupted = execute(resolved, plugins, reporter, hold=hold)
        finally:
            if own_reporter:
                reporter.stop()
        result = Run(run_dir, interrupted=interrupted, plugins=plugins)
        result.results = results
        result.settings = resolved
        if report and not resolved.detach:
            try:
                result.report_paths = result.render(author=options.author)
            except UsageError:
                raise
            except Exception as exc:  # the results are saved: Run.render() can try again
                result.report_error = f"rendering the report failed: {type(exc).__name__}: {exc}"
    return result


def load(path: str | Path | None = None, *, out: str | Path | None = "reports") -> Run:
    """Open a saved run folder (default: ``reports/latest``); raises UsageError when it is
    not one or a file in it is invalid."""
    from .records.folders import find_run_dir

    check_arguments("labrunner.load", {"path": path, "out": out})
    run_dir = find_run_dir(
        Path(path) if path is not None else None, Path(out if out is not None else "reports")
    )
    loaded = Run(run_dir)
    _ = loaded.data  # validate now: a bad folder raises here, not on first use
    return loaded


# --------------------------------------------------------------------------- the objects


class Run:
    """A run folder and what it holds.

    - ``path``: the run folder; ``labs``: each lab by name (a :class:`LabView`);
    - ``status``: ``finished``, ``interrupted`` or ``running`` (run.json), ``passed``:
      every lab of a complete run passed, ``exit_status``: what ``labrunner run`` exits with;
    - ``report_html`` / ``report_md``: the report files (None until rendered);
    - :meth:`check`, :meth:`submit`, :meth:`render`; displayed in a notebook, the run shows
      its report inline.
    """

    def __init__(self, path: str | Path, *, interrupted: bool = False, plugins: Any = None):
        self.path = Path(path).absolute()
        self.interrupted = interrupted
        self.report_paths: list[Path] = []
        self.report_error = ""
        self.results: list[Any] = []
        #: The resolved settings (``labrunner.settings.config.RunSettings``) of a run made by :func:`run`.
        self.settings: Any = None
        #: Files in the zip :meth:`submit` built last.
        self.bundle_files = 0
        self._plugins = plugins
        self._data: Any = None

    @property
    def data(self) -> Any:
        """The loaded run folder (a :class:`labrunner.records.runfolder.RunData`)."""
        if self._data is None:
            from .records.runfolder import load_run

            self._data = load_run(self.path)
        return self._data

    def reload(self) -> Run:
        """Read the run folder again (after ``labrunner report`` or a finished job)."""
        self._data = None
        return self

    @property
    def labs(self) -> dict[str, LabView]:
        return {lab.lab: LabView(self, lab) for lab in self.data.labs}

    @property
    def status(self) -> str:
        info = self.data.run_info
        return info.status if info is not None else str(self.data.info.get("status", ""))

    @property
    def passed(self) -> bool:
        return not self.data.incomplete and self.data.all_passed

    @property
    def exit_status(self) -> int:
        """0 when every lab passed, 128 + the signal after an interruption (130 for
        Ctrl-C, 143 for SIGTERM), else 1."""
        if self.interrupted or self.status == "interrupted":
            from .base.stopping import interrupted_status

            return interrupted_status() if self.interrupted else 130
        return 0 if self.passed else 1

    @property
    def report_html(self) -> Path | None:
        path = self.path / "report.html"
        return path if path.is_file() else None

    @property
    def report_md(self) -> Path | None:
        path = self.path / "report.md"
        return path if path.is_file() else None

    def render(self, formats: Sequence[str] = ("html", "md"), *, author: str | None = None) -> list[Path]:
        """Render the report again from the saved files (``labrunner report``)."""
        from .report.render import render_report

        checked = check_arguments("Run.render", {"formats": formats, "author": author})
        formats = [checked["formats"]] if isinstance(checked["formats"], str) else checked["formats"]
        paths = render_report(self.path, author=author, formats=formats, plugins=self._plugins)
        self._data = None
        return paths

    def check(self) -> dict[str, Any]:
        """Every check with its points, per lab and in total (``labrunner check --json``);
        ``["passed"]`` is True only for a complete run whose labs all passed; ``["mixed"]``
        is True when the labs differ in profile or seed (``["mixed_labs"]`` names them)."""
        from .report.grading import grade

        return grade(self.data, self._plugins)

    def submit(
        self,
        path: str | Path | None = None,
        *,
        partial: bool = False,
        allow_stand_ins: bool = False,
        allow_mixed: bool = False,
        warn: Any = None,
    ) -> Path:
        """Pack the report, the results and the labs' code into a verified zip (``labrunner
        submit``); ``warn`` gets a line per lab whose code is not the code the run used.
        Raises :class:`labrunner.course.bundle.NotSubmittable` (labs not run, labs that differ in
        profile or seed unless ``allow_mixed``, stand-ins) or :class:`labrunner.course.bundle.BundleError`."""
        from .course.bundle import make_bundle

        check_arguments(
            "Run.submit",
            {
                "path": path,
                "partial": partial,
                "allow_stand_ins": allow_stand_ins,
                "allow_mixed": allow_mixed,
                "warn": warn,
            },
        )
        dest = Path(path) if path is not None else Path(f"submission-{self.path.resolve().name}.zip")
        written, self.bundle_files = make_bundle(
            self.path,
            dest,
            partial=partial,
            allow_stand_ins=allow_stand_ins,
            allow_mixed=allow_mixed,
            plugins=self._plugins,
            warn=warn,
        )
        return written

    def __repr__(self) -> str:
        try:
            labs = ", ".join(f"{name}: {lab.status}" for name, lab in self.labs.items())
            return f"<labrunner.Run {self.path} {self.status}: {labs}>"
        except UsageError as exc:
            return f"<labrunner.Run {self.path} (unreadable: {exc})>"

    def _repr_html_(self) -> str:
        from .report.inline import run_html

        return run_html(self.data)


class LabView:
    """One lab of a run: its saved result (``status``, ``metrics``, ``exercises``,
    ``checks``, ``claims``, ``error``, and every other field of
    :class:`labrunner.records.results.LabResult`); displayed in a notebook, it shows its section of
    the report."""

    def __init__(self, run: Run, result: Any):
        self.run = run
        self.result = result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.result, name)

    @property
    def exercises(self) -> list[ExerciseView]:
        return [ExerciseView(self, i, ex) for i, ex in enumerate(self.result.exercises)]

    @property
    def claims(self) -> dict[str, bool]:
        """Every claim of the lab by name, with its outcome."""
        return {c.name: c.holds for ex in self.result.exercises for c in ex.claims}

    @property
    def passed(self) -> bool:
        return self.result.status == "passed"

    def __repr__(self) -> str:
        return (
            f"<labrunner lab {self.result.lab}: {self.result.status}, {len(self.result.exercises)} exercises>"
        )

    def _repr_html_(self) -> str:
        from .report.inline import lab_html

        return lab_html(self.run.data, self.result.lab)


class ExerciseView:
    """One exercise of a lab (``title``, ``question``, ``answer``, ``metrics``,
    ``checks``, ``claims``, ``fidelity``); displayed in a notebook, it renders as in the
    report."""

    def __init__(self, lab: LabView, index: int, exercise: Any):
        self.lab = lab
        self.index = index
        self.exercise = exercise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.exercise, name)

    def __repr__(self) -> str:
        return f"<labrunner exercise {self.exercise.title!r} of {self.lab.result.lab}>"

    def _repr_html_(self) -> str:
        from .report.inline import exercise_html

        return exercise_html(self.lab.run.data, self.lab.result.lab, self.index)
