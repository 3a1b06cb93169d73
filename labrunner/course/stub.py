"""The student version of one Python file: each solution region becomes its stub, hidden
regions and hidden checks or claims are removed, and a marked answer becomes
``ex.student_answer()`` (:mod:`.assign` describes the markers)."""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from pathlib import Path

from .markers import AssignError, Region, check_parses, comments, find_regions
from .studentanswers import SourceConstants, StudentAnswer, describe_answer, marked_answers

#: Methods of an exercise whose ``hidden=True`` statements the student version leaves out.
HIDDEN_METHODS = frozenset(
    {"check", "check_close", "check_at_most", "check_at_least", "check_equal", "claim"}
)


@dataclass
class Assigned:
    """One file of the student version: its text and what was kept back."""

    text: str
    solutions: int = 0
    hidden: int = 0
    answers: list[StudentAnswer] = field(default_factory=list)
    blanked: list[tuple[str, str]] = field(default_factory=list)  # (module file, name)


@dataclass
class _Plan:
    """What the student version changes: line ranges to replace (start -> (end, replacement
    lines)) and the ranges removed outright (a block left empty by them gets a ``pass``)."""

    edits: dict[int, tuple[int, list[str]]] = field(default_factory=dict)
    removed: list[tuple[int, int]] = field(default_factory=list)


def assign_source(source: str, rel: str, consts: SourceConstants | None = None) -> Assigned:
    """The student version of one Python file (``rel`` names it in errors); raises
    :class:`AssignError` for a marker that cannot be honoured or a result that does not parse."""
    consts = consts or SourceConstants({rel: source})
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise AssignError(f"{rel}, line {exc.lineno}: not valid Python ({exc.msg})") from None
    lines = source.splitlines(keepends=True)
    out = Assigned(text="")
    plan = _Plan()
    _stub_regions(tree, lines, find_regions(source, rel), rel, plan, out)
    _remove_hidden_statements(tree, lines, rel, plan, out)
    _replace_marked_answers(tree, lines, comments(source, rel), rel, consts, plan, out)
    out.text = _apply(lines, plan, _passes(tree, lines, plan.removed))
    check_parses(out.text, rel, what="the student version")
    return out


def _stub_regions(
    tree: ast.Module, lines: list[str], regions: list[Region], rel: str, plan: _Plan, out: Assigned
) -> None:
    """A solution region keeps its markers around its stub; a hidden region goes."""
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
            plan.edits[region.begin] = (
                region.end,
                [marker + "\n", *body, f"{region.indent}# END SOLUTION\n"],
            )
        else:
            out.hidden += 1
            plan.edits[region.begin] = (region.end, [])
            plan.removed.append((region.begin, region.end))


def _remove_hidden_statements(
    tree: ast.Module, lines: list[str], rel: str, plan: _Plan, out: Assigned
) -> None:
    for stmt in _hidden_statements(tree, rel):
        end = stmt.end_lineno or stmt.lineno
        if any(a <= stmt.lineno and end <= b for a, b in plan.removed):
            continue  # inside a hidden region, which goes as a whole
        _no_overlap(plan.edits, stmt.lineno, end, rel)
        _whole_lines(lines, stmt, rel)
        plan.edits[stmt.lineno] = (end, [])
        plan.removed.append((stmt.lineno, end))
        out.hidden += 1


def _replace_marked_answers(
    tree: ast.Module,
    lines: list[str],
    comment_tokens: list[tuple[int, int, str]],
    rel: str,
    consts: SourceConstants,
    plan: _Plan,
    out: Assigned,
) -> None:
    """A marked ``ex.answer(...)`` becomes ``ex.student_answer()``; its question goes to the
    answer file and its template (a constant) is blanked."""
    for line, stmt in marked_answers(tree, [ln.rstrip("\r\n") for ln in lines], comment_tokens, rel):
        end = stmt.end_lineno or stmt.lineno
        _no_overlap(plan.edits, line, end, rel)
        _whole_lines(lines, stmt, rel)
        recorder = stmt.value.func.value.id  # type: ignore[attr-defined]
        indent = lines[stmt.lineno - 1][: stmt.col_offset]
        plan.edits[line] = (end, [f"{indent}{recorder}.student_answer()\n"])
        answer, template = describe_answer(tree, stmt, line, rel, consts)
        out.answers.append(answer)
        if template is not None:
            out.blanked.append(template)


def _passes(tree: ast.Module, lines: list[str], removed: list[tuple[int, int]]) -> dict[int, str]:
    """A ``pass`` for each block whose statements are all removed, by its first line."""
    passes: dict[int, str] = {}
    for block in _blocks(tree):
        if all(any(a <= s.lineno and (s.end_lineno or s.lineno) <= b for a, b in removed) for s in block):
            first = block[0]
            passes[first.lineno] = lines[first.lineno - 1][: first.col_offset] + "pass\n"
    return passes


def _apply(lines: list[str], plan: _Plan, passes: dict[int, str]) -> str:
    result: list[str] = []
    i = 1
    while i <= len(lines):
        if i in plan.edits:
            end, replacement = plan.edits[i]
            result += replacement
            for line in range(i, end + 1):
                if line in passes:
                    result.append(passes[line])
                    break
            i = end + 1
            continue
        result.append(lines[i - 1])
        i += 1
    return "".join(result)


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
