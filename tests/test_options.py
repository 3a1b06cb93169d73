"""One options object: the command line and labrunner.run build the same frozen RunOptions,
and its fields are exactly the run options of labrunner.run and labrunner.prepare."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
from conftest import TEST_PLUGINS

import labrunner
from labrunner.api import prepare, prepare_options
from labrunner.cli import build_parser, options_of
from labrunner.settings.options import RunOptions
from labrunner.settings.plugins import load_plugins

#: Parameters of labrunner.run / prepare that say how to run, not what: not run options.
NOT_OPTIONS = {"labs", "verbosity", "report", "reporter", "plugins", "writes"}


@pytest.mark.parametrize("function", [labrunner.run, prepare])
def test_the_options_are_the_keyword_arguments_of_run_and_prepare(function):
    parameters = set(inspect.signature(function).parameters) - NOT_OPTIONS
    assert parameters == set(RunOptions.names()) - {"labs"}


def test_the_command_line_and_the_python_api_build_the_same_options():
    args = build_parser().parse_args(
        [
            "run",
            "counter",
            "failing",
            "--profile",
            "smoke",
            "--seeds",
            "0-2",
            "--set",
            "counter.steps=4",
            "--plugins-dir",
            str(TEST_PLUGINS),
            "--executor-option",
            "partition=gpu",
            "--deterministic",
            "--jobs",
            "2",
        ]
    )
    from_cli = options_of(args)
    from_python = RunOptions.from_values(
        {
            "labs": ["counter", "failing"],
            "profile": "smoke",
            "seeds": "0-2",
            "set": "counter.steps=4",
            "plugins_dir": TEST_PLUGINS,
            "executor_options": {"partition": "gpu"},
            "deterministic": True,
            "jobs": "2",
            "isolation": "process",  # the command line's default
        }
    )
    assert from_cli == from_python
    assert from_cli.labs == ("counter", "failing") and from_cli.plugins_dir == (str(TEST_PLUGINS),)
    with pytest.raises(dataclasses.FrozenInstanceError):
        from_cli.seed = 1  # type: ignore[misc]


def test_options_resolve_to_the_same_settings_as_the_keyword_arguments(workdir):
    plugins = load_plugins([TEST_PLUGINS])
    options = RunOptions(labs=("counter",), profile="smoke", seed=4, set=("counter.steps=4",))
    _, from_options = prepare_options(options, plugins=plugins, writes=False)
    _, from_keywords = prepare(
        "counter", profile="smoke", seed=4, set="counter.steps=4", plugins=plugins, writes=False
    )
    assert from_options == from_keywords
    assert from_options.seed == 4 and from_options.configs["counter"].steps == 4
