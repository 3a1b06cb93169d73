"""Answers the student writes (``answers/<lab>.md`` of an assigned lab), bound to their run.

An exercise whose answer is the student's (``ex.student_answer()``, what ``labrunner
assign`` writes for an answer marked ``# STUDENT ANSWER``) takes its answer from the
section of ``answers/<lab>.md`` headed with the exercise's title. ``labrunner run`` copies
the file into the lab's folder of the run (``<lab>/answers.md``), and the report renders
it from there, with that run's values: ``{{ metrics.NAME }}``, ``{{ claims.NAME }}``,
``{{ figures.NAME }}`` and the filters ``fmt``, ``sci``, ``pct``, in a sandboxed Jinja2
environment with autoescaping, where an undefined name is an error.

:func:`check_answer` says what ``labrunner check`` flags for each such exercise: no answer;
a reference to a metric, claim or figure the run did not record; a template that does not
render; a number typed in the answer that matches none of the exercise's measurements (its
metrics, checks, claims, tables and Markdown) as rounded to the digits written.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .jsonfiles import read_text_file
from .parts import FigureRecord, MarkdownRecord, TableRecord

if TYPE_CHECKING:
    from .results import Exercise, LabResult

#: The biggest answer file read.
MAX_ANSWER_BYTES = 1024 * 1024
#: What the run folder keeps of the student's answer file, in the lab's folder.
RUN_FILE = "answers.md"
#: Whole numbers up to this are counted words ("the 3 layers"), never flagged.
SMALL_INTEGER = 10

_COMMENT = re.compile(r"<!--.*?-->", re.S)
_TEMPLATE_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_NUMBER = re.compile(
    r"(?<![\w.])(?<!\w[-−])(?P<sign>[-−])?(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?P<frac>\.\d+)?"
    r"(?:[eE](?P<exp>[-+]?\d+)|\s*[×x]\s*10\^\{?(?P<exp2>[-−+]?\d+)\}?)?(?P<pct>\s?%)?(?![\w])"
)


# --------------------------------------------------------------------------- the file


def parse_answers(text: str) -> dict[str, str]:
    """The sections of an answer file: exercise title (a ``## `` heading) -> the answer's
    Markdown, without the quoted question (the ``>`` lines under the heading) and comments."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in _COMMENT.sub("", text).splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line[3:].strip(), [])
            continue
        if line.startswith("# ") and current is None:
            continue
        if current is not None:
            current.append(line)
    out = {}
    for title, lines in sections.items():
        while lines and (not lines[0].strip() or lines[0].lstrip().startswith(">")):
            lines.pop(0)
        out[title] = "\n".join(lines).strip()
    return out


def read_answer_file(path: Path) -> str:
    """The text of an answer file; a UsageError (one line) when it cannot be used."""
    return read_text_file(path, max_bytes=MAX_ANSWER_BYTES)


# --------------------------------------------------------------------------- rendering


@dataclass
class AnswerCheck:
    """A student's answer to one exercise as rendered from the run, and what is wrong with it."""

    exercise: str
    source: str
    rendered: str = ""
    problems: list[str] = field(default_factory=list)


class _Figure(str):
    """``{{ figures.NAME }}``: a reference to the figure in the text."""


_ENV = None


def _environment() -> Any:
    global _ENV
    if _ENV is None:
        import jinja2
        from jinja2.sandbox import SandboxedEnvironment

        from ..base.filters import FILTERS

        _ENV = SandboxedEnvironment(
            undefined=jinja2.StrictUndefined, autoescape=True, trim_blocks=True, lstrip_blocks=True
        )
        _ENV.filters.update(FILTERS)
    return _ENV


def _namespace(lab: LabResult) -> dict[str, dict[str, Any]]:
    figures = {}
    for ex in lab.exercises:
        for record in ex.records:
            if isinstance(record, FigureRecord):
                name = Path(record.path).stem
                caption = record.caption
                figures[name] = _Figure(
                    f"*Figure “{name}”*" + (f" ({caption.rstrip('.')})" if caption else "")
                )
    claims = {c.name: c.holds for ex in lab.exercises for c in ex.claims if not c.hidden}
    metrics = {k: _number(v) for k, v in lab.metrics.items()}
    return {"metrics": metrics, "claims": claims, "figures": figures}


def _number(value: Any) -> Any:
    return float(value) if value in ("nan", "inf", "-inf") else value


def _references(source: str) -> list[tuple[str, str]]:
    """(namespace, name) of every ``metrics.x`` / ``metrics["x"]`` (and claims, figures)."""
    from jinja2 import nodes

    tree = _environment().parse(source)
    out = []
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        base = node.node
        if isinstance(base, nodes.Name) and base.name in ("metrics", "claims", "figures"):
            if isinstance(node, nodes.Getattr):
                out.append((base.name, node.attr))
            elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                out.append((base.name, node.arg.value))
    return out


def render_answer(source: str, lab: LabResult, exercise: str) -> AnswerCheck:
    """The student's answer rendered with ``lab``'s values; a reference that does not exist
    or a template error is a problem (the answer is then shown as written)."""
    from ..base.errors import did_you_mean

    check = AnswerCheck(exercise=exercise, source=source)
    if not source.strip():
        check.problems.append("no answer")
        return check
    values = _namespace(lab)
    kinds = {"metrics": "metric", "claims": "claim", "figures": "figure"}
    try:
        for space, name in _references(source):
            if name not in values[space]:
                check.problems.append(
                    f"{{{{ {space}.{name} }}}}: this run recorded no {kinds[space]} {name!r}"
                    f"{did_you_mean(name, values[space])}"
                )
    except Exception as exc:  # a template syntax error
        check.problems.append(f"the answer is not a valid template ({_one_line(exc)})")
        check.rendered = source
        return check
    if check.problems:
        check.rendered = source
        return check
    try:
        check.rendered = str(_environment().from_string(source).render(**values)).strip()
    except Exception as exc:  # undefined names, sandbox refusals: the check reports them
        check.problems.append(f"the answer does not render ({_one_line(exc)})")
        check.rendered = source
    return check


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


# --------------------------------------------------------------------------- numbers


@dataclass(frozen=True)
class WrittenNumber:
    """A number typed in an answer: its value and half the last digit written."""

    text: str
    value: float
    half_ulp: float
    percent: bool


def written_numbers(source: str) -> list[WrittenNumber]:
    """The numbers typed in the text of an answer (not those its template tags fill in)."""
    text = _TEMPLATE_TAG.sub(" ", _COMMENT.sub(" ", source))
    text = re.sub(r"`[^`]*`", " ", text)  # inline code: names, not measurements
    out = []
    for m in _NUMBER.finditer(text):
        digits = m.group("int").replace(",", "")
        frac = m.group("frac") or ""
        exp = m.group("exp") or (m.group("exp2") or "").replace("−", "-")
        value = float(digits + frac)
        half = 0.5 * 10 ** (-(len(frac) - 1)) if frac else 0.5
        if exp:
            value *= 10 ** int(exp)
            half *= 10 ** int(exp)
        if m.group("sign"):
            value = -value
        out.append(WrittenNumber(m.group(0).strip(), value, half, bool(m.group("pct"))))
    return out


def _numbers_in(value: Any) -> list[float]:
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, (int, float)):
        return [float(value)] if math.isfinite(value) else []
    if isinstance(value, str):
        return [n.value for n in written_numbers(value)]
    if isinstance(value, dict):
        return [x for v in value.values() for x in _numbers_in(v)]
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _numbers_in(v)]
    return []


def measurements(ex: Exercise, lab: LabResult) -> list[float]:
    """Every number the report shows for ``ex``: metrics, checks, claims' evidence and
    baselines, table cells, Markdown blocks, and the lab's settings."""
    found = _numbers_in(list(ex.metrics.values()))
    for c in ex.checks:
        found += _numbers_in([c.expected, c.actual, c.tolerance])
    for c in ex.claims:
        found += _numbers_in([c.evidence, c.baseline, c.statement])
    for record in ex.records:
        if isinstance(record, TableRecord):
            found += _numbers_in(record.rows)
        elif isinstance(record, MarkdownRecord):
            found += _numbers_in(record.text)
    found += _numbers_in(lab.config)
    return found


def unmatched_numbers(source: str, ex: Exercise, lab: LabResult) -> list[str]:
    """The numbers typed in ``source`` that match none of the exercise's measurements within
    the rounding of the digits written (a number copied from elsewhere). Whole numbers up to
    10 and numbers in the question or title are not measurements and pass."""
    known = measurements(ex, lab)
    given = {n.value for n in written_numbers(ex.question + " " + ex.title)}
    bad = []
    for n in written_numbers(source):
        if n.value in given or (n.value.is_integer() and abs(n.value) <= SMALL_INTEGER and not n.percent):
            continue
        targets = [n.value] + ([n.value / 100] if n.percent else [])
        halves = [n.half_ulp] + ([n.half_ulp / 100] if n.percent else [])
        if not any(
            abs(m - t) <= h * (1 + 1e-9) + 1e-12 * abs(t) or abs(abs(m) - abs(t)) <= h * (1 + 1e-9)
            for m in known
            for t, h in zip(targets, halves, strict=True)
        ):
            bad.append(n.text)
    return bad


def check_answer(source: str | None, ex: Exercise, lab: LabResult) -> AnswerCheck:
    """Render a student's answer to ``ex`` and list what ``labrunner check`` flags."""
    if source is None or not source.strip():
        return AnswerCheck(exercise=ex.title, source="", problems=["no answer"])
    check = render_answer(source, lab, ex.title)
    for number in unmatched_numbers(source, ex, lab):
        check.problems.append(
            f"the number {number} matches none of this exercise's measurements as rounded "
            "(cite it from the run: {{ metrics.NAME }})"
        )
    return check


def apply_answers(lab: LabResult, text: str | None) -> dict[str, AnswerCheck]:
    """Fill in each student-answered exercise of ``lab`` (read back from a run folder) with
    the student's rendered answer; returns the check of each, by exercise title."""
    sections = parse_answers(text) if text is not None else {}
    out = {}
    for ex in lab.exercises:
        # A stub may stop an exercise before its answer is handed to the student; the answer
        # file's section says it is the student's all the same.
        if ex.answer_by != "student" and ex.title not in sections:
            continue
        ex.answer_by = "student"
        check = check_answer(sections.get(ex.title), ex, lab)
        if text is None:
            check.problems = [f"no answer (no answers/{lab.lab}.md in the run)"]
        ex.answer = check.rendered
        out[ex.title] = check
    return out
