"""The options of a run as the user gave them: one frozen object, built once from the
command line (:meth:`RunOptions.from_args`) or from the keyword arguments of
``labrunner.run`` / ``labrunner.prepare`` (:meth:`RunOptions.from_values`), and passed down to
the resolution (:mod:`labrunner.settings.resolve`), which adds the config file and the
defaults and checks every value."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .executor_options import parse_executor_options


@dataclass(frozen=True)
class RunOptions:
    """What the user asked of a run; None (or empty) where an option was not given, so that
    the config file and the defaults fill it in. Values are checked when they are resolved,
    not here: a wrong one is a UsageError naming its option."""

    labs: tuple[str, ...] = ("all",)
    profile: str | None = None
    device: str | None = None
    seed: int | None = None
    #: ``--seeds``: text such as ``"0-4"`` or the seeds themselves.
    seeds: str | tuple[int, ...] | None = None
    #: Lab settings as Python values: ``{"rnn_lm.epochs": 4}`` or ``{"rnn_lm": {"epochs": 4}}``.
    settings: Mapping[str, Any] = field(default_factory=dict)
    #: ``--set LAB.KEY=VALUE`` items (YAML values).
    set: tuple[str, ...] = ()
    config: str | None = None
    out: str | None = None
    force: bool = False
    deterministic: bool | None = None
    threads: int | None = None
    precision: str | None = None
    isolation: str | None = None
    lab_timeout: float | None = None
    author: str | None = None
    plugins_dir: tuple[str, ...] = ()
    executor: str | None = None
    #: ``--jobs``: a number, ``"auto"`` or None (one at a time here, every job at once on SLURM).
    jobs: int | str | None = None
    executor_options: Mapping[str, Any] = field(default_factory=dict)
    detach: bool = False

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The option names (the keyword arguments of ``labrunner.run`` that are options)."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> RunOptions:
        """From keyword arguments (already type-checked by ``labrunner.api``): a lab name or
        a path as a one-item tuple, lists as tuples, paths as text; other keys are ignored."""
        given = {name: values[name] for name in cls.names() if name in values}
        for name in ("labs", "set"):
            if name in given:
                given[name] = _texts(given[name])
        if "plugins_dir" in given:
            value = given["plugins_dir"]
            paths = [value] if isinstance(value, (str, os.PathLike)) else list(value)
            given["plugins_dir"] = tuple(os.fspath(p) for p in paths)
        for name in ("config", "out"):
            if given.get(name) is not None:
                given[name] = os.fspath(given[name])
        seeds = given.get("seeds")
        if seeds is not None and not isinstance(seeds, str):
            given["seeds"] = tuple(seeds)
        for name in ("settings", "executor_options"):
            if name in given:
                given[name] = dict(given[name] or {})
        return cls(**given)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RunOptions:
        """From the parsed command line of ``run`` or ``config`` (an option a command does
        not have keeps its default)."""
        values = {name: getattr(args, name) for name in cls.names() if getattr(args, name, None) is not None}
        values["labs"] = tuple(getattr(args, "labs", None) or ("all",))
        values["deterministic"] = True if getattr(args, "deterministic", False) else None
        values["executor_options"] = parse_executor_options(getattr(args, "executor_option", None) or [])
        return cls.from_values(values)


def _texts(value: str | Iterable[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)
