"""Config layers (defaults < profile < file < --set), validation and bad input."""

from __future__ import annotations

from typing import Literal

import pytest
import yaml
from conftest import TEST_PLUGINS

from labrunner.base.errors import UsageError
from labrunner.settings.config import load_run_config, parse_set
from labrunner.settings.labconfig import coerce, resolve_lab_config
from labrunner.settings.plugins import load_plugins


@pytest.fixture
def counter(monkeypatch):
    monkeypatch.setenv("LABRUNNER_PLUGINS", "core_labs")
    return load_plugins([TEST_PLUGINS]).labs["counter"]


def test_layers_in_order(counter):
    assert resolve_lab_config(counter, "quick", []).steps == 5
    assert resolve_lab_config(counter, "smoke", []).steps == 3
    assert resolve_lab_config(counter, "tiny", []).steps == 1
    cfg = resolve_lab_config(
        counter,
        "smoke",
        [("labrunner.yaml", {"steps": 7, "scale": 2}), ("--set", {"steps": 9})],
    )
    assert (cfg.steps, cfg.scale, cfg.mode) == (9, 2.0, "sum")
    assert isinstance(cfg.scale, float)


def test_unknown_key_suggests_closest(counter):
    with pytest.raises(UsageError, match=r"--set: unknown key 'counter.stpes' \(did you mean 'steps'\?\)"):
        resolve_lab_config(counter, "quick", [("--set", {"stpes": 3})])


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("steps", "ten", "expected int, got str 'ten'"),
        ("steps", True, "expected int, got bool True"),
        ("scale", "x", "expected float, got str"),
        ("mode", "median", "expected one of 'sum' | 'mean', got str 'median'"),
        ("sizes", [1, "a"], r"counter.sizes\[1\]: expected int"),
        ("sizes", 3, r"expected list\[int\]"),
        ("noisy", "yes please", "expected bool"),
    ],
)
def test_wrong_types_name_the_key(counter, key, value, message):
    with pytest.raises(UsageError, match=message) as info:
        resolve_lab_config(counter, "quick", [("my.yaml", {key: value})])
    assert str(info.value).startswith(f"my.yaml: counter.{key}")


def test_unknown_profile(counter):
    with pytest.raises(
        UsageError, match="unknown profile 'quik' for lab 'counter' \\(did you mean 'quick'\\?\\)"
    ):
        resolve_lab_config(counter, "quik", [])


def test_coerce_optional_and_tuple():
    assert coerce(None, int | None, "x") is None
    assert coerce([1, 2], tuple[int, ...], "x") == (1, 2)
    assert coerce("a", Literal["a", "b"], "x") == "a"
    with pytest.raises(UsageError):
        coerce([1], tuple[int, int], "x")


def test_parse_set_values_are_yaml():
    labs, report = parse_set(
        ["counter.steps=4", "counter.sizes=[3, 4]", "counter.label=hello world", "report.author=Ada Lovelace"]
    )
    assert labs == {"counter": {"steps": 4, "sizes": [3, 4], "label": "hello world"}}
    assert report == {"author": "Ada Lovelace"}


@pytest.mark.parametrize("item", ["steps=4", "counter.steps", "counter=4", ".steps=1", "counter.a.b=1"])
def test_parse_set_bad_syntax(item):
    with pytest.raises(UsageError, match="expected LAB.KEY=VALUE"):
        parse_set([item])


def test_config_file_sections(tmp_path):
    path = tmp_path / "labrunner.yaml"
    path.write_text(
        yaml.safe_dump(
            {"profile": "smoke", "seed": 3, "report": {"author": "Ada"}, "labs": {"counter": {"steps": 2}}}
        )
    )
    cfg = load_run_config(path)
    assert (cfg.profile, cfg.seed, cfg.report, cfg.labs) == (
        "smoke",
        3,
        {"author": "Ada"},
        {"counter": {"steps": 2}},
    )


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "labrunner.yaml"
    path.write_text("labs:\n  counter:\n    steps: [1, 2\n")
    with pytest.raises(UsageError, match=r"malformed YAML in .*labrunner.yaml:4:1"):
        load_run_config(path)


def test_config_file_errors(tmp_path):
    with pytest.raises(UsageError, match="config file not found"):
        load_run_config(tmp_path / "missing.yaml")
    path = tmp_path / "c.yaml"
    path.write_text("seeed: 1\n")
    with pytest.raises(UsageError, match=r"unknown key 'seeed' \(did you mean 'seed'\?\)"):
        load_run_config(path)
    path.write_text("- 1\n- 2\n")
    with pytest.raises(UsageError, match="top level must be a mapping"):
        load_run_config(path)
    path.write_text("seed: abc\n")
    with pytest.raises(UsageError, match="seed: expected int"):
        load_run_config(path)


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(UsageError, match="malformed YAML"):
        load_run_config(path)


def test_config_command_prints_resolved_yaml(cli, workdir):
    (workdir / "labrunner.yaml").write_text("labs:\n  counter:\n    scale: 0.5\n")
    status, out, err = cli("config", "counter", "--profile", "smoke", "--set", "counter.mode=mean")
    assert status == 0, err
    data = yaml.safe_load(out)
    assert data["profile"] == "smoke"
    assert data["labs"] == {
        "counter": {
            "steps": 3,
            "scale": 0.5,
            "mode": "mean",
            "sizes": [1, 2],
            "noisy": False,
            "label": "counter",
            "sleep_s": 0.0,
            "interrupt": False,
        }
    }


# --------------------------------------------------------------------------- bounded, located YAML


def test_key_lines_and_layer_sources(tmp_path, counter):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 1\n\nlabs:\n  counter:\n    steps: 2\n    mode: median\n")
    cfg = load_run_config(path)
    assert cfg.where("seed") == f"{path}:1"
    assert cfg.where("labs.counter.steps") == f"{path}:5"
    assert cfg.where("nowhere") == str(path)
    with pytest.raises(UsageError, match=rf"^{path}:6: counter.mode: expected one of"):
        resolve_lab_config(counter, "quick", [(cfg.source, cfg.labs["counter"])])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seed: 1\nthreads: 1\nseed: 2\n", r"c.yaml:3: key 'seed' is written twice \(first on line 1\)"),
        ("seed: 2024-13-40\n", r"c.yaml:1:7: cannot read this value: month must be in 1..12"),
        ("seed: " + "9" * 5000 + "\n", r"c.yaml:1:7: cannot read this value: Exceeds the limit"),
        ("a: &a [1, *a]\n", r"c.yaml:1:11: alias \*a refers to a value that contains it"),
        ("seed: 1\nlabel: \x07\n", r"malformed YAML in .*c.yaml:2:8: character #x0007 is not allowed"),
        ("seed: *nothing\n", r"malformed YAML in .*c.yaml:1:7: found undefined alias"),
    ],
)
def test_bad_yaml_is_one_located_line(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message) as info:
        load_run_config(path)
    assert "\n" not in str(info.value)
    assert len(str(info.value)) < 300


def test_depth_counts_what_aliases_expand_to(tmp_path):
    # each anchor is shallow, but the chain expands far deeper than any config
    rows = ["a0: &a0 " + "[" * 40 + "]" * 40]
    rows += [f"a{i}: &a{i} " + "[" * 30 + f"*a{i - 1}" + "]" * 30 for i in range(1, 5)]
    path = tmp_path / "c.yaml"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(UsageError, match=r"c.yaml:2:\d+: nested deeper than 64 levels"):
        load_run_config(path)


def test_config_file_that_is_not_a_file(tmp_path):
    with pytest.raises(UsageError, match="is not a regular file"):
        load_run_config(tmp_path)


def test_threads_in_config_file_are_read(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("threads: 1\n")
    assert load_run_config(path).threads == 1


@pytest.mark.parametrize(
    ("raw", "value"), [("1e-3", 0.001), ("1.5E3", 1500.0), ("-2e+2", -200.0), ("1_000", 1000)]
)
def test_numbers_in_exponent_form(raw, value):
    labs, _ = parse_set([f"counter.scale={raw}"])
    assert labs["counter"]["scale"] == value
    assert type(labs["counter"]["scale"]) is type(value)


def test_words_stay_words():
    labs, _ = parse_set(["counter.label=e5", "counter.mode=1e", "counter.noisy=yes"])
    assert labs["counter"] == {"label": "e5", "mode": "1e", "noisy": True}


def test_messages_never_repr_a_whole_value(counter):
    huge = list(range(100_000))
    with pytest.raises(UsageError) as info:
        resolve_lab_config(counter, "quick", [("--set", {"steps": huge})])
    assert len(str(info.value)) < 200
    assert str(info.value).startswith("--set: counter.steps: expected int, got list [0, 1, 2, 3, ...]")


def test_bound_declared_with_a_non_number(monkeypatch):
    from dataclasses import dataclass, field

    import labrunner

    @dataclass(frozen=True)
    class TypoConfig:
        draws: int = field(default=2, metadata={"min": "1"})

    class Lab(labrunner.Lab):
        name = "typo"
        title = "Typo"
        Config = TypoConfig

        def run(self, ctx): ...

    with pytest.raises(
        UsageError, match="lab 'typo': config field 'draws' declares min='1', which is not a number"
    ):
        resolve_lab_config(Lab(), "quick", [])


def test_settings_check_the_options_for_every_caller(monkeypatch):
    # the Python API resolves settings without the command line: the same checks apply
    from labrunner.settings.config import RunConfig
    from labrunner.settings.options import RunOptions
    from labrunner.settings.resolve import resolve_settings

    monkeypatch.setenv("LABRUNNER_PLUGINS", "core_labs")
    plugins = load_plugins([TEST_PLUGINS])
    with pytest.raises(UsageError, match=r"--seed must be below 2\*\*64"):
        resolve_settings(plugins, RunOptions(labs=("counter",), seed=2**64), RunConfig(), check_device=False)
    with pytest.raises(UsageError, match="--seed must be an integer, got str '3'"):
        resolve_settings(plugins, RunOptions(labs=("counter",), seed="3"), RunConfig(), check_device=False)
    with pytest.raises(UsageError, match="--threads must be an integer, got float 1.5"):
        resolve_settings(plugins, RunOptions(labs=("counter",), threads=1.5), RunConfig(), check_device=False)
    with pytest.raises(UsageError, match="--profile is empty"):
        resolve_settings(plugins, RunOptions(labs=("counter",), profile=""), RunConfig(), check_device=False)
    with pytest.raises(UsageError, match="lab 'failing' is not selected"):
        resolve_settings(
            plugins,
            RunOptions(labs=("counter",)),
            RunConfig(),
            sets={"failing": {"threshold": 1.0}},
            check_device=False,
        )
