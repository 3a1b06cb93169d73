"""Plugin discovery: built-ins, entry points, --plugins-dir, the allow-list, bad plugins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import BAD_PLUGINS, TEST_PLUGINS, installed_plugin, run_cli

from labrunner.base.errors import UsageError
from labrunner.settings.plugins import BUILTIN_PLUGINS, load_plugins

HOSTILE_PLUGINS = Path(__file__).parent / "plugins_hostile"


def test_plugins_dir_registers_several_labs_from_one_plugin(monkeypatch):
    monkeypatch.setenv("LABRUNNER_PLUGINS", "core_labs")
    plugins = load_plugins([TEST_PLUGINS])
    assert list(plugins.labs) == ["counter", "failing", "crashing"]
    info = plugins.infos["core_labs"]
    assert info.version == "2.5"
    assert info.source.startswith("plugins-dir")
    assert info.hooks == ["lab_finished", "lab_started", "register_labs"]
    assert plugins.problems == []


def test_bad_plugins_are_reported_by_name_and_skipped(monkeypatch):
    monkeypatch.delenv("LABRUNNER_PLUGINS", raising=False)
    monkeypatch.setattr("labrunner.settings.plugins.BUILTIN_PLUGINS", ())
    plugins = load_plugins([TEST_PLUGINS, BAD_PLUGINS])
    problems = {p.plugin: p.message for p in plugins.problems}
    assert "failed to import: ImportError: this plugin needs a package" in problems["broken_import"]
    assert "unknown hook 'register_lab' (did you mean 'register_labs'?)" in problems["unknown_hook"]
    assert "lab 'counter' is already registered by plugin 'core_labs'" in problems["duplicate"]
    assert "invalid lab name 'Bad-Name'" in problems["bad_name"]
    # everything else still works, including a plugin shipped as a package
    assert set(plugins.labs) == {"counter", "failing", "crashing", "packaged"}
    assert plugins.infos["pkg_plugin"].version == "0.3"
    assert "duplicate" not in plugins.infos
    assert plugins.pm.get_plugin("unknown_hook") is None
    for problem in plugins.problems:
        assert "\n" not in str(problem)


def test_builtin_labs_are_plugins_in_order():
    names = [m.rsplit(".", 1)[-1] for m in BUILTIN_PLUGINS]
    assert names == ["cnn_receptive", "adversarial", "rnn_lm", "attention"]


def test_allow_list_restricts_loading(monkeypatch):
    monkeypatch.setenv("LABRUNNER_PLUGINS", "pkg_plugin")
    plugins = load_plugins([TEST_PLUGINS, BAD_PLUGINS])
    assert list(plugins.infos) == ["pkg_plugin"]
    assert plugins.problems == []


def test_missing_plugins_dir_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no such folder"):
        load_plugins([tmp_path / "nope"])


def test_select_unknown_lab_suggests(monkeypatch):
    monkeypatch.setenv("LABRUNNER_PLUGINS", "core_labs")
    plugins = load_plugins([TEST_PLUGINS])
    with pytest.raises(UsageError, match=r"unknown lab 'countr' \(did you mean 'counter'\?\)"):
        plugins.select(["countr"])
    assert [lab.name for lab in plugins.select(["failing", "counter"])] == ["failing", "counter"]
    assert len(plugins.select(["all"])) == 3


DEMO_PLUGIN = """
import labrunner

class DemoLab(labrunner.Lab):
    name = "demo"
    title = "Demo from an entry point"

    def run(self, ctx):
        with ctx.exercise("1. Demo") as ex:
            ex.check("ok", True)

@labrunner.hookimpl
def register_labs(register):
    register(DemoLab())
"""


def test_entry_point_plugin_from_installed_metadata(tmp_path):
    env = installed_plugin(tmp_path / "site", "demo", DEMO_PLUGIN, version="1.4.2")
    proc = run_cli("plugins", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    (demo,) = data["plugins"]
    assert demo["name"] == "demo"
    assert demo["version"] == "1.4.2"
    assert demo["source"] == "entry point (labrunner-demo-plugin)"
    assert demo["labs"] == ["demo"]
    proc = run_cli("list", env=env)
    assert "demo  Demo from an entry point" in proc.stdout


def test_plugins_command_lists_skipped(cli, monkeypatch):
    monkeypatch.setenv("LABRUNNER_PLUGINS", "core_labs,broken_import,unknown_hook,pkg_plugin")
    status, out, err = cli("plugins", "--plugins-dir", str(BAD_PLUGINS))
    assert status == 0
    assert "core_labs 2.5  [plugins-dir" in out
    assert "labs:   counter, failing, crashing" in out
    assert "pkg_plugin 0.3  [plugins-dir" in out  # the good plugin beside the bad ones loads
    # each bad plugin on a line of its own, with the reason it was skipped
    skipped = dict(line.split("  [skipped] ") for line in out.splitlines() if "[skipped]" in line)
    assert sorted(skipped) == ["broken_import", "unknown_hook"]
    assert "failed to import: ImportError: this plugin needs a package" in skipped["broken_import"]
    assert "unknown hook 'register_lab' (did you mean 'register_labs'?)" in skipped["unknown_hook"]
    assert "broken_import 0" not in out and "    module: broken_import" not in out


def test_plugins_command_lists_nothing_skipped_when_the_allow_list_keeps_bad_plugins_out(cli):
    status, out, err = cli("plugins", "--plugins-dir", str(BAD_PLUGINS))
    assert status == 0
    assert "labs:   counter, failing, crashing" in out
    assert "[skipped]" not in out and "broken_import" not in out


def test_plugins_json_reports_problems(cli, monkeypatch):
    monkeypatch.setenv("LABRUNNER_PLUGINS", "core_labs,broken_import")
    status, out, err = cli("plugins", "--json", "--plugins-dir", str(BAD_PLUGINS))
    data = json.loads(out)
    assert [p["name"] for p in data["plugins"]] == ["core_labs"]
    assert data["skipped"][0]["plugin"] == "broken_import"
    assert "plugin 'broken_import' skipped: failed to import" in err


def test_a_plugin_whose_import_exits_or_interrupts_is_skipped(monkeypatch):
    monkeypatch.setenv("LABRUNNER_PLUGINS", "core_labs,import_exit,import_interrupt")
    plugins = load_plugins([TEST_PLUGINS, HOSTILE_PLUGINS])
    problems = {p.plugin: p.message for p in plugins.problems}
    assert problems == {
        "import_exit": "failed to import: SystemExit: 0",
        "import_interrupt": "failed to import: KeyboardInterrupt",
    }
    assert list(plugins.labs) == ["counter", "failing", "crashing"]


def test_a_raising_hook_is_named_and_the_run_goes_on(cli, monkeypatch):
    monkeypatch.setenv("LABRUNNER_PLUGINS", "core_labs,raising_hooks")
    status, out, err = cli(
        "run", "counter", "--profile", "smoke", "--isolation", "none", "--plugins-dir", str(HOSTILE_PLUGINS)
    )
    assert status == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning: plugin 'raising_hooks'")]
    assert warnings == [
        "warning: plugin 'raising_hooks': hook run_started raised Unprintable: "
        "<str() of the exception raised RuntimeError>",
        "warning: plugin 'raising_hooks': hook lab_started raised ValueError: observer broke on two lines",
        "warning: plugin 'raising_hooks': hook lab_finished raised RuntimeError: lab_finished broke",
        "warning: plugin 'raising_hooks': hook run_finished raised RuntimeError: run_finished broke",
    ]
    assert "report: " in out


def test_plugins_dir_pointed_at_a_package_loads_that_package(monkeypatch):
    monkeypatch.delenv("LABRUNNER_PLUGINS", raising=False)
    monkeypatch.setattr("labrunner.settings.plugins.BUILTIN_PLUGINS", ())
    plugins = load_plugins([BAD_PLUGINS / "pkg_plugin"])
    assert set(plugins.labs) == {"packaged"}
    assert plugins.infos["pkg_plugin"].version == "0.3"
    assert plugins.problems == []
