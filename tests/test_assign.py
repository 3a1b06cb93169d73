"""`labrunner assign`: solution regions become stubs, hidden checks stay back, marked answers
go to answers/<lab>.md; a stub fails only its exercise; transplanting regions back."""

from __future__ import annotations

import ast
import json
import textwrap
from pathlib import Path

import pytest

from labrunner.base.errors import UsageError
from labrunner.course.assign import assign, transplant_package
from labrunner.course.markers import AssignError, find_regions, transplant
from labrunner.course.stub import assign_source
from labrunner.records.results import LabResult

TOY_INIT = '''\
"""A toy lab with solution regions, hidden checks and student answers."""

import labrunner


class ToyLab(labrunner.Lab):
    name = "toy"
    title = "A toy lab"
    version = "1"

    def run(self, ctx):
        from . import experiment

        experiment.run(ctx)


@labrunner.hookimpl
def register_labs(register):
    register(ToyLab())
'''

TOY_TEXT = '''\
Q1 = "What is the square of 7?"
A1 = "The square is {{ y }}: the model answer."
Q2 = "What is 2 + 3?"
A2 = """It is {{ z }}:
the model answer."""
'''

TOY_EXPERIMENT = '''\
from labrunner import exercise_function

from . import text


def square(x):
    """x squared."""
    # BEGIN SOLUTION the square
    return x * x
    # END SOLUTION


def add(a, b):
    # BEGIN SOLUTION
    # STUB: return 0
    return a + b
    # END SOLUTION


@exercise_function
def first(ctx):
    with ctx.exercise("1. Square", question=text.Q1) as ex:
        y = ex.metric("square", square(7))
        ex.check_equal("square_is_49", y, 49)
        ex.check_equal("hidden_square", square(3), 9, hidden=True)
        # STUDENT ANSWER
        ex.answer(text.A1, y=y)
        return y


def second(ctx):
    with ctx.exercise("2. Sum", question=text.Q2) as ex:
        z = ex.metric("sum", add(2, 3))
        ex.check_equal("sum_is_5", z, 5)
        ex.claim("sum_small", z < 10, statement="the sum is small")
        if z:
            ex.claim("sum_positive", z > 0, statement="positive", hidden=True)
        # BEGIN HIDDEN
        secret = add(10, 20)
        ex.check_equal("hidden_sum", secret, 30, hidden=True)
        # END HIDDEN
        # STUDENT ANSWER
        ex.answer(text.A2, z=z)


def third(ctx, y):
    with ctx.exercise("3. Uses the square", question="Double it.") as ex:
        ex.metric("double", 2 * y)


def run(ctx):
    y = first(ctx)
    second(ctx)
    third(ctx, y)
'''


def make_toy(root: Path) -> Path:
    pkg = root / "toy"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(TOY_INIT)
    (pkg / "text.py").write_text(TOY_TEXT)
    (pkg / "experiment.py").write_text(TOY_EXPERIMENT)
    return pkg


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


# --------------------------------------------------------------------------- one file


def test_regions_become_stubs_at_their_indentation():
    out = assign_source(TOY_EXPERIMENT, "experiment.py")
    text = out.text
    ast.parse(text)
    assert "return x * x" not in text and "return a + b" not in text
    assert (
        '    # BEGIN SOLUTION the square\n    raise NotImplementedError("not implemented yet: the square")\n    # END SOLUTION\n'
        in text
    )
    # a region without a label names its function; its own stub replaces the default one
    assert "    # BEGIN SOLUTION\n    return 0\n    # END SOLUTION\n" in text
    assert (out.solutions, out.hidden) == (2, 3)


def test_hidden_checks_and_regions_are_left_out_and_empty_blocks_get_pass():
    text = assign_source(TOY_EXPERIMENT, "experiment.py").text
    assert "hidden" not in text and "secret" not in text
    assert "        if z:\n            pass\n" in text  # the hidden claim was the block's only statement


def test_marked_answers_become_student_answers_with_title_and_question():
    out = assign_source(TOY_EXPERIMENT, "experiment.py")
    assert out.text.count("ex.student_answer()") == 2 and "ex.answer(" not in out.text
    assert [(a.title, a.question) for a in out.answers] == [("1. Square", ""), ("2. Sum", "")]
    assert out.blanked == [("text.py", "A1"), ("text.py", "A2")]


def test_default_label_is_the_enclosing_function():
    src = "class A:\n    def f(self):\n        # BEGIN SOLUTION\n        return 1\n        # END SOLUTION\n"
    assert 'raise NotImplementedError("not implemented yet: A.f")' in assign_source(src, "m.py").text


def test_markers_in_strings_are_not_markers():
    src = 's = """\n# BEGIN SOLUTION\n"""\nx = 1\n'
    assert find_regions(src, "m.py") == []


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("# BEGIN SOLUTION\nx = 1\n", "m.py, line 1: '# BEGIN SOLUTION' has no '# END SOLUTION'"),
        ("x = 1\n# END SOLUTION\n", "m.py, line 2: '# END SOLUTION' without a '# BEGIN SOLUTION' before it"),
        (
            "# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION\n",
            "m.py, line 2: '# BEGIN SOLUTION' inside the region",
        ),
        (
            "# BEGIN SOLUTION\nx = 1\n# END HIDDEN\n",
            "m.py, line 3: '# END HIDDEN' closes the solution region",
        ),
        (
            "x = 1  # BEGIN SOLUTION\n# END SOLUTION\n",
            "m.py, line 1: '# BEGIN SOLUTION' must be on a line of its own",
        ),
        (
            "ok = ex.check('a', True, hidden=True)\n",
            "m.py, line 1: a hidden check() must be a statement of its own",
        ),
        ("ex.check('a', True, hidden=flag)\n", "m.py, line 1: hidden= must be True or False"),
        ("# STUDENT ANSWER\nx = 1\n", "m.py, line 1: '# STUDENT ANSWER' must stand just above an ex.answer"),
        (
            "if x:\n    # BEGIN SOLUTION\n    y = 1\nz = 2\n    # END SOLUTION\n",
            "m.py, line",
        ),
    ],
)
def test_bad_markers_are_one_line_errors_naming_file_and_line(source, message):
    with pytest.raises(AssignError) as info:
        assign_source(source, "m.py")
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_a_stub_that_does_not_compile_is_refused():
    src = "def f():\n    # BEGIN SOLUTION\n    # STUB: return (\n    return 1\n    # END SOLUTION\n"
    with pytest.raises(AssignError, match=r"m.py, line \d+: the student version is not valid Python"):
        assign_source(src, "m.py")


def test_transplant_puts_the_solutions_back_and_counts_regions():
    student = assign_source(TOY_EXPERIMENT, "experiment.py").text
    restored = transplant(student, TOY_EXPERIMENT, "experiment.py")
    assert "return x * x" in restored and "return a + b" in restored
    assert "hidden" not in restored  # what the student version left out stays out
    # the other way round: a student's solution goes into the instructor's code
    mine = student.replace("# STUB: return 0\n", "").replace("    return 0\n", "    return b + a\n")
    graded = transplant(TOY_EXPERIMENT, mine, "experiment.py")
    assert "return b + a" in graded and "hidden=True" in graded
    with pytest.raises(AssignError, match="2 solution regions here, 1 in the other version"):
        transplant(
            TOY_EXPERIMENT,
            student.replace("# END SOLUTION\n", "", 1).replace("    # BEGIN SOLUTION\n", "", 1),
            "experiment.py",
        )


# --------------------------------------------------------------------------- a package


def test_assign_writes_an_installable_student_package_and_never_touches_the_source(tmp_path):
    src = make_toy(tmp_path / "src")
    before = snapshot(src)
    out = tmp_path / "hw"
    (packages,) = assign([str(src)], out)
    assert snapshot(src) == before
    assert (packages.name, packages.solutions, packages.hidden) == ("toy", 2, 3)
    files = snapshot(out)
    assert set(files) == {
        "README.md",
        "pyproject.toml",
        "answers/toy.md",
        "toy/__init__.py",
        "toy/text.py",
        "toy/experiment.py",
    }
    for name, data in files.items():
        if name.endswith(".py"):
            ast.parse(data.decode())
    text_py = files["toy/text.py"].decode()
    assert "model answer" not in text_py and 'A1 = ""' in text_py and "Q1 = " in text_py
    assert "__labrunner_assigned_from__ = 'toy'" in files["toy/__init__.py"].decode()
    pyproject = files["pyproject.toml"].decode()
    assert '[project.entry-points.labrunner]\ntoy = "toy"' in pyproject
    answers = files["answers/toy.md"].decode()
    assert "## 1. Square\n\n> What is the square of 7?\n" in answers
    assert "## 2. Sum\n\n> What is 2 + 3?\n" in answers
    assert "3. Uses the square" not in answers  # the tool still answers that one


def test_assign_refuses_a_non_empty_out_and_an_out_inside_the_source(tmp_path):
    src = make_toy(tmp_path / "src")
    out = tmp_path / "hw"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty"):
        assign([str(src)], out)
    assert snapshot(out) == {"notes.txt": b"mine"}
    assign([str(src)], out, force=True)  # asked: written beside what is there
    assert (out / "notes.txt").read_text() == "mine" and (out / "toy" / "experiment.py").is_file()
    before = snapshot(src)
    with pytest.raises(UsageError, match="inside or over the source package"):
        assign([str(src)], src / "student")
    with pytest.raises(UsageError, match="inside or over the source package"):
        assign([str(src)], src.parent, force=True)
    assert snapshot(src) == before


def test_cli_error_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    from labrunner.cli import main

    src = make_toy(tmp_path / "src")
    (src / "bad.py").write_text("def f():\n    # BEGIN SOLUTION\n    return 1\n")
    out = tmp_path / "hw"
    assert main(["assign", str(src), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == "labrunner: error: bad.py, line 2: '# BEGIN SOLUTION' has no '# END SOLUTION'\n"
    assert not out.exists() and not list(tmp_path.glob(".hw.*"))
    assert main(["assign", "no.such.package", "--out", str(out)]) == 2
    assert "no.such.package" in capsys.readouterr().err


def test_transplant_package_restores_the_solutions(tmp_path):
    src = make_toy(tmp_path / "src")
    assign([str(src)], tmp_path / "hw")
    changed = transplant_package(tmp_path / "hw" / "toy", src, tmp_path / "back" / "toy")
    assert changed == ["experiment.py"]
    for folder in (tmp_path / "hw", tmp_path / "back" / "toy"):  # readable by others, as folders are
        assert folder.stat().st_mode & 0o777 == 0o755
    text = (tmp_path / "back" / "toy" / "experiment.py").read_text()
    assert "return x * x" in text and "hidden" not in text


# --------------------------------------------------------------------------- the student's run


@pytest.fixture
def toy_runs(tmp_path, monkeypatch, capsys):
    """The toy lab's instructor and student versions, each run once (in this process)."""
    from labrunner.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LABRUNNER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LABRUNNER_PLUGINS", "toy")
    src = make_toy(tmp_path / "instructor")
    assign([str(src)], tmp_path / "hw")

    def run(plugins: Path, out: str) -> tuple[int, Path]:
        status = main(
            ["run", "toy", "--plugins-dir", str(plugins), "--isolation", "none", "--out", out, "-q"]
        )
        capsys.readouterr()
        return status, (tmp_path / out / "latest").resolve()

    return tmp_path, run


def load_result(run_dir: Path) -> LabResult:
    return LabResult.load(run_dir / "toy" / "result.json")


def test_a_stub_fails_only_its_exercise_and_the_run_exits_1(toy_runs):
    tmp_path, run = toy_runs
    status, teacher_dir = run(tmp_path / "instructor", "teacher")
    assert status == 0
    teacher = load_result(teacher_dir)
    assert [c.name for c in teacher.checks if c.hidden] == ["hidden_square", "hidden_sum"]
    assert [c.name for ex in teacher.exercises for c in ex.claims if c.hidden] == ["sum_positive"]
    assert teacher.exercises[0].answer == "The square is 49: the model answer."

    # python -m labrunner ... would import a module named "toy" again: clear it between runs
    import sys

    for name in [m for m in sys.modules if m.startswith("labrunner_plugins_dir.toy")]:
        del sys.modules[name]
    status, student_dir = run(tmp_path / "hw", "student")
    assert status == 1
    result = load_result(student_dir)
    assert result.status == "failed"
    first, second, third = result.exercises
    assert first.not_implemented == "not implemented yet: the square (experiment.py, line 9)"
    assert third.not_implemented == first.not_implemented  # it needs the square
    assert second.not_implemented == ""  # its stub returns 0: it runs, and its check fails
    assert second.metrics == {"sum": 0}
    assert [(c.name, c.passed) for c in second.checks] == [("sum_is_5", False)]
    assert not any(c.hidden for c in result.checks)
    assert (first.answer_by, second.answer_by, third.answer_by) == ("lab", "student", "lab")  # as saved
    # what the report and check read: the answer file says the first one is the student's too
    from labrunner.records.runfolder import load_run

    shown = load_run(student_dir).labs[0].exercises
    assert [ex.answer_by for ex in shown] == ["student", "student", "lab"]
    html = (student_dir / "report.html").read_text()
    assert "Not implemented yet:</strong> the square (experiment.py, line 9)" in html
    assert "No answer yet:" in html and "answers/toy.md" in html
    assert "model answer" not in html


def test_check_lists_stubs_and_answers_and_renders_the_students_answer(toy_runs, capsys):
    from labrunner.cli import main

    tmp_path, run = toy_runs
    answers = tmp_path / "hw" / "answers" / "toy.md"
    text = answers.read_text().replace(
        "## 2. Sum\n\n> What is 2 + 3?\n\n<!-- your answer -->",
        "## 2. Sum\n\n> What is 2 + 3?\n\nMy sum is {{ metrics.sum }} and {{ metrics.total }}; I read 4.5 somewhere.",
    )
    answers.write_text(text)
    status, run_dir = run(tmp_path / "hw", "student")
    assert status == 1
    assert (run_dir / "toy" / "answers.md").read_text() == text
    assert main(["check", str(run_dir), "--json"]) == 1
    grades = json.loads(capsys.readouterr().out)
    lab = grades["labs"][0]
    assert lab["not_implemented"][0]["exercise"] == "1. Square"
    problems = {a["exercise"]: a["problems"] for a in lab["answers"]}
    assert problems["1. Square"] == ["no answer"]
    assert problems["2. Sum"][0].startswith("{{ metrics.total }}: this run recorded no metric 'total'")
    assert main(["check", str(run_dir)]) == 1
    out = capsys.readouterr().out
    assert "  TODO  1. Square: not implemented yet: the square" in out
    assert "  ANSWER  1. Square: no answer" in out
    # with the reference mended the answer renders from the run, and the copied number is flagged
    answers.write_text(text.replace(" and {{ metrics.total }}", ""))
    status, run_dir = run(tmp_path / "hw", "student")
    assert main(["check", str(run_dir), "--json"]) == 1
    lab = json.loads(capsys.readouterr().out)["labs"][0]
    problems = {a["exercise"]: a["problems"] for a in lab["answers"]}
    assert problems["2. Sum"] == [
        "the number 4.5 matches none of this exercise's measurements as rounded "
        "(cite it from the run: {{ metrics.NAME }})"
    ]
    html = (run_dir / "report.html").read_text()
    assert "My sum is 0; I read 4.5 somewhere." in html and "Answer (the student's)" in html


def test_a_student_version_replaces_the_built_in_lab_of_the_same_name(tmp_path, monkeypatch):
    from labrunner.settings.plugins import load_plugins

    monkeypatch.delenv("LABRUNNER_PLUGINS", raising=False)
    pkg = tmp_path / "plugins" / "attention"
    pkg.mkdir(parents=True)
    body = textwrap.dedent(
        """
        import labrunner

        class Mine(labrunner.Lab):
            name = "attention"
            title = "Mine"
            def run(self, ctx):
                pass

        @labrunner.hookimpl
        def register_labs(register):
            register(Mine())
        """
    )
    (pkg / "__init__.py").write_text(body)
    plugins = load_plugins([tmp_path / "plugins"])
    assert plugins.labs["attention"].title != "Mine"  # not marked: the built-in stays
    assert any("already loaded (builtin)" in str(p) for p in plugins.problems)
    (pkg / "__init__.py").write_text(body + '\n__labrunner_assigned_from__ = "labrunner.labs.attention"\n')
    import sys

    sys.modules.pop("labrunner_plugins_dir.attention", None)
    plugins = load_plugins([tmp_path / "plugins"])
    assert plugins.labs["attention"].title == "Mine" and not plugins.problems
    assert "assigned from labrunner.labs.attention" in plugins.infos["attention"].source
