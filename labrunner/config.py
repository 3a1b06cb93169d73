"""Config resolution: lab defaults < profile < config file < ``--set`` overrides.

Everything is validated against the lab's ``Config`` dataclass before any file
is written; a problem is a :class:`UsageError` naming the key and its source.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UsageError, did_you_mean
from .lab import Lab, profile_names

DEFAULT_CONFIG_FILE = "labrunner.yaml"
TOP_LEVEL_KEYS = ("profile", "seed", "device", "deterministic", "threads", "out", "report", "labs")
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
    labs: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = ""


# --------------------------------------------------------------------------- files


def load_yaml_file(path: Path) -> Any:
    """Parse a YAML file safely; errors name the file and line."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"config file not found: {path}") from None
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = exc.problem or exc.context or "invalid YAML"
        raise UsageError(f"malformed YAML in {where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"malformed YAML in {path}: {exc}") from None


def load_run_config(path: Path | None) -> RunConfig:
    """Read ``path`` (or ``./labrunner.yaml`` when it exists) into a :class:`RunConfig`."""
    if path is None:
        default = Path(DEFAULT_CONFIG_FILE)
        if not default.is_file():
            return RunConfig()
        path = default
    data = load_yaml_file(path)
    src = str(path)
    if data is None:
        return RunConfig(source=src)
    if not isinstance(data, dict):
        raise UsageError(f"{src}: the top level must be a mapping, got {type(data).__name__}")
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise UsageError(
                f"{src}: unknown key {key!r}{did_you_mean(str(key), TOP_LEVEL_KEYS)}; "
                f"expected one of {', '.join(TOP_LEVEL_KEYS)}"
            )
    cfg = RunConfig(source=src)
    for key, kind in (
        ("profile", str),
        ("seed", int),
        ("device", str),
        ("deterministic", bool),
        ("out", str),
    ):
        if key in data and data[key] is not None:
            setattr(cfg, key, coerce(data[key], kind, f"{src}: {key}"))
    report = data.get("report") or {}
    if not isinstance(report, dict):
        raise UsageError(f"{src}: report must be a mapping")
    for key, value in report.items():
        if key not in REPORT_KEYS:
            raise UsageError(f"{src}: unknown key 'report.{key}'{did_you_mean(str(key), REPORT_KEYS)}")
        if key == "order":  # the labs' order in the report: a list of lab names
            cfg.report[key] = report_order(value, f"{src}: report.order")  # type: ignore[assignment]
            continue
        cfg.report[key] = coerce(value, str, f"{src}: report.{key}")
    labs = data.get("labs") or {}
    if not isinstance(labs, dict):
        raise UsageError(f"{src}: labs must be a mapping of lab name to settings")
    for name, values in labs.items():
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise UsageError(f"{src}: labs.{name} must be a mapping of settings")
        cfg.labs[str(name)] = dict(values)
    return cfg


def report_order(value: Any, where: str) -> list[str]:
    """``report.order``: lab names, in the order the report shows them."""
    from .lab import NAME_PATTERN

    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and NAME_PATTERN.match(v) for v in value):
        raise UsageError(f"{where}: expected a list of lab names, for example [cnn_receptive, adversarial]")
    return list(value)


def parse_set(items: list[str]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Parse ``--set LAB.KEY=VALUE`` items (values are YAML scalars or lists).

    Returns (lab overrides, report overrides).
    """
    import yaml

    labs: dict[str, dict[str, Any]] = {}
    report: dict[str, str] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        lab, dot, name = key.strip().partition(".")
        if not sep or not dot or not lab or not name or "." in name:
            raise UsageError(f"bad --set {item!r}: expected LAB.KEY=VALUE, for example attention.trials=20")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            raise UsageError(f"bad --set {item!r}: the value is not valid YAML") from None
        if isinstance(value, dict):
            raise UsageError(f"bad --set {item!r}: the value must be a scalar or a list")
        if lab == "report":
            if name not in REPORT_KEYS:
                raise UsageError(
                    f"--set {item!r}: unknown key 'report.{name}'{did_you_mean(name, REPORT_KEYS)}"
                )
            report[name] = report_order(value, f"--set {item!r}") if name == "order" else str(value)  # type: ignore[assignment]
        else:
            labs.setdefault(lab, {})[name] = value
    return labs, report


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


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) < 40 else text[:37] + '...'}"


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
        raise UsageError(f"{where}: expected one of {_type_name(tp)}, got {_describe(value)}")
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
        raise UsageError(f"{where}: expected {_type_name(tp)}, got {_describe(value)}")
    if origin in (list, tuple, collections.abc.Sequence):
        if not isinstance(value, (list, tuple)):
            raise UsageError(f"{where}: expected {_type_name(tp)}, got {_describe(value)}")
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
            raise UsageError(f"{where}: expected a mapping, got {_describe(value)}")
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
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise UsageError(f"{where}: expected {_type_name(tp)}, got {_describe(value)}")


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
    ``(source, values)`` layer in order (config file, ``--set``)."""
    if profile not in profile_names(lab):
        raise UsageError(
            f"unknown profile {profile!r} for lab {lab.name!r}{did_you_mean(profile, profile_names(lab))}; "
            f"expected one of {', '.join(profile_names(lab))}"
        )
    types_ = config_types(lab.Config)
    values: dict[str, Any] = {}
    for source, layer in [
        (f"profile {profile!r} of lab {lab.name!r}", lab.profiles.get(profile, {})),
        *layers,
    ]:
        for key, value in layer.items():
            if key not in types_:
                raise UsageError(f"{source}: unknown key '{lab.name}.{key}'{did_you_mean(str(key), types_)}")
            values[key] = coerce(value, types_[key], f"{source}: {lab.name}.{key}")
    try:
        return lab.Config(**values)
    except (TypeError, ValueError) as exc:  # a Config's own __post_init__ validation
        raise UsageError(f"invalid config for lab {lab.name!r}: {exc}") from None


def config_as_dict(config: Any) -> dict[str, Any]:
    """A config instance as a plain, JSON-ready dict."""
    from .results import jsonable

    return jsonable(dataclasses.asdict(config))


# --------------------------------------------------------------------------- run settings


@dataclass
class RunSettings:
    """Everything that decides a run, resolved from the command line and config file."""

    labs: list[Lab]
    configs: dict[str, Any]
    profile: str = "quick"
    device: str = "cpu"
    device_requested: str = "auto"
    seed: int = 0
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
        }


ISOLATION_MODES = ("process", "none")


def resolve_settings(
    plugins: Any,
    lab_names: list[str],
    file_cfg: RunConfig,
    *,
    sets: dict[str, dict[str, Any]] | None = None,
    report: dict[str, str] | None = None,
    profile: str | None = None,
    device: str | None = None,
    seed: int | None = None,
    deterministic: bool | None = None,
    threads: int | None = None,
    out: str | None = None,
    force: bool = False,
    check_device: bool = True,
    isolation: str = "process",
    lab_timeout: float | None = None,
    plugins_dirs: list[str] | None = None,
) -> RunSettings:
    """Resolve and validate everything a run needs; raises UsageError, writes nothing."""
    from .devices import check_device_syntax, resolve_device

    sets = sets or {}
    labs = plugins.select(lab_names)
    for name in list(file_cfg.labs) + list(sets):
        if name not in plugins.labs:
            where = f"{file_cfg.source}: labs.{name}" if name in file_cfg.labs else f"--set {name}.*"
            raise UsageError(f"{where}: unknown lab {name!r}{did_you_mean(name, plugins.labs)}")
    profile = profile or file_cfg.profile or "quick"
    configs = {}
    for lab in labs:
        layers = []
        if lab.name in file_cfg.labs:
            layers.append((file_cfg.source, file_cfg.labs[lab.name]))
        if lab.name in sets:
            layers.append(("--set", sets[lab.name]))
        configs[lab.name] = resolve_lab_config(lab, profile, layers)
    device_requested = device or file_cfg.device or "auto"
    check_device_syntax(device_requested)
    resolved_device = resolve_device(device_requested) if check_device else device_requested
    seed = seed if seed is not None else (file_cfg.seed if file_cfg.seed is not None else 0)
    if seed < 0:
        raise UsageError(f"--seed must be >= 0, got {seed}")
    threads = threads if threads is not None else file_cfg.threads
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be >= 1, got {threads}")
    if isolation not in ISOLATION_MODES:
        raise UsageError(f"--isolation must be one of {', '.join(ISOLATION_MODES)}, got {isolation!r}")
    if lab_timeout is not None and not lab_timeout > 0:
        raise UsageError(f"--lab-timeout must be a positive number of seconds, got {lab_timeout}")
    if lab_timeout is not None and isolation == "none":
        raise UsageError("--lab-timeout needs --isolation process (a lab in this process cannot be stopped)")
    return RunSettings(
        labs=labs,
        configs=configs,
        profile=profile,
        device=resolved_device,
        device_requested=device_requested,
        seed=seed,
        deterministic=bool(deterministic if deterministic is not None else file_cfg.deterministic),
        threads=threads,
        out=Path(out or file_cfg.out or "reports"),
        force=force,
        report={**file_cfg.report, **(report or {})},
        config_file=file_cfg.source,
        isolation=isolation,
        lab_timeout=lab_timeout,
        plugins_dirs=[str(Path(p).resolve()) for p in plugins_dirs or []],
    )
