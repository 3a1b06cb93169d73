"""docs/report-templates.md keeps up with the templates: every template, block, macro and
filter is documented, and its override example renders."""

from __future__ import annotations

import re
from pathlib import Path

from test_report import make_run, parse

from labrunner.report.render import render_report
from labrunner.report.templates import builtin_template_dir, template_environment

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "report-templates.md"


def test_every_template_block_macro_and_filter_is_documented():
    text = DOC.read_text()
    templates = sorted(p.name for p in builtin_template_dir().glob("report*"))
    assert templates == ["report.css", "report.html.j2", "report.md.j2", "report_records.html.j2"]
    for name in templates:
        assert f"`{name}`" in text, name
    html = (builtin_template_dir() / "report.html.j2").read_text()
    for block in re.findall(r"{% block (\w+) %}", html):
        assert f"`{block}`" in text, f"block {block} is not documented"
    records = (builtin_template_dir() / "report_records.html.j2").read_text()
    for macro in re.findall(r"{% macro (\w+)\(", records):
        assert f"`{macro}`" in text, f"macro {macro} is not documented"
    builtin_filters = set(template_environment(None, html=False).filters) - set(
        __import__("jinja2").Environment().filters
    )
    for name in builtin_filters:
        assert f"`{name}`" in text, f"filter {name} is not documented"


def test_the_documented_override_renders(tmp_path):
    example = re.search(r"```jinja\n(.*?)```", DOC.read_text(), flags=re.S).group(1)
    custom = tmp_path / "my_templates"
    custom.mkdir()
    (custom / "report.html.j2").write_text(example)
    run_dir = make_run(tmp_path)
    render_report(run_dir, template_dir=custom, formats=["html"])
    page = parse((run_dir / "report.html").read_text())
    assert "toc" not in page.classes()
    assert "Grading notes" in "".join(page.text["h2"])
    assert page.find("math") and page.find("img")


def test_the_screenshot_exists():
    image = re.search(r"!\[[^\]]*\]\(([^)]+)\)", DOC.read_text()).group(1)
    assert (DOC.parent / image).read_bytes()[:4] == b"\x89PNG"
