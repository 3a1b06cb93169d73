"""Every setting of the built-in labs declares its bounds and a one-line description, a
setting the lab cannot run with is refused before anything runs, and a float setting is
accepted or refused alike in the parent and in the worker (which builds the lab's Config
from the job's JSON)."""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field

import pytest

import labrunner
from labrunner.authoring.lab import profile_names
from labrunner.base.errors import UsageError
from labrunner.settings.config import parse_set
from labrunner.settings.describe import describe_settings
from labrunner.settings.labconfig import (
    CHOICES,
    config_as_dict,
    config_from_values,
    config_types,
    resolve_lab_config,
)
from labrunner.settings.plugins import load_plugins


@pytest.fixture(scope="module")
def builtin_labs():
    import os

    old = os.environ.pop("LABRUNNER_PLUGINS", None)
    try:
        labs = load_plugins([]).labs
    finally:
        if old is not None:
            os.environ["LABRUNNER_PLUGINS"] = old
    assert set(labs) >= {"cnn_receptive", "adversarial", "rnn_lm", "attention"}
    return {name: labs[name] for name in ("cnn_receptive", "adversarial", "rnn_lm", "attention")}


def resolve_set(lab, item: str, profile: str = "smoke"):
    """``--set item`` for ``lab``, parsed as the command line parses it."""
    sets, _ = parse_set([item])
    return resolve_lab_config(lab, profile, [("--set", sets[lab.name])])


# --------------------------------------------------------------------------- the cases that crashed labs

CRASHED_LABS = [
    ("attention.draws=0", "attention.draws must be >= 1, got 0"),
    ("attention.shapes=[]", "attention.shapes must not be empty, got []"),
    ("attention.shapes=[[-1,4,4,4]]", "attention.shapes[0][0] must be >= 1, got -1"),
    ("attention.shapes=[[4,0,4,4]]", "attention.shapes[0][1] must be >= 1, got 0"),
    ("attention.permutations=0", "attention.permutations must be >= 1, got 0"),
    ("attention.timing_repeats=0", "attention.timing_repeats must be >= 1, got 0"),
    ("attention.ffn_shapes=[]", "attention.ffn_shapes must not be empty, got []"),
    ("attention.ffn_shapes=[[2,3,0]]", "attention.ffn_shapes[0][2] must be >= 1, got 0"),
    ("attention.timing_shape=[16,0,64]", "attention.timing_shape[1] must be >= 1, got 0"),
    ("attention.figure_tokens=0", "attention.figure_tokens must be >= 1, got 0"),
    ("attention.alpha=-1", "attention.alpha must be >= 0, got -1.0"),
    ("attention.d_ff=-4", "attention.d_ff must be >= 0, got -4"),
    ("cnn_receptive.models=[]", "cnn_receptive.models must not be empty, got []"),
    ("cnn_receptive.alexnet_input=64", "cnn_receptive.alexnet_input must be >= 95, got 64"),
    (
        "adversarial.precision=fp8",
        "adversarial.precision: expected one of 'fp32' | 'bf16' | 'fp16', got str 'fp8'",
    ),
    ("adversarial.weights=''", "adversarial.weights must not be empty"),
    ("rnn_lm.precision=fp8", "rnn_lm.precision: expected one of 'fp32' | 'bf16' | 'fp16', got str 'fp8'"),
    ("rnn_lm.corpus=''", "rnn_lm.corpus must not be empty"),
    ("rnn_lm.synthetic_tokens=100", "rnn_lm.synthetic_tokens: 100 tokens in 20 rows (batch_size)"),
    ("rnn_lm.distance_words=[army, ' ']", "rnn_lm.distance_words: must name two words"),
]


@pytest.mark.parametrize(("item", "message"), CRASHED_LABS)
def test_a_setting_the_lab_cannot_run_with_is_refused(builtin_labs, item, message):
    lab = builtin_labs[item.split(".")[0]]
    with pytest.raises(UsageError) as caught:
        resolve_set(lab, item)
    assert f"--set: {message}" in str(caught.value)


def test_the_bounds_admit_the_smallest_values_the_labs_run_with(builtin_labs):
    """The lower bounds are not stricter than the labs need (each of these ran to the end)."""
    attention = builtin_labs["attention"]
    for item in (
        "attention.draws=1",
        "attention.permutations=1",
        "attention.timing_repeats=1",
        "attention.figure_tokens=1",
        "attention.shapes=[[1,1,1,1]]",
        "attention.ffn_shapes=[[1,1,1]]",
        "attention.timing_shape=[1,1,1]",
        "attention.d_ff=0",
        "attention.alpha=0",
    ):
        resolve_set(attention, item)


def _variable_length(tp) -> bool:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    return origin in (list, dict) or (origin is tuple and bool(args) and args[-1] is Ellipsis)


def _holds_numbers(tp) -> bool:
    if tp in (int, float):
        return True
    return any(_holds_numbers(a) for a in typing.get_args(tp) if a is not Ellipsis)


def test_every_setting_of_the_builtin_labs_declares_its_bounds(builtin_labs):
    """A number (or a list of numbers) has a lower bound; a list of varying length says how
    short it may be (``min_len``, 0 where an empty list is meant); a choice of strings its
    choices (``choices``, or a Literal type such as ``labrunner.precision.Precision``). A new setting without one fails here."""
    undeclared = []
    for lab in builtin_labs.values():
        types_ = config_types(lab.Config)
        for f in dataclasses.fields(lab.Config):
            tp = types_[f.name]
            if _holds_numbers(tp) and not ({"min", "above"} & set(f.metadata)):
                undeclared.append(f"{lab.name}.{f.name}: no lower bound (min or above)")
            if _variable_length(tp) and "min_len" not in f.metadata:
                undeclared.append(f"{lab.name}.{f.name}: a list or mapping without min_len")
            if (
                f.name == "precision"
                and CHOICES not in f.metadata
                and typing.get_origin(tp) is not typing.Literal
            ):
                undeclared.append(f"{lab.name}.{f.name}: no choices (metadata or a Literal type)")
    assert undeclared == []


def test_every_setting_of_the_builtin_labs_has_a_one_line_description(builtin_labs):
    for lab in builtin_labs.values():
        for info in describe_settings(lab):
            assert info.description, f"{lab.name}.{info.name} has no description (a #: comment or help)"
            assert len(info.description) <= 120, f"{lab.name}.{info.name}: {len(info.description)} characters"
            assert info.type and "\n" not in info.description


def test_the_defaults_and_every_profile_lie_within_the_bounds(builtin_labs):
    for lab in builtin_labs.values():
        for profile in profile_names(lab):
            resolve_lab_config(lab, profile, [])


# --------------------------------------------------------------------------- inf and nan, parent and worker


def float_settings(labs):
    for lab in labs.values():
        for name, tp in config_types(lab.Config).items():
            if tp is float:
                yield lab, name


@pytest.mark.parametrize("raw", [".inf", "-.inf", ".nan", "inf", "nan", "Infinity"])
def test_a_non_finite_float_setting_is_refused_before_anything_runs(builtin_labs, raw):
    settings = list(float_settings(builtin_labs))
    assert len(settings) >= 10
    for lab, name in settings:
        with pytest.raises(UsageError, match=rf"--set: {lab.name}\.{name}: expected a finite number"):
            resolve_set(lab, f"{lab.name}.{name}={raw}")


def test_a_non_finite_float_from_python_is_refused_too(builtin_labs):
    lab = builtin_labs["rnn_lm"]
    for value in (float("inf"), float("-inf"), float("nan")):
        with pytest.raises(UsageError, match="expected a finite number"):
            resolve_lab_config(lab, "smoke", [("settings", {"full_bptt_max_mb": value})])


def as_the_worker_resolves_it(lab, profile: str, config):
    """The worker's step: the config travels as JSON in the lab job and the lab's Config is
    built from it as it is (labrun.run_lab_job); ``profile`` is not read again."""
    sent = json.loads(json.dumps(config_as_dict(config)))
    return config_from_values(lab, sent)


def test_every_config_the_parent_accepts_the_worker_accepts_unchanged(builtin_labs):
    for lab in builtin_labs.values():
        for profile in profile_names(lab):
            config = resolve_lab_config(lab, profile, [])
            assert as_the_worker_resolves_it(lab, profile, config) == config
    lab = builtin_labs["rnn_lm"]
    for value in (1e308, 5e-324, 2.5):
        config = resolve_lab_config(lab, "smoke", [("--set", {"full_bptt_max_mb": value})])
        assert as_the_worker_resolves_it(lab, "smoke", config) == config


@dataclass(frozen=True)
class UnboundedConfig:
    #: A float without bounds: only its type decides.
    scale: float = 1.0
    #: Floats in a list.
    weights: tuple[float, ...] = field(default=(0.5,), metadata={"min_len": 0})


class UnboundedLab(labrunner.Lab):
    name = "unbounded"
    title = "Unbounded"
    Config = UnboundedConfig

    def run(self, ctx):  # pragma: no cover - never run here
        pass


@pytest.mark.parametrize(
    "item", ["unbounded.scale=.inf", "unbounded.weights=[1, .nan]", "unbounded.scale=-.inf"]
)
def test_a_float_without_bounds_is_refused_in_the_parent_as_the_worker_would(item):
    """Before, ``.inf`` passed the parent's check and the worker, reading "inf" back from the
    job's JSON, refused it: the lab failed after the run had started."""
    lab = UnboundedLab()
    with pytest.raises(UsageError, match="expected a finite number"):
        resolve_set(lab, item)
    accepted = resolve_set(lab, "unbounded.scale=1e300")
    assert as_the_worker_resolves_it(lab, "smoke", accepted) == accepted
