"""The keyword arguments of the Python API (``labrunner.run``, ``load``, ``prepare``,
``Run.render``, ``Run.submit``), each checked against what it expects before anything is read
or written: a value of the wrong type is one UsageError naming the function and the
parameter (``labrunner.run: labs: expected ..., got int 42``)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from ..base.errors import UsageError

_PATHLIKE = (str, os.PathLike)


def _type_name(value: Any) -> str:
    from ..records.jsonfiles import short

    if isinstance(value, (dict, list)):
        return short(value)  # "list of 2"
    return f"{type(value).__name__} {short(value, 40)}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _many(value: Any, item_ok: Any) -> bool:
    """A list, tuple (or other non-mapping, non-text iterable) whose items all pass ``item_ok``."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        return False
    return all(item_ok(item) for item in value)


#: Each public parameter of run / load / prepare: (what it expects, its check). A value
#: of the wrong type is a UsageError naming the parameter, before anything is read or written.
PARAMETERS: dict[str, tuple[str, Any]] = {
    "labs": (
        "'all', a lab name or a list of lab names",
        lambda v: isinstance(v, str) or _many(v, lambda x: isinstance(x, str)),
    ),
    "profile": ("a profile name (str) or None", lambda v: v is None or isinstance(v, str)),
    "device": ("a device name (str) or None", lambda v: v is None or isinstance(v, str)),
    "seed": ("an integer or None", lambda v: v is None or _is_int(v)),
    "settings": (
        "a mapping such as {'rnn_lm.epochs': 4} or None",
        lambda v: v is None or isinstance(v, Mapping),
    ),
    "set": (
        "a 'LAB.KEY=VALUE' string or a list of them",
        lambda v: isinstance(v, str) or _many(v, lambda x: isinstance(x, str)),
    ),
    "config": ("a path (str or os.PathLike) or None", lambda v: v is None or isinstance(v, _PATHLIKE)),
    "out": ("a path (str or os.PathLike) or None", lambda v: v is None or isinstance(v, _PATHLIKE)),
    "force": ("True or False", lambda v: isinstance(v, bool)),
    "deterministic": ("True, False or None", lambda v: v is None or isinstance(v, bool)),
    "threads": ("an integer or None", lambda v: v is None or _is_int(v)),
    "isolation": ("'process', 'none' or None", lambda v: v is None or isinstance(v, str)),
    "lab_timeout": ("a number of seconds or None", lambda v: v is None or _is_number(v)),
    "author": ("a name (str) or None", lambda v: v is None or isinstance(v, str)),
    "plugins_dir": (
        "a path or a list of paths",
        lambda v: isinstance(v, _PATHLIKE) or _many(v, lambda x: isinstance(x, _PATHLIKE)),
    ),
    "executor": ("an executor name (str) or None", lambda v: v is None or isinstance(v, str)),
    "jobs": ("an integer, 'auto' or None", lambda v: v is None or _is_int(v) or isinstance(v, str)),
    "executor_options": ("a mapping or None", lambda v: v is None or isinstance(v, Mapping)),
    "seeds": (
        "seeds such as '0-4' or a list of integers, or None",
        lambda v: v is None or isinstance(v, str) or _many(v, _is_int),
    ),
    "detach": ("True or False", lambda v: isinstance(v, bool)),
    "precision": ("'fp32', 'bf16', 'fp16' or None", lambda v: v is None or isinstance(v, str)),
    "verbosity": ("an integer", _is_int),
    "report": ("True or False", lambda v: isinstance(v, bool)),
    "reporter": (
        "a labrunner progress reporter or None",
        lambda v: v is None or all(callable(getattr(v, m, None)) for m in ("log", "bar", "stop")),
    ),
    "plugins": (
        "loaded plugins (labrunner.settings.plugins.load_plugins) or None",
        lambda v: v is None or _is_plugins(v),
    ),
    "writes": ("True or False", lambda v: isinstance(v, bool)),
    "path": ("a path (str or os.PathLike) or None", lambda v: v is None or isinstance(v, _PATHLIKE)),
    "partial": ("True or False", lambda v: isinstance(v, bool)),
    "allow_stand_ins": ("True or False", lambda v: isinstance(v, bool)),
    "allow_mixed": ("True or False", lambda v: isinstance(v, bool)),
    "warn": ("a function taking one line, or None", lambda v: v is None or callable(v)),
    "formats": (
        "a format name or a list of them",
        lambda v: isinstance(v, str) or _many(v, lambda x: isinstance(x, str)),
    ),
}


def _is_plugins(value: Any) -> bool:
    from .plugins import Plugins

    return isinstance(value, Plugins)


def _listed(value: Any) -> Any:
    """An iterable that is not text or a mapping (a generator, a set) as a list, read once;
    anything else as it is."""
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes, Mapping, os.PathLike)):
        return list(value)
    return value


def check_arguments(function: str, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (parameter name -> value) with each iterable read into a list; raises
    UsageError naming the first parameter of ``function`` whose value has the wrong type
    (``labrunner.run: labs: expected ..., got int 42``), or an empty lab selection."""
    values = {name: _listed(value) if name in _LISTS else value for name, value in values.items()}
    for name, value in values.items():
        expected, ok = PARAMETERS[name]
        if not ok(value):
            raise UsageError(f"{function}: {name}: expected {expected}, got {_type_name(value)}")
    labs = values.get("labs")
    if labs is not None and not isinstance(labs, str) and not labs:
        raise UsageError(f"{function}: labs: an empty selection; name labs, or 'all' for every lab")
    if isinstance(labs, str) and not labs.strip():
        raise UsageError(f"{function}: labs: an empty lab name; name labs, or 'all' for every lab")
    return values


#: Parameters that take a list (or any iterable, read once).
_LISTS = frozenset({"labs", "set", "plugins_dir", "seeds", "formats"})
