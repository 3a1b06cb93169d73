"""The tutorial's code runs as written: its Python blocks form one lab plus its tests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from labrunner.plugins import load_plugins
from labrunner.testing import run_lab_in

DOC = Path(__file__).resolve().parent.parent / "docs" / "writing-a-lab.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.mark.slow
def test_tutorial_lab_runs_and_its_tests_pass(tmp_path, monkeypatch):
    blocks = python_blocks()
    assert len(blocks) >= 4
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    (plugin_dir / "softmax_lab.py").write_text("\n\n".join(blocks))
    monkeypatch.setenv("LABRUNNER_PLUGINS", "softmax_lab")
    monkeypatch.setenv("LABRUNNER_CACHE_DIR", str(tmp_path / "cache"))
    plugins = load_plugins([plugin_dir])
    assert plugins.problems == []
    lab = plugins.labs["softmax_lab"]
    result = run_lab_in(lab, tmp_path / "run", profile="smoke")
    assert result.status == "passed", result.error
    assert result.metrics["naive_nan_rate"] > 0.5
    assert "The measurement agrees with the derivation." in result.exercises[0].answer

    # the tutorial's own tests, run against the same module
    import sys

    module = sys.modules["labrunner_plugins_dir.softmax_lab"]
    module.test_naive_softmax_overflows()
    from labrunner.testing import assert_checks_pass, assert_metric

    assert_checks_pass(result)
    assert_metric(result, "stable_nan_rate", at_most=0.0)
