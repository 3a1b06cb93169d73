"""Printing the HTML report to PDF with headless Chromium (``labrunner report --pdf``).

The printed layout is the report's own print CSS (templates/report.css): page header and
footer from CSS ``@page`` margin boxes, tables and formulas fitted to the page.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..base.errors import UsageError

#: Executables tried, in order, to print the HTML to PDF; $LABRUNNER_CHROMIUM comes first.
PDF_ENGINES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
PDF_HELP = (
    "no PDF engine found: install Chromium (Debian/Ubuntu: apt-get install chromium; macOS: "
    "brew install --cask chromium) or set LABRUNNER_CHROMIUM to a Chrome/Chromium executable"
)


def find_pdf_engine() -> str | None:
    """A Chrome/Chromium executable able to print HTML to PDF, or None."""
    explicit = os.environ.get("LABRUNNER_CHROMIUM")
    if explicit:
        return shutil.which(explicit) or (explicit if Path(explicit).is_file() else None)
    for name in PDF_ENGINES:
        found = shutil.which(name)
        if found:
            return found
    return None


#: The first Chromium that prints CSS @page margin boxes (the report's page header and footer).
MARGIN_BOXES_SINCE = 131


def margin_boxes_supported(version: str) -> bool:
    """Whether a browser whose ``--version`` says ``version`` ("Chromium 156.0.8078.114")
    prints @page margin boxes; True when the version cannot be read (assume a recent one)."""
    found = re.search(r"(\d+)\.\d+\.\d+", version)
    return found is None or int(found.group(1)) >= MARGIN_BOXES_SINCE


def _engine_version(engine: str) -> str:
    try:
        proc = subprocess.run([engine, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip()


def render_pdf(html_path: Path, pdf_path: Path, engine: str | None = None, timeout: float = 120) -> Path:
    """Print ``html_path`` to ``pdf_path`` with headless Chromium; raises UsageError
    (saying what to install) when no engine is available or printing fails."""
    engine = engine or find_pdf_engine()
    if engine is None:
        raise UsageError(PDF_HELP)
    pdf_path = Path(pdf_path)
    with tempfile.TemporaryDirectory(prefix="labrunner-chromium-") as profile:
        tmp = pdf_path.with_name(f".{pdf_path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        command = [
            engine,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--disable-sync",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-extensions",
            "--no-first-run",
            "--no-default-browser-check",
            f"--user-data-dir={profile}",
            # Chromium's own header and footer show the file's path; the report's CSS
            # @page margin boxes print the title, the student and page numbers instead
            # (Chromium 131 and later; an older one keeps its own, with page numbers).
            *(["--no-pdf-header-footer"] if margin_boxes_supported(_engine_version(engine)) else []),
            f"--print-to-pdf={tmp}",
            Path(html_path).resolve().as_uri(),
        ]
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            tmp.unlink(missing_ok=True)
            raise UsageError(f"PDF engine {engine} failed: {exc}") from None
        if proc.returncode != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
            tmp.unlink(missing_ok=True)
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise UsageError(f"PDF engine {engine} failed (exit {proc.returncode}): {last}")
        os.replace(tmp, pdf_path)
    return pdf_path
