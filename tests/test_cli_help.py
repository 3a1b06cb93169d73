"""What the command line tells a user is true: every example setting in a help text or an
error message is a real setting of an installed lab (generated, never written by hand),
each command says what it does, and ``config`` / ``list --settings`` explain every setting."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from labrunner.api import prepare
from labrunner.base.errors import UsageError
from labrunner.cli import build_parser
from labrunner.settings.config import load_run_config
from labrunner.settings.describe import describe_settings
from labrunner.settings.plugins import load_plugins

#: ``LAB.KEY=VALUE`` as help texts and messages show an example setting.
SETTING = re.compile(r"\b([a-z][a-z0-9_]*\.[a-z][a-z0-9_]*=[^\s,;)'\"]+)")


@pytest.fixture
def builtin(cli, monkeypatch):
    """The CLI with the built-in labs (not the test plugins)."""
    monkeypatch.delenv("LABRUNNER_PLUGINS", raising=False)
    return lambda *args: cli(*args, plugins=False)


def resolves(example: str) -> None:
    """``--set example`` resolves against the installed labs (UsageError otherwise)."""
    lab = example.split(".")[0]
    prepare([lab], set=[example], writes=False)


def help_texts() -> dict[str, str]:
    parser = build_parser()
    texts = {"labrunner": parser.format_help()}
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, subparser in sub.choices.items():
        texts[name] = subparser.format_help()
    return texts


def test_every_example_setting_in_the_help_texts_is_real(monkeypatch):
    monkeypatch.delenv("LABRUNNER_PLUGINS", raising=False)
    examples = {
        (name, match)
        for name, text in help_texts().items()
        for match in SETTING.findall(" ".join(text.split()))
    }
    examples = {(name, e) for name, e in examples if "=" in e and e.split(".")[0] != "labrunner"}
    assert {name for name, _ in examples} >= {"run", "config"}, examples
    for _name, example in examples:
        resolves(example)


def test_a_malformed_set_is_answered_with_a_real_setting(builtin):
    status, _out, err = builtin("run", "all", "--set", "epochs=4")
    assert status == 2
    assert "bad --set 'epochs=4': expected LAB.KEY=VALUE, for example rnn_lm.epochs=4" in err
    for bad in ("epochs=4", "nosuchkey=1", "rnn_lm=3", "a.b.c=1"):
        status, _out, err = builtin("config", "--set", bad)
        assert status == 2, err
        examples = SETTING.findall(err.split("for example", 1)[1])
        assert examples, err
        resolves(examples[0])


@pytest.mark.parametrize("settings", [{"epochs": 4}, {"x.y.z": 1}, {"nosuchkey": 1}])
def test_a_malformed_python_setting_is_answered_with_a_real_key(settings, monkeypatch):
    monkeypatch.delenv("LABRUNNER_PLUGINS", raising=False)
    with pytest.raises(UsageError) as caught:
        prepare("all", settings=settings, writes=False)
    key = re.search(r"for example '([a-z_]+\.[a-z_]+)'", str(caught.value)).group(1)
    lab, name = key.split(".")
    assert name in {f.name for f in dataclasses.fields(load_plugins([]).labs[lab].Config)}
    if "epochs" in settings:
        assert key == "rnn_lm.epochs"


def test_run_without_labs_says_all_in_one_line(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run"])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "labrunner run all" in err and "'all'" in err


@pytest.mark.parametrize("command", ["list", "plugins", "config", "run", "status", "check", "report"])
def test_every_command_has_a_description(command):
    text = help_texts()[command]
    usage, _, rest = text.partition("\n\n")
    description = rest.split("\n\n")[0]
    assert not description.startswith(("positional arguments", "options")), text
    assert len(description.split()) >= 5


def test_a_profile_no_lab_has_is_named_as_unknown_to_all(builtin):
    status, _out, err = builtin("run", "all", "--profile", "fast")
    assert status == 2
    line = err.strip()
    assert line == (
        "labrunner: error: --profile: unknown profile 'fast', which no selected lab has; "
        "known profiles: smoke, quick, full"
    )
    status, _out, err = builtin("config", "attention", "--profile", "quik")
    assert "(did you mean 'quick'?)" in err and "for lab" not in err


def test_a_profile_from_the_config_file_is_named_with_its_line(builtin, workdir):
    (workdir / "labrunner.yaml").write_text("seed: 1\nprofile: fast\n")
    status, _out, err = builtin("config")
    assert status == 2 and "labrunner.yaml:2: profile: unknown profile 'fast'" in err


# --------------------------------------------------------------------------- config and list


def test_config_shows_one_line_per_setting_with_type_default_bounds_and_description(builtin):
    status, out, err = builtin("config", "attention", "--profile", "smoke")
    assert status == 0, err
    lab = load_plugins([]).labs["attention"]
    infos = describe_settings(lab)
    lines = out.split("  attention:\n", 1)[1].splitlines()
    assert len(lines) == len(infos)  # nested lists stay on their line
    for line, info in zip(lines, infos, strict=True):
        assert line.startswith(f"    {info.name}: ")
        comment = line.split("  # ", 1)[1]
        assert comment.startswith(info.type) and "default" in comment and comment.endswith(info.description)
        if info.bounds:
            assert info.bounds in comment
    assert "draws: 2" in out and "int >= 1, default 5 — " in out  # smoke sets 2; the default is 5
    assert "shapes: [[2, 3, 4, 5], [5, 8, 8, 8], [16, 12, 8, 8]]" in out


def test_config_output_is_a_config_file_that_resolves_to_the_same_settings(builtin, workdir):
    status, out, err = builtin("config", "--profile", "smoke", "--set", "rnn_lm.epochs=2")
    assert status == 0, err
    (workdir / "printed.yaml").write_text(out)
    again = prepare("all", config=workdir / "printed.yaml", writes=False)[1]
    first = prepare("all", profile="smoke", set=["rnn_lm.epochs=2"], writes=False)[1]
    assert again.configs == first.configs and again.profile == "smoke"
    assert yaml.safe_load(out)["labs"]["rnn_lm"]["epochs"] == 2
    assert load_run_config(workdir / "printed.yaml").labs.keys() == first.configs.keys()


def test_list_settings_describes_each_setting(builtin):
    status, out, err = builtin("list", "--settings")
    assert status == 0, err
    for lab in load_plugins([]).labs.values():
        for info in describe_settings(lab):
            assert re.search(
                rf"\n +{info.name} += .*# {re.escape(info.type)}.* — {re.escape(info.description)}\n", out
            )
    status, plain, err = builtin("list")
    assert " — " not in plain and "settings (default" in plain


def test_the_config_line_the_readme_quotes_is_what_config_prints(builtin):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    quoted = re.search(r"\(`(draws: .*?)`\)", readme, flags=re.S).group(1)
    status, out, err = builtin("config", "attention")
    assert status == 0, err
    assert " ".join(quoted.split()) in [" ".join(line.split()) for line in out.splitlines()]
