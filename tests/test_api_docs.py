"""docs/python-api.md documents the API as the code has it."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import labrunner
from labrunner import api

DOC = (Path(__file__).resolve().parent.parent / "docs" / "python-api.md").read_text(encoding="utf-8")


def documented_rows(heading: str) -> set[str]:
    """The first-column names of the table under ``heading``."""
    section = DOC.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    return {m.group(1) for m in re.finditer(r"^\| `([a-z_]+)[`(]", section, re.M)}


def test_every_argument_of_run_is_documented():
    params = set(inspect.signature(labrunner.run).parameters)
    assert params == documented_rows("`labrunner.run("), params ^ documented_rows("`labrunner.run(")


def test_every_public_member_of_run_and_labview_is_documented():
    run_members = {n for n in vars(api.Run) if not n.startswith("_")}
    assert run_members <= documented_rows("Run"), run_members - documented_rows("Run")
    lab_members = {n for n in vars(api.LabView) if not n.startswith("_")} - {"run", "result"}
    assert lab_members <= documented_rows("LabView"), lab_members - documented_rows("LabView")


def test_the_signatures_in_headings_match():
    assert 'labrunner.load(path=None, *, out="reports")' in DOC
    load = inspect.signature(labrunner.load)
    assert list(load.parameters) == ["path", "out"] and load.parameters["out"].default == "reports"
    submit = inspect.signature(api.Run.submit)
    assert "submit(path=None, *, partial=False, allow_stand_ins=False, allow_mixed=False, warn=None)" in DOC
    assert list(submit.parameters) == ["self", "path", "partial", "allow_stand_ins", "allow_mixed", "warn"]
