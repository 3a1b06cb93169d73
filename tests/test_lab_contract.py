"""register() enforces the lab contract and names what is wrong."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

import labrunner
from labrunner.authoring.lab import profile_names, validate_lab
from labrunner.base.errors import PluginError


@dataclass
class Cfg:
    n: int = 1


def make(**attrs):
    def run(self, ctx):
        pass

    return type("L", (labrunner.Lab,), {"name": "ok", "title": "T", "Config": Cfg, "run": run, **attrs})


def test_a_valid_lab_class_is_instantiated():
    lab = validate_lab(make())
    assert isinstance(lab, labrunner.Lab)
    assert profile_names(lab) == ["smoke", "quick", "full"]


@dataclass
class NoDefault:
    n: int


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"name": "9lives"}, "invalid lab name '9lives'"),
        ({"name": "all"}, "reserved"),
        ({"title": ""}, "has no title"),
        ({"version": 2}, "no version string"),
        ({"Config": dict}, "Config must be a dataclass"),
        ({"Config": NoDefault}, "config field 'n' has no default"),
        ({"profiles": {"smoke": {"m": 1}}}, "profile 'smoke' sets unknown field 'm'"),
        ({"run": labrunner.Lab.run}, "does not implement run"),
    ],
)
def test_contract_violations(attrs, message):
    with pytest.raises(PluginError, match=message):
        validate_lab(make(**attrs))


def test_not_a_lab():
    with pytest.raises(PluginError, match="not a labrunner.Lab"):
        validate_lab(object())
