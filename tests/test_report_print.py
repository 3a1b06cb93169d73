"""The printed report, as a student hands it in: printed by headless Chromium, read back.

Every table cell's and formula's text is in the PDF's text (Chromium leaves out what a
scroll box or a clip hides, so a cut-off column or formula is missing from it); under print
media no element is wider than its box or than the page; each page carries the title, the
student's name and "Page N of M"; the collapsed appendices print expanded; long tables and
claims fold on screen and print in the appendix at the end; a real lab's report keeps to a
page budget.
"""

from __future__ import annotations

import html as htmllib
import io
import json
import re
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import run_cli
from printcheck import needs_pdf_tools, pdf_pages, printed_text
from runfolders import make_run

from labrunner.records.results import Claim, Exercise, LabResult
from labrunner.report.pdf import find_pdf_engine
from labrunner.report.render import render_report
from labrunner.report.view import FOLD_CLAIMS, FOLD_TABLE_ROWS

ENGINE = find_pdf_engine()
pytestmark = [pytest.mark.slow, needs_pdf_tools]

#: A4 (210 mm) less the report's 12.7 mm side margins, in CSS pixels: the printed text width.
PRINT_WIDTH_PX = round((210 - 2 * 12.7) / 25.4 * 96)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
#: Run in the page with the print styles on: every element wider than the page or than its
#: own (clipping or scrolling) box, and figures or tables allowed to split across pages.
OVERFLOW_SCRIPT = r"""<script>
window.addEventListener('load', () => {
  const out = [];
  const limit = document.documentElement.clientWidth;
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    ' "' + (el.textContent || '').trim().slice(0, 50) + '"';
  for (const el of document.querySelectorAll('body *')) {
    if (el.tagName === 'SCRIPT') continue;
    const style = getComputedStyle(el);
    if (style.display === 'none' || style.visibility === 'hidden') continue;
    const box = el.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;
    if (box.right > limit + 1 || box.left < -1) out.push(['off the page', name(el), Math.round(box.right), limit]);
    if (style.overflowX !== 'visible' && el.scrollWidth > el.clientWidth + 1)
      out.push(['cut by its box', name(el), el.scrollWidth, el.clientWidth]);
    if (el.matches('figure, table.checks, table.metrics') && style.breakInside !== 'avoid')
      out.push(['may split across pages', name(el), style.breakInside]);
  }
  const pre = document.createElement('pre');
  pre.id = 'overflow-result';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""

LONG_FORMULA = (
    r"\mathrm{alphaone} = \sum_{i=1}^{n} \frac{\mathrm{betatwo}_i + \mathrm{gammathree}_i}{2} "
    r"+ \mathrm{deltafour} \cdot \mathrm{epsilonfive} = \mathrm{zetasix} + \mathrm{etaseven} "
    r"+ \mathrm{thetaeight} \le \mathrm{iotanine} + \mathrm{kappaten} \approx \mathrm{omegalast}"
)


def print_run(tmp_path: Path) -> Path:
    """A run whose report has what prints badly: a wide table, a long formula, a tall
    figure, non-finite values, measurements only in the collapsed appendix."""
    from PIL import Image

    tall = Image.new("RGB", (660, 2000), "white")  # 6 x 18 inches at 110 dpi
    buf = io.BytesIO()
    tall.save(buf, format="PNG", dpi=(110, 110))
    run_dir = make_run(tmp_path, labs=2, png=buf.getvalue())
    columns = ["method", "success", "success after PNG", "median iterations", "L0 (% of values)"]
    columns += ["L0 after PNG (%)", "L1", "L2", "L-inf", "PSNR (dB)", "ms / example"]
    rows = [
        [
            "Targeted FGSM with a long method name",
            0.1667,
            0.1667,
            1.0,
            100.0,
            100.0,
            24575.99926,
            443.405,
            8.00001,
        ]
        + [30.069, 6.2391],
        ["Assignment: Adam on L1 + CE", 1.0, 1.0, 6.0, 98.0143, 95.5404, 30596.0871, 624.6946, 15.3917]
        + [27.4214, "nan"],
    ]
    long_rows = [[f"row-{i:02d}", i, i * i] for i in range(FOLD_TABLE_ROWS + 5)]
    claims = [
        Claim(
            f"claim_{i}", i % 2 == 0, f"statement number {i}", f"evidence-{i} (95 % interval)", "one baseline"
        )
        for i in range(FOLD_CLAIMS + 3)
    ]
    wide = LabResult(
        lab="wide",
        title="Wide tables and long formulas",
        version="1",
        exercises=[
            Exercise(
                title="1. Everything at once",
                question="Show that $$" + LONG_FORMULA + "$$",
                answer="The identifier `a_very_long_identifier_name_that_does_not_fit_anywhere_on_a_line` and more.",
                records=[
                    {"kind": "table", "columns": columns, "rows": rows, "caption": "Eleven columns"},
                    {"kind": "figure", "path": "figures/tall.png", "caption": "A tall figure"},
                    {
                        "kind": "table",
                        "columns": ["row", "i", "i squared"],
                        "rows": long_rows,
                        "caption": "Long table",
                    },
                ],
                claims=claims,
                metrics={"appendix_only_metric": 1.25, "undefined_median": "nan"},
            )
        ],
        config={"models": ["vgg16", "resnet18", "resnet50", "inception_v3"], "steps": 3},
    )
    (run_dir / "wide" / "figures").mkdir(parents=True)
    (run_dir / "wide" / "figures" / "tall.png").write_bytes(buf.getvalue())
    wide.save(run_dir / "wide" / "result.json")
    info = json.loads((run_dir / "run.json").read_text())
    info["settings"]["labs"].append("wide")
    (run_dir / "run.json").write_text(json.dumps(info))
    return run_dir


def overflows(html_path: Path) -> list[list]:
    """Elements that overflow under the print styles, at the printed page's width."""
    text = html_path.read_text(encoding="utf-8")
    # print media, emulated: the print rules apply, the screen-only ones do not
    text = text.replace("@media print {", "@media all {").replace("@media screen {", "@media not all {")
    text = text.replace("</body>", OVERFLOW_SCRIPT + "</body>")
    with tempfile.TemporaryDirectory(prefix="labrunner-print-test-") as tmp:
        page = Path(tmp) / "page.html"
        page.write_text(text, encoding="utf-8")
        command = [ENGINE, *CHROMIUM_FLAGS, f"--user-data-dir={tmp}/profile"]
        command += [f"--window-size={PRINT_WIDTH_PX},1200", "--virtual-time-budget=10000", "--dump-dom"]
        proc = subprocess.run([*command, page.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="overflow-result">(.*?)</pre>', proc.stdout, re.S)
    assert found, f"the page did not report (exit {proc.returncode}): {proc.stderr[-500:]}"
    return json.loads(htmllib.unescape(found.group(1)))


@pytest.fixture(scope="module")
def printed(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("print")
    run_dir = print_run(tmp_path)
    render_report(run_dir, formats=["html", "pdf"])
    return run_dir


def test_every_table_cell_and_formula_is_in_the_pdf(printed):
    pdf = printed_text(printed)
    assert len(pdf.cells) > 100 and len(pdf.formulas) > 10
    assert not pdf.missing_cells, f"table cells missing from the PDF: {pdf.missing_cells[:10]}"
    assert not pdf.cut_formulas, f"formula parts missing from the PDF: {pdf.cut_formulas[:10]}"
    for word in ("alphaone", "omegalast", "iotanine", "Eleven columns"):
        assert pdf.has(word), word
    # the collapsed appendix prints expanded; nan is "—" with the reason
    assert pdf.has("appendix_only_metric") and pdf.has("undefined_median")
    assert pdf.has("— (not a number") and "nan" not in re.findall(r"[a-z]+", "".join(pdf.pages))


def test_long_tables_and_claims_fold_on_screen_and_print_at_the_end(printed):
    """On screen a long table and a long claims table fold under their exercise; printed, they
    come after every lab, in the appendix, whole, and the exercise says where they went."""
    html = (printed / "report.html").read_text(encoding="utf-8")
    folds = re.findall(r'<details class="fold[^"]*screen-only"[^>]*>(.*?)</details>', html, re.S)
    assert any("row-00" in f for f in folds) and any("statement number 0" in f for f in folds)
    assert not any("Eleven columns" in f for f in folds)  # two rows: stays in place
    text = "\n".join(pdf_pages(printed / "report.pdf"))
    # the last of each title: the first is the contents' entry
    appendix = text.rindex("Appendix: claims, long tables and measurements")
    environment = text.rindex("Appendix: environment and configuration")
    for word in (
        "Long table",
        "row-00",
        f"row-{FOLD_TABLE_ROWS + 4}",
        "statement number 0",
        "appendix_only_metric",
    ):
        assert appendix < text.index(word, appendix) < environment, word
    assert text.index("Eleven columns") < appendix  # a short table prints where it is
    assert (
        "are printed in the appendix" in text[:appendix] and "is printed in the appendix" in text[:appendix]
    )
    # a baseline the same as the claim above is said once
    assert text[appendix:environment].count("one baseline") == 1


def test_nothing_overflows_under_print_media(printed):
    assert overflows(printed / "report.html") == []


def test_the_overflow_check_finds_what_the_old_styles_cut(printed, tmp_path):
    """The same page with wide content forced into scroll boxes: the check must see it."""
    html = (printed / "report.html").read_text(encoding="utf-8")
    broken = tmp_path / "report.html"
    broken.write_text(
        html.replace(
            "</style>",
            ".table-scroll, div.math { overflow-x: auto !important; }"
            " td, th { white-space: nowrap !important; } .math-pieces { flex-wrap: nowrap !important; }"
            "</style>",
        ),
        encoding="utf-8",
    )
    kinds = {item[0] for item in overflows(broken)}
    assert "cut by its box" in kinds


def test_pages_carry_title_student_and_page_numbers(printed):
    pages = pdf_pages(printed / "report.pdf")
    assert len(pages) >= 4
    for number, page in enumerate(pages, 1):
        assert "Assignment 2" in page and "Ada · 12345" in page, number
        assert f"Page {number} of {len(pages)}" in page, number
        assert "file://" not in page  # not Chromium's own footer with the file's path


def test_a_real_lab_prints_whole(tmp_path):
    """The attention lab (smoke profile, real answers full of formulas and tables), run and
    printed: every cell and formula in the PDF, nothing overflows, each page numbered."""
    out = tmp_path / "reports"
    command = [
        "run",
        "attention",
        "--profile",
        "smoke",
        "--threads",
        "1",
        "--out",
        str(out),
        "--author",
        "Ada",
    ]
    env = {"LABRUNNER_CACHE_DIR": str(tmp_path / "cache")}
    proc = run_cli(*command, env=env, unset=["LABRUNNER_PLUGINS"], cwd=tmp_path, timeout=600)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    run_dir = (out / "latest").resolve()
    render_report(run_dir, formats=["html", "pdf"])
    pdf = printed_text(run_dir)
    pages = pdf.pages
    assert len(pdf.formulas) > 20 and len(pdf.cells) > 20
    assert not pdf.missing_cells, pdf.missing_cells[:10]
    assert not pdf.cut_formulas, pdf.cut_formulas[:10]
    assert overflows(run_dir / "report.html") == []
    assert all(f"Page {n} of {len(pages)}" in page and "Ada" in page for n, page in enumerate(pages, 1))
    # The page budget: this report printed on 21 pages when the quick report of the four labs
    # took 71; the print layout's goal for that one is 40, so this one gets 21 * 40 / 70.
    assert len(pages) <= 21 * 40 // 70, f"{len(pages)} pages"
