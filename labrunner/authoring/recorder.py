"""The recorder of one exercise (``with ctx.exercise(title) as ex:``): its question and
answer, figures, tables and Markdown blocks, claims, checks and measurements, each written
as a typed record (:mod:`labrunner.records.parts`) that refuses a bad value at once."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..records.jsonfiles import jsonable, number, write_atomic
from ..records.parts import Check, Claim, FigureRecord, MarkdownRecord, TableRecord
from ..records.results import Exercise
from .recording import Recording, part_fidelity, truth_value
from .stubs import in_exercise_function, is_not_implemented, not_implemented_message
from .templates import render_markdown


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

    def __init__(self, recording: Recording, exercise: Exercise):
        #: The lab's records so far (claims, metrics, files), shared by its exercises.
        self._lab = recording
        self.exercise = exercise

    def __enter__(self) -> ExerciseRecorder:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or not is_not_implemented(exc):
            return False
        self.exercise.not_implemented = not_implemented_message(exc)
        # Inside an exercise function the error goes on out of it, which returns an Unfinished
        # value (exercise_function); else the lab goes on after the with block.
        return not in_exercise_function()

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
        claims = _ClaimsRead(self._lab.claims)
        text = render_markdown(template, **{**self._lab.template_values(values), "claims": claims})
        for name in claims.read:
            self._lab.borrow(self.exercise, name)
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
        self._lab.check_claim_name(name)
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
        self._lab.add_claim(claim, self.exercise)
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
        path = self._lab.new_file(f"figures/{name}.png", name)
        import io

        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        plt.close(fig)
        write_atomic(path, buf.getvalue())
        rel = path.relative_to(self._lab.out_dir).as_posix()
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
        self._lab.add_metric(name, value)
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
