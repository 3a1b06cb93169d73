"""The Python API (labrunner.run / labrunner.load / Run), without a kernel: return values,
errors as exceptions, and the inline HTML a notebook shows."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import TEST_PLUGINS

import labrunner
from labrunner.api import Run


class _Frames(HTMLParser):
    def __init__(self):
        super().__init__()
        self.frames: list[dict[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        if tag == "iframe":
            self.frames.append(dict(attrs))


def frame_document(markup: str) -> str:
    """The document inside the one iframe of ``markup`` (parsed, so escaping is checked)."""
    parser = _Frames()
    parser.feed(markup)
    assert len(parser.frames) == 1, markup[:200]
    (frame,) = parser.frames
    assert frame.get("class") == "labrunner-inline"
    return frame["srcdoc"] or ""


@pytest.fixture
def api_run(workdir: Path):
    """counter and failing in the fast in-process mode."""
    return labrunner.run(
        ["counter", "failing"],
        profile="smoke",
        plugins_dir=[TEST_PLUGINS],
        isolation="none",
        verbosity=-1,
        settings={"counter": {"steps": 4}},
    )


@pytest.mark.slow
def test_run_returns_the_results_and_the_report(api_run: Run, workdir: Path):
    assert isinstance(api_run, Run)
    assert api_run.path.parent == workdir / "reports"
    assert api_run.status == "finished" and not api_run.interrupted
    counter, failing = api_run.labs["counter"], api_run.labs["failing"]
    assert counter.status == "passed" and failing.status == "failed"
    assert counter.config["steps"] == 4  # the setting reached the lab
    assert counter.metrics and counter.exercises and counter.checks
    assert api_run.passed is False and api_run.exit_status == 1
    assert api_run.report_html is not None and api_run.report_html.is_file()
    assert api_run.report_md is not None
    grades = api_run.check()
    assert grades["passed"] is False
    assert {lab["lab"] for lab in grades["labs"]} >= {"counter", "failing"}


@pytest.mark.slow
def test_load_opens_the_saved_run(api_run: Run, workdir: Path):
    again = labrunner.load(workdir / "reports" / "latest")
    assert again.labs["counter"].metrics == api_run.labs["counter"].metrics
    assert labrunner.load(out=workdir / "reports").path.resolve() == api_run.path.resolve()
    assert again.path.is_absolute()
    assert "counter: passed" in repr(again)


def test_errors_are_exceptions_with_the_cli_line(workdir: Path):
    with pytest.raises(labrunner.UsageError, match="unknown key 'counter.stepz'.*did you mean 'steps'"):
        labrunner.run("counter", profile="smoke", plugins_dir=[TEST_PLUGINS], settings={"counter.stepz": 1})
    with pytest.raises(labrunner.UsageError, match="unknown lab"):
        labrunner.run("countr", profile="smoke", plugins_dir=[TEST_PLUGINS])
    with pytest.raises(labrunner.UsageError, match="isolation"):
        labrunner.run("counter", plugins_dir=[TEST_PLUGINS], isolation="thread")
    with pytest.raises(labrunner.UsageError, match="needs a lab"):
        labrunner.run("counter", plugins_dir=[TEST_PLUGINS], settings={"steps": 3})
    with pytest.raises(labrunner.UsageError, match="not a run folder|no run"):
        labrunner.load(workdir / "nothing-here")
    assert not (workdir / "reports").exists()  # nothing written for bad input


@pytest.mark.slow
def test_set_strings_are_yaml_like_the_cli(workdir: Path):
    run = labrunner.run(
        "counter",
        profile="smoke",
        plugins_dir=[TEST_PLUGINS],
        isolation="none",
        verbosity=-1,
        set=["counter.sizes=[3, 4]"],
    )
    assert run.labs["counter"].config["sizes"] == [3, 4]


@pytest.mark.slow
def test_inline_html_is_the_report_escaped_and_self_contained(api_run: Run):
    whole = frame_document(api_run._repr_html_())
    assert whole.startswith("<!DOCTYPE html>")
    # the lab's hostile title stays text at every level
    assert "<script>alert(1)</script>" not in whole
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in whole
    assert "data:image/png;base64," in whole
    assert not re.search(r"""(src|href)=["']https?://""", whole)

    lab = frame_document(api_run.labs["counter"]._repr_html_())
    assert 'class="lab' in lab and "<script>alert" not in lab
    assert "data:image/png;base64," in lab
    exercise_view = api_run.labs["counter"].exercises[0]
    exercise = frame_document(exercise_view._repr_html_())
    assert 'class="exercise"' in exercise
    assert html.escape(exercise_view.title, quote=False).split("<")[0] in exercise
    assert "Counting" not in exercise  # one exercise, not the lab's section


@pytest.mark.slow
def test_submit_from_python(api_run: Run, workdir: Path):
    from labrunner.course.bundle import NotSubmittable

    assert api_run.labs["crashing"].status == "not run"  # installed, never run
    with pytest.raises(NotSubmittable, match="crashing"):
        api_run.submit(workdir / "refused.zip")
    assert not (workdir / "refused.zip").exists()
    path = api_run.submit(workdir / "ok.zip", partial=True, allow_stand_ins=True)
    assert path.is_file()
    from labrunner.course.bundle import verify_bundle

    assert verify_bundle(path) > 0


#: A value of the wrong type for every public parameter of labrunner.run.
WRONG_TYPES = {
    "labs": 42,
    "profile": 3,
    "device": 0,
    "seed": "1",
    "settings": ["rnn_lm.epochs=4"],
    "out": 7,
    "force": "yes",
    "isolation": 0,
    "deterministic": "on",
    "threads": 1.5,
    "lab_timeout": "60",
    "config": 123,
    "author": 5,
    "plugins_dir": 42,
    "set": 5,
    "executor": 1,
    "jobs": 2.0,
    "executor_options": ["partition=gpu"],
    "seeds": [0, "1"],
    "detach": 1,
    "precision": 16,
    "verbosity": None,
    "report": None,
    "reporter": 3,
    "plugins": "core_labs",
}


@pytest.fixture
def nothing_runs(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder in which a run that gets past its checks stops before any lab."""
    import labrunner.execution.runner

    def refuse(*args, **kwargs):
        raise AssertionError("the run started: a bad argument was accepted")

    monkeypatch.setattr(labrunner.execution.runner, "execute", refuse)
    return workdir


def test_every_parameter_of_run_has_a_wrong_type_case():
    import inspect

    assert set(inspect.signature(labrunner.run).parameters) == set(WRONG_TYPES)


@pytest.mark.parametrize("name", sorted(WRONG_TYPES))
def test_a_wrong_type_is_a_usage_error_naming_the_parameter(nothing_runs: Path, name: str):
    with pytest.raises(labrunner.UsageError, match=rf"^labrunner\.run: {name}: expected ") as info:
        labrunner.run(**{"labs": "counter", "plugins_dir": [TEST_PLUGINS], name: WRONG_TYPES[name]})
    assert "\n" not in str(info.value)
    assert not (nothing_runs / "reports").exists()


@pytest.mark.parametrize("labs", [[], (), "", "  ", iter([])])
def test_an_empty_selection_is_an_error_not_every_lab(nothing_runs: Path, labs):
    with pytest.raises(labrunner.UsageError, match=r"^labrunner\.run: labs: an empty"):
        labrunner.run(labs, plugins_dir=[TEST_PLUGINS])


def test_a_path_given_as_one_string_is_one_path(nothing_runs: Path):
    from labrunner.api import prepare

    _plugins, settings = prepare(
        "counter", plugins_dir=str(TEST_PLUGINS), set="counter.steps=2", writes=False
    )
    assert settings.plugins_dirs == [str(TEST_PLUGINS)] and settings.configs["counter"].steps == 2
    _plugins, settings = prepare(
        (n for n in ["counter"]), plugins_dir=TEST_PLUGINS, seeds=iter([1, 2]), writes=False
    )
    assert [lab.name for lab in settings.labs] == ["counter"] and settings.seeds == [1, 2]
    with pytest.raises(labrunner.UsageError, match="^--plugins-dir /no/such/folder: no such folder$"):
        labrunner.run("counter", plugins_dir="/no/such/folder")


@pytest.mark.parametrize(
    ("kwargs", "name"), [({"path": 3}, "path"), ({"out": 4}, "out"), ({"path": ["a"]}, "path")]
)
def test_load_checks_its_argument_types(workdir: Path, kwargs, name):
    with pytest.raises(labrunner.UsageError, match=rf"^labrunner\.load: {name}: expected a path"):
        labrunner.load(**kwargs)


def test_run_methods_check_their_argument_types(tmp_path: Path):
    from runfolders import make_run

    run = labrunner.load(make_run(tmp_path))
    for kwargs, name in (
        ({"path": 5}, "path"),
        ({"partial": "yes"}, "partial"),
        ({"allow_stand_ins": 1}, "allow_stand_ins"),
        ({"allow_mixed": None}, "allow_mixed"),
        ({"warn": "print"}, "warn"),
    ):
        with pytest.raises(labrunner.UsageError, match=rf"^Run\.submit: {name}: expected "):
            run.submit(**kwargs)
    with pytest.raises(labrunner.UsageError, match=r"^Run\.render: formats: expected "):
        run.render(formats=5)
    assert [p.name for p in run.render(formats="md")] == ["report.md"]  # one name is one format
    assert not list(tmp_path.glob("*.zip"))
