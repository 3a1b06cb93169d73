"""The path of ``labrunner run`` to a lab's ``run``: at most four of labrunner's modules
(docs/architecture.md), and one function runs a lab job wherever it runs."""

from __future__ import annotations

import json

import pytest

CHAIN_LAB = '''
import inspect
import json

import labrunner


class ChainLab(labrunner.Lab):
    """Writes the modules of labrunner on the stack when its run is called."""

    name = "chain"
    title = "Chain"

    def run(self, ctx):
        modules = []
        for frame in reversed(inspect.stack()):
            name = frame.frame.f_globals.get("__name__", "")
            if (name == "labrunner" or name.startswith("labrunner.")) and (not modules or modules[-1] != name):
                modules.append(name)
        functions = [f.function for f in inspect.stack()]
        (ctx.out_dir / "stack.json").write_text(json.dumps({"modules": modules, "functions": functions}))
        with ctx.exercise("1. Chain") as ex:
            ex.check("ran", True)


@labrunner.hookimpl
def register_labs(register):
    register(ChainLab())
'''


def _stack(cli, workdir, tmp_path, monkeypatch, *options: str) -> dict:
    monkeypatch.setenv("LABRUNNER_PLUGINS", "core_labs,chain_lab")
    plugins = tmp_path / "chain_plugins"
    plugins.mkdir()
    (plugins / "chain_lab.py").write_text(CHAIN_LAB)
    status, _out, err = cli("run", "chain", "--plugins-dir", str(plugins), "--threads", "1", *options)
    assert status == 0, err
    return json.loads(((workdir / "reports" / "latest").resolve() / "chain" / "stack.json").read_text())


def test_labrunner_run_reaches_lab_run_through_four_modules(cli, workdir, tmp_path, monkeypatch):
    stack = _stack(cli, workdir, tmp_path, monkeypatch, "--isolation", "none")
    assert stack["modules"] == [
        "labrunner.cli",
        "labrunner.api",
        "labrunner.execution.runner",
        "labrunner.execution.labrun",
    ]
    assert "run_lab_job" in stack["functions"]


@pytest.mark.slow
def test_a_worker_runs_the_same_function(cli, workdir, tmp_path, monkeypatch):
    stack = _stack(cli, workdir, tmp_path, monkeypatch)
    assert stack["modules"][-2:] == ["labrunner.execution.job", "labrunner.execution.labrun"]
    assert "run_lab_job" in stack["functions"]
