"""Executor settings: a registered executor's entry, the ``--executor`` name check, and the
parsing of ``--executor-option``, ``--jobs`` and the SLURM executor's options (checked before
anything runs; the executors themselves are labrunner.execution)."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from ..base.errors import UsageError, did_you_mean

#: The executors labrunner registers itself (labrunner.execution.executors builds them).
BUILTIN_EXECUTORS = ("local", "slurm")


@dataclass
class ExecutorInfo:
    """A registered executor: ``build(context)`` makes it; ``plugin`` registered it."""

    name: str
    build: Callable[..., Any]
    description: str
    plugin: str


def check_executor(name: str, registered: Collection[str]) -> str:
    """``name`` when an executor of that name is registered, else one UsageError line."""
    if name not in registered:
        raise UsageError(
            f"--executor {name}: unknown executor{did_you_mean(name, registered)}; "
            f"expected one of {', '.join(registered)}"
        )
    return name


def parse_executor_options(items: list[str], where: str = "--executor-option") -> dict[str, Any]:
    """``KEY=VALUE`` items (repeatable; ``setup`` may be given more than once)."""
    options: dict[str, Any] = {}
    for item in items:
        key, eq, value = str(item).partition("=")
        key = key.strip()
        if not eq or not key:
            raise UsageError(f"{where} {item!r}: expected KEY=VALUE, for example partition=gpu")
        if key == "setup":
            options.setdefault("setup", []).append(value)
        else:
            options[key] = value
    return options


def parse_jobs(text: str | int | None) -> int | None:
    """``--jobs N`` or ``auto`` (returned as None)."""
    if text is None or text == "auto":
        return None
    try:
        number = int(text)
    except (TypeError, ValueError):
        raise UsageError(f"--jobs must be a whole number or auto, got {text!r}") from None
    if number < 1:
        raise UsageError(f"--jobs must be at least 1, got {number}")
    return number


# --------------------------------------------------------------------------- SLURM options


#: Option names, and the submitit (sbatch) parameter each one sets.
OPTIONS = {
    "partition": "partition",
    "time": "time",
    "gpus": "gpus_per_node",
    "cpus": "cpus_per_task",
    "mem": "mem",
    "account": "account",
    "qos": "qos",
    "constraint": "constraint",
    "setup": "setup",
}


#: An ``sbatch.<option>`` key, passed to sbatch as it is.
SBATCH_KEY = re.compile(r"^sbatch\.([a-z][a-z0-9-]{0,40})$")


def parse_time(value: str) -> int:
    """A SLURM time limit in whole minutes, rounded up. SLURM's forms: ``M``, ``M:S``,
    ``H:M:S``, ``D-H``, ``D-H:M``, ``D-H:M:S``."""
    text = str(value).strip()
    days, hms = text.split("-", 1) if "-" in text else ("0", text)
    parts = hms.split(":")
    if not all(p.isdigit() for p in [days, *parts]) or not 1 <= len(parts) <= 3:
        raise UsageError(f"--executor-option time={value}: expected minutes, H:MM:SS or D-HH:MM:SS")
    numbers = [int(p) for p in parts]
    if "-" in text:  # hours first after the days
        hours, minutes, seconds = (numbers + [0, 0])[:3]
    else:
        hours, minutes, seconds = {1: (0, numbers[0], 0), 2: (0, *numbers), 3: tuple(numbers)}[len(numbers)]
    total = ((int(days) * 24 + hours) * 60 + minutes) * 60 + seconds
    if total < 60:
        raise UsageError(f"--executor-option time={value}: the time limit must be at least a minute")
    return -(-total // 60)


def slurm_parameters(options: dict[str, Any]) -> dict[str, Any]:
    """The submitit ``SlurmExecutor`` parameters for labrunner's executor options;
    raises UsageError naming an unknown or malformed option."""
    params: dict[str, Any] = {"time": 60}
    extra: dict[str, str] = {}
    for key, value in options.items():
        match = SBATCH_KEY.match(key)
        if match:
            extra[match.group(1)] = str(value)
            continue
        if key not in OPTIONS:
            known = ", ".join([*OPTIONS, "sbatch.<option>"])
            raise UsageError(f"--executor-option {key}: unknown SLURM option (known: {known})")
        if key == "time":
            params["time"] = parse_time(str(value))
        elif key in ("gpus", "cpus"):
            try:
                number = int(value)
            except (TypeError, ValueError):
                raise UsageError(f"--executor-option {key}={value}: expected a whole number") from None
            if number < (0 if key == "gpus" else 1):
                raise UsageError(f"--executor-option {key}={value}: out of range")
            params[OPTIONS[key]] = number
        elif key == "setup":
            lines = value if isinstance(value, list) else [value]
            params["setup"] = [str(line) for line in lines]
        else:
            params[OPTIONS[key]] = str(value)
    if extra:
        params["additional_parameters"] = extra
    return params
