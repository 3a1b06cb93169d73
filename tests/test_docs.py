"""The docs keep up with the code: every hook is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pluggy

from labrunner import hookspecs

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
