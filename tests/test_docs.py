"""The docs keep up with the code: every hook is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pluggy

from labrunner.authoring import hookspecs

DOCS = Path(__file__).resolve().parent.parent / "docs"


def hook_names() -> list[str]:
    pm = pluggy.PluginManager("labrunner")
    return [name for name in dir(hookspecs) if pm.parse_hookspec_opts(hookspecs, name)]


def test_every_hook_is_documented():
    text = (DOCS / "plugins.md").read_text()
    documented = set(re.findall(r"^### (\w+)$", text, flags=re.M))
    hooks = set(hook_names())
    assert hooks, "no hooks found"
    assert hooks - documented == set(), "hooks missing from docs/plugins.md"
    assert documented - hooks == set(), "docs/plugins.md documents hooks that do not exist"


def test_every_hook_has_a_docstring():
    for name in hook_names():
        assert (getattr(hookspecs, name).__doc__ or "").strip(), name


# --------------------------------------------------------------------------- the API reference


def load_apidoc():
    import importlib.util

    path = DOCS.parent / "tools" / "apidoc.py"
    spec = importlib.util.spec_from_file_location("apidoc", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_reference_is_generated_from_the_current_docstrings():
    expected = load_apidoc().render()
    assert (DOCS / "api.md").read_text(encoding="utf-8") == expected, (
        "docs/api.md is out of date: run python tools/apidoc.py"
    )


def test_api_reference_covers_what_lab_authors_use():
    import labrunner
    from labrunner.authoring.context import ExerciseRecorder, LabContext
    from labrunner.base.filters import FILTERS

    text = (DOCS / "api.md").read_text(encoding="utf-8")
    for name in labrunner.__all__:
        assert f"`{name}`" in text, name
    for cls, prefix in ((LabContext, "ctx"), (ExerciseRecorder, "ex")):
        for name, value in vars(cls).items():
            if name.startswith("_") or not (callable(value) or isinstance(value, property)):
                continue
            assert f"### `{prefix}.{name}" in text, f"{prefix}.{name} is not in docs/api.md"
            doc = value.fget.__doc__ if isinstance(value, property) else value.__doc__
            assert (doc or "").strip(), f"{prefix}.{name} has no docstring"
    for name in FILTERS:
        assert f"### `{name}`" in text
    assert "absolute" in text  # check_close's tolerance, the question lab authors asked


def test_api_reference_covers_the_records_data_and_test_helpers():
    """What a lab's code and a plugin receive or call besides the context: the progress bar,
    the downloads, a lab's result, a loaded run, the test server; every field and method."""
    import dataclasses

    from labrunner import data, testing
    from labrunner.base.progress import Bar
    from labrunner.records.results import LabResult
    from labrunner.records.runfolder import RunData

    text = (DOCS / "api.md").read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## ([^\n]+)\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S))
    for cls in (LabResult, RunData):
        section = sections[cls.__name__]
        assert f"`{cls.__module__}.{cls.__name__}`" in section
        for f in dataclasses.fields(cls):
            assert f"`{f.name}: " in section, f"{cls.__name__}.{f.name} is not in docs/api.md"
    for cls, section in ((LabResult, "LabResult"), (RunData, "RunData"), (Bar, "Bar")):
        for name, value in vars(cls).items():
            if not name.startswith("_") and (callable(value) or isinstance(value, (property, classmethod))):
                assert f"`{name}" in sections[section] or f".{name}" in sections[section], (
                    f"{section}.{name} is not in docs/api.md"
                )
    for name in ("download", "cached_url", "is_url", "DataError"):
        assert f"### `labrunner.data.{name}" in sections["labrunner.data"], name
        assert (getattr(data, name).__doc__ or "").strip(), f"labrunner.data.{name} has no docstring"
    assert "### `labrunner.testing.serve_folder(folder: Path)" in sections["labrunner.testing"]
    assert testing.serve_folder.__doc__
    # the contents line links every section
    for title in sections:
        anchor = re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-")
        assert f"](#{anchor})" in text, f"the contents do not link {title!r}"


def test_apidoc_check_fails_on_a_stale_page(tmp_path, monkeypatch, capsys):
    apidoc = load_apidoc()
    stale = tmp_path / "api.md"
    stale.write_text("# old\n")
    monkeypatch.setattr(apidoc, "PAGE", stale)
    monkeypatch.setattr(apidoc, "ROOT", tmp_path)
    assert apidoc.main(["--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert apidoc.main([]) == 0 and apidoc.main(["--check"]) == 0
