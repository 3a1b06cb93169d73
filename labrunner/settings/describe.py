"""What each setting of a lab is: its type, default, bounds and one-line description, read
from the lab's ``Config`` dataclass, for ``labrunner config``, ``labrunner list --settings``
and every example setting that help texts and error messages show.

A field's description is its ``metadata={"help": ...}``, else the ``#:`` comment above it
(the Sphinx convention). Examples (``attention.draws=10``) are generated from the installed
labs and checked to resolve, so that no text names a setting that does not exist.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import math
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .labconfig import BOUNDS, CHOICES, HELP, LENGTH_BOUNDS, config_types, field_bounds


@dataclass(frozen=True)
class SettingInfo:
    """One setting of a lab, described."""

    name: str
    #: The type in words: ``int``, ``list of [int, int, int]``, ``map of str to str``.
    type: str
    #: The default, JSON-ready.
    default: Any
    #: The declared bounds in words: ``>= 1``, ``each >= 1, not empty``, ``one of fp32, bf16``.
    bounds: str
    #: One line: what the setting is.
    description: str


def type_label(tp: Any) -> str:
    """A type annotation in words, as a user writes the value in YAML."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin is typing.Union or type(tp).__name__ == "UnionType":
        return " | ".join("null" if a is type(None) else type_label(a) for a in args)
    if origin in (list, tuple) or (origin is not None and getattr(origin, "__name__", "") == "Sequence"):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return "[" + ", ".join(type_label(a) for a in args) + "]"
        return f"list of {type_label(args[0]) if args else 'values'}"
    if origin is dict:
        key, value = args or (Any, Any)
        return f"map of {type_label(key)} to {type_label(value)}"
    if tp is Path:
        return "path"
    if tp is Any:
        return "any"
    return getattr(tp, "__name__", str(tp))


def bounds_label(lab_name: str, f: dataclasses.Field, tp: Any) -> str:
    """The bounds ``f`` declares, in words (``""`` when it declares none)."""
    bounds = field_bounds(lab_name, f)
    parts = []
    numbers = [f"{BOUNDS[k]} {_number(bounds[k])}" for k in ("min", "above", "max", "below") if k in bounds]
    if numbers:
        nested = typing.get_origin(tp) in (list, tuple, dict)
        parts.append(("each " if nested else "") + ", ".join(numbers))
    if bounds.get("min_len") == 1 and "max_len" not in bounds:
        parts.append("not empty")
    else:  # min_len 0 says that an empty list is meant: no bound to show
        parts += [
            f"{LENGTH_BOUNDS[k]} {_number(bounds[k])} items" for k in LENGTH_BOUNDS if bounds.get(k, 0) > 0
        ]
    if CHOICES in bounds:
        parts.append("one of " + ", ".join(map(str, bounds[CHOICES])))
    return ", ".join(parts)


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@functools.cache
def comment_descriptions(config_cls: type) -> dict[str, str]:
    """The ``#:`` comment above each field of ``config_cls``'s source, joined into one line."""
    try:
        source = inspect.getsource(config_cls)
    except (OSError, TypeError):  # defined where no source file is
        return {}
    found: dict[str, str] = {}
    comment: list[str] = []
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            comment.append(stripped[2:].strip())
            continue
        field = re.match(r"^\s+([A-Za-z_]\w*)\s*:", line)
        if field and comment:
            found[field.group(1)] = " ".join(comment)
        comment = []
    return found


def one_line_description(text: str) -> str:
    """A description on one line: whitespace runs as one space, ````x```` as ```x```."""
    return " ".join(text.replace("``", "`").split())


def describe_settings(lab: Any) -> list[SettingInfo]:
    """Every setting of ``lab`` (a Lab), described, in the Config's order."""
    from ..records.results import jsonable

    config_cls = lab.Config
    types_ = config_types(config_cls)
    comments = comment_descriptions(config_cls)
    rows = []
    for f in dataclasses.fields(config_cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        description = f.metadata.get(HELP) or comments.get(f.name, "")
        rows.append(
            SettingInfo(
                name=f.name,
                type=type_label(types_[f.name]),
                default=jsonable(default),
                bounds=bounds_label(lab.name, f, types_[f.name]),
                description=one_line_description(str(description)),
            )
        )
    return rows


def flow(value: Any) -> str:
    """``value`` (JSON-ready) as YAML on one line: nested lists stay on it."""
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, width=math.inf, sort_keys=False).strip()
    return text[: -len("...")].strip() if text.endswith("\n...") else text


def kind_label(info: SettingInfo) -> str:
    """The type with its bounds: ``int >= 1``, ``list of [int, int], each >= 1, not empty``."""
    if not info.bounds:
        return info.type
    joint = " " if info.bounds[0] in "<>" else ", "
    return f"{info.type}{joint}{info.bounds}"


def setting_comment(info: SettingInfo, value: Any = dataclasses.MISSING) -> str:
    """``type bounds, default D — description`` (a long default equal to ``value`` is not
    repeated: ``default: this value``)."""
    kind = kind_label(info)
    default = flow(info.default)
    text = (
        f"{kind}, default {default}"
        if value != info.default or len(default) <= 24
        else f"{kind}, default: this value"
    )
    return f"{text} — {info.description}" if info.description else text


# --------------------------------------------------------------------------- generated examples


def _example_value(lab: Any, f: dataclasses.Field, tp: Any, profile: str | None) -> Any:
    """A value of an int or float setting other than its default: the value ``profile``
    gives it, or with ``profile`` None, twice the default (None when there is none)."""
    default = f.default if f.default is not dataclasses.MISSING else None
    if isinstance(default, bool) or not isinstance(default, (int, float)) or tp not in (int, float):
        return None
    if profile is None:
        return default * 2 if default else tp(1)
    value = lab.profiles.get(profile, {}).get(f.name)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value != default:
        return tp(value)
    return None


def example_settings(plugins: Any, key: str | None = None) -> list[str]:
    """``LAB.KEY=VALUE`` examples from the installed labs' real settings (numbers), one per
    lab, each checked to resolve in the quick profile; only settings named ``key`` when
    given. A value a profile sets is preferred (the full profile's first): it is a real one."""
    from .labconfig import resolve_lab_config

    examples = []
    for lab in getattr(plugins, "labs", {}).values():
        try:
            types_ = config_types(lab.Config)
        except Exception:  # a lab whose annotations do not resolve is skipped here
            continue
        candidates = [f for f in dataclasses.fields(lab.Config) if key is None or f.name == key]
        found = ""
        for profile in ("full", "quick", "smoke", None):
            for f in candidates:
                value = _example_value(lab, f, types_.get(f.name), profile)
                if value is None:
                    continue
                try:
                    resolve_lab_config(lab, "quick", [("--set", {f.name: value})])
                except Exception:  # out of bounds, or the lab's own check refuses it
                    continue
                found = f"{lab.name}.{f.name}={flow(value)}"
                break
            if found:
                examples.append(found)
                break
    return examples


def example_setting(plugins: Any = None, key: str | None = None) -> str:
    """One ``LAB.KEY=VALUE`` for help texts and messages: a setting named ``key`` when a lab
    has one, else one of the first installed lab that has a number setting ("" when none has)."""
    if plugins is None:
        from .plugins import load_plugins

        plugins = load_plugins([])
    for wanted in ([key] if key else []) + [None]:
        found = example_settings(plugins, wanted)
        if found:
            return found[0]
    return ""


def set_example(plugins: Any, key: str = "", value: str = "") -> str:
    """``LAB.KEY=VALUE`` to show with a malformed one: a setting of an installed lab named
    ``key`` (with the user's ``value``), else a real setting of an installed lab."""

    if plugins is None:
        from .plugins import load_plugins

        plugins = load_plugins([])
    if key in getattr(plugins, "labs", {}):  # a lab without its key: one of that lab's settings
        example = next((e for e in example_settings(plugins) if e.startswith(f"{key}.")), "")
        return example or example_setting(plugins)
    example = example_setting(plugins, key or None)
    if key and value and example.split("=")[0].endswith(f".{key}"):
        example = f"{example.split('=')[0]}={value}"
    return example
