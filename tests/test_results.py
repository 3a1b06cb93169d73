"""Records, their JSON form, the context's recorder and progress output."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from labrunner.authoring.context import LabContext, render_markdown
from labrunner.base.progress import PlainReporter, Reporter, RichReporter
from labrunner.records.results import LabResult, jsonable, write_atomic


def make_ctx(tmp_path: Path, reporter=None) -> LabContext:
    result = LabResult(lab="demo", title="Demo", version="1")
    return LabContext(
        result,
        None,
        device=torch.device("cpu"),
        seed=5,
        profile="smoke",
        out_dir=tmp_path / "out",
        cache_dir=tmp_path / "cache",
        state_dir=tmp_path / "state",
        reporter=reporter or Reporter(),
    )


def test_jsonable_converts_scalars_and_non_finite():
    data = {
        "a": np.float32(1.5),
        "b": torch.tensor(2),
        "c": (1, 2),
        "d": math.nan,
        "e": -math.inf,
        "f": np.arange(3),
        "g": Path("x/y"),
    }
    assert jsonable(data) == {
        "a": 1.5,
        "b": 2,
        "c": [1, 2],
        "d": "nan",
        "e": "-inf",
        "f": [0, 1, 2],
        "g": "x/y",
    }


def test_result_roundtrip(tmp_path):
    ctx = make_ctx(tmp_path)
    with ctx.exercise("1. A", question="Why?") as ex:
        ex.metric("err", np.float64(1e-17))
        ex.check_close("close", 1.0, 1.0 + 1e-9, 1e-6, points=3)
        ex.check_at_most("small", 5, 3)
        ex.table([[1, 2.0]], columns=["x", "y"])
        ex.answer("err = {{ err | sci }}", err=1e-17)
    ctx.result.save(tmp_path / "r.json")
    back = LabResult.load(tmp_path / "r.json")
    assert back.metrics == {"err": 1e-17}
    assert [c.passed for c in back.checks] == [True, False]
    assert back.checks[0].points == 3.0 and back.checks[0].earned == 3.0
    assert back.exercises[0].answer == "err = 1.00e-17"
    assert back.exercises[0].records[0].rows == [[1, 2.0]]


def test_recorder_rejects_mistakes(tmp_path):
    ctx = make_ctx(tmp_path)
    with ctx.exercise("1") as ex:
        ex.metric("m", 1)
        with pytest.raises(ValueError, match="recorded twice"):
            ex.metric("m", 2)
        with pytest.raises(TypeError, match="must be a number"):
            ex.metric("s", "text")
        with pytest.raises(ValueError, match="invalid file name"):
            ctx.file("../escape.txt")
        with pytest.raises(ValueError, match="2 cells, expected 3"):
            ex.table([[1, 2]], columns=["a", "b", "c"])
        import jinja2

        with pytest.raises(jinja2.UndefinedError):
            ex.answer("{{ missing }}")


def test_answer_filters():
    assert (
        render_markdown(
            "{{ x | fmt }} {{ y | fmt }} {{ z | pct }} {{ n | fmt }}",
            x=0.12345,
            y=1234.5,
            z=0.953,
            n=61100840,
        )
        == "0.123 1,234 95.3 % 61,100,840"
    )
    assert render_markdown("{{ a | fmt }} {{ b | fmt(2) }} {{ c | sci(1) }}", a=2e-5, b=7.0, c=123.0) == (
        "2.00e-05 7.0 1.2e+02"
    )


def test_rng_and_generator_are_seeded(tmp_path):
    a, b = make_ctx(tmp_path), make_ctx(tmp_path)
    assert a.rng.integers(1 << 30) == b.rng.integers(1 << 30)
    assert torch.equal(
        torch.rand(3, generator=a.torch_generator()), torch.rand(3, generator=b.torch_generator())
    )


def test_write_atomic_leaves_no_temp_on_failure(tmp_path, monkeypatch):
    import os

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_atomic(tmp_path / "f.txt", "x")
    assert list(tmp_path.iterdir()) == []


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_rich_progress_on_a_terminal(tmp_path):
    stream = FakeTTY()
    reporter = RichReporter(stream)
    ctx = make_ctx(tmp_path, reporter)
    with ctx.progress(total=3, desc="epochs") as outer:
        for _ in ctx.progress(range(4), desc="steps"):
            pass
        outer.update(3, loss=0.5)
    ctx.log("hello")
    reporter.stop()
    text = stream.getvalue()
    assert "epochs" in text and "3/3" in text and "loss=0.5" in text and "[demo] hello" in text


def test_plain_progress_lines(tmp_path):
    stream = io.StringIO()
    ctx = make_ctx(tmp_path, PlainReporter(stream))
    for _ in ctx.progress(range(20), desc="steps"):
        pass
    lines = stream.getvalue().splitlines()
    assert lines[0] == "steps ..."
    assert "steps: 10/20" in lines
    assert lines[-1].startswith("steps: done in")


def test_part_and_order_are_saved_and_checked():
    from labrunner.records.results import LabResult, RunFileError

    result = LabResult(lab="a", title="A", version="1", part="Problem 2", order=20)
    again = LabResult.from_json(result.to_json())
    assert (again.part, again.order) == ("Problem 2", 20)
    assert LabResult.from_json({k: v for k, v in result.to_json().items() if k != "order"}).order is None
    for bad in ("20", True, float("inf")):
        with pytest.raises(RunFileError, match="order"):
            LabResult.from_json({**result.to_json(), "order": bad})


def test_a_report_rendered_later_keeps_the_saved_order(tmp_path):
    """No plugins at render time: the order saved in each result decides."""
    from runfolders import make_run

    from labrunner.records.results import LabResult
    from labrunner.report.render import render_report

    run_dir = make_run(tmp_path, labs=2)
    for name, order in (("lab0", 30), ("lab1", 10)):
        path = run_dir / name / "result.json"
        result = LabResult.load(path)
        result.order, result.part = order, f"Problem {order // 10}"
        result.save(path)
    render_report(run_dir, formats=["html"])
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert html.index('id="lab-lab1"') < html.index('id="lab-lab0"')
    assert "Problem 1" in html and "Problem 3" in html


def test_a_cached_result_does_not_claim_to_have_just_run():
    from labrunner.execution.runner import format_summary

    fresh = LabResult(lab="demo", title="Demo", version="1", duration_s=12.34)
    cached = LabResult(
        lab="demo",
        title="Demo",
        version="1",
        duration_s=1106.3,
        cached=True,
        finished="2026-12-02T21:04:05+00:00",
    )
    assert fresh.took() == "in 12.3 s"
    assert cached.took() == "(cached; ran in 1106.3 s on 2026-12-02)"
    assert dataclasses.replace(cached, finished="").took() == "(cached; ran in 1106.3 s)"
    assert "1106.3" not in format_summary([cached]) and "cached (ran earlier)" in format_summary([cached])


# --------------------------------------------------------------------------- refused where written


def test_the_recorder_writes_typed_records(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from labrunner.records.results import FigureRecord, MarkdownRecord, TableRecord

    ctx = make_ctx(tmp_path)
    with ctx.exercise("1") as ex:
        ex.figure(plt.figure(), "curve", caption="A curve")
        ex.table([{"a": 1, "b": (2, 3)}], caption="T")
        ex.markdown("{{ n }} blocks", n=1)
    figure, table, markdown = ctx.result.exercises[0].records
    assert figure == FigureRecord("figures/curve.png", "A curve")
    assert table == TableRecord(["a", "b"], [[1, [2, 3]]], "T")  # cells as JSON values
    assert markdown == MarkdownRecord("1 blocks")
    assert (tmp_path / "out" / figure.path).is_file()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda r: r.FigureRecord("../outside.png"), "unsafe path '../outside.png'"),
        (lambda r: r.FigureRecord("/etc/passwd"), "unsafe path '/etc/passwd'"),
        (lambda r: r.FigureRecord("figures/.hidden.png"), "unsafe path"),
        (lambda r: r.TableRecord("not a list", []), "the columns must be a list"),
        (lambda r: r.TableRecord(["a"], [1, 2]), "the rows must be a list of lists"),
        (lambda r: r.MarkdownRecord(None), "a Markdown block must be text"),
        (lambda r: r.Check("", True), "check: the name must be a non-empty string"),
        (lambda r: r.Check("c", "yes"), "check 'c': the outcome must be True or False, not str"),
        (lambda r: r.Check("c", True, points=-1.0), "points must be a number >= 0"),
        (lambda r: r.Claim("c", True, fidelity="maybe"), "fidelity must be one of assignment, stand-in"),
        (lambda r: r.LabError("ValueError", ""), "an error record needs a message"),
        (lambda r: r.LabError("", "lost"), "needs the type of the error"),
        (lambda r: r.LabError("X", "m", details={"message": "again"}), "detail 'message'"),
        (lambda r: r.LabError("X", "m", details={"frames": [1, 2]}), "detail 'frames'"),
        (lambda r: r.LabResult(lab="../x", title="t", version="1"), "invalid lab name"),
        (lambda r: r.LabResult(lab="x", title="t", version="1", status="ok"), "status must be one of"),
        (
            lambda r: r.LabResult(lab="x", title="t", version="1", error={"type": "X", "message": "m"}),
            "the error must be a LabError",
        ),
        (lambda r: r.LabResult.new("x", "t", seeds=[1]), "unknown provenance seeds"),
    ],
)
def test_a_bad_record_is_refused_where_it_is_written(make, message):
    from labrunner.records import results

    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        make(results)


def test_a_lab_error_round_trips_with_its_details(tmp_path):
    from labrunner.records.results import LabError

    error = LabError("WorkerKilled", "killed by SIGKILL", details={"signal": "SIGKILL"})
    result = LabResult.new("demo", "Demo", "1", seed=3).stop(error)
    assert (result.status, result.seed) == ("error", 3)
    result.save(tmp_path / "r.json")
    saved = json.loads((tmp_path / "r.json").read_text())["error"]
    assert saved == {
        "type": "WorkerKilled",
        "message": "killed by SIGKILL",
        "traceback": "",
        "signal": "SIGKILL",
    }
    assert LabResult.load(tmp_path / "r.json").error == error
    assert LabResult.new("demo", "Demo").stop(LabError.interrupted()).status == "interrupted"


def test_an_exception_without_a_message_still_gives_one():
    from labrunner.records.results import LabError

    assert LabError.from_exception(AssertionError()).message == "raised without a message"
    assert str(LabError.from_exception(ValueError("bad  \n value"))) == "ValueError: bad value"
    # an error saved by an earlier labrunner without a message reads back with one
    old = LabError.from_json({"type": "AssertionError", "message": "", "traceback": ""})
    assert old.message == "raised without a message"


def test_a_record_refused_on_reading_names_the_field():
    from labrunner.records.results import RunFileError

    data = LabResult(lab="demo", title="Demo", version="1").to_json()
    data["exercises"] = [{"title": "1", "checks": [{"name": "", "passed": True}]}]
    with pytest.raises(RunFileError, match=r"^exercises\[0\]\.checks\[0\]: check: the name must be"):
        LabResult.from_json(data)


def test_quiet_progress_is_ctx_progress_without_a_context():
    """A measure function's default progress: both uses of ``ctx.progress`` work and count,
    and show nothing."""
    from labrunner import quiet_progress

    items = []
    bar = quiet_progress(range(3), desc="items")
    for item in bar:
        items.append(item)
    assert items == [0, 1, 2] and bar.n == 3 and bar.desc == "items"
    with quiet_progress(total=4, desc="steps") as steps:
        steps.update(2, loss=0.5)
        steps.update()
    assert (steps.n, steps.total) == (3, 4)
    with pytest.raises(TypeError, match="without items"):
        list(quiet_progress(total=2))


def test_a_claim_name_is_recorded_once_hidden_or_not(tmp_path):
    ctx = make_ctx(tmp_path)
    with ctx.exercise("1") as ex:
        ex.claim("kept_back", True, statement="s", hidden=True)
        ex.claim("shown", False, statement="s")
        for name, hidden in (("kept_back", False), ("shown", True), ("kept_back", True)):
            with pytest.raises(ValueError, match=f"claim '{name}' recorded twice"):
                ex.claim(name, True, statement="s", hidden=hidden)
    assert ctx.claims == {"shown": False}
