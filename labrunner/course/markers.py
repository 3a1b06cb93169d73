"""The marker comments of an instructor's lab (``# BEGIN SOLUTION`` / ``# END SOLUTION``,
``# BEGIN HIDDEN`` / ``# END HIDDEN``, ``# STUB:``), found with the tokenizer, and
:func:`transplant`, which puts one version's solution regions into the other (the solution
back into the stubs, or a student's solutions into the instructor's code for grading).
:mod:`.assign` describes the conventions."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass, field

from ..base.errors import UsageError

STUB_PREFIX = "# STUB:"


_MARKER = re.compile(r"^#+\s*(BEGIN|END)\s+(SOLUTION|HIDDEN)\b\s*(.*)$")


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


def comments(source: str, path: str) -> list[tuple[int, int, str]]:
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
    for line, col, text in comments(source, path):
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


def check_parses(text: str, rel: str, what: str) -> None:
    try:
        ast.parse(text)
    except SyntaxError as exc:
        raise AssignError(
            f"{rel}, line {exc.lineno}: {what} is not valid Python ({exc.msg}); a region must hold "
            "whole statements, and its stub must be a statement at the BEGIN marker's indentation"
        ) from None


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
