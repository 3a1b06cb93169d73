"""Config resolution: lab defaults < profile < config file < ``--set`` overrides.

Everything is validated against the lab's ``Config`` dataclass, the bounds its fields
declare and the lab's own ``validate``, before any file is written; a problem is a
:class:`UsageError` naming the key and its source (option, or file and line).

Config files are read by :mod:`.configfile` (bounded, safe YAML with the line of each key).
All layering and every check of the settings of a run are here, in one place (about 700
lines), so that the command line, the Python API and the workers resolve them alike.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..authoring.lab import Lab, profile_names
from ..base.errors import UsageError, did_you_mean
from .configfile import load_yaml_file, one_line, parse_yaml, short_repr
from .describe import set_example
from .labconfig import coerce, config_as_dict, describe_value

DEFAULT_CONFIG_FILE = "labrunner.yaml"
DEFAULT_OUT = "reports"
#: torch.manual_seed takes at most 64 bits.
MAX_SEED = 2**64 - 1
TOP_LEVEL_KEYS = (
    "profile",
    "seed",
    "seeds",
    "device",
    "deterministic",
    "threads",
    "out",
    "report",
    "executor",
    "executor_options",
    "labs",
)
#: Most seeds one sweep may run.
MAX_SEEDS = 1000
REPORT_KEYS = ("title", "course", "author", "student_id", "institution", "order")


@dataclass
class RunConfig:
    """The parts of a config file that are not lab settings."""

    profile: str | None = None
    seed: int | None = None
    device: str | None = None
    deterministic: bool | None = None
    threads: int | None = None
    out: str | None = None
    report: dict[str, str] = field(default_factory=dict)
    #: ``seeds:`` (a sweep), ``executor:`` and ``executor_options:``.
    seeds: list[int] | None = None
    executor: str | None = None
    executor_options: dict[str, Any] = field(default_factory=dict)
    labs: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = ""
    #: The line of each key path in the file (``seed``, ``labs.attention.trials``).
    lines: dict[str, int] = field(default_factory=dict)

    def where(self, path: str) -> str:
        """``file:line`` of the key path ``path`` (the file alone when the line is unknown)."""
        line = self.lines.get(path)
        return f"{self.source}:{line}" if line else self.source


class LayerValues(dict):
    """One source's settings of one lab, knowing where each was written (``file:line``)."""

    def __init__(self, values: dict[str, Any], where: dict[str, str] | None = None) -> None:
        super().__init__(values)
        self.where = where or {}


def load_run_config(path: Path | None) -> RunConfig:
    """Read ``path`` (or ``./labrunner.yaml`` when it exists) into a :class:`RunConfig`."""
    if path is None:
        default = Path(DEFAULT_CONFIG_FILE)
        if not default.is_file():
            return RunConfig()
        path = default
    data, lines = load_yaml_file(path)
    src = str(path)
    cfg = RunConfig(source=src, lines=lines)
    if data is None:
        return cfg
    if not isinstance(data, dict):
        raise UsageError(f"{src}: the top level must be a mapping, got {type(data).__name__}")
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise UsageError(
                f"{cfg.where(str(key))}: unknown key {short_repr(key)}{did_you_mean(str(key), TOP_LEVEL_KEYS)}; "
                f"expected one of {', '.join(TOP_LEVEL_KEYS)}"
            )
    for key, kind in (
        ("profile", str),
        ("seed", int),
        ("device", str),
        ("deterministic", bool),
        ("threads", int),
        ("out", str),
        ("executor", str),
    ):
        if key in data and data[key] is not None:
            setattr(cfg, key, coerce(data[key], kind, f"{cfg.where(key)}: {key}"))
    for key in ("profile", "device", "out"):
        check_not_empty(getattr(cfg, key), f"{cfg.where(key)}: {key}", key)
    if cfg.seed is not None:
        check_seed(cfg.seed, f"{cfg.where('seed')}: seed")
    if cfg.threads is not None:
        check_threads(cfg.threads, f"{cfg.where('threads')}: threads")
    if data.get("seeds") is not None:
        cfg.seeds = parse_seeds(data["seeds"], f"{cfg.where('seeds')}: seeds")
    options = data.get("executor_options") or {}
    if not isinstance(options, dict):
        raise UsageError(f"{cfg.where('executor_options')}: executor_options must be a mapping of KEY: VALUE")
    for key, value in options.items():
        if not isinstance(key, str) or isinstance(value, (dict,)) or value is None:
            raise UsageError(
                f"{cfg.where(f'executor_options.{key}')}: executor_options.{one_line(key, 60)} "
                "must be a plain value (or a list, for setup)"
            )
        cfg.executor_options[key] = [str(v) for v in value] if isinstance(value, list) else str(value)
    report = data.get("report") or {}
    if not isinstance(report, dict):
        raise UsageError(f"{cfg.where('report')}: report must be a mapping")
    for key, value in report.items():
        where = cfg.where(f"report.{key}")
        if key not in REPORT_KEYS:
            raise UsageError(
                f"{where}: unknown key 'report.{one_line(key, 60)}'{did_you_mean(str(key), REPORT_KEYS)}"
            )
        if key == "order":  # the labs' order in the report: a list of lab names
            cfg.report[key] = report_order(value, f"{where}: report.order")  # type: ignore[assignment]
            continue
        cfg.report[key] = coerce(value, str, f"{where}: report.{key}")
    labs = data.get("labs") or {}
    if not isinstance(labs, dict):
        raise UsageError(f"{cfg.where('labs')}: labs must be a mapping of lab name to settings")
    for name, values in labs.items():
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise UsageError(
                f"{cfg.where(f'labs.{name}')}: labs.{one_line(name, 60)} must be a mapping of settings"
            )
        where = {str(key): cfg.where(f"labs.{name}.{key}") for key in values}
        cfg.labs[str(name)] = LayerValues(values, where)
    return cfg


def report_order(value: Any, where: str) -> list[str]:
    """``report.order``: lab names, in the order the report shows them."""
    from ..base.names import NAME_PATTERN

    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and NAME_PATTERN.match(v) for v in value):
        raise UsageError(f"{where}: expected a list of lab names, for example [cnn_receptive, adversarial]")
    return list(value)


def parse_set(items: list[str], plugins: Any = None) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Parse ``--set LAB.KEY=VALUE`` items (values are YAML scalars or lists); a malformed
    one is refused with an example made from the settings of ``plugins``' labs.

    Returns (lab overrides, report overrides).
    """
    labs: dict[str, dict[str, Any]] = {}
    report: dict[str, str] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        lab, dot, name = key.strip().partition(".")
        shown = short_repr(item)
        if not sep or not dot or not lab or not name or "." in name:
            bare = (name or lab).strip() if "." not in name else ""
            example = set_example(plugins, bare, raw.strip() if sep else "")
            hint = f", for example {example}" if example else ""
            raise UsageError(f"bad --set {shown}: expected LAB.KEY=VALUE{hint}")
        value = parse_yaml(raw, f"--set {shown}")[0] if raw.strip() else ""
        if isinstance(value, dict):
            raise UsageError(f"bad --set {shown}: the value must be a scalar or a list")
        if lab == "report":
            if name not in REPORT_KEYS:
                raise UsageError(
                    f"--set {shown}: unknown key 'report.{one_line(name, 60)}'{did_you_mean(name, REPORT_KEYS)}"
                )
            report[name] = report_order(value, f"--set {shown}") if name == "order" else str(value)  # type: ignore[assignment]
        else:
            labs.setdefault(lab, {})[name] = value
    return labs, report


# --------------------------------------------------------------------------- run options

_EXPECTED = {
    "profile": "expected a profile name such as smoke, quick or full",
    "device": "expected auto, cpu, cuda, cuda:N or mps",
    "out": "expected a folder",
}


def check_not_empty(value: str | None, where: str, key: str) -> None:
    """Refuse an empty ``--profile ''`` (or ``profile: ''``) instead of silently using the default."""
    if value is not None and not value.strip():
        raise UsageError(f"{where} is empty; {_EXPECTED[key]}")


def _check_integer(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):  # from Python callers
        raise UsageError(f"{where} must be an integer, got {describe_value(value)}")


def check_seed(seed: int, where: str) -> None:
    """A seed is 0 to 2**64 - 1 (what torch.manual_seed takes)."""
    _check_integer(seed, where)
    if seed < 0:
        raise UsageError(f"{where} must be >= 0, got {short_repr(seed)}")
    if seed > MAX_SEED:
        raise UsageError(f"{where} must be below 2**64 (torch's seed range), got {short_repr(seed)}")


def parse_seeds(value: Any, where: str = "--seeds") -> list[int]:
    """A seed sweep: ``0-4``, ``0,2,5``, a mix (``0-2,7``), or a list of seeds; each seed
    once, in the order given."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if isinstance(value, str):
        items: list[Any] = []
        for part in value.split(","):
            part = part.strip()
            first, dash, last = part.partition("-")
            if dash and first.strip().isdigit() and last.strip().isdigit():
                low, high = int(first), int(last)
                if high < low or high - low >= MAX_SEEDS:
                    raise UsageError(
                        f"{where}: {part!r} is not a range of at most {MAX_SEEDS} seeds, low-high"
                    )
                items += range(low, high + 1)
            elif part.isdigit():
                items.append(int(part))
            else:
                raise UsageError(f"{where}: {one_line(part, 40)!r} is not a seed; expected e.g. 0-4 or 0,2,5")
        value = items
    if not isinstance(value, list) or not value:
        raise UsageError(f"{where}: expected seeds such as 0-4, 0,2,5 or a list [0, 1, 2]")
    seeds: list[int] = []
    for i, seed in enumerate(value):
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise UsageError(f"{where}[{i}]: expected a whole number, got {describe_value(seed)}")
        check_seed(seed, where)
        if seed not in seeds:
            seeds.append(seed)
    if len(seeds) > MAX_SEEDS:
        raise UsageError(f"{where}: at most {MAX_SEEDS} seeds, got {len(seeds)}")
    return seeds


def check_threads(threads: int, where: str) -> None:
    """Threads are 1 to the machine's CPU count."""
    _check_integer(threads, where)
    if threads < 1:
        raise UsageError(f"{where} must be >= 1, got {short_repr(threads)}")
    cpus = os.cpu_count()
    if cpus and threads > cpus:
        raise UsageError(f"{where} is {short_repr(threads)}, more than this machine's {cpus} CPUs")


def check_out_dir(out: Path, where: str) -> None:
    """``out`` is a folder that exists and is writable, or can be made inside one that is."""
    out = Path(out)
    probe = out
    try:
        while not (probe.exists() or probe.is_symlink()) and probe != probe.parent:
            probe = probe.parent
        is_dir = probe.is_dir()
    except OSError as exc:
        raise UsageError(f"{where} {out}: cannot look at {probe}: {exc.strerror or exc}") from None
    if not is_dir:
        named = "it" if probe == out else str(probe)
        what = "a file, not a folder to write runs into" if probe.is_file() else "not a folder"
        raise UsageError(f"{where} {out}: {named} is {what}")
    if not os.access(probe, os.W_OK | os.X_OK):
        named = "the folder" if probe == out else "the current folder" if probe == Path(".") else str(probe)
        raise UsageError(f"{where} {out}: {named} is not writable")


def check_run_options(
    file_cfg: RunConfig,
    *,
    profile: str | None = None,
    device: str | None = None,
    seed: int | None = None,
    threads: int | None = None,
    out: str | None = None,
    writes: bool = True,
) -> None:
    """Check the run options given on the command line and, when the command writes a run,
    the folder it writes into (``--out``, else the config file's ``out``, else ``reports``).
    Values from the config file were checked when it was read. Raises UsageError."""
    check_not_empty(profile, "--profile", "profile")
    check_not_empty(device, "--device", "device")
    if seed is not None:
        check_seed(seed, "--seed")
    if threads is not None:
        check_threads(threads, "--threads")
    if not writes:
        return
    check_not_empty(out, "--out", "out")
    if out is not None:
        check_out_dir(Path(out), "--out")
    elif file_cfg.out is not None:
        check_out_dir(Path(file_cfg.out), f"{file_cfg.where('out')}: out")
    else:
        check_out_dir(Path(DEFAULT_OUT), "the default output folder")


def check_profile_known(profile: str, labs: list[Lab], where: str) -> None:
    """A profile no selected lab has is the user's error, not the first lab's: name it with
    the profiles the labs have (a profile only some labs lack is named per lab later)."""
    known = list(dict.fromkeys(name for lab in labs for name in profile_names(lab)))
    if labs and profile not in known:
        raise UsageError(
            f"{where}: unknown profile {short_repr(profile)}, which no selected lab has"
            f"{did_you_mean(profile, known)}; known profiles: {', '.join(known)}"
        )


def check_set_labs(sets: dict[str, dict[str, Any]], selected: list[str]) -> None:
    """Refuse ``--set LAB.KEY=...`` for a lab this run does not select (it would do nothing)."""
    for lab, values in sets.items():
        if lab not in selected:
            key = next(iter(values), "")
            raise UsageError(
                f"--set {one_line(f'{lab}.{key}', 60)}: lab {lab!r} is not selected in this run "
                f"(selected: {', '.join(selected)}); name it on the command line or drop the --set"
            )


# --------------------------------------------------------------------------- run settings


@dataclass
class RunSettings:
    """Everything that decides a run, resolved from the command line and config file."""

    labs: list[Lab]
    configs: dict[str, Any]
    profile: str = "quick"
    device: str = "cpu"
    device_requested: str = "auto"
    #: The seeds: one for a plain run, several for a sweep (``--seeds``), each lab once per
    #: seed. The single source of the run's seed (:attr:`seed` is the first).
    seeds: list[int] = field(default_factory=lambda: [0])
    deterministic: bool = False
    threads: int | None = None
    out: Path = Path("reports")
    force: bool = False
    report: dict[str, str] = field(default_factory=dict)
    config_file: str = ""
    #: ``process``: each lab in a fresh worker process; ``none``: in this process.
    isolation: str = "process"
    #: Seconds a lab may run in its worker before it is stopped (``None``: no limit).
    lab_timeout: float | None = None
    #: ``--plugins-dir`` folders, which a worker needs to find its lab again.
    plugins_dirs: list[str] = field(default_factory=list)
    #: ``--executor``: where lab jobs run (``local``, ``slurm``, or a plugin's).
    executor: str = "local"
    #: ``--jobs``: lab jobs at a time (``None``: ``auto``, what the cores and GPUs allow).
    jobs: int | None = 1
    #: ``--executor-option KEY=VALUE`` over ``executor_options:`` of the config file.
    executor_options: dict[str, Any] = field(default_factory=dict)
    #: ``--detach``: submit the jobs and return.
    detach: bool = False

    @property
    def seed(self) -> int:
        """The run's seed: the first of :attr:`seeds` (the only one, unless a sweep)."""
        return self.seeds[0]

    @property
    def sweep(self) -> bool:
        """Whether each lab runs once per seed of several (``--seeds``)."""
        return len(self.seeds) > 1

    def resolved_config(self) -> dict[str, Any]:
        """The settings in the config file's shape, with every lab's resolved config."""
        return {
            "profile": self.profile,
            "seed": self.seed,
            "device": self.device_requested,
            "deterministic": self.deterministic,
            "threads": self.threads,
            "report": dict(self.report),
            "labs": {name: config_as_dict(cfg) for name, cfg in self.configs.items()},
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "device": self.device,
            "device_requested": self.device_requested,
            "seed": self.seed,
            "deterministic": self.deterministic,
            "threads": self.threads,
            "config_file": self.config_file,
            "report": dict(self.report),
            "labs": [lab.name for lab in self.labs],
            "isolation": self.isolation,
            "lab_timeout": self.lab_timeout,
            "executor": self.executor,
            "jobs": self.jobs,
            "executor_options": dict(self.executor_options),
            "seeds": list(self.seeds) if self.sweep else None,
            "detach": self.detach,
        }
