"""What a lab sees while it runs: its config, device, seed, folders, progress,
and the recorder for its exercises."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from ..base.filters import FILTERS
from ..base.progress import Bar, Reporter
from ..records.jsonfiles import jsonable, number, short, write_atomic
from ..records.parts import FIDELITIES, BorrowedClaim, Check, Claim, FigureRecord, MarkdownRecord, TableRecord
from ..records.results import Exercise, LabResult

#: The type of a lab's config, so that a lab can write ``ctx: LabContext[MyConfig]``.
ConfigT = TypeVar("ConfigT")
T = TypeVar("T")

FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


# --------------------------------------------------------------------------- answers


_ENV = None


def render_markdown(template: str, **values: Any) -> str:
    """Fill a Jinja2 Markdown template with measured values; returns the text, stripped.

    Undefined names are an error, so a typo cannot silently drop a number. Inside math
    (``$...$``) a thousands separator is written ``{,}`` so TeX does not space it. Filters: ``fmt``
    (significant digits), ``sci``, ``pct`` (see :data:`FILTERS`). The environment has
    ``trim_blocks`` and ``lstrip_blocks`` on: a line holding only a ``{% ... %}`` tag leaves no
    empty line, and the newline right after any block tag is removed, so a blank line after
    ``{% endif %}`` or ``{% endfor %}`` does not separate paragraphs. Write ``{% endif +%}``
    (a ``+`` before ``%}``) to keep the newline, or leave two blank lines. No autoescaping:
    the text is Markdown, escaped when it becomes HTML.
    """
    global _ENV
    if _ENV is None:
        import jinja2

        _ENV = jinja2.Environment(
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # Markdown, escaped when it becomes HTML
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        _ENV.filters.update(FILTERS)
    return _group_digits_in_math(_ENV.from_string(template).render(**values).strip())


_MATH = re.compile(r"\$\$.+?\$\$|\$[^$\n]+\$", re.S)
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def _group_digits_in_math(text: str) -> str:
    """Inside ``$...$`` and ``$$...$$``, a thousands separator becomes ``{,}``: TeX sets a bare
    comma in math as punctuation with a space after it (``100, 000``)."""
    return _MATH.sub(lambda m: _THOUSANDS.sub("{,}", m.group(0)), text)


# --------------------------------------------------------------------------- stubs

#: How the error of a stub begins: ``raise NotImplementedError("not implemented yet: <what>")``
#: is what ``labrunner assign`` writes in place of a solution region (no import needed).
NOT_IMPLEMENTED = "not implemented yet"


def is_not_implemented(exc: BaseException) -> bool:
    """Whether ``exc`` is a stub's error: a ``NotImplementedError`` whose message starts with
    ``"not implemented yet"`` (an operation a backend lacks is a real error, not a stub)."""
    return isinstance(exc, NotImplementedError) and str(exc).startswith(NOT_IMPLEMENTED)


def _where_raised(exc: BaseException) -> str:
    """``file.py, line N`` of the innermost frame of ``exc`` (where the stub is), or where
    the stub of an :class:`Unfinished` value was."""
    where = getattr(exc, "labrunner_where", None)
    if isinstance(where, str):
        return where
    tb = exc.__traceback__
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    return f"{Path(tb.tb_frame.f_code.co_filename).name}, line {tb.tb_lineno}"


def not_implemented_message(exc: BaseException) -> str:
    """What the report shows for a stub's error: its message and where the stub is."""
    where = _where_raised(exc)
    return f"{exc} ({where})" if where else str(exc)


class Unfinished:
    """What an exercise function that a stub stopped returns (see :func:`exercise_function`):
    a later exercise that uses it in any way stops with the same "not implemented yet"."""

    def __init__(self, error: BaseException):
        object.__setattr__(self, "_message", str(error))
        object.__setattr__(self, "_where", _where_raised(error))

    def _stop(self, *args: Any, **kwargs: Any) -> Any:
        exc = NotImplementedError(object.__getattribute__(self, "_message"))
        exc.labrunner_where = object.__getattribute__(self, "_where")  # type: ignore[attr-defined]
        raise exc

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        self._stop()

    __call__ = __getitem__ = __iter__ = __len__ = __bool__ = __contains__ = __setattr__ = __setitem__ = _stop
    __float__ = __int__ = __index__ = __neg__ = __pos__ = __abs__ = __round__ = __format__ = _stop
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _stop
    __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = __pow__ = __rpow__ = __matmul__ = __rmatmul__ = _stop
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _stop
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<unfinished: {object.__getattribute__(self, '_message')}>"


#: How many exercise functions are running (nested calls count): inside one, a stub's error
#: leaves the ``with`` block and the function, which returns an :class:`Unfinished` value.
_IN_EXERCISE_FUNCTION: contextvars.ContextVar[int] = contextvars.ContextVar("in_exercise_function", default=0)


#: The exercises opened by the exercise function running now (see exercise_function).
_OPENED: contextvars.ContextVar[list[Exercise] | None] = contextvars.ContextVar("opened", default=None)


def exercise_function(func: Callable[..., T] | None = None, *, values: int = 1) -> Any:
    """Decorate a lab's exercise function, one that opens an exercise and returns what later
    exercises use (``@labrunner.exercise_function``, or ``@labrunner.exercise_function(values=2)``
    for one that returns a pair): when a stub stops it, the exercise records "not implemented
    yet" and the function returns an :class:`Unfinished` value (a tuple of ``values`` of them)
    instead of what it measured, so the lab goes on; a later exercise that uses such a value
    is "not implemented yet" too. A stub that stops the function outside its ``with`` block
    (a function that measures first, then records) is recorded by the exercise the function
    opened last: open it first (``ex = ctx.exercise(...)``, later ``with ex:``). Without the
    decorator a stub's error ends the ``with ctx.exercise(...)`` block and the function goes
    on after it (enough for a function that returns nothing, or only what it computed before
    the stub)."""

    def decorate(func: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> T:
            token = _IN_EXERCISE_FUNCTION.set(_IN_EXERCISE_FUNCTION.get() + 1)
            opened: list[Exercise] = []
            opened_token = _OPENED.set(opened)
            try:
                return func(*args, **kwargs)
            except NotImplementedError as exc:
                if not is_not_implemented(exc):
                    raise
                # Stopped outside its with block (measuring before recording): the exercise
                # it opened records the stub.
                if opened and not opened[-1].not_implemented:
                    opened[-1].not_implemented = not_implemented_message(exc)
                unfinished = Unfinished(exc)
                return unfinished if values == 1 else (unfinished,) * values  # type: ignore[return-value]
            finally:
                _OPENED.reset(opened_token)
                _IN_EXERCISE_FUNCTION.reset(token)

        return wrapper

    return decorate(func) if func is not None else decorate


# --------------------------------------------------------------------------- exercises


def truth_value(value: Any, record: str, name: Any, field: str) -> bool:
    """``value`` as the outcome of a check or claim: a Python bool, or a numpy bool
    (``numpy.bool_``); anything else raises ``TypeError`` naming the ``record`` ("check",
    "claim"), its ``name`` and ``field``. ``bool(x)`` would record ``nan``, ``"False"`` and
    ``[False]`` as true."""
    if isinstance(value, bool):
        return value
    kind = type(value)
    if kind.__module__ == "numpy" and kind.__name__ in ("bool_", "bool"):
        return bool(value)
    raise TypeError(
        f"{record} {name!r}: {field} must be True or False (a bool or a numpy bool), "
        f"got {kind.__name__} {short(value)}"
    )


def part_fidelity(fidelity: str | None, reason: str, record: str, name: Any = None) -> dict[str, Any]:
    """The ``fidelity`` and ``fidelity_reason`` fields of a check, claim, figure or table
    (``record`` and ``name`` say which in the error): None leaves it to the exercise's
    fidelity; a stand-in needs the reason."""
    if fidelity is None and not reason.strip():
        return {}
    what = record if name is None else f"{record} {short(name)}"
    if fidelity is None:
        raise ValueError(f"{what}: a reason is given for a stand-in (fidelity='stand-in')")
    if fidelity not in FIDELITIES:
        raise ValueError(f"{what}: fidelity must be one of {', '.join(FIDELITIES)} or None, not {fidelity!r}")
    if fidelity == "stand-in" and not reason.strip():
        raise ValueError(f"{what}: a stand-in needs the reason")
    return {"fidelity": fidelity, "fidelity_reason": reason.strip()}


class _ClaimsRead(Mapping):
    """The lab's claims as a template sees them, noting each one the template reads."""

    def __init__(self, claims: dict[str, bool]):
        self._claims = claims
        self.read: list[str] = []

    def __getitem__(self, name: str) -> bool:
        value = self._claims[name]
        if name not in self.read:
            self.read.append(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._claims)

    def __len__(self) -> int:
        return len(self._claims)


class ExerciseRecorder:
    """Records one exercise; obtained from ``with ctx.exercise(title, question) as ex:``.

    After the question and the answer, the report shows figures, tables and Markdown blocks
    in the order they were recorded, then the exercise's claims, checks and measurements.
    An exception inside the ``with`` block propagates: the lab fails, with its traceback in
    the report. A stub's ``NotImplementedError("not implemented yet: ...")`` (see
    ``labrunner assign``) ends only this exercise: it is recorded as not implemented, where
    the stub is, and the lab goes on after the ``with`` block (the exercise fails).
    """

    def __init__(self, ctx: LabContext, exercise: Exercise):
        self._ctx = ctx
        self.exercise = exercise

    def __enter__(self) -> ExerciseRecorder:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or not is_not_implemented(exc):
            return False
        self.exercise.not_implemented = not_implemented_message(exc)
        # Inside an exercise function the error goes on out of it, which returns an Unfinished
        # value (exercise_function); else the lab goes on after the with block.
        return _IN_EXERCISE_FUNCTION.get() == 0

    # text
    def question(self, text: str) -> None:
        """Set the exercise's question (Markdown with $math$)."""
        self.exercise.question = text.strip()

    def answer(self, template: str, **values: Any) -> str:
        """Set the answer: a Jinja2 Markdown template filled with measured ``values``; returns
        the rendered text (see :func:`render_markdown` for filters and whitespace rules).

        The template also sees ``claims``: every claim recorded so far in this lab, by name,
        as ``True``/``False`` (``{% if claims.erf_smaller_than_rf %}``), and ``cfg``, the
        lab's config. Every condition in a template reads only ``claims``, ``cfg``, ``setting``
        (a mapping the lab passes with what the run was given: the device, the material
        found) and ``loop``: a conclusion branches on a recorded claim, never on a measured
        number (:func:`labrunner.testing.unrecorded_conditions` finds any other). Record the
        claims before the answer. Calling ``answer`` again replaces the answer.

        A claim of another exercise that the template reads and that is on a stand-in is
        recorded as borrowed (``Exercise.borrowed``): the answer's conclusion leans on the
        stand-in, so the exercise is at least partly a stand-in.
        """
        self.exercise.answer = self._render(template, values)
        return self.exercise.answer

    def _render(self, template: str, values: dict[str, Any]) -> str:
        claims = _ClaimsRead(self._ctx.claims)
        text = render_markdown(template, **{**self._ctx._template_values(values), "claims": claims})
        for name in claims.read:
            self._ctx._borrow(self.exercise, name)
        return text

    def student_answer(self) -> None:
        """The student writes this exercise's answer, in ``answers/<lab>.md`` under the
        exercise's title; the report renders it from the run (``labrunner assign`` puts this
        call where the instructor's version has ``ex.answer(...)`` marked ``# STUDENT ANSWER``)."""
        self.exercise.answer = ""
        self.exercise.answer_by = "student"

    def markdown(self, template: str, **values: Any) -> None:
        """Add a Markdown block (also a template, seeing ``claims`` and ``cfg``) after the records so far."""
        self.exercise.records.append(MarkdownRecord(self._render(template, values)))

    # conclusions
    def claim(
        self,
        name: str,
        holds: Any,
        *,
        statement: str,
        evidence: str = "",
        baseline: str = "",
        hidden: bool = False,
        fidelity: str | None = None,
        reason: str = "",
    ) -> bool:
        """Record a conclusion and the measurement that decides it; returns ``holds``, which
        must be ``True`` or ``False`` (a Python or numpy bool; anything else raises
        ``TypeError`` naming the claim).

        ``name`` is an identifier, unique in the lab, by which answer templates refer to
        the claim (``claims.<name>``). ``statement`` says what is claimed ("the trained
        model's perplexity is below the unigram model's"); ``evidence`` (Markdown) shows
        the numbers that decided it, and ``baseline`` what they were compared with and
        its uncertainty. The report shows every claim with its outcome and evidence.

        ``hidden=True`` keeps the claim back from the student version (``labrunner assign``
        removes the statement) for the grader; answer templates do not see a hidden claim,
        since the student version does not have it.

        ``fidelity`` is the claim's own (``"assignment"``, or ``"stand-in"`` with the
        ``reason``) where it differs from the exercise's; None (the default) takes the
        exercise's. The same keywords mark a check, figure or table.
        """
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"claim name {name!r} must be an identifier")
        if name in self._ctx.claims or name in self._ctx._hidden_claims:
            raise ValueError(f"claim {name!r} recorded twice")
        holds = truth_value(holds, "claim", name, "holds")
        claim = Claim(
            name=name,
            holds=holds,
            statement=statement.strip(),
            evidence=evidence.strip(),
            baseline=baseline.strip(),
            hidden=bool(hidden),
            **part_fidelity(fidelity, reason, "claim", name),
        )
        self.exercise.claims.append(claim)
        self._ctx._claim_owner[name] = (claim, self.exercise)
        if hidden:
            self._ctx._hidden_claims.add(name)
        else:
            self._ctx.claims[name] = holds
        return holds

    def stand_in(self, reason: str) -> None:
        """Mark the exercise as run on a stand-in for the assignment's material, and why
        ("no ImageNet weights offline: a small CNN trained on generated shapes"): every check,
        claim, figure and table of it without a fidelity of its own is then on the stand-in.
        For only some of them, pass ``fidelity="stand-in", reason=...`` to each instead."""
        if not reason or not reason.strip():
            raise ValueError("stand_in() needs the reason")
        self.exercise.fidelity = "stand-in"
        self.exercise.fidelity_reason = reason.strip()

    # figures and tables
    def figure(
        self,
        fig: Any,
        name: str,
        caption: str = "",
        dpi: int = 110,
        *,
        fidelity: str | None = None,
        reason: str = "",
    ) -> Path:
        """Save a matplotlib figure as ``figures/<name>.png`` in the lab's folder and close it
        (``plt.close(fig)``: draw a new figure for the next record); returns the path.

        ``name`` is a file name without extension (letters, digits, ``_``, ``-``, ``.``),
        unique in the lab. The PNG is written at ``dpi`` with a tight bounding box.
        ``fidelity`` and ``reason``: as for :meth:`claim` (None: the exercise's).
        """
        marks = part_fidelity(fidelity, reason, "figure", name)
        path = self._ctx._new_file(f"figures/{name}.png", name)
        import io

        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        plt.close(fig)
        write_atomic(path, buf.getvalue())
        rel = path.relative_to(self._ctx.out_dir).as_posix()
        self.exercise.records.append(FigureRecord(rel, caption, **marks))
        return path

    def table(
        self,
        rows: Sequence[Sequence[Any]] | Sequence[dict[str, Any]],
        columns: Sequence[str] | None = None,
        caption: str = "",
        *,
        fidelity: str | None = None,
        reason: str = "",
    ) -> None:
        """Add a table: a list of rows, either lists (give ``columns``, one name per cell) or
        dicts (columns from the first row's keys unless given). Cells are any JSON values;
        the report shows floats with 4 significant digits, so format a cell as a string to
        choose its digits yourself. A row of the wrong length raises ``ValueError``.
        ``fidelity`` and ``reason``: as for :meth:`claim` (None: the exercise's)."""
        marks = part_fidelity(fidelity, reason, "table")
        rows = list(rows)
        if rows and isinstance(rows[0], dict):
            columns = list(columns or rows[0].keys())
            rows = [[row.get(c) for c in columns] for row in rows]  # type: ignore[union-attr]
        if columns is None:
            raise ValueError("table(): give columns, or rows as dicts")
        for row in rows:
            if len(row) != len(columns):
                raise ValueError(f"table(): row {row!r} has {len(row)} cells, expected {len(columns)}")
        self.exercise.records.append(TableRecord(jsonable(list(columns)), jsonable(rows), caption, **marks))

    # numbers
    def metric(self, name: str, value: Any) -> Any:
        """Record a number (int, float, or a numpy/torch scalar) and return it as a Python
        number; it also goes into the lab's flat ``metrics`` map in ``result.json``. Names are
        unique in the lab (``ValueError`` when recorded twice)."""
        value = number(value)
        self._ctx._add_metric(name, value)
        self.exercise.metrics[name] = value
        return value

    def check(
        self,
        name: str,
        passed: bool,
        *,
        expected: Any = None,
        actual: Any = None,
        tolerance: Any = None,
        points: float = 1.0,
        message: str = "",
        hidden: bool = False,
        fidelity: str | None = None,
        reason: str = "",
    ) -> bool:
        """Record a pass/fail check worth ``points``; returns ``passed``.

        ``expected``, ``actual`` and ``tolerance`` are shown in the report's checks table (any
        JSON values); ``message`` is shown beside a failed check. A lab passes when all its
        checks pass; ``labrunner check`` totals the points. ``hidden=True`` keeps the check
        back from the student version (``labrunner assign`` removes the statement) for the
        grader; it counts like any other check where it runs. ``passed`` must be
        ``True`` or ``False`` (a Python or numpy bool): anything else (``nan``, ``"False"``, a list,
        a tensor) raises ``TypeError`` naming the check, since its truth would not be the
        check's outcome. ``points`` are the check's weight, not the assignment's points
        (those are the exercise's, ``ctx.exercise(..., points=...)``). ``fidelity`` and
        ``reason``: as for :meth:`claim` (None: the exercise's); the other ``check_*``
        methods take them too.
        """
        marks = part_fidelity(fidelity, reason, "check", name)
        passed = truth_value(passed, "check", name, "passed")
        self.exercise.checks.append(
            Check(
                name=name,
                passed=passed,
                expected=jsonable(expected),
                actual=jsonable(actual),
                tolerance=jsonable(tolerance),
                points=float(points),
                message=message,
                hidden=bool(hidden),
                **marks,
            )
        )
        return passed

    def check_close(
        self,
        name: str,
        actual: Any,
        expected: Any,
        tol: float,
        points: float = 1.0,
        *,
        hidden: bool = False,
        fidelity: str | None = None,
        reason: str = "",
    ) -> bool:
        """Pass when ``|actual - expected| <= tol``: ``tol`` (a keyword or the fourth argument)
        is an *absolute* tolerance in the units of the value. For a relative tolerance pass
        ``tol=rel * abs(expected)``. Both values must be numbers."""
        a, e = float(number(actual)), float(number(expected))
        return self.check(
            name,
            bool(abs(a - e) <= tol),
            expected=e,
            actual=a,
            tolerance=f"±{tol:g}",
            points=points,
            hidden=hidden,
            fidelity=fidelity,
            reason=reason,
        )

    def _check_bound(
        self,
        name: str,
        actual: Any,
        limit: Any,
        bound: str,
        *,
        points: float,
        hidden: bool,
        fidelity: str | None,
        reason: str,
    ) -> bool:
        """``check_at_most`` (bound "≤") and ``check_at_least`` (bound "≥"): inclusive."""
        a = number(actual)
        return self.check(
            name,
            bool(a <= limit if bound == "≤" else a >= limit),
            expected=f"{bound} {limit:g}",
            actual=a,
            points=points,
            hidden=hidden,
            fidelity=fidelity,
            reason=reason,
        )

    def check_at_most(
        self,
        name: str,
        actual: Any,
        limit: Any,
        points: float = 1.0,
        *,
        hidden: bool = False,
        fidelity: str | None = None,
        reason: str = "",
    ) -> bool:
        """Pass when ``actual <= limit`` (inclusive); ``actual`` must be a number."""
        return self._check_bound(
            name, actual, limit, "≤", points=points, hidden=hidden, fidelity=fidelity, reason=reason
        )

    def check_at_least(
        self,
        name: str,
        actual: Any,
        limit: Any,
        points: float = 1.0,
        *,
        hidden: bool = False,
        fidelity: str | None = None,
        reason: str = "",
    ) -> bool:
        """Pass when ``actual >= limit`` (inclusive); ``actual`` must be a number."""
        return self._check_bound(
            name, actual, limit, "≥", points=points, hidden=hidden, fidelity=fidelity, reason=reason
        )

    def check_equal(
        self,
        name: str,
        actual: Any,
        expected: Any,
        points: float = 1.0,
        *,
        hidden: bool = False,
        fidelity: str | None = None,
        reason: str = "",
    ) -> bool:
        """Pass when ``actual == expected`` after conversion to JSON values (numbers, strings,
        lists: a tuple equals the list with the same items; ``1 == 1.0``)."""
        a, e = jsonable(actual), jsonable(expected)
        return self.check(
            name,
            bool(a == e),
            expected=e,
            actual=a,
            points=points,
            hidden=hidden,
            fidelity=fidelity,
            reason=reason,
        )


# --------------------------------------------------------------------------- context


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
        self.config = config
        self.device = device
        self.seed = seed
        self.profile = profile
        self.out_dir = Path(out_dir)
        self.cache_dir = Path(cache_dir)
        self.state_dir = Path(state_dir)
        self.deterministic = deterministic
        self._reporter = reporter
        self._files: set[str] = set()
        self._rng = None
        #: Every claim recorded so far in this lab, by name: what answer templates branch on.
        self.claims: dict[str, bool] = {}
        self._hidden_claims: set[str] = set()
        #: Each claim recorded so far and the exercise it belongs to.
        self._claim_owner: dict[str, tuple[Claim, Exercise]] = {}

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
        if fidelity not in FIDELITIES:
            raise ValueError(f"fidelity must be one of {', '.join(FIDELITIES)}, not {fidelity!r}")
        if fidelity == "stand-in" and not reason.strip():
            raise ValueError("a stand-in exercise needs the reason")
        if points is not None:
            if isinstance(points, bool) or not isinstance(points, (int, float)) or not math.isfinite(points):
                raise ValueError(f"exercise {title!r}: points must be a number, not {points!r}")
            if points < 0:
                raise ValueError(f"exercise {title!r}: points must be >= 0, not {points!r}")
        if not isinstance(bonus, bool):
            raise ValueError(f"exercise {title!r}: bonus must be True or False, not {bonus!r}")
        if bonus and points is None:
            raise ValueError(f"exercise {title!r}: a bonus needs its points (points=...)")
        ex = Exercise(
            title=title,
            question=question.strip(),
            fidelity=fidelity,
            fidelity_reason=reason.strip(),
            points=None if points is None else float(points),
            bonus=bonus,
        )
        self.result.exercises.append(ex)
        opened = _OPENED.get()
        if opened is not None:
            opened.append(ex)
        return ExerciseRecorder(self, ex)

    def note(self, template: str, **values: Any) -> None:
        """A Markdown note shown at the top of the lab's section (for example which
        model or data the lab fell back to); a template like an answer's."""
        self.result.notes.append(render_markdown(template, **self._template_values(values)))

    def _template_values(self, values: dict[str, Any]) -> dict[str, Any]:
        return {"claims": self.claims, "cfg": self.config, **values}

    def metric(self, name: str, value: Any) -> Any:
        """Record a lab-level number in the flat ``metrics`` map."""
        value = number(value)
        self._add_metric(name, value)
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
        return self._new_file(name, name)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context of a forward pass at the config's ``precision`` setting on ``ctx.device``:
        ``with ctx.autocast(): logits = model(x)`` runs under ``torch.autocast`` to bf16 or fp16,
        and as it is for fp32 (see [labrunner.precision](#labrunnerprecision)). A ValueError
        when the config has no ``precision`` setting or the device cannot run it."""
        from .. import precision

        if not hasattr(self.config, "precision"):
            raise ValueError(f"ctx.autocast(): the config of lab {self.name!r} has no precision setting")
        return precision.autocast(self.config.precision, self.device)

    # internal
    def _borrow(self, exercise: Exercise, name: str) -> None:
        """Note that ``exercise``'s answer reads claim ``name``: when the claim belongs to
        another exercise and is on a stand-in, the answer leans on that stand-in."""
        claim, owner = self._claim_owner[name]
        if owner is exercise:
            return
        fidelity, reason = owner.fidelity_of(claim)
        if fidelity == "stand-in" and all(b.claim != name for b in exercise.borrowed):
            exercise.borrowed.append(BorrowedClaim(claim=name, exercise=owner.title, reason=reason))

    def _add_metric(self, name: str, value: Any) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("a metric needs a name")
        if name in self.result.metrics:
            raise ValueError(f"metric {name!r} recorded twice")
        self.result.metrics[name] = value

    def _new_file(self, rel: str, name: str) -> Path:
        if not FILE_NAME.match(name):
            raise ValueError(f"invalid file name {name!r}: use letters, digits, '_', '-' and '.'")
        if rel in self._files:
            raise ValueError(f"file {rel!r} written twice")
        self._files.add(rel)
        path = self.out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return path
