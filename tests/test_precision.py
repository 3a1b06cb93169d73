"""--precision: the run-wide precision of labs that have a precision setting."""

from __future__ import annotations

import pytest

from labrunner.api import prepare
from labrunner.errors import UsageError


@pytest.fixture
def builtin_labs(workdir, monkeypatch):
    monkeypatch.delenv("LABRUNNER_PLUGINS", raising=False)
    return workdir


def test_precision_reaches_the_labs_that_have_the_setting(builtin_labs):
    _plugins, settings = prepare(["rnn_lm", "attention"], profile="smoke", device="cpu", precision="bf16")
    assert settings.configs["rnn_lm"].precision == "bf16"
    assert not hasattr(settings.configs["attention"], "precision")  # labs without it run as they are


def test_an_explicit_lab_setting_wins(builtin_labs):
    _plugins, settings = prepare(
        "rnn_lm", profile="smoke", device="cpu", precision="bf16", set=["rnn_lm.precision=fp32"]
    )
    assert settings.configs["rnn_lm"].precision == "fp32"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"precision": "fp16"}, r"rnn_lm\.precision fp16 needs a CUDA device, but this run is on cpu"),
        ({"set": ["rnn_lm.precision=fp16"]}, "needs a CUDA device"),
        ({"precision": "fp8"}, "--precision 'fp8': expected one of fp32, bf16, fp16"),
    ],
)
def test_fp16_on_the_cpu_and_unknown_precisions_are_refused(builtin_labs, kwargs, match):
    with pytest.raises(UsageError, match=match):
        prepare("rnn_lm", profile="smoke", device="cpu", **kwargs)
    assert not (builtin_labs / "reports").exists()


def test_the_cli_refuses_fp16_on_the_cpu_in_one_line(builtin_labs, capsys):
    from labrunner.cli import main

    assert main(["run", "rnn_lm", "--profile", "smoke", "--device", "cpu", "--precision", "fp16"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs a CUDA device" in err[0]
    assert not (builtin_labs / "reports").exists()
