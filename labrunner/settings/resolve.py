"""From :class:`~labrunner.settings.options.RunOptions` to a run's
:class:`~labrunner.settings.config.RunSettings`, in small named steps: the lab overrides,
the labs and their configs, the profile, the device, the seeds, the executor, and the
precision and isolation checks. Each option given wins over the config file, which wins
over the defaults. Every step raises UsageError (one line) and writes nothing."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from ..base.devices import check_device_syntax, resolve_device
from ..base.errors import UsageError, did_you_mean
from ..precision import PRECISIONS, precision_problem
from .config import (
    RunConfig,
    RunSettings,
    check_profile_known,
    check_run_options,
    check_set_labs,
    load_run_config,
    parse_seeds,
    parse_set,
)
from .describe import set_example
from .executor_options import BUILTIN_EXECUTORS, check_executor, parse_jobs, slurm_parameters
from .labconfig import resolve_lab_config
from .options import RunOptions

#: ``--isolation``: each lab in a worker process, or in this process.
ISOLATION_MODES = ("process", "none")


def resolve_run(
    plugins: Any,
    options: RunOptions,
    *,
    check_device: bool = True,
    executors: Collection[str] = BUILTIN_EXECUTORS,
) -> RunSettings:
    """The settings of a run: ``options`` over the config file (``options.config``, else
    ``./labrunner.yaml``) over the defaults. ``check_device``: the run will write (its
    device is resolved and the output folder checked); ``executors``: the registered names."""
    file_cfg = load_run_config(Path(options.config) if options.config else None)
    sets, report = lab_overrides(options, plugins)
    if options.precision is not None:
        apply_precision(options.precision, plugins.select(list(options.labs)), sets)
    if options.author:
        report["author"] = options.author
    settings = resolve_settings(
        plugins, options, file_cfg, sets=sets, report=report, check_device=check_device, executors=executors
    )
    if check_device:
        check_precision_on_device(settings)
    return settings


def resolve_settings(
    plugins: Any,
    options: RunOptions,
    file_cfg: RunConfig,
    *,
    sets: dict[str, dict[str, Any]] | None = None,
    report: Mapping[str, str] | None = None,
    check_device: bool = True,
    executors: Collection[str] = BUILTIN_EXECUTORS,
) -> RunSettings:
    """Resolve and check everything a run needs from ``options`` and ``file_cfg`` (``sets``:
    the lab overrides, ``report``: the report overrides, both already parsed)."""
    sets = sets or {}
    check_run_options(
        file_cfg,
        profile=options.profile,
        device=options.device,
        seed=options.seed,
        threads=options.threads,
        out=options.out,
        writes=check_device,
    )
    labs = select_labs(plugins, options.labs, file_cfg, sets)
    profile = resolve_profile(options.profile, file_cfg, labs)
    configs = resolve_configs(labs, profile, file_cfg, sets)
    device_requested, device = resolve_run_device(options.device, file_cfg, check_device)
    seeds = resolve_seeds(options.seed, options.seeds, file_cfg)
    isolation = options.isolation or "process"
    executor, jobs, executor_options = resolve_executor(options, file_cfg, executors, isolation, device)
    check_isolation(isolation, options.lab_timeout, executor, jobs, seeds, options.detach)
    deterministic = options.deterministic if options.deterministic is not None else file_cfg.deterministic
    return RunSettings(
        labs=labs,
        configs=configs,
        profile=profile,
        device=device,
        device_requested=device_requested,
        seeds=seeds,
        deterministic=bool(deterministic),
        threads=options.threads if options.threads is not None else file_cfg.threads,
        out=Path(options.out or file_cfg.out or "reports"),
        force=options.force,
        report={**file_cfg.report, **(report or {})},
        config_file=file_cfg.source,
        isolation=isolation,
        lab_timeout=options.lab_timeout,
        plugins_dirs=[str(Path(p).resolve()) for p in options.plugins_dir],
        executor=executor,
        jobs=jobs,
        executor_options=executor_options,
        detach=options.detach,
    )


# --------------------------------------------------------------------------- the steps


def lab_overrides(
    options: RunOptions, plugins: Any = None
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The lab and report overrides of ``options.settings`` (Python values) and
    ``options.set`` (``--set`` strings, YAML values), the latter winning."""
    labs, report = parse_set(list(options.set), plugins)
    for key, value in _setting_pairs(options.settings, plugins):
        lab, _, name = key.partition(".")
        if not lab or not name or "." in name:
            raise UsageError(
                f"settings: bad key {key!r}: expected LAB.KEY{_example_key(plugins, name or lab)}"
            )
        if lab == "report":
            if isinstance(value, str):
                report.update(parse_set([f"report.{name}={value}"])[1])
            else:
                report[name] = value
        else:
            labs.setdefault(lab, {})[name] = value
    return labs, report


def _setting_pairs(settings: Mapping[str, Any], plugins: Any) -> list[tuple[str, Any]]:
    """``{"LAB.KEY": value}`` or ``{"LAB": {"KEY": value}}`` as (``LAB.KEY``, value) pairs."""
    pairs: list[tuple[str, Any]] = []
    for key, value in settings.items():
        if not isinstance(key, str) or not key:
            raise UsageError(f"settings: keys are 'LAB.KEY' strings, not {key!r}")
        if "." in key:
            pairs.append((key, value))
        elif isinstance(value, Mapping):
            pairs.extend((f"{key}.{name}", v) for name, v in value.items())
        else:
            raise UsageError(
                f"settings: {key!r} needs a lab: 'LAB.KEY' or {{'LAB': {{'KEY': ...}}}}{_example_key(plugins, key)}"
            )
    return pairs


def _example_key(plugins: Any, key: str = "") -> str:
    """``, for example 'LAB.KEY'``: a real setting of an installed lab (one named ``key``
    when there is one)."""
    example = set_example(plugins, key).split("=")[0]
    return f", for example {example!r}" if example else ""


def select_labs(plugins: Any, names: Iterable[str], file_cfg: RunConfig, sets: dict[str, Any]) -> list[Any]:
    """The selected labs; a lab the config file or a ``--set`` names must exist and (for
    ``--set``) be selected."""
    labs = plugins.select(list(names))
    for name in list(file_cfg.labs) + list(sets):
        if name not in plugins.labs:
            where = f"{file_cfg.source}: labs.{name}" if name in file_cfg.labs else f"--set {name}.*"
            raise UsageError(f"{where}: unknown lab {name!r}{did_you_mean(name, plugins.labs)}")
    check_set_labs(sets, [lab.name for lab in labs])
    return labs


def resolve_profile(profile: str | None, file_cfg: RunConfig, labs: list[Any]) -> str:
    """``--profile``, else the config file's, else ``quick``; one a selected lab has."""
    where = "--profile" if profile else f"{file_cfg.where('profile')}: profile"
    profile = profile or file_cfg.profile or "quick"
    check_profile_known(profile, labs, where)
    return profile


def resolve_configs(
    labs: list[Any], profile: str, file_cfg: RunConfig, sets: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Each lab's config: its defaults, the profile, the config file's ``labs.LAB``, then
    the overrides."""
    configs = {}
    for lab in labs:
        layers = []
        if lab.name in file_cfg.labs:
            layers.append((file_cfg.source, file_cfg.labs[lab.name]))
        if lab.name in sets:
            layers.append(("--set", sets[lab.name]))
        configs[lab.name] = resolve_lab_config(lab, profile, layers)
    return configs


def resolve_run_device(device: str | None, file_cfg: RunConfig, check_device: bool) -> tuple[str, str]:
    """(the device asked for, the device used): ``auto`` becomes the best one present, and
    a device that is not there is refused, when the run will run (``check_device``)."""
    requested = device or file_cfg.device or "auto"
    check_device_syntax(requested)
    return requested, resolve_device(requested) if check_device else requested


def resolve_seeds(seed: int | None, seeds: Any, file_cfg: RunConfig) -> list[int]:
    """The run's seeds: ``--seeds`` (or the config file's ``seeds:``), else ``--seed`` (or
    the config file's ``seed:``, else 0) alone. The list is the single source of the seed."""
    seed_list = (
        parse_seeds(list(seeds) if isinstance(seeds, tuple) else seeds)
        if seeds is not None
        else file_cfg.seeds
    )
    if seed_list is not None and seeds is not None and seed is not None:
        raise UsageError("--seed and --seeds: give one seed or a sweep, not both")
    if seed_list is not None:
        return seed_list
    return [seed if seed is not None else (file_cfg.seed if file_cfg.seed is not None else 0)]


def resolve_executor(
    options: RunOptions, file_cfg: RunConfig, executors: Collection[str], isolation: str, device: str
) -> tuple[str, int | None, dict[str, Any]]:
    """(executor, jobs at a time or None for auto, its options): ``--executor`` over the
    config file over ``local``; its options checked before anything runs. ``--jobs`` not
    given: ``auto`` for a CPU run in worker processes here (as many labs at a time as the
    free cores allow), one at a time on a GPU or in this process, every job at once on a
    cluster (its scheduler decides)."""
    executor = options.executor or file_cfg.executor or "local"
    check_executor(executor, executors)
    if options.jobs is not None:
        jobs = parse_jobs(options.jobs)
    elif executor == "local":
        jobs = None if isolation == "process" and device == "cpu" else 1
    else:
        jobs = None
    executor_options = {**file_cfg.executor_options, **options.executor_options}
    if executor == "slurm":
        slurm_parameters(executor_options)  # an unknown or malformed option is refused here
        try:
            import submitit  # noqa: F401
        except ImportError:
            raise UsageError(
                "--executor slurm needs submitit: pip install 'labrunner[slurm]' (or pip install submitit)"
            ) from None
    elif executor_options:
        raise UsageError(
            f"--executor-option {next(iter(executor_options))}: the {executor} executor takes no options"
        )
    return executor, jobs, executor_options


def check_isolation(
    isolation: str,
    lab_timeout: float | None,
    executor: str,
    jobs: int | None,
    seeds: list[int] | None,
    detach: bool,
) -> None:
    """The isolation checks, in one place: a lab in this process (``--isolation none``)
    cannot be timed out, run as a job, in parallel or once per seed; ``--detach`` needs
    jobs that outlive this process."""
    if isolation not in ISOLATION_MODES:
        raise UsageError(f"--isolation must be one of {', '.join(ISOLATION_MODES)}, got {isolation!r}")
    if lab_timeout is not None and not lab_timeout > 0:
        raise UsageError(f"--lab-timeout must be a positive number of seconds, got {lab_timeout}")
    if lab_timeout is not None and isolation == "none":
        raise UsageError("--lab-timeout needs --isolation process (a lab in this process cannot be stopped)")
    if executor != "local" and isolation == "none":
        raise UsageError(f"--executor {executor} runs labs as jobs; it needs --isolation process")
    if (jobs != 1 or (seeds and len(seeds) > 1)) and isolation == "none":
        raise UsageError("--jobs and --seeds run labs in worker processes; they need --isolation process")
    if detach and executor == "local":
        raise UsageError("--detach needs an executor whose jobs outlive this process (--executor slurm)")


def apply_precision(precision: str, labs: Iterable[Any], sets: dict[str, dict[str, Any]]) -> None:
    """``--precision P`` is ``--set LAB.precision=P`` for every selected lab that has the
    setting (an explicit ``--set LAB.precision`` wins); other labs run as they are."""
    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    for lab in labs:
        config_type = getattr(lab, "Config", None)
        if dataclasses.is_dataclass(config_type) and "precision" in {
            f.name for f in dataclasses.fields(config_type)
        }:
            sets.setdefault(lab.name, {}).setdefault("precision", precision)


def check_precision_on_device(settings: RunSettings) -> None:
    """A precision the run's device cannot run (fp16 needs CUDA): refuse it before anything
    runs, naming the lab. A lab's own values of a ``precision`` setting are its business."""
    for name, config in settings.configs.items():
        precision = getattr(config, "precision", None)
        problem = precision_problem(precision, settings.device) if precision in PRECISIONS else None
        if problem:
            raise UsageError(f"{name}.precision {problem}")
