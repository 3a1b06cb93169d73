"""``labrunner assign``: the student version of a lab package.

The instructor's lab is the solved assignment; comments mark what the student receives
differently (nbgrader's convention, on whole lines, found with the tokenizer)::

    def receptive_field(layers):
        # BEGIN SOLUTION the receptive-field recurrence
        r, j = 1, 1
        ...
        # END SOLUTION

    # BEGIN HIDDEN                       (code only the hidden checks need)
    ...
    # END HIDDEN

    ex.check_equal("rf_alexnet", r, 195, hidden=True)    # a hidden check or claim

    # STUDENT ANSWER
    ex.answer(text.A1, ...)

In the student version a solution region keeps its markers around a stub: by default
``raise NotImplementedError("not implemented yet: <label>")`` (the label after
``BEGIN SOLUTION``, else the enclosing function's name), or the region's own stub, given as
``# STUB: <line>`` comments inside it. A hidden region, and each hidden check or claim (a
statement of its own), is removed. A marked answer becomes ``ex.student_answer()``: the
student writes it in ``answers/<lab>.md`` (one section per exercise, with its question), and
the lab's template for it is blanked. The output is an installable package; the source is
only read. :func:`transplant` puts one version's solution regions into the other (the
solution back into the stubs, or a student's solutions into the instructor's code for
grading).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import io
import json
import os
import re
import shutil
import tempfile
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from ..base.errors import UsageError

#: Methods of an exercise whose ``hidden=True`` statements the student version leaves out.
HIDDEN_METHODS = frozenset(
    {"check", "check_close", "check_at_most", "check_at_least", "check_equal", "claim"}
)
#: What ``labrunner assign`` copies besides Python files (the lab's templates and text).
DATA_SUFFIXES = (".md", ".j2", ".txt", ".json", ".yaml", ".yml", ".csv")
#: The module attribute that says which package a student version was assigned from: a
#: plugin with it replaces the built-in plugin of the same name (see :mod:`.plugins`).
ASSIGNED_FROM = "__labrunner_assigned_from__"
STUB_PREFIX = "# STUB:"

_MARKER = re.compile(r"^#+\s*(BEGIN|END)\s+(SOLUTION|HIDDEN)\b\s*(.*)$")
_STUDENT_ANSWER = re.compile(r"^#+\s*STUDENT ANSWER\s*$")


class AssignError(UsageError):
    """A marker that cannot be honoured; the message names the file and line."""


@dataclass
class Region:
    """A marked region of one file: ``begin`` and ``end`` are the 1-based lines of its
    markers, ``indent`` the BEGIN marker's indentation, ``stub`` its own stub lines."""

    kind: str  # "solution" or "hidden"
    begin: int
    end: int
    indent: str
    label: str = ""
    stub: list[str] = field(default_factory=list)


@dataclass
class StudentAnswer:
    """An ``ex.answer(...)`` marked ``# STUDENT ANSWER``: the exercise's title and question
    (as far as they are written as text in the source) and the template it blanks."""

    line: int
    title: str
    question: str
    function: str = ""  # the exercise function it is in (for the order of the answer file)


@dataclass
class Assigned:
    """One file of the student version: its text and what was kept back."""

    text: str
    solutions: int = 0
    hidden: int = 0
    answers: list[StudentAnswer] = field(default_factory=list)
    blanked: list[tuple[str, str]] = field(default_factory=list)  # (module file, name)


# --------------------------------------------------------------------------- finding the markers


def _comments(source: str, path: str) -> list[tuple[int, int, str]]:
    """(line, column, text) of every comment token."""
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                out.append((tok.start[0], tok.start[1], tok.string))
    except (tokenize.TokenError, IndentationError, SyntaxError) as exc:
        raise AssignError(f"{path}: cannot be read as Python ({exc})") from None
    return out


def find_regions(source: str, path: str = "<source>") -> list[Region]:
    """The marked regions of ``source`` in order; an unbalanced, nested or misplaced marker
    is an :class:`AssignError` naming ``path`` and the line."""
    lines = source.splitlines()
    regions: list[Region] = []
    open_region: Region | None = None
    for line, col, text in _comments(source, path):
        m = _MARKER.match(text)
        if m is None:
            if open_region is not None and text.startswith(STUB_PREFIX):
                if open_region.kind != "solution":
                    raise AssignError(
                        f"{path}, line {line}: a stub in a hidden region (only solutions have one)"
                    )
                stub = text[len(STUB_PREFIX) :]
                open_region.stub.append(stub[1:] if stub.startswith(" ") else stub)
            continue
        what, kind, rest = m.group(1), m.group(2).lower(), m.group(3).strip()
        marker = f"{what} {kind.upper()}"
        if lines[line - 1][:col].strip():
            raise AssignError(f"{path}, line {line}: '# {marker}' must be on a line of its own")
        if what == "BEGIN":
            if open_region is not None:
                raise AssignError(
                    f"{path}, line {line}: '# {marker}' inside the region opened on line "
                    f"{open_region.begin} (regions do not nest)"
                )
            open_region = Region(kind, line, 0, lines[line - 1][:col], label=rest)
        else:
            if open_region is None:
                raise AssignError(
                    f"{path}, line {line}: '# {marker}' without a '# BEGIN {kind.upper()}' before it"
                )
            if open_region.kind != kind:
                raise AssignError(
                    f"{path}, line {line}: '# {marker}' closes the {open_region.kind} region opened on "
                    f"line {open_region.begin}"
                )
            if rest:
                raise AssignError(f"{path}, line {line}: unexpected text after '# {marker}': {rest!r}")
            open_region.end = line
            regions.append(open_region)
            open_region = None
    if open_region is not None:
        raise AssignError(
            f"{path}, line {open_region.begin}: '# BEGIN {open_region.kind.upper()}' has no "
            f"'# END {open_region.kind.upper()}'"
        )
    return regions


def _enclosing_function(tree: ast.AST, line: int) -> str:
    """The name of the innermost function (``Class.method``) around ``line``, or ''."""
    best, best_names = None, []

    def visit(node: ast.AST, names: list[str]) -> None:
        nonlocal best, best_names
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                inside = child.lineno <= line <= (child.end_lineno or child.lineno)
                if inside:
                    if isinstance(child, ast.ClassDef):
                        visit(child, [*names, child.name])
                    else:
                        best, best_names = child, [*names, child.name]
                        visit(child, [*names, child.name])
            else:
                visit(child, names)

    visit(tree, [])
    return ".".join(best_names) if best is not None else ""


# --------------------------------------------------------------------------- one file


def _blocks(tree: ast.AST) -> list[list[ast.stmt]]:
    """Every statement list of ``tree`` (bodies, else branches, handlers, match cases)."""
    out = []
    for node in ast.walk(tree):
        for name in ("body", "orelse", "finalbody"):
            block = getattr(node, name, None)
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                out.append(block)
    return out


def _hidden_statements(tree: ast.AST, path: str) -> list[ast.stmt]:
    """The statements ``X.check...(..., hidden=True)`` / ``X.claim(..., hidden=True)``."""
    statements = {id(node.value): node for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in HIDDEN_METHODS:
            continue
        hidden = next((k.value for k in node.keywords if k.arg == "hidden"), None)
        if hidden is None:
            continue
        if not (isinstance(hidden, ast.Constant) and isinstance(hidden.value, bool)):
            raise AssignError(f"{path}, line {node.lineno}: hidden= must be True or False, written as such")
        if not hidden.value:
            continue
        stmt = statements.get(id(node))
        if stmt is None:
            raise AssignError(
                f"{path}, line {node.lineno}: a hidden {node.func.attr}() must be a statement of its own "
                "(the student version leaves it out, so nothing may use its value)"
            )
        found.append(stmt)
    return found


def _marked_answers(tree: ast.AST, source_lines: list[str], comments: list[tuple[int, int, str]], path: str):
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


class _Constants:
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
    node: ast.AST | None, rel: str, func: ast.AST | None, consts: _Constants
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


def assign_source(source: str, rel: str, consts: _Constants | None = None) -> Assigned:
    """The student version of one Python file (``rel`` names it in errors); raises
    :class:`AssignError` for a marker that cannot be honoured or a result that does not parse."""
    consts = consts or _Constants({rel: source})
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise AssignError(f"{rel}, line {exc.lineno}: not valid Python ({exc.msg})") from None
    lines = source.splitlines(keepends=True)
    regions = find_regions(source, rel)
    comments = _comments(source, rel)
    # line ranges to replace: start -> (end, replacement lines)
    edits: dict[int, tuple[int, list[str]]] = {}
    removed: list[tuple[int, int]] = []
    out = Assigned(text="")
    starts = [node for node in ast.walk(tree) if isinstance(node, ast.stmt)]
    for region in regions:
        for node in starts:
            if region.begin < node.lineno < region.end and node.col_offset < len(region.indent):
                raise AssignError(
                    f"{rel}, line {node.lineno}: a statement left of the '# BEGIN "
                    f"{region.kind.upper()}' marker on line {region.begin} (a region holds whole "
                    "statements at its marker's indentation or deeper)"
                )
        if region.kind == "solution":
            out.solutions += 1
            label = region.label or _enclosing_function(tree, region.begin) or Path(rel).stem
            stub = region.stub or [
                f"raise NotImplementedError({json.dumps('not implemented yet: ' + label)})"
            ]
            marker = lines[region.begin - 1].rstrip("\r\n")
            body = [f"{region.indent}{s}\n" if s.strip() else "\n" for s in stub]
            edits[region.begin] = (region.end, [marker + "\n", *body, f"{region.indent}# END SOLUTION\n"])
        else:
            out.hidden += 1
            edits[region.begin] = (region.end, [])
            removed.append((region.begin, region.end))
    for stmt in _hidden_statements(tree, rel):
        end = stmt.end_lineno or stmt.lineno
        if any(a <= stmt.lineno and end <= b for a, b in removed):
            continue  # inside a hidden region, which goes as a whole
        _no_overlap(edits, stmt.lineno, end, rel)
        _whole_lines(lines, stmt, rel)
        edits[stmt.lineno] = (end, [])
        removed.append((stmt.lineno, end))
        out.hidden += 1
    for line, stmt in _marked_answers(tree, [ln.rstrip("\r\n") for ln in lines], comments, rel):
        end = stmt.end_lineno or stmt.lineno
        _no_overlap(edits, line, end, rel)
        _whole_lines(lines, stmt, rel)
        call = stmt.value
        assert isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
        recorder = call.func.value.id  # type: ignore[attr-defined]
        indent = lines[stmt.lineno - 1][: stmt.col_offset]
        edits[line] = (end, [f"{indent}{recorder}.student_answer()\n"])
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
        out.answers.append(
            StudentAnswer(line, title.strip(), (question or "").strip(), getattr(func, "name", ""))
        )
        template = (
            call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "template"), None)
        )
        _, where = _resolve_text(template, rel, func, consts)
        if where is not None:
            out.blanked.append(where)
    # a block left empty gets a 'pass'
    passes: dict[int, str] = {}
    for block in _blocks(tree):
        if all(any(a <= s.lineno and (s.end_lineno or s.lineno) <= b for a, b in removed) for s in block):
            first = block[0]
            passes[first.lineno] = lines[first.lineno - 1][: first.col_offset] + "pass\n"
    result: list[str] = []
    i = 1
    while i <= len(lines):
        if i in edits:
            end, replacement = edits[i]
            result += replacement
            covered = range(i, end + 1)
            for line in covered:
                if line in passes:
                    result.append(passes[line])
                    break
            i = end + 1
            continue
        result.append(lines[i - 1])
        i += 1
    out.text = "".join(result)
    check_parses(out.text, rel, what="the student version")
    return out


def _no_overlap(edits: dict[int, tuple[int, list[str]]], start: int, end: int, rel: str) -> None:
    for begin, (stop, _) in edits.items():
        if begin <= end and start <= stop:
            raise AssignError(f"{rel}, line {start}: a hidden check or marked answer inside a marked region")


def _whole_lines(lines: list[str], stmt: ast.stmt, rel: str) -> None:
    """A statement the student version removes must have its lines to itself."""
    end = stmt.end_lineno or stmt.lineno
    before = lines[stmt.lineno - 1][: stmt.col_offset]
    after = lines[end - 1][stmt.end_col_offset or 0 :] if stmt.end_col_offset is not None else ""
    after = after.split("#", 1)[0]
    if before.strip() or after.strip().strip(";").strip():
        raise AssignError(
            f"{rel}, line {stmt.lineno}: a hidden check or marked answer must have its lines to itself"
        )


def check_parses(text: str, rel: str, what: str) -> None:
    try:
        ast.parse(text)
    except SyntaxError as exc:
        raise AssignError(
            f"{rel}, line {exc.lineno}: {what} is not valid Python ({exc.msg}); a region must hold "
            "whole statements, and its stub must be a statement at the BEGIN marker's indentation"
        ) from None


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


# --------------------------------------------------------------------------- transplanting regions


def solution_bodies(source: str, rel: str) -> list[list[str]]:
    """The lines between the markers of each solution region of ``source``."""
    lines = source.splitlines(keepends=True)
    return [lines[r.begin : r.end - 1] for r in find_regions(source, rel) if r.kind == "solution"]


def transplant(into: str, donor: str, rel: str) -> str:
    """``into`` with the body of each of its solution regions replaced by the body of the
    donor's region of the same rank: the solution back into the stubs of a student version,
    or a student's solutions into the instructor's code (which keeps its hidden checks)."""
    target = [r for r in find_regions(into, rel) if r.kind == "solution"]
    bodies = solution_bodies(donor, rel)
    if len(target) != len(bodies):
        raise AssignError(
            f"{rel}: {len(target)} solution regions here, {len(bodies)} in the other version "
            "(keep every '# BEGIN SOLUTION' / '# END SOLUTION' line)"
        )
    lines = into.splitlines(keepends=True)
    out: list[str] = []
    i = 0
    for region, body in zip(target, bodies, strict=True):
        out += lines[i : region.begin]
        out += body
        i = region.end - 1
    out += lines[i:]
    text = "".join(out)
    check_parses(text, rel, "the transplanted version")
    return text


def transplant_package(into: Path, donor: Path, out: Path) -> list[str]:
    """Write into ``out`` the package ``into`` with every solution region taken from the same
    file of ``donor``; returns the files that had regions. ``out`` must not exist."""
    into, donor, out = Path(into), Path(donor), Path(out)
    if out.exists():
        raise UsageError(f"{out}: already exists")
    texts: dict[str, str | bytes] = {}
    changed = []
    for path in _package_files(into):
        rel = path.relative_to(into).as_posix()
        if path.suffix == ".py":
            text = path.read_text(encoding="utf-8")
            if any(r.kind == "solution" for r in find_regions(text, rel)):
                other = donor / rel
                if not other.is_file():
                    raise UsageError(f"{other}: missing (the other version has no {rel})")
                text = transplant(text, other.read_text(encoding="utf-8"), rel)
                changed.append(rel)
            texts[rel] = text
        else:
            texts[rel] = path.read_bytes()
    _write_tree(out, texts)
    return changed


# --------------------------------------------------------------------------- a package


@dataclass
class AssignedPackage:
    """What :func:`assign_package` wrote for one lab package."""

    source: Path
    name: str  # the package's import name in the student version
    labs: list[tuple[str, str]]  # (lab name, lab title)
    solutions: int = 0
    hidden: int = 0
    answers: dict[str, list[StudentAnswer]] = field(default_factory=dict)  # lab -> answers


def locate_package(spec: str) -> Path:
    """The folder of a lab package given as an importable name or a folder."""
    path = Path(spec)
    if path.is_dir():
        if not (path / "__init__.py").is_file():
            raise UsageError(f"{spec}: not a Python package (no __init__.py)")
        return path.resolve()
    if any(sep in spec for sep in ("/", os.sep)) or spec.endswith(".py"):
        raise UsageError(f"{spec}: no such folder")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", spec):
        raise UsageError(f"{spec!r}: not a package name or a folder")
    try:
        found = importlib.util.find_spec(spec)
    except (ImportError, ValueError) as exc:
        raise UsageError(f"{spec}: cannot be found ({exc})") from None
    if found is None or not found.submodule_search_locations:
        raise UsageError(f"{spec}: no such package (give an importable package name or a folder)")
    return Path(next(iter(found.submodule_search_locations))).resolve()


def _package_files(root: Path) -> list[Path]:
    files = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(p == "__pycache__" or p.startswith(".") for p in rel.parts) or not path.is_file():
            continue
        if path.suffix == ".py" or path.suffix in DATA_SUFFIXES:
            files.append(path)
    return files


def _labs_of(root: Path, spec: str) -> list[tuple[str, str]]:
    """(name, title) of the labs the package registers, importing it (lab packages import
    nothing heavy at module level)."""
    from ..settings.plugins import call_with

    try:
        module: ModuleType = (
            importlib.import_module(spec) if not Path(spec).is_dir() else _import_folder(root)
        )
    except Exception as exc:
        raise UsageError(f"{spec}: cannot be imported ({type(exc).__name__}: {exc})") from None
    labs: list[tuple[str, str]] = []
    register_labs = getattr(module, "register_labs", None)
    if callable(register_labs):
        from ..authoring.lab import validate_lab

        def register(lab: object) -> None:
            lab = validate_lab(lab)
            labs.append((lab.name, lab.title))

        call_with(register_labs, register=register)
    if not labs:
        raise UsageError(f"{spec}: registers no lab (no register_labs hook)")
    return labs


def _import_folder(root: Path) -> ModuleType:
    from ..settings.plugins import import_path

    return import_path(f"assign_{root.name}", root)


def assign_package(
    spec: str, sources: dict[str, str | bytes] | None = None
) -> tuple[AssignedPackage, dict[str, str | bytes]]:
    """The student version of one lab package, in memory: (summary, files by relative path)."""
    root = locate_package(spec)
    name = root.name
    labs = _labs_of(root, spec)
    files: dict[str, str | bytes] = {}
    texts: dict[str, str] = {}
    for path in _package_files(root):
        rel = path.relative_to(root).as_posix()
        if path.suffix == ".py":
            try:
                texts[rel] = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise UsageError(f"{path}: not UTF-8 text") from None
        else:
            files[rel] = path.read_bytes()
    consts = _Constants(texts)
    summary = AssignedPackage(source=root, name=name, labs=labs)
    blanks: list[tuple[str, str]] = []
    answers: list[StudentAnswer] = []
    for rel, text in texts.items():
        assigned = assign_source(text, rel, consts)
        files[rel] = assigned.text
        summary.solutions += assigned.solutions
        summary.hidden += assigned.hidden
        answers += assigned.answers
        blanks += assigned.blanked
    if answers:
        answers = _in_run_order(answers, texts)
        if len(labs) > 1:
            raise UsageError(
                f"{spec}: registers {len(labs)} labs; student answers need one lab per package "
                "(the answer file is per lab)"
            )
        summary.answers[labs[0][0]] = answers
    for module, const in blanks:
        if module in files and isinstance(files[module], str):
            files[module] = blank_constant(files[module], const, module, labs[0][0])  # type: ignore[arg-type]
    init = files.get("__init__.py")
    if isinstance(init, str):
        files["__init__.py"] = (
            init.rstrip("\n")
            + f"\n\n#: The package this student version was assigned from (labrunner assign).\n"
            f"{ASSIGNED_FROM} = {_source_name(spec, root)!r}\n"
        )
    return summary, files


def _in_run_order(answers: list[StudentAnswer], texts: dict[str, str]) -> list[StudentAnswer]:
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


def _source_name(spec: str, root: Path) -> str:
    """The import name of the source package (a folder that is a built-in lab package gets
    that package's name, so that its student version replaces the built-in lab)."""
    if not Path(spec).is_dir():
        return spec
    from ..settings.plugins import BUILTIN_PLUGINS

    for name in BUILTIN_PLUGINS:
        try:
            found = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        locations = list(found.submodule_search_locations or []) if found else []
        if any(Path(p).resolve() == root for p in locations):
            return name
    return root.name


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


def _pyproject(
    project: str, packages: list[AssignedPackage], files: dict[str, dict[str, str | bytes]]
) -> str:
    names = [p.name for p in packages]
    all_packages = []
    data = {}
    for p in packages:
        subs = sorted({str(Path(rel).parent) for rel in files[p.name] if rel.endswith("__init__.py")})
        all_packages += [p.name if s == "." else f"{p.name}.{s.replace('/', '.')}" for s in subs]
        suffixes = sorted({Path(rel).suffix for rel in files[p.name] if not rel.endswith(".py")})
        if suffixes:
            data[p.name] = [f"*{s}" for s in suffixes]
    entry_points = "\n".join(f'{n} = "{n}"' for n in names)
    package_data = "\n".join(f'"{n}" = {globs!r}'.replace("'", '"') for n, globs in data.items())
    return (
        "[build-system]\n"
        'requires = ["setuptools>=69"]\n'
        'build-backend = "setuptools.build_meta"\n\n'
        "[project]\n"
        f'name = "{project}"\n'
        'version = "0.1.0"\n'
        f'description = "Student version of {", ".join(names)} (labrunner assign)"\n'
        'requires-python = ">=3.10"\n'
        'dependencies = ["labrunner"]\n\n'
        "[project.entry-points.labrunner]\n"
        f"{entry_points}\n\n"
        "[tool.setuptools]\n"
        f"packages = {all_packages!r}\n".replace("'", '"')
        + ("\n[tool.setuptools.package-data]\n" + package_data + "\n" if package_data else "")
    )


def _readme(packages: list[AssignedPackage]) -> str:
    labs = [lab for p in packages for lab, _ in p.labs]
    answers = [lab for p in packages for lab in p.answers]
    lines = [
        "# Assignment\n",
        "Install once, then run, fill in, run again:\n",
        "```bash",
        "pip install -e .                 # registers the labs below with labrunner",
        f"labrunner run {' '.join(labs)}",
        "labrunner check                  # what is not implemented yet, failed checks, answers to write",
        "labrunner submit -o submission.zip",
        "```\n",
        "Write your code between each `# BEGIN SOLUTION` and `# END SOLUTION` line, in place of the",
        '`raise NotImplementedError("not implemented yet: ...")`; keep the marker lines. An exercise',
        'whose code is not written yet shows "not implemented yet" in the report; the others run.',
    ]
    if answers:
        lines += [
            "",
            "Write your answers in " + ", ".join(f"`answers/{lab}.md`" for lab in answers) + ", under each",
            "exercise's heading. They may cite your run: `{{ metrics.NAME }}`, `{{ claims.NAME }}`,",
            "`{{ figures.NAME }}` (the names are in the report's measurements).",
        ]
    return "\n".join(lines) + "\n"


def assign(specs: list[str], out: Path, *, force: bool = False, project: str = "") -> list[AssignedPackage]:
    """Write the student version of the lab packages ``specs`` into ``out``: one package per
    lab package, ``answers/<lab>.md`` for labs with student answers, a pyproject.toml that
    registers them with labrunner, and a README. Everything is checked before anything is
    written; ``out`` must be a new or empty folder (``force``: any folder, whose same-named
    files are replaced), and may not be inside a source package."""
    out = Path(out)
    if not specs:
        raise UsageError("give at least one lab package")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UsageError(f"--out {out}: not empty (use --force to write into it)")
    packages: list[AssignedPackage] = []
    files: dict[str, dict[str, str | bytes]] = {}
    resolved_out = out.resolve()
    for spec in specs:
        summary, pkg_files = assign_package(spec)
        src = summary.source
        dest = resolved_out / summary.name
        for a, b in ((resolved_out, src), (dest, src), (src, dest)):
            if a == b or b in a.parents:
                raise UsageError(
                    f"--out {out}: inside or over the source package {src} (the source is never modified)"
                )
        if summary.name in files:
            raise UsageError(f"{spec}: a second package named {summary.name!r}")
        packages.append(summary)
        files[summary.name] = pkg_files
    tree: dict[str, str | bytes] = {}
    for p in packages:
        for rel, data in files[p.name].items():
            tree[f"{p.name}/{rel}"] = data
        for lab, answers in p.answers.items():
            title = dict(p.labs)[lab]
            tree[f"answers/{lab}.md"] = answer_file(lab, title, answers)
    tree["pyproject.toml"] = _pyproject(
        project or f"{out.resolve().name}-assignment".lower().replace("_", "-"), packages, files
    )
    tree["README.md"] = _readme(packages)
    _write_tree(out, tree, merge=force)
    return packages


def _write_tree(out: Path, files: dict[str, str | bytes], merge: bool = False) -> None:
    """Write ``files`` under ``out``: into a temporary folder beside it first, then moved in,
    so that an error leaves nothing half-written."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    os.chmod(
        tmp, 0o755
    )  # mkdtemp makes it private; the output is an ordinary folder (a grader's sandbox reads it)
    try:
        for rel, data in files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, str):
                path.write_text(data, encoding="utf-8")
            else:
                path.write_bytes(data)
        if not out.exists() or (out.is_dir() and not any(out.iterdir())):
            if out.exists():
                out.rmdir()
            os.replace(tmp, out)
            return
        if not merge:
            raise UsageError(f"{out}: not empty")
        for rel in files:
            dest = out / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / rel, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def format_summary(packages: list[AssignedPackage], out: Path) -> str:
    lines = []
    for p in packages:
        answers = sum(len(a) for a in p.answers.values())
        lines.append(
            f"{p.name}: {p.solutions} solution region{'s' if p.solutions != 1 else ''} stubbed, "
            f"{p.hidden} hidden check{'s' if p.hidden != 1 else ''} or region{'s' if p.hidden != 1 else ''} kept back, "
            f"{answers} answer{'s' if answers != 1 else ''} for the student"
            + (f" (answers/{', answers/'.join(lab + '.md' for lab in p.answers)})" if p.answers else "")
        )
    lines.append(f"wrote the student version to {out} (pip install -e {out}; labrunner run ...)")
    return "\n".join(lines)


def add_subcommand(sub: object, parents: list[object]) -> None:
    parser = sub.add_parser(  # type: ignore[attr-defined]
        "assign",
        parents=parents,
        help="write the student version of lab packages (solutions stubbed, hidden checks kept back)",
        description="Write the student version of lab packages: each '# BEGIN SOLUTION' region becomes a "
        "stub, hidden checks and regions are left out, marked answers go to answers/<lab>.md. "
        "The source packages are only read.",
    )
    parser.add_argument("packages", nargs="+", metavar="PACKAGE", help="importable package name or folder")
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="new or empty folder for the student version"
    )
    parser.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    parser.add_argument(
        "--name", default="", help="the student package's project name (default: DIR-assignment)"
    )
    parser.set_defaults(handler=_cmd_assign)


def _cmd_assign(args: object) -> int:
    packages = assign(args.packages, Path(args.out), force=args.force, project=args.name)  # type: ignore[attr-defined]
    if getattr(args, "verbosity", 0) >= 0:
        print(format_summary(packages, Path(args.out)))  # type: ignore[attr-defined]
    return 0
