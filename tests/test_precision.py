"""--precision: the run-wide precision of labs that have a precision setting; the typed
setting, its device check and ``ctx.autocast()`` (labrunner.precision)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

import labrunner
from labrunner.api import prepare
from labrunner.base.errors import UsageError
from labrunner.precision import (
    PRECISIONS,
    Precision,
    autocast,
    autocast_dtype,
    check_precision,
    grad_scaler,
    precision_problem,
)


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


def test_the_device_check_names_what_cannot_run():
    assert PRECISIONS == ("fp32", "bf16", "fp16")
    assert [precision_problem(p, "cuda:1") for p in PRECISIONS] == [None, None, None]
    assert precision_problem("bf16", "cpu") is None and precision_problem("fp16") is None
    assert (
        precision_problem("fp16", "cpu")
        == "fp16 needs a CUDA device, but this run is on cpu: use bf16 or fp32"
    )
    assert precision_problem("fp8") == "must be one of fp32, bf16, fp16, got 'fp8'"
    with pytest.raises(ValueError, match="^precision fp16 needs a CUDA device, but this run is on mps"):
        check_precision("fp16", "mps")


def test_autocast_runs_the_forward_pass_in_the_lower_precision_only():
    import torch

    layer = torch.nn.Linear(4, 3)
    x = torch.ones(2, 4)
    with autocast("fp32", torch.device("cpu")):
        assert layer(x).dtype == torch.float32
    with autocast("bf16", torch.device("cpu")):
        assert layer(x).dtype == torch.bfloat16
    assert layer(x).dtype == torch.float32  # only inside the context
    assert autocast_dtype("fp16") == torch.float16 and autocast_dtype("fp32") is None
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        autocast("fp16", torch.device("cpu"))
    assert grad_scaler("fp32", "cpu").is_enabled() is False


@dataclass(frozen=True)
class PrecisionConfig:
    #: The forward pass's precision.
    precision: Precision = "fp32"


class AutocastLab(labrunner.Lab):
    """Records the dtype of one forward pass under ``ctx.autocast()``."""

    name = "autocast_lab"
    title = "Autocast"
    version = "1"
    Config = PrecisionConfig

    def run(self, ctx):
        import torch

        with ctx.exercise("1. Forward") as ex:
            with ctx.autocast():
                out = torch.nn.Linear(4, 3).to(ctx.device)(torch.ones(2, 4, device=ctx.device))
            ex.check_equal(
                "dtype",
                str(out.dtype),
                {"fp32": "torch.float32", "bf16": "torch.bfloat16"}[ctx.config.precision],
            )


class NoPrecisionLab(AutocastLab):
    name = "no_precision_lab"
    Config = labrunner.NoConfig


def test_ctx_autocast_follows_the_lab_setting(run_lab):
    for precision in ("fp32", "bf16"):
        result = run_lab(AutocastLab(), precision=precision)
        assert result.status == "passed", result.error
    # the typed setting refuses other values in one line, naming it
    with pytest.raises(
        UsageError, match=r"autocast_lab\.precision: expected one of 'fp32' \| 'bf16' \| 'fp16'"
    ):
        run_lab(AutocastLab(), precision="fp8")
    failed = run_lab(NoPrecisionLab())
    assert failed.status == "error"
    assert "the config of lab 'no_precision_lab' has no precision setting" in failed.error.message


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
