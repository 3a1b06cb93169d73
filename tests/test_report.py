"""The report: HTML structure (parsed), Markdown, escaping, math, templates, PDF, CLI.

``make_run`` (tests/runfolders.py, re-exported here) builds a synthetic run folder from
LabResult objects (no lab runs, no torch); test_check.py, test_submit.py and
benchmarks/bench_report.py reuse it.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import pytest
from conftest import child_env, labrunner_argv, run_cli, run_subprocess
from printcheck import needs_pdf_tools, printed_text
from runfolders import EVIL_TITLE, make_lab, make_run, png_bytes  # noqa: F401  (re-exported)

from labrunner.base.errors import UsageError
from labrunner.records.results import write_json
from labrunner.records.runfolder import load_run
from labrunner.report.formatting import format_check_value, format_value, nonfinite_reason
from labrunner.report.pdf import find_pdf_engine
from labrunner.report.render import render_report


class Page(HTMLParser):
    """Collects what the tests look at: tags, attributes, and the text inside elements."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: dict[str, list[str]] = {}
        self.all_text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        if tag not in ("img", "meta", "link", "br", "hr", "input"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in self.stack:
            while self.stack and self.stack.pop() != tag:
                pass

    def handle_data(self, data):
        self.all_text.append(data)
        for tag in set(self.stack):
            self.text.setdefault(tag, []).append(data)

    def find(self, tag: str) -> list[dict[str, str]]:
        return [attrs for t, attrs in self.tags if t == tag]

    def classes(self) -> set[str]:
        return {c for _, attrs in self.tags for c in attrs.get("class", "").split()}


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


# --------------------------------------------------------------------------- HTML


def test_html_is_self_contained_and_structured(tmp_path):
    run_dir = make_run(tmp_path)
    written = render_report(run_dir)
    assert written == [run_dir / "report.html", run_dir / "report.md"]
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    page = parse(html)

    # images: embedded PNGs, one per figure
    images = page.find("img")
    assert len(images) == 1
    for img in images:
        assert img["src"].startswith("data:image/png;base64,")
        assert (
            base64.b64decode(img["src"].split(",", 1)[1]) == (run_dir / "lab0/figures/fig0.png").read_bytes()
        )
        assert img["alt"]
    # nothing loaded from elsewhere: no scripts, stylesheets, fonts, frames
    assert not page.find("script") and not page.find("link") and not page.find("iframe")
    for _, attrs in page.tags:
        for name in ("src", "href"):
            value = attrs.get(name, "")
            assert not value or value.startswith(("data:", "#")), (name, value)
    assert "@import" not in html and "url(" not in html
    assert len(page.find("style")) == 1

    # math became MathML; an unknown macro stays visible as LaTeX in <code>
    maths = page.find("math")
    assert len(maths) >= 6
    assert {m.get("display") for m in maths} == {"inline", "block"}
    assert "\\badmacro{x}" in "".join(page.text["code"])
    assert "mfrac" in {t for t, _ in page.tags}

    # the lab title from a (malicious) lab is text, not markup
    assert EVIL_TITLE in "".join(page.text["h2"])
    assert not page.find("b") and not page.find("i")  # the <b>/<i> in a table cell and a title too
    assert "<script>" not in html

    # title block, contents, summary, labs, environment
    assert "Assignment 2" in "".join(page.text["h1"])
    header = "".join(page.text["header"])
    assert (
        "Ada" in header and "12345" in header and "Deep Learning" in header and "29 November 2026" in header
    )
    toc_links = [a["href"] for a in page.find("a") if a.get("href", "").startswith("#")]
    ids = {attrs["id"] for _, attrs in page.tags if "id" in attrs}
    assert {"#summary", "#lab-lab0", "#lab-counter", "#lab-crashing", "#environment"} <= set(toc_links)
    assert all(link[1:] in ids for link in toc_links), "a contents link points nowhere"
    assert {"pass", "fail", "status-error", "status-failed", "status-passed"} <= page.classes()

    summary = "".join(page.text["table"])
    assert "3/6 points" not in summary  # per-lab cells, checked below
    text = " ".join(page.all_text)
    assert "ZeroDivisionError" in text and "1 / 0" in "".join(page.text["pre"])
    assert "value above threshold" in text and "≥ 0.5" in text
    assert "Test CPU" in text and "abc123 (uncommitted changes)" in text and "2.14.1" in text
    assert "steps: 3" in "".join(page.text["pre"])
    # order: question, answer, figure, table, markdown, the measurements used, checks, appendix
    body = html[html.index('id="lab-lab0-ex1"') :]
    marks = ["Question", "Answer", "<img", "Table 1.", "Extra block", "Measurements the claims", "Checks"]
    marks += ["All measurements of this lab"]
    positions = [body.index(m) for m in marks]
    assert positions == sorted(positions)


def test_summary_counts_checks_and_points(tmp_path):
    run_dir = make_run(tmp_path)
    render_report(run_dir, formats=["html"])
    page = parse((run_dir / "report.html").read_text())
    rows = []
    for line in (run_dir / "report.html").read_text().split("<tr")[1:]:
        rows.append(line)
    summary = [r for r in rows if 'class="status-' in r[:40]]
    assert len(summary) == 3
    assert "1/1" in summary[0] and "2/2" in summary[0]  # lab0: 1 check, 2 points
    assert "1/2" in summary[1] and "1/4" in summary[1]  # counter: one of two checks, 1 of 4 points
    assert "0/0" in summary[2]
    footer = "".join(page.text["tfoot"])
    assert "2/3" in footer and "3/6" in footer and "1/3 passed" in footer


def test_author_override_and_defaults(tmp_path):
    run_dir = make_run(tmp_path, report={})
    render_report(run_dir, formats=["html"], author="Grace Hopper")
    page = parse((run_dir / "report.html").read_text())
    assert "Lab report" in "".join(page.text["h1"])
    assert "Grace Hopper" in "".join(page.text["header"])


def test_figures_are_numbered_across_labs(tmp_path):
    run_dir = make_run(tmp_path, labs=2, figures=2)
    render_report(run_dir, formats=["html"])
    page = parse((run_dir / "report.html").read_text())
    assert [f["id"] for f in page.find("figure") if f.get("class") == "figure"] == [
        f"figure-{i}" for i in range(1, 5)
    ]


def test_missing_figure_does_not_break_the_report(tmp_path):
    run_dir = make_run(tmp_path)
    (run_dir / "lab0/figures/fig0.png").unlink()
    render_report(run_dir)
    page = parse((run_dir / "report.html").read_text())
    assert not page.find("img") and "missing" in page.classes()
    assert "lab0/figures/fig0.png" in "".join(page.text["code"])
    assert "`fig0.png` is missing" in (run_dir / "report.md").read_text()


def test_an_interrupted_run_renders_what_finished(tmp_path):
    run_dir = make_run(tmp_path)
    info = json.loads((run_dir / "run.json").read_text())
    info["status"] = "interrupted"
    info["labs"] = info["labs"][:1]  # the others are named in settings.labs only
    write_json(run_dir / "run.json", info)
    shutil.rmtree(run_dir / "crashing")
    render_report(run_dir, formats=["html"])
    html = (run_dir / "report.html").read_text()
    assert 'id="lab-lab0"' in html and 'id="lab-counter"' in html and 'id="lab-crashing"' not in html
    assert "run interrupted" in html


def test_rendering_4_labs_and_40_figures_takes_under_2_s(tmp_path):
    import time

    run_dir = make_run(tmp_path, labs=4, figures=10, png=png_bytes(640, 400))
    start = time.perf_counter()
    render_report(run_dir)
    elapsed = time.perf_counter() - start
    assert len(parse((run_dir / "report.html").read_text()).find("img")) == 40
    assert elapsed < 2.0, f"{elapsed:.2f} s (benchmarks/bench_report.py measures it)"


def test_format_value():
    assert format_value(None) == "—"
    assert format_value(True) == "true"
    assert format_value(195) == "195"
    assert format_value(0.123456) == "0.1235"
    assert format_value(1.5e-7) == "1.500e-07"
    assert format_value(12345.6) == "12346"
    assert format_value([1, 0.5]) == "[1, 0.5]"
    assert format_value("nan") == "—" and format_value(float("inf")) == "—"
    assert format_value("nan as a word") == "nan as a word"
    assert (
        nonfinite_reason("nan").startswith("not a number")
        and nonfinite_reason(float("-inf")) == "minus infinity"
    )
    assert nonfinite_reason(3.0) == "" and nonfinite_reason("text") == ""
    assert format_check_value([]) == "none" and format_check_value({}) == "none"
    assert format_check_value([3]) == "[3]" and format_check_value(None) == "—"


# --------------------------------------------------------------------------- Markdown


def test_markdown_report(tmp_path):
    run_dir = make_run(tmp_path, labs=2)
    render_report(run_dir, formats=["md"])
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    assert not (run_dir / "report.html").exists()
    assert md.startswith("*Deep Learning*\n\n# Assignment 2\n")
    # relative image links that resolve, next to the report
    links = [line[line.index("](") + 2 : -1] for line in md.splitlines() if line.startswith("![")]
    assert links == ["figures/lab0/fig0.png", "figures/lab1/fig0.png"]
    for link in links:
        assert (run_dir / link).read_bytes() == (run_dir / "lab0/figures/fig0.png").read_bytes()
    # math left as written
    assert "$\\sum_{i=1}^{n} i$" in md and "$$\\sum_{i=1}^{n} i = \\frac{n(n+1)}{2}$$" in md
    # text from labs cannot become HTML
    assert "<script>" not in md and "Counting &lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert "pool &lt;b>1&lt;/b>" in md
    assert "| ❌ fail | ≥ 0.5 | 0.1 | 0/3 |" in md
    assert "```text\nTraceback" in md
    assert "| layer | $r$ | stride |\n| --- | ---: | ---: |\n| conv1 | 11 | 4 |" in md
    # the Markdown parses as CommonMark tables with a real parser
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(md)
    assert sum(t.type == "table_open" for t in tokens) >= 8


def test_markdown_rerender_drops_stale_figures(tmp_path):
    run_dir = make_run(tmp_path)
    (run_dir / "figures" / "old").mkdir(parents=True)
    (run_dir / "figures" / "old" / "gone.png").write_bytes(b"x")
    (run_dir / "figures" / "mine.png").write_bytes(b"y")  # not the report's: it stays
    (run_dir / ".report-files.json").write_text('{"files": ["figures/old/gone.png"]}')  # an earlier render's
    render_report(run_dir, formats=["md"])
    assert sorted(p.relative_to(run_dir).as_posix() for p in (run_dir / "figures").rglob("*.png")) == [
        "figures/lab0/fig0.png",
        "figures/mine.png",
    ]


# --------------------------------------------------------------------------- templates, formats, errors


def test_template_dir_overrides_one_template(tmp_path):
    run_dir = make_run(tmp_path)
    custom = tmp_path / "tpl"
    custom.mkdir()
    (custom / "report.css").write_text("body { color: rebeccapurple; }\n")
    (custom / "report.md.j2").write_text(
        "# {{ meta.title }} by {{ meta.author }}\n{% for lab in labs %}- {{ lab.result.lab }}\n{% endfor %}"
    )
    render_report(run_dir, template_dir=custom)
    html = (run_dir / "report.html").read_text()
    assert "rebeccapurple" in html and 'id="lab-lab0"' in html  # the rest is the built-in template
    assert (run_dir / "report.md").read_text() == "# Assignment 2 by Ada\n- lab0\n- counter\n- crashing\n"


def test_template_dir_can_extend_the_builtin(tmp_path):
    run_dir = make_run(tmp_path)
    custom = tmp_path / "tpl"
    custom.mkdir()
    (custom / "report.html.j2").write_text(
        '{% extends "default/report.html.j2" %}{% block toc %}<p class="my-toc">no contents</p>{% endblock %}'
    )
    render_report(run_dir, template_dir=custom, formats=["html"])
    page = parse((run_dir / "report.html").read_text())
    assert "my-toc" in page.classes() and "toc" not in page.classes()
    assert page.find("math")


def test_template_errors_are_usage_errors(tmp_path):
    run_dir = make_run(tmp_path)
    custom = tmp_path / "tpl"
    custom.mkdir()
    (custom / "report.md.j2").write_text("line one\n{% for x in %}\n")
    with pytest.raises(UsageError, match=r"report.md.j2:2"):
        render_report(run_dir, template_dir=custom, formats=["md"])
    with pytest.raises(UsageError, match="no such folder"):
        render_report(run_dir, template_dir=tmp_path / "missing")


def test_unknown_format_and_not_a_run(tmp_path):
    run_dir = make_run(tmp_path)
    with pytest.raises(UsageError, match="unknown report format 'docx'; available: html, md, pdf"):
        render_report(run_dir, formats=["docx"])
    with pytest.raises(UsageError, match="not a run folder"):
        render_report(tmp_path)
    info = json.loads((run_dir / "run.json").read_text())
    info["labs"].append({"lab": "../../etc"})
    write_json(run_dir / "run.json", info)
    with pytest.raises(UsageError, match="invalid lab name '../../etc'"):
        load_run(run_dir)
    (run_dir / "run.json").write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        load_run(run_dir)


class FakePlugins:
    """Stands in for labrunner.settings.plugins.Plugins: only report_formats() is used."""

    def __init__(self, formats):
        self.formats = formats

    def report_formats(self):
        return self.formats


def test_plugin_report_format(tmp_path):
    run_dir = make_run(tmp_path)
    seen = {}

    def render_summary(run, out_dir):
        seen["labs"] = [lab.lab for lab in run.labs]
        seen["meta"] = run.meta
        path = out_dir / "summary.json"
        path.write_text(json.dumps([s.__dict__ for s in run.summaries()]))
        return path

    plugins = FakePlugins({"json-summary": (render_summary, "one JSON list")})
    written = render_report(run_dir, formats=["json-summary"], plugins=plugins)
    assert written == [run_dir / "summary.json"]
    assert seen["labs"] == ["lab0", "counter", "crashing"] and seen["meta"]["author"] == "Ada"
    with pytest.raises(UsageError, match="available: html, md, pdf, json-summary"):
        render_report(run_dir, formats=["nope"], plugins=plugins)

    def broken(run, out_dir):
        raise KeyError("figures")

    with pytest.raises(UsageError, match="report format 'broken' failed: KeyError: 'figures'"):
        render_report(run_dir, formats=["broken"], plugins=FakePlugins({"broken": (broken, "")}))


def test_plugin_report_format_through_the_hook(tmp_path):
    """A real plugin registering a format with register_report_formats."""
    import labrunner
    from labrunner.settings.plugins import Plugins

    class FormatPlugin:
        @labrunner.hookimpl
        def register_report_formats(self, register):
            register(
                "txt",
                lambda run, out: (out / "report.txt").write_text(run.meta["title"]) and out / "report.txt",
                "plain",
            )

    plugins = Plugins()
    plugins.pm.register(FormatPlugin(), name="fmt")
    run_dir = make_run(tmp_path)
    assert render_report(run_dir, formats=["txt"], plugins=plugins) == [run_dir / "report.txt"]
    assert (run_dir / "report.txt").read_text() == "Assignment 2"


# --------------------------------------------------------------------------- PDF


def test_pdf_without_engine_says_what_to_install(tmp_path, monkeypatch):
    run_dir = make_run(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("LABRUNNER_CHROMIUM", raising=False)
    assert find_pdf_engine() is None
    with pytest.raises(UsageError, match="install Chromium") as info:
        render_report(run_dir, formats=["html", "md", "pdf"])
    assert "report.html" in str(info.value)
    assert (run_dir / "report.html").is_file() and (run_dir / "report.md").is_file()
    assert not (run_dir / "report.pdf").exists()


@pytest.mark.slow
@needs_pdf_tools
def test_pdf_with_chromium(tmp_path):
    run_dir = make_run(tmp_path)
    written = render_report(run_dir, formats=["pdf"])
    assert written == [run_dir / "report.html", run_dir / "report.pdf"]
    data = (run_dir / "report.pdf").read_bytes()
    assert data.startswith(b"%PDF-") and len(data) > 5000
    # the PDF is the report: its lab titles, tables and formulas, as text
    pdf = printed_text(run_dir)
    assert pdf.has("Counting <script>alert(1)</script>") and pdf.cells and pdf.formulas
    assert not pdf.missing_cells and not pdf.cut_formulas, (pdf.missing_cells, pdf.cut_formulas)
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")]


# --------------------------------------------------------------------------- torch-free, CLI


@pytest.mark.slow  # a subprocess
def test_report_never_imports_torch(tmp_path):
    run_dir = make_run(tmp_path)
    program = (
        "import sys\n"
        "from pathlib import Path\n"
        "from labrunner.report.render import render_report\n"
        f"render_report(Path({str(run_dir)!r}))\n"
        "heavy = [m for m in ('torch', 'torchvision', 'matplotlib', 'numpy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = run_subprocess("-c", program, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (run_dir / "report.html").is_file()
    # the command too: -X importtime lists every module imported
    proc = run_subprocess("-X", "importtime", "-m", "labrunner", "report", str(run_dir), timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "markdown_it" in imported and not imported & {"torch", "torchvision", "numpy", "matplotlib"}


@pytest.mark.slow  # a subprocess
def test_cli_report(tmp_path):
    run_dir = make_run(tmp_path)
    proc = run_cli("report", "--author", "Grace", "-q", cwd=tmp_path, timeout=120, input="")
    # reports/latest does not exist: the latest run cannot be found
    assert proc.returncode == 2 and "no runs found" in proc.stderr
    (tmp_path / "reports" / "latest").symlink_to(run_dir.name)
    proc = run_cli("report", "--author", "Grace", cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "report.html" in proc.stdout and "report.md" in proc.stdout
    assert "Grace" in (run_dir / "report.html").read_text()
    proc = run_cli("report", str(run_dir), "--format", "docx", timeout=120)
    assert proc.returncode == 2 and "unknown report format 'docx'" in proc.stderr
    proc = run_cli("report", "--list-formats", timeout=120)
    assert proc.returncode == 0 and [line.split()[0] for line in proc.stdout.splitlines()][:3] == [
        "html",
        "md",
        "pdf",
    ]


@pytest.mark.slow  # a subprocess
def test_cli_report_pdf_without_engine(tmp_path):
    run_dir = make_run(tmp_path)
    env = child_env(PATH=str(tmp_path / "empty"), HOME=str(tmp_path), PYTHONPATH=":".join(sys.path))
    proc = subprocess.run(
        labrunner_argv("report", str(run_dir), "--pdf"), capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 2
    assert "install Chromium" in proc.stderr
    assert (run_dir / "report.html").is_file() and (run_dir / "report.md").is_file()


# --------------------------------------------------------------------------- end to end, properties


@pytest.mark.slow  # runs labs in worker processes
def test_run_renders_the_report_and_check_and_submit_follow(cli, workdir):
    """`labrunner run` with real (tiny) labs: the report, then check, report again and submit."""
    status, out, err = cli("run", "counter", "failing", "crashing", "--profile", "smoke", "--author", "Ada L")
    assert status == 1, err
    run_dir = (workdir / "reports" / "latest").resolve()
    assert "report.html" in out and "report.md" in out
    page = parse((run_dir / "report.html").read_text())
    assert "Counting <script>alert(1)</script>" in "".join(page.text["h2"])  # the lab's real title
    (img,) = page.find("img")
    assert (
        base64.b64decode(img["src"].split(",", 1)[1]) == (run_dir / "counter/figures/steps.png").read_bytes()
    )
    assert "Ada L" in "".join(page.text["header"])
    assert "ZeroDivisionError" in "".join(page.text["h3"])
    assert page.find("math")

    status, out, err = cli("check", "--json")
    assert status == 1 and json.loads(out)["points"] == 3.0
    before = (run_dir / "report.html").read_text()
    status, out, err = cli("report")
    assert status == 0 and (run_dir / "report.html").read_text() == before  # same files, same report
    status, out, err = cli("submit", "-o", "hw.zip")
    assert status == 0 and (workdir / "hw.zip").is_file()


def test_lab_text_never_becomes_markup():
    """Whatever a lab writes, the rendered HTML holds no element outside a small safe set."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from labrunner.report.mdmath import markdown_inline, markdown_to_html

    pieces = st.sampled_from(
        [
            "<script>",
            "</script>",
            "<img src=x onerror=alert(1)>",
            "$",
            "$$",
            "\\text{",
            "<b>",
            "}",
            "\\href{",
            "javascript:",
            "[a](",
            ")",
            "![i](",
            "`",
            "\n",
            "|",
            "&",
            "x",
            " ",
            "\\frac{",
            "{",
            "<iframe>",
            '"',
            "'",
        ]
    )
    allowed = {
        "p",
        "span",
        "div",
        "code",
        "pre",
        "a",
        "em",
        "strong",
        "math",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "ul",
        "ol",
        "li",
        "blockquote",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "br",
        "s",
        "img",
    }  # img only with a data: source

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(pieces, max_size=30).map("".join))
    def check(text):
        for html in (markdown_to_html(text), markdown_inline(text)):
            page = parse(str(html))
            for tag, attrs in page.tags:
                if tag in ("math",) or page_in_math(tag):
                    continue
                assert tag in allowed, (tag, text)
                assert not any(k.startswith("on") for k in attrs), (attrs, text)
                if tag == "img":
                    assert attrs["src"].startswith("data:"), text
                if tag == "a":
                    assert not attrs.get("href", "").lower().startswith("javascript:"), text

    check()


def page_in_math(tag: str) -> bool:
    """MathML elements (already checked against a list in labrunner.report.mdmath)."""
    from labrunner.report.mdmath import _MATHML_TAGS

    return tag in _MATHML_TAGS


# --------------------------------------------------------------------------- order, fidelity, legibility


def _edit_result(run_dir, name, edit):
    """Load ``<name>/result.json``, let ``edit`` change the LabResult, save it again."""
    from labrunner.records.results import LabResult

    path = run_dir / name / "result.json"
    result = LabResult.load(path)
    edit(result)
    result.save(path)


def _lab_ids(html: str) -> list[str]:
    import re

    return re.findall(r'<section class="lab status-\w+" id="lab-([\w-]+)"', html)


def test_labs_follow_the_configured_order_then_their_own(tmp_path):
    from labrunner.authoring.lab import Lab

    run_dir = make_run(tmp_path, labs=2)  # run order: lab0, lab1, counter, crashing
    render_report(run_dir, formats=["html"])
    assert _lab_ids((run_dir / "report.html").read_text()) == ["lab0", "lab1", "counter", "crashing"]

    class Crashing(Lab):  # an installed lab declaring where it belongs
        name = "crashing"
        title = "A lab that raises"
        part = "Problem 1"
        order = 0

        def run(self, ctx):
            pass

    class Installed:
        labs = {"crashing": Crashing()}

    from labrunner.report.render import render_html, render_markdown

    render_html(load_run(run_dir), run_dir, plugins=Installed())
    render_markdown(load_run(run_dir), run_dir, plugins=Installed())
    html = (run_dir / "report.html").read_text()
    assert _lab_ids(html) == ["crashing", "lab0", "lab1", "counter"]
    assert '<p class="part-label">Problem 1</p>' in html
    assert "## Problem 1 · A lab that raises" in (run_dir / "report.md").read_text()

    info = json.loads((run_dir / "run.json").read_text())
    info["settings"]["report"]["order"] = ["counter", "lab1"]  # as `report: {order: [...]}` saves it
    write_json(run_dir / "run.json", info)
    render_html(load_run(run_dir), run_dir, plugins=Installed())
    html = (run_dir / "report.html").read_text()
    assert _lab_ids(html) == ["counter", "lab1", "crashing", "lab0"]
    toc = html[html.index('class="toc"') : html.index('id="summary"')]
    assert toc.index("#lab-counter") < toc.index("#lab-lab1") < toc.index("#lab-crashing")


def test_config_file_report_order(tmp_path):
    from labrunner.settings.config import load_run_config, parse_set

    path = tmp_path / "labrunner.yaml"
    path.write_text("report:\n  order: [rnn_lm, attention]\n  author: Ada\n")
    assert load_run_config(path).report == {"order": ["rnn_lm", "attention"], "author": "Ada"}
    path.write_text("report:\n  order: [rnn_lm, {x: 1}]\n")
    with pytest.raises(UsageError, match=r"report\.order: expected a list of lab names"):
        load_run_config(path)
    assert parse_set(["report.order=[attention, rnn_lm]"])[1] == {"order": ["attention", "rnn_lm"]}


def test_stand_in_points_are_shown_apart_from_the_assignment(tmp_path):
    run_dir = make_run(tmp_path, labs=2)

    def stand_in(result):
        result.exercises[0].fidelity = "stand-in"
        result.exercises[
            0
        ].fidelity_reason = "no ImageNet weights offline: a small CNN trained on generated images"

    _edit_result(run_dir, "lab1", stand_in)
    render_report(run_dir, formats=["html", "md"])
    html = (run_dir / "report.html").read_text()
    page = parse(html)
    header = " ".join(page.text["header"])
    # lab0 2/2 and counter 1/4 on the assignment (3/6); lab1's 2/2 points apart
    assert "3/6 check points on the assignment's material" in header
    assert "8/8" not in header and "5/8" not in header
    assert "lab1" in header and "2/2 more check points that are not the assignment" in header
    summary = html[html.index('id="summary"') : html.index('id="lab-')]
    assert "Check points on the assignment" in summary and "Check points on stand-ins" in summary
    assert "partly stand-in" not in summary and "stand-in</span>" in summary  # its only exercise
    lab1 = html[html.index('id="lab-lab1"') : html.index('id="lab-counter"')]
    assert "0/0 check points on the assignment's material, 2/2 on stand-ins" in lab1
    assert (
        "no ImageNet weights offline" in lab1 and "1 of 1 exercise ran wholly or partly on a stand-in" in lab1
    )
    md = (run_dir / "report.md").read_text()
    assert "3/6 check points on the assignment's material" in md
    assert (
        "| Check points (assignment) | Check points (stand-in) |" in md
        and "no ImageNet weights offline" in md
    )


def test_a_run_without_stand_ins_says_so(tmp_path):
    run_dir = make_run(tmp_path)
    render_report(run_dir, formats=["html"])
    html = (run_dir / "report.html").read_text()
    assert "Check points on stand-ins" not in html and "not the assignment" not in html
    assert "3/6 check points" in " ".join(parse(html).text["header"])


def test_exercises_show_the_measurements_they_use_and_the_rest_go_to_the_appendix(tmp_path):
    from labrunner.records.results import Check, Claim

    run_dir = make_run(tmp_path)

    def measurements(result):
        ex = result.exercises[0]
        ex.metrics.update({"erf_ratio": 0.44, "unused_undefined": "nan", "named_in_claim": 2.5})
        ex.claims = [Claim("much_smaller", True, "ERF is much smaller", evidence="`named_in_claim` = 2.5")]
        ex.checks.append(Check("erf below half", True, expected="≤ 0.5", actual=0.44))
        ex.checks.append(Check("layers that differ", True, expected=[], actual=[]))
        ex.records[1].rows.append(["pool 2", "nan", "inf"])

    _edit_result(run_dir, "lab0", measurements)
    render_report(run_dir, formats=["html", "md"])
    html = (run_dir / "report.html").read_text()
    exercise = html[html.index('id="lab-lab0-ex1"') : html.index('id="lab-lab0-measurements"')]
    used = exercise[exercise.index("Measurements the claims") :]
    used = used[: used.index("</table>")]
    for name in ("total", "erf_ratio", "named_in_claim"):  # the check's actual, a check's value, a claim
        assert f"<code>{name}</code>" in used
    for name in ("tiny", "unused_undefined"):
        assert name not in exercise
    assert "2 more measurements of this exercise" in exercise
    appendix = html[html.index('id="lab-lab0-measurements"') :]
    appendix = appendix[: appendix.index("</details>")]
    assert appendix.startswith('id="lab-lab0-measurements"') and "<summary>All measurements" in appendix
    for name in ("total", "tiny", "erf_ratio", "unused_undefined", "named_in_claim", "lab_only"):
        assert f"<code>{name.replace('_', '_<wbr>')}</code>" in appendix  # may wrap after "_"
    assert ">nan<" not in html and ">inf<" not in html  # non-finite values are "—" with the reason
    assert '>—</span> <span class="na-reason">(not a number' in appendix
    assert '<p class="table-note">— : infinite.</p>' in exercise  # the table says why once
    layers = exercise[exercise.index("layers that differ") :]
    assert "<td>none</td>" in layers and 'none <span class="message">(no item differs)</span>' in layers
    md = (run_dir / "report.md").read_text()
    assert "| `unused_undefined` | — (not a number" in md and "none (no item differs)" in md
    assert "<summary>All measurements of this lab (6)</summary>" in md


def test_configuration_is_a_compact_appendix(tmp_path):
    run_dir = make_run(tmp_path)
    _edit_result(run_dir, "lab0", lambda r: r.config.update({"model": {"hidden": 64, "layers": [1, 2]}}))
    render_report(run_dir, formats=["html", "md"])
    html = (run_dir / "report.html").read_text()
    appendix = html[html.index('id="environment"') :]
    assert appendix.count('<dl class="config-list">') == 1  # lab0 only: the others have no config
    for row in ("<code>steps</code></dt><dd>3</dd>", "<code>model.<wbr>hidden</code></dt><dd>64</dd>"):
        assert row in appendix
    assert "<code>model.<wbr>layers</code></dt><dd>[1, 2]</dd>" in appendix
    assert '<details class="config-yaml screen-only">' in appendix  # the raw YAML, on screen only
    md = (run_dir / "report.md").read_text()
    assert "`steps` = 3 · `model.hidden` = 64 · `model.layers` = [1, 2]" in md


def test_older_chromium_keeps_its_own_page_numbers():
    from labrunner.report.pdf import margin_boxes_supported

    assert margin_boxes_supported("Chromium 156.0.8078.114 built on Debian GNU/Linux 12 (bookworm)")
    assert margin_boxes_supported("Google Chrome 131.0.6778.85")
    assert not margin_boxes_supported("Chromium 130.0.6723.91")
    assert margin_boxes_supported("")  # unknown: assume a recent browser


def test_printed_pages_carry_title_student_and_page_numbers(tmp_path):
    run_dir = make_run(tmp_path, report={"title": 'Hw 2 "</style><script>x</script>', "author": "Ada"})
    render_report(run_dir, formats=["html"])
    html = (run_dir / "report.html").read_text()
    style = html[html.index("<style>") : html.index("</style>")]
    assert "<" not in style[len("<style>") :] and "@top-left" in style
    assert 'content: "Hw 2 \\22 \\3c \\2f style\\3e \\3c script\\3e x' in style
    assert '@top-right { content: "Ada"; }' in style
    assert 'counter(page) " of " counter(pages)' in style
    assert len(parse(html).find("script")) == 0


def test_figures_keep_the_width_they_were_drawn_for_and_open_full_size(tmp_path):
    from PIL import Image

    image = Image.new("RGB", (1100, 2200), "white")  # tall: 10 x 20 inches at 110 dpi
    out = io.BytesIO()
    image.save(out, format="PNG", dpi=(110, 110))
    run_dir = make_run(tmp_path, png=out.getvalue())
    render_report(run_dir, formats=["html"])
    html = (run_dir / "report.html").read_text()
    assert 'style="--fig-w: 960px"' in html and 'width="960"' in html  # 1100 px * 96 / 110
    assert 'href="#figure-1-full"' in html and 'id="figure-1-full"' in html
    css = (run_dir / "report.html").read_text()
    assert "max-height: 34rem" not in css and ".zoomable:target" in css


def test_long_displayed_formulas_break_between_relations():
    from labrunner.report.mdmath import markdown_to_html, split_display

    long = r"n_{\mathrm{out}} = \left\lfloor \frac{n + 2p - k}{s} \right\rfloor + 1, \quad j = j_{\mathrm{in}} s \le r"
    assert split_display(long) == [
        r"n_{\mathrm{out}}",
        r"= \left\lfloor \frac{n + 2p - k}{s} \right\rfloor + 1,",
        r"\quad j",
        r"= j_{\mathrm{in}} s",
        r"\le r",
    ]
    assert split_display("a = b") == ["a = b"]  # short: one piece
    nested = r"\begin{pmatrix} a = b \\ c = d \end{pmatrix} + \sum_{i=1}^{n} x_i^2 \lesssim 1"
    assert split_display(nested) == [nested]  # no top-level relation (\lesssim is not \le)
    assert split_display(r"x_{i} <= y + z + aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa") == [
        "x_{i}",
        "<= y + z + aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ]
    html = str(markdown_to_html(f"$${long}$$"))
    assert html.count("<math ") == 5 and '<span class="math-pieces">' in html
    assert str(markdown_to_html("$$a = b$$")).count("<math ") == 1


def test_a_displayed_line_of_equations_breaks_between_equations_only():
    """Equations separated by \\qquad wrap as wholes: never between ``start_out`` and its
    ``= start_in + ...`` (each equation is one ``math-eq`` group of pieces)."""
    from labrunner.report.mdmath import markdown_to_html

    line = r"j_{\mathrm{out}} = j_{\mathrm{in}}\, s, \qquad \mathrm{start}_{\mathrm{out}} = \mathrm{start}_{\mathrm{in}} + p"
    html = str(markdown_to_html(f"$${line}$$"))
    groups = re.findall(r'<span class="math-eq">(.*?)</span>', html)
    assert len(groups) == 2 and all(g.count("<math ") == 2 for g in groups)
    second = re.sub(r"<[^>]+>", "", groups[1])
    assert second.startswith("startout") and "=startin+p" in second  # one group, both sides
    assert "<mspace" not in groups[1][:200]  # the \qquad is the gap between groups, not a piece


def test_numbers_keep_their_thousands_together_inside_math():
    """``{{ n | fmt }}`` inside $...$ gives ``100{,}000``; the MathML is one number, which a
    browser does not space as punctuation ("100, 000")."""
    from labrunner.authoring.context import render_markdown
    from labrunner.report.mdmath import latex_to_mathml, markdown_to_html

    html = str(markdown_to_html(render_markdown("With $n = {{ n | fmt }}$ samples", n=1234567)))
    assert "<mn>1,234,567</mn>" in html and "<mo>,</mo>" not in html
    assert "<mn>12,977.25</mn>" in latex_to_mathml("12{,}977.25")
    tuple_ = latex_to_mathml("(3, 224)")  # a comma between numbers written apart stays a comma
    assert "<mn>3</mn><mo>,</mo><mn>224</mn>" in tuple_


def test_list_shows_profiles_and_settings(capsys):
    from labrunner.cli import main

    assert main(["list", "--json"]) == 0
    labs = json.loads(capsys.readouterr().out)
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert labs and out.count("settings (default, then each profile's value):") == len(labs)
    for lab in labs:
        block = out[out.index(f"{lab['name']} ") :]
        assert f"profiles: {', '.join(lab['profiles'])}" in block
        for key, value in lab["config"].items():
            assert re.search(rf"\n +{key} += {re.escape(json.dumps(value))}", block), (lab["name"], key)
    assert main(["list", "-q"]) == 0
    assert "profiles:" not in capsys.readouterr().out


def test_labs_from_an_earlier_run_and_labs_not_run(tmp_path):
    run_dir = make_run(tmp_path)

    def earlier(result):
        result.origin = {"kind": "earlier run", "run": "20261128-101500", "finished": result.finished}
        result.finished = "2026-11-28T10:20:00+00:00"
        result.profile = "quick"

    _edit_result(run_dir, "lab0", earlier)
    info = json.loads((run_dir / "run.json").read_text())
    info["labs"] = [
        *info.get("labs", []),
        {"lab": "rnn_lm", "status": "not run", "title": "Problem 2: an LSTM"},
    ]
    info["settings"]["labs"].append("rnn_lm")
    write_json(run_dir / "run.json", info)
    render_report(run_dir, formats=["html", "md"])
    html = (run_dir / "report.html").read_text()
    page = parse(html)
    assert "1 not run" in " ".join(page.text["header"])
    lab0 = html[html.index('id="lab-lab0"') : html.index('id="lab-counter"')]
    assert "This result comes from an earlier run (<code>20261128-101500</code>), 28 November 2026" in lab0
    assert "quick profile, seed 0, cpu" in lab0
    rnn = html[html.index('id="lab-rnn-lm"') :]
    assert 'class="lab status-not-run"' in html and "labrunner run rnn_lm" in rnn
    summary = html[html.index('id="summary"') : html.index('id="lab-')]
    assert 'class="status-not-run"' in summary and "from an earlier run" in summary
    md = (run_dir / "report.md").read_text()
    assert "## Problem 2: an LSTM — not run" in md and "`labrunner run rnn_lm` runs it" in md
    assert "*This result comes from an earlier run (`20261128-101500`), 28 November 2026" in md
