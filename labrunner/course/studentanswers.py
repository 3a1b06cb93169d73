"""The student answers of a lab: the ``ex.answer(...)`` statements marked ``# STUDENT ANSWER``,
the title and question of each one's exercise (as far as the source writes them as text),
the answer file ``answers/<lab>.md`` the student fills in, and the model answer's template
blanked in the student version."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from .markers import AssignError, check_parses

_STUDENT_ANSWER = re.compile(r"^#+\s*STUDENT ANSWER\s*$")


@dataclass
class StudentAnswer:
    """An ``ex.answer(...)`` marked ``# STUDENT ANSWER``: the exercise's title and question
    (as far as they are written as text in the source) and the template it blanks."""

    line: int
    title: str
    question: str
    function: str = ""  # the exercise function it is in (for the order of the answer file)


# --------------------------------------------------------------------------- finding them


def marked_answers(tree: ast.AST, source_lines: list[str], comments: list[tuple[int, int, str]], path: str):
    """The ``X.answer(...)`` statements under a ``# STUDENT ANSWER`` line."""
    by_line = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            by_line.setdefault(node.lineno, node)
    out = []
    for line, col, text in comments:
        if not _STUDENT_ANSWER.match(text):
            continue
        if source_lines[line - 1][:col].strip():
            raise AssignError(f"{path}, line {line}: '# STUDENT ANSWER' must be on a line of its own")
        nxt = line + 1
        while nxt <= len(source_lines) and not source_lines[nxt - 1].strip():
            nxt += 1
        stmt = by_line.get(nxt)
        call = stmt.value if stmt is not None else None
        if not (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "answer"
            and isinstance(call.func.value, ast.Name)
        ):
            raise AssignError(
                f"{path}, line {line}: '# STUDENT ANSWER' must stand just above an ex.answer(...) statement"
            )
        out.append((line, stmt))
    return out


class SourceConstants:
    """Top-level string constants of the package's modules, for exercise titles and questions."""

    def __init__(self, sources: dict[str, str]):
        self.sources = sources
        self._trees: dict[str, ast.Module] = {}

    def tree(self, rel: str) -> ast.Module | None:
        if rel not in self._trees and rel in self.sources:
            self._trees[rel] = ast.parse(self.sources[rel])
        return self._trees.get(rel)

    def value(self, rel: str, name: str) -> str | None:
        tree = self.tree(rel)
        if tree is None:
            return None
        found = None
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in node.targets
            ):
                found = _string(node.value)
        return found

    def assignment(self, rel: str, name: str) -> ast.Assign | None:
        tree = self.tree(rel)
        for node in tree.body if tree else []:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in node.targets
            ):
                return node
        return None


def _string(node: ast.AST) -> str | None:
    """The value of a string literal, or of literals joined with ``+`` or implicitly."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _string(node.left), _string(node.right)
        return left + right if left is not None and right is not None else None
    return None


def _module_imports(tree: ast.Module, rel: str) -> dict[str, tuple[str, str | None]]:
    """Names bound by relative imports in a module: name -> (module file, attribute or None)."""
    here = Path(rel).parent
    out: dict[str, tuple[str, str | None]] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level >= 1:
            base = here
            for _ in range(node.level - 1):
                base = base.parent
            parts = (node.module or "").split(".") if node.module else []
            for alias in node.names:
                bound = alias.asname or alias.name
                if node.module:
                    out[bound] = ((base.joinpath(*parts)).as_posix() + ".py", alias.name)
                else:
                    out[bound] = ((base / alias.name).as_posix() + ".py", None)
    return out


def _resolve_text(
    node: ast.AST | None, rel: str, func: ast.AST | None, consts: SourceConstants
) -> tuple[str | None, tuple[str, str] | None]:
    """The text an expression stands for, as far as the source says it (a literal, a local or
    module constant, ``module.NAME`` of the package, ``....replace(...)`` of one of those),
    and where it is defined (module file, name) when it is a constant."""
    if node is None:
        return None, None
    text = _string(node)
    if text is not None:
        return text, None
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("replace", "strip")
    ):
        return _resolve_text(node.func.value, rel, func, consts)[0], None
    tree = consts.tree(rel)
    imports = _module_imports(tree, rel) if tree else {}
    if isinstance(node, ast.Name):
        if func is not None:  # a local assigned a literal before use
            for stmt in ast.walk(func):
                if isinstance(stmt, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == node.id for t in stmt.targets
                ):
                    value = _string(stmt.value)
                    if value is not None:
                        return value, None
        value = consts.value(rel, node.id)
        if value is not None:
            return value, (rel, node.id)
        if node.id in imports and imports[node.id][1] is not None:
            module, name = imports[node.id]
            return consts.value(module, name), (module, name)
        return None, None
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in imports:
        module, attr = imports[node.value.id]
        if attr is None:  # from . import text  ->  text.NAME
            return consts.value(module, node.attr), (module, node.attr)
    return None, None


def _is_exercise_call(node: ast.AST | None) -> bool:
    return (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "exercise"
    )


def _assigned_call(func: ast.AST, name: str) -> ast.AST | None:
    """The ``X.exercise(...)`` call last assigned to ``name`` in ``func``."""
    found = None
    for node in ast.walk(func):
        targets = node.targets if isinstance(node, ast.Assign) else []
        if any(isinstance(t, ast.Name) and t.id == name for t in targets) and _is_exercise_call(node.value):
            found = node.value
    return found


def _exercise_of(tree: ast.Module, stmt: ast.stmt) -> tuple[ast.Call | None, ast.AST | None]:
    """The ``X.exercise(...)`` call of the innermost ``with`` around ``stmt``, and the function."""
    found: ast.Call | None = None
    func: ast.AST | None = None

    def visit(node: ast.AST) -> None:
        nonlocal found, func
        for child in ast.iter_child_nodes(node):
            start = getattr(child, "lineno", None)
            if start is not None and not (
                start <= stmt.lineno <= (getattr(child, "end_lineno", None) or start)
            ):
                continue
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                func = child
            if isinstance(child, ast.With):
                for item in child.items:
                    call = item.context_expr
                    if isinstance(call, ast.Name) and func is not None:  # ex = ctx.exercise(...); with ex:
                        call = _assigned_call(func, call.id)
                    if _is_exercise_call(call):
                        found = call
            visit(child)

    visit(tree)
    return found, func


def describe_answer(
    tree: ast.Module, stmt: ast.Expr, line: int, rel: str, consts: SourceConstants
) -> tuple[StudentAnswer, tuple[str, str] | None]:
    """The :class:`StudentAnswer` of the marked ``ex.answer(...)`` statement ``stmt`` (its
    marker on ``line``), and where its template is defined (module file, constant name) when
    it is a constant the student version blanks."""
    call = stmt.value
    assert isinstance(call, ast.Call)
    exercise, func = _exercise_of(tree, stmt)
    if exercise is None:
        raise AssignError(
            f"{rel}, line {line}: a marked answer must be inside 'with X.exercise(title, question) as ex:'"
        )
    title_node = (
        exercise.args[0]
        if exercise.args
        else next((k.value for k in exercise.keywords if k.arg == "title"), None)
    )
    question_node = (
        exercise.args[1]
        if len(exercise.args) > 1
        else next((k.value for k in exercise.keywords if k.arg == "question"), None)
    )
    title, _ = _resolve_text(title_node, rel, func, consts)
    if not title:
        raise AssignError(
            f"{rel}, line {exercise.lineno}: the title of an exercise with a student answer must be "
            "written as text (a string, or a constant holding one) so that the answer file can name it"
        )
    question, _ = _resolve_text(question_node, rel, func, consts)
    answer = StudentAnswer(line, title.strip(), (question or "").strip(), getattr(func, "name", ""))
    template = (
        call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "template"), None)
    )
    _, where = _resolve_text(template, rel, func, consts)
    return answer, where


# --------------------------------------------------------------------------- the student's files


def blank_constant(source: str, name: str, rel: str, lab: str) -> str:
    """``source`` with the top-level ``NAME = ...`` replaced by an empty string (the model
    answer the student version must not carry)."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            end = node.end_lineno or node.lineno
            lines[node.lineno - 1 : end] = [
                f'{name} = ""  # the student writes this answer in answers/{lab}.md\n'
            ]
            text = "".join(lines)
            check_parses(text, rel, "the student version")
            return text
    return source


def in_run_order(answers: list[StudentAnswer], texts: dict[str, str]) -> list[StudentAnswer]:
    """The answers in the order the lab calls their exercise functions: the order of the calls
    in the function that calls most of them (a lab's ``run``), else as found."""
    names = {a.function for a in answers if a.function}
    best: list[str] = []
    for text in texts.values():
        for func in ast.walk(ast.parse(text)):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            calls = sorted(
                (node.lineno, node.col_offset, _called_name(node))
                for node in ast.walk(func)
                if isinstance(node, ast.Call) and _called_name(node) in names
            )
            order = list(dict.fromkeys(name for _, _, name in calls))
            if len(order) > len(best):
                best = order
    rank = {name: i for i, name in enumerate(best)}
    return sorted(answers, key=lambda a: rank.get(a.function, len(rank)))


def _called_name(node: ast.Call) -> str:
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def answer_file(lab: str, title: str, answers: list[StudentAnswer]) -> str:
    """``answers/<lab>.md``: a section per exercise with a student answer, its question quoted."""
    parts = [
        f"# Answers: {title}\n",
        "<!-- Write each answer under its exercise's heading and keep the headings as they are.\n"
        "     Cite what your run measured: {{ metrics.NAME }}, {{ claims.NAME }} (true or false),\n"
        "     {{ figures.NAME }}; filters fmt, sci and pct format numbers ({{ metrics.x | fmt(3) }}).\n"
        "     A number typed by hand must be one of the exercise's measurements, as rounded.\n"
        "     labrunner check lists what is missing or does not match. -->\n",
    ]
    seen = set()
    for a in answers:
        if a.title in seen:
            continue
        seen.add(a.title)
        parts.append(f"## {a.title}\n")
        if a.question:
            parts.append("\n".join(f"> {ln}".rstrip() for ln in a.question.splitlines()) + "\n")
        parts.append("<!-- your answer -->\n")
    return "\n".join(parts)
