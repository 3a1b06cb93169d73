"""The printed report's text, read back: pdftotext over report.pdf, compared with what
report.html shows (test_report_print and test_report use it).

A cell or formula is "in the PDF" when its text is, compared without whitespace and with
math letters (𝑛) as plain ones, since pdftotext breaks lines and hyphenates where the page
did."""

from __future__ import annotations

import re
import shutil
import subprocess
import unicodedata
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

from labrunner.report.pdf import find_pdf_engine

#: Skips a test where the report cannot be printed (Chromium) or read back (pdftotext).
needs_pdf_tools = pytest.mark.skipif(
    find_pdf_engine() is None or shutil.which("pdftotext") is None,
    reason="needs Chromium and pdftotext (poppler-utils)",
)


class Leaves(HTMLParser):
    """The text of every table cell, and the leaf texts of every formula."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.cells: list[str] = []
        self.formulas: list[list[str]] = []
        self._cell: list[str] | None = None
        self._depth = 0  # inside <math>
        self._leaf: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag in ("td", "th"):
            self._cell = []
        elif tag == "math":
            self._depth += 1
            self.formulas.append([])
        elif self._depth and tag in ("mi", "mn", "mo", "mtext"):
            self._leaf = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.cells.append("".join(self._cell))
            self._cell = None
        elif tag == "math":
            self._depth -= 1
        elif self._leaf is not None and tag in ("mi", "mn", "mo", "mtext"):
            self.formulas[-1].append("".join(self._leaf))
            self._leaf = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._leaf is not None:
            self._leaf.append(data)


def squash(text: str) -> str:
    """Text compared without whitespace, with math letters (𝑛) as plain ones (n)."""
    text = re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).replace("\u2212", "-")
    return text.casefold().replace("-", "")  # badges print upper-case; pdftotext joins "L-\ninf"


def pdf_pages(pdf: Path) -> list[str]:
    """The text of each page of ``pdf``, by pdftotext."""
    out = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return out.split("\f")[:-1]


@dataclass
class PrintedText:
    """What report.html shows beside what report.pdf holds."""

    pages: list[str]  # the PDF's text, page by page
    cells: list[str]  # every table cell of the HTML
    formulas: list[list[str]]  # the leaf texts of every formula of the HTML

    @property
    def text(self) -> str:
        """The whole PDF's text, squashed (see :func:`squash`)."""
        return squash("".join(self.pages))

    def has(self, text: str) -> bool:
        """Whether ``text`` is in the PDF (compared squashed)."""
        return squash(text) in self.text

    @property
    def missing_cells(self) -> list[str]:
        """Cells not in the PDF, word by word (pdftotext interleaves the lines of cells that wrap)."""
        text = self.text
        return [cell for cell in self.cells if not all(squash(word) in text for word in cell.split())]

    @property
    def cut_formulas(self) -> list[str]:
        """Formula parts not in the PDF."""
        text = self.text
        return [leaf for formula in self.formulas for leaf in formula if squash(leaf) not in text]


def printed_text(run_dir: Path) -> PrintedText:
    """Read back the run's printed report (report.pdf, rendered beside report.html)."""
    leaves = Leaves()
    leaves.feed((run_dir / "report.html").read_text(encoding="utf-8"))
    return PrintedText(pdf_pages(run_dir / "report.pdf"), leaves.cells, leaves.formulas)
