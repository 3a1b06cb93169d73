"""--precision: the run-wide precision of labs that have a precision setting."""

from __future__ import annotations

import pytest

from labrunner.api import prepare
from labrunner.base.errors import UsageError


@pytest.fixture
def builtin_labs(workdir, monkeypatch):
    monkeypatch.delenv("LABRUNNER_PLUGINS", raising=False)
    return workdir


def test_precision_reaches_the_labs_that_have_the_setting(builtin_labs):
    _plugins, settings = prepare(
        ["rnn_lm", "adversarial", "attention"], profile="smoke", device="cpu", precision="bf16"
    )
    assert settings.configs["rnn_lm"].precision == "bf16"
    assert settings.configs["adversarial"].precision == "bf16"
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


class WarnsLikeACudaOp:
    """A lab whose operation warns as PyTorch does, under --deterministic, for an operation
    without a deterministic implementation (CUDA's scatter_add_; no CPU operation warns)."""

    name = "warns"
    title = "Warns"
    version = "1"
    part = ""
    order = None
    profiles = {"smoke": {}, "quick": {}, "full": {}}

    def run(self, ctx):
        import warnings

        message = (
            "scatter_add_cuda_kernel does not have a deterministic implementation, but you set "
            "'torch.use_deterministic_algorithms(True, warn_only=True)'."
        )
        for _ in range(3):
            warnings.warn(message, UserWarning, stacklevel=1)
        warnings.warn("an ordinary warning", UserWarning, stacklevel=1)
        with ctx.exercise("1. Anything") as ex:
            ex.check("ran", True)


@pytest.mark.slow
def test_deterministic_runs_name_the_operations_that_fall_back(tmp_path, recwarn):
    import labrunner
    from labrunner.execution.labrun import run_lab

    lab = type("WarnsLab", (WarnsLikeACudaOp, labrunner.Lab), {})()
    result = run_lab(
        lab,
        labrunner.NoConfig(),
        out_dir=tmp_path / "warns",
        device="cpu",
        seed=0,
        profile="smoke",
        deterministic=True,
    )
    assert result.status == "passed"
    (note,) = [n for n in result.notes if "--deterministic" in n]
    assert "`scatter_add_cuda_kernel`" in note and note.count("scatter_add") == 1
    assert any("an ordinary warning" in str(w.message) for w in recwarn)  # others still shown

    plain = run_lab(
        lab,
        labrunner.NoConfig(),
        out_dir=tmp_path / "plain",
        device="cpu",
        seed=0,
        profile="smoke",
        deterministic=False,
    )
    assert not [n for n in plain.notes if "--deterministic" in n]
