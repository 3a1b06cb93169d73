"""The report: a run folder's saved files rendered as HTML, Markdown and PDF.

Everything here reads the files a run wrote (``run.json``, ``config.yaml``,
``<lab>/result.json``, ``<lab>/figures/*.png``), never live objects, and never
imports torch: ``labrunner report`` re-renders a run anywhere. The renderer knows
nothing about particular labs; it renders records (Markdown with math, figures,
tables, metrics, checks, errors) through the Jinja2 templates in ``templates/``,
any of which a user can override with ``--template-dir``.

The view the templates read is built in :mod:`.view` (:func:`build_view`, also the entry
point of report formats added by plugins), the template environment in :mod:`.templates`,
the values formatted in :mod:`.formatting`; loading the run is
:mod:`labrunner.records.runfolder`, printing to PDF :mod:`.pdf`. This module writes the
formats.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..base.errors import UsageError
from ..records.files import copy_file
from ..records.jsonfiles import check_relative_path, write_atomic
from ..records.runfolder import RunData, inside_folder, load_run
from .pdf import render_pdf
from .templates import render_template
from .view import build_view

#: Formats rendered by labrunner itself; others come from plugins.
BUILTIN_FORMATS = {
    "html": "report.html: one self-contained file (figures embedded, math as MathML)",
    "md": "report.md + figures/: Markdown for GitHub, math left as $...$",
    "pdf": "report.pdf: the HTML printed by headless Chromium (when installed)",
}


def _write(path: Path, text: str) -> None:
    write_atomic(path, text)
    try:  # a temporary file is private (0600); a report is meant to be shared
        os.chmod(path, 0o644)
    except OSError:
        pass


def render_html(run: RunData, out_dir: Path, template_dir: Path | None = None, plugins: Any = None) -> Path:
    """Write ``report.html``: one self-contained file (figures as data URIs, CSS inline)."""
    view = build_view(run, plugins)
    path = Path(out_dir) / "report.html"
    _write(path, render_template("report.html.j2", view, template_dir, html=True))
    return path


#: In a run folder: the figures the Markdown report wrote there (JSON), so that rendering
#: again replaces or removes those and never a file someone else put in ``figures/``.
RENDERED_FILES = ".report-files.json"


def render_markdown(
    run: RunData, out_dir: Path, template_dir: Path | None = None, plugins: Any = None
) -> Path:
    """Write ``report.md`` and give it copies of its figures in ``figures/<lab>/``.

    Only files this renderer wrote (listed in :data:`RENDERED_FILES`) are replaced or
    removed: a file a user added to ``figures/`` stays, and a figure path taken by a file
    of someone else's is left as it is, with a warning."""
    out_dir = Path(out_dir)
    view = build_view(run, plugins)
    wanted: dict[str, Path] = {}
    for lab in view["labs"]:
        for ex in lab.exercises:
            for record in ex["records"]:
                if record["kind"] == "figure" and record["figure"].path.is_file():
                    wanted[record["figure"].md_path] = record["figure"].path
    owned = rendered_files(out_dir)
    for rel in sorted(owned - set(wanted)):  # figures of an earlier render that are gone now
        inside_folder(out_dir, rel).unlink(missing_ok=True)
        _remove_empty_folders(out_dir, rel)
    written = []
    for rel, source in wanted.items():
        target = inside_folder(out_dir, rel)
        if rel not in owned and (target.exists() or target.is_symlink()) and not _same_file(source, target):
            print(
                f"labrunner: warning: {target} was not written by labrunner; left as it is "
                "(report.md shows it in place of the lab's figure)",
                file=sys.stderr,
            )
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        copy_file(source, target)
        written.append(rel)
    write_atomic(out_dir / RENDERED_FILES, json.dumps({"files": sorted(written)}, indent=1) + "\n")
    path = out_dir / "report.md"
    _write(path, render_template("report.md.j2", view, template_dir, html=False))
    return path


def rendered_files(out_dir: Path) -> set[str]:
    """The figures an earlier Markdown render wrote into ``out_dir`` (none when the record
    is missing or not what labrunner writes: then nothing is removed)."""
    path = Path(out_dir) / RENDERED_FILES
    if path.is_symlink() or not path.is_file():
        return set()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = data["files"] if isinstance(data, dict) else None
    except (OSError, ValueError, KeyError):
        return set()
    owned = set()
    for rel in files if isinstance(files, list) else []:
        try:
            check_relative_path(rel, str(path))
        except UsageError:
            continue
        if rel.startswith("figures/") and rel.count("/") == 2:
            owned.add(rel)
    return owned


def _same_file(a: Path, b: Path) -> bool:
    try:
        return b.is_file() and not b.is_symlink() and a.read_bytes() == b.read_bytes()
    except OSError:
        return False


def _remove_empty_folders(out_dir: Path, rel: str) -> None:
    folder = (Path(out_dir) / rel).parent
    while folder != Path(out_dir) and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def available_formats(plugins: Any = None) -> dict[str, str]:
    """Format name -> description, built-in first, then those plugins registered."""
    formats = dict(BUILTIN_FORMATS)
    if plugins is not None:
        for name, (_render, description) in plugins.report_formats().items():
            formats.setdefault(name, description)
    return formats


def render_report(
    run_dir: Path,
    *,
    template_dir: Path | None = None,
    author: str | None = None,
    formats: Sequence[str] = ("html", "md"),
    plugins: Any = None,
) -> list[Path]:
    """Render the report of a run folder from its saved files; returns the files written.

    Built-in formats: ``html``, ``md``, ``pdf`` (needs the HTML, which is then also
    written). Other names are looked up among the formats plugins register. The PDF
    is made last, so when no PDF engine is installed the UsageError raised comes after
    the HTML and Markdown are written.
    """
    run_dir = Path(run_dir)
    wanted = list(dict.fromkeys(formats))
    plugin_formats = plugins.report_formats() if plugins is not None else {}
    for name in wanted:
        if name not in BUILTIN_FORMATS and name not in plugin_formats:
            known = ", ".join([*BUILTIN_FORMATS, *[n for n in plugin_formats if n not in BUILTIN_FORMATS]])
            raise UsageError(f"unknown report format {name!r}; available: {known}")
    run = load_run(run_dir, author=author)
    written: list[Path] = []
    if "html" in wanted or "pdf" in wanted:
        written.append(render_html(run, run_dir, template_dir, plugins))
    if "md" in wanted:
        written.append(render_markdown(run, run_dir, template_dir, plugins))
    for name in wanted:
        if name not in BUILTIN_FORMATS:
            render, _description = plugin_formats[name]
            try:
                written.append(Path(render(run, run_dir)))
            except UsageError:
                raise
            except Exception as exc:  # third-party code: one line naming the format, not a traceback
                raise UsageError(f"report format {name!r} failed: {type(exc).__name__}: {exc}") from exc
    if "pdf" in wanted:
        try:
            written.append(render_pdf(run_dir / "report.html", run_dir / "report.pdf"))
        except UsageError as exc:
            done = ", ".join(str(p) for p in written)
            raise UsageError(f"{exc} (written: {done})") from None
    return written
