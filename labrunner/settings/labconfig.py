"""A lab's typed config: each value coerced to its field's type and checked against the
field's bounds and choices, profile and config-file and ``--set`` layers resolved in order."""

from __future__ import annotations

import collections.abc
import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any

from ..authoring.lab import Lab, profile_names
from ..base.errors import UsageError, did_you_mean
from ..records.results import jsonable
from .configfile import one_line, short_repr

#: Field metadata a lab's Config may declare on numbers (``field(default=8, metadata={"min": 1})``),
#: applied to a number and to every number inside a list or mapping.
BOUNDS = {"min": ">=", "max": "<=", "above": ">", "below": "<"}
#: Field metadata on the length of a list, tuple, mapping or string: ``{"min_len": 1}`` is
#: "not empty".
LENGTH_BOUNDS = {"min_len": ">=", "max_len": "<="}
#: Field metadata naming the values a setting may take: ``{"choices": ("fp32", "bf16")}``.
CHOICES = "choices"
#: Field metadata with the setting's one-line description (else its ``#:`` comment is used).
HELP = "help"


# --------------------------------------------------------------------------- types


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(tp) if a is not Ellipsis)
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def describe_value(value: Any) -> str:
    return f"{type(value).__name__} {short_repr(value, 40)}"


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the type annotation ``tp``; return it converted
    (int -> float, list -> tuple). Raise :class:`UsageError` naming ``where``."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Literal:
        if value in args and not (isinstance(value, bool) and not any(isinstance(a, bool) for a in args)):
            return value
        raise UsageError(f"{where}: expected one of {_type_name(tp)}, got {describe_value(value)}")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, where)
            except UsageError:
                continue
        raise UsageError(f"{where}: expected {_type_name(tp)}, got {describe_value(value)}")
    if origin in (list, tuple, collections.abc.Sequence):
        if not isinstance(value, (list, tuple)):
            raise UsageError(f"{where}: expected {_type_name(tp)}, got {describe_value(value)}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise UsageError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(
                coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=False))
            )
        item_tp = args[0] if args else Any
        items = [coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise UsageError(f"{where}: expected a mapping, got {describe_value(value)}")
        ktp, vtp = args or (Any, Any)
        return {coerce(k, ktp, where): coerce(v, vtp, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):  # refused here, so the parent and a worker agree
                raise UsageError(f"{where}: expected a finite number, got {short_repr(value)}")
            return float(value)
        if isinstance(value, str) and value.strip().lstrip("+-.").lower() in ("inf", "infinity", "nan"):
            raise UsageError(f"{where}: expected a finite number, got {short_repr(value)}")
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise UsageError(f"{where}: expected {_type_name(tp)}, got {describe_value(value)}")


def config_types(config_cls: type) -> dict[str, Any]:
    """The type annotation of each field of a lab's Config dataclass."""
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(config_cls)}


# --------------------------------------------------------------------------- resolution


def resolve_lab_config(
    lab: Lab,
    profile: str,
    layers: list[tuple[str, dict[str, Any]]],
) -> Any:
    """Build the config of ``lab``: defaults, then the profile, then each
    ``(source, values)`` layer in order (config file, ``--set``); then check the bounds
    its fields declare and the lab's own ``validate``."""
    if profile not in profile_names(lab):
        raise UsageError(
            f"unknown profile {short_repr(profile)} for lab {lab.name!r}"
            f"{did_you_mean(profile, profile_names(lab))}; expected one of {', '.join(profile_names(lab))}"
        )
    types_ = config_types(lab.Config)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}  # where each value was set: "--set", "labrunner.yaml:7", ...
    for source, layer in [
        (f"profile {profile!r} of lab {lab.name!r}", lab.profiles.get(profile, {})),
        *layers,
    ]:
        lines = getattr(layer, "where", {})
        for key, value in layer.items():
            where = lines.get(key) or source
            if key not in types_:
                raise UsageError(
                    f"{where}: unknown key '{lab.name}.{one_line(key, 60)}'{did_you_mean(str(key), types_)}"
                )
            values[key] = coerce(value, types_[key], f"{where}: {lab.name}.{key}")
            sources[key] = where
    try:
        config = lab.Config(**values)
    except (TypeError, ValueError) as exc:  # a Config's own __post_init__ validation
        raise _invalid(lab, exc, sources) from None
    check_bounds(lab, config, sources)
    try:
        lab.validate(config)
    except ValueError as exc:
        raise _invalid(lab, exc, sources) from None
    return config


def config_from_values(
    lab: Lab, values: collections.abc.Mapping[str, Any], where: str = "the lab job"
) -> Any:
    """The lab's Config from its resolved values as :func:`config_as_dict` wrote them (a lab
    job's ``config``): each value converted back to its field's type (a list to a tuple,
    text to a path). Every field must be given and nothing else; no profile or file is read
    (the values were resolved and checked where the run started)."""
    types_ = config_types(lab.Config)
    unknown = [key for key in values if key not in types_]
    if unknown:
        raise UsageError(f"{where}: unknown key '{lab.name}.{one_line(unknown[0], 60)}'")
    fields = [f.name for f in dataclasses.fields(lab.Config) if f.init]
    missing = [name for name in fields if name not in values]
    if missing:
        raise UsageError(f"{where}: {lab.name}.{missing[0]} is missing")
    coerced = {name: coerce(values[name], types_[name], f"{where}: {lab.name}.{name}") for name in fields}
    try:
        return lab.Config(**coerced)
    except (TypeError, ValueError) as exc:  # a Config's own __post_init__ validation
        raise _invalid(lab, exc, {}) from None


def field_bounds(lab_name: str, f: dataclasses.Field) -> dict[str, Any]:
    """The bounds ``f`` declares in its metadata (numbers, lengths, choices), checked to be
    well-formed; a malformed one is the lab's error, named."""
    bounds = {key: f.metadata[key] for key in (*BOUNDS, *LENGTH_BOUNDS) if key in f.metadata}
    for key, bound in bounds.items():
        if isinstance(bound, bool) or not isinstance(bound, (int, float)):
            raise UsageError(
                f"lab {lab_name!r}: config field {f.name!r} declares {key}={short_repr(bound)}, "
                "which is not a number"
            )
    if CHOICES in f.metadata:
        choices = f.metadata[CHOICES]
        if isinstance(choices, (str, bytes)) or not isinstance(choices, collections.abc.Iterable):
            raise UsageError(
                f"lab {lab_name!r}: config field {f.name!r} declares choices={short_repr(choices)}, "
                "which is not a list of values"
            )
        bounds[CHOICES] = tuple(choices)
    return bounds


def check_bounds(lab: Lab, config: Any, sources: dict[str, str] | None = None) -> None:
    """Check ``config`` against the bounds its fields declare in their metadata: every
    number (in lists too) against ``min``, ``max`` (inclusive), ``above``, ``below``
    (exclusive); the length of a list, mapping or string against ``min_len``, ``max_len``;
    the value against ``choices``."""
    sources = sources or {}
    for f in dataclasses.fields(config):
        bounds = field_bounds(lab.name, f)
        if not bounds:
            continue
        where = sources.get(f.name, f"default of lab {lab.name!r}")
        value = getattr(config, f.name)
        if CHOICES in bounds and value not in bounds[CHOICES]:
            raise UsageError(
                f"{where}: {lab.name}.{f.name} must be one of {', '.join(map(str, bounds[CHOICES]))}, "
                f"got {short_repr(value)}"
            )
        for key, op in LENGTH_BOUNDS.items():
            if key in bounds and hasattr(value, "__len__") and not _holds(len(value), op, bounds[key]):
                raise UsageError(f"{where}: {lab.name}.{f.name} {_length_rule(key, bounds[key], value)}")
        bounds = {key: bound for key, bound in bounds.items() if key in BOUNDS}
        for path, number in _numbers(value, f"{lab.name}.{f.name}"):
            for key, bound in bounds.items():
                if math.isnan(number) or not _holds(number, BOUNDS[key], bound):
                    raise UsageError(
                        f"{where}: {path} must be {BOUNDS[key]} {bound}, got {short_repr(number)}"
                    )


def _length_rule(key: str, bound: float, value: Any) -> str:
    what = "characters" if isinstance(value, str) else "items"
    if key == "min_len" and bound == 1:
        return f"must not be empty, got {short_repr(list(value) if isinstance(value, tuple) else value)}"
    at = "at least" if key == "min_len" else "at most"
    return f"must have {at} {bound:g} {what}, got {len(value)}"


def _holds(number: float, op: str, bound: float) -> bool:
    return {">=": number >= bound, "<=": number <= bound, ">": number > bound, "<": number < bound}[op]


def _numbers(value: Any, path: str) -> collections.abc.Iterator[tuple[str, float]]:
    """Every number in ``value`` (itself, or inside lists, tuples and mappings), with its path."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        yield path, value
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _numbers(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers(item, f"{path}.{key}")


def _invalid(lab: Lab, exc: Exception, sources: dict[str, str]) -> UsageError:
    """A lab's refusal as one line; ``"field: why"`` is shown with where ``field`` was set."""
    message = one_line(exc)
    key, colon, _ = message.partition(":")
    if colon and key.strip() in {f.name for f in dataclasses.fields(lab.Config)}:
        where = sources.get(key.strip(), f"default of lab {lab.name!r}")
        return UsageError(f"{where}: {lab.name}.{message}")
    return UsageError(f"invalid config for lab {lab.name!r}: {message}")


def config_as_dict(config: Any) -> dict[str, Any]:
    """A config instance as a plain, JSON-ready dict."""

    return jsonable(dataclasses.asdict(config))
