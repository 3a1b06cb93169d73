"""Fuzzing the readers: mutated run.json and result.json fed to `labrunner report` and
`labrunner check` give a report, a grade, or one line and exit status 2, never a traceback."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runfolders import make_run

from labrunner.cli import main

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(
        ["", "../../x", "/etc/passwd", "figures", "lab0", "passed", "not run", "<b>x</b>", "$x$"]
    )
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)


def _paths(value, prefix=()):
    """Every place in a JSON document, as a tuple of keys and indices."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _paths(child, (*prefix, i))


def _mutate(doc, path, action, new):
    if not path:
        return new if action == "replace" else doc
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if action == "delete":
        del parent[last]
    else:
        parent[last] = new
    return doc


@pytest.fixture(scope="module")
def template_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("fuzz"), labs=1, figures=1)


def _cli(*args: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        status = main(list(args))
    return status, err.getvalue()


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_run_files_give_one_line_or_a_report(template_run, data):
    target = data.draw(st.sampled_from(["run.json", "lab0/result.json", "counter/result.json"]), label="file")
    doc = json.loads((template_run / target).read_text())
    path = data.draw(st.sampled_from(list(_paths(doc))), label="where")
    action = data.draw(st.sampled_from(["replace", "delete"]), label="action")
    new = data.draw(json_values, label="value")
    doc = _mutate(doc, path, action, new)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / template_run.name
        shutil.copytree(template_run, run_dir, symlinks=True)
        (run_dir / target).write_text(json.dumps(doc), encoding="utf-8")
        for command in ("check", "report"):
            status, err = _cli(command, str(run_dir))
            assert status in (0, 1, 2), (command, status, err)
            if status == 2:
                lines = err.splitlines()
                assert len(lines) == 1 and lines[0].startswith("labrunner: error: "), (command, err)
            if command == "check" and status == 1 and err:
                assert len(err.splitlines()) == 1 and "incomplete run" in err, err


def test_a_truncated_file_is_one_line(tmp_path):
    run_dir = make_run(tmp_path)
    for target in ("run.json", "lab0/result.json"):
        text = (run_dir / target).read_text()
        (run_dir / target).write_text(text[: len(text) // 2])
        for command in ("check", "report"):
            status, err = _cli(command, str(run_dir))
            assert status == 2 and len(err.splitlines()) == 1 and "not valid JSON" in err, err
        (run_dir / target).write_text(text)
