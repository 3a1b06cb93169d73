"""Running labs: resolve everything first, then run each lab in isolation,
write its result atomically, and reuse cached results when nothing changed."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import random
import re
import shutil
import subprocess
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .config import RunConfig, config_as_dict, resolve_lab_config
from .context import LabContext
from .errors import UsageError, did_you_mean
from .lab import Lab
from .progress import Reporter
from .results import LabResult, write_atomic, write_json

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
ENV_CACHE = "LABRUNNER_CACHE_DIR"


def cache_root() -> Path:
    """The persistent cache: ``$LABRUNNER_CACHE_DIR``, else ``$XDG_CACHE_HOME/labrunner``,
    else ``~/.cache/labrunner``."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "labrunner"


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).astimezone().isoformat(timespec="seconds")


# --------------------------------------------------------------------------- devices


def check_device_syntax(spec: str) -> str:
    if not DEVICE_PATTERN.match(spec):
        raise UsageError(f"unknown device {spec!r}; expected auto, cpu, cuda, cuda:N or mps")
    return spec


def resolve_device(spec: str) -> str:
    """Turn ``auto|cpu|cuda|cuda:N|mps`` into an available device name, or raise."""
    check_device_syntax(spec)
    import torch

    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if spec == "auto":
        if torch.cuda.is_available():
            return "cuda:0"
        return "mps" if has_mps else "cpu"
    if spec == "cpu":
        return "cpu"
    if spec == "mps":
        if not has_mps:
            raise UsageError("device 'mps' is not available on this machine (no Apple GPU)")
        return "mps"
    if not torch.cuda.is_available():
        built = "with" if torch.version.cuda else "without"
        raise UsageError(
            f"device {spec!r} is not available: no CUDA GPU found (torch {torch.__version__}, built {built} CUDA)"
        )
    index = int(spec.partition(":")[2] or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise UsageError(f"device {spec!r} is not available: this machine has {count} CUDA device(s)")
    return f"cuda:{index}"


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed random, numpy and torch (CPU and every CUDA device)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


# --------------------------------------------------------------------------- environment


def git_info(cwd: Path | None = None) -> dict[str, Any]:
    """The commit and dirty flag of the repository around ``cwd``, if any."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return {}
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {}


def environment(device: str) -> dict[str, Any]:
    """Versions and hardware, recorded in run.json."""
    import torch
    import torchvision

    gpu = None
    if device.startswith("cuda"):
        gpu = torch.cuda.get_device_name(torch.device(device))
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "labrunner": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
        "git": git_info(),
    }


# --------------------------------------------------------------------------- one lab


def cache_key(lab: Lab, config: dict[str, Any], seed: int, device: str, deterministic: bool) -> str:
    """The key under which a lab's result is cached."""
    blob = json.dumps(
        {
            "lab": lab.name,
            "version": lab.version,
            "config": config,
            "seed": seed,
            "device_type": device.split(":")[0],
            "deterministic": deterministic,
            "labrunner": __version__,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def status_of(result: LabResult) -> str:
    return "passed" if all(c.passed for c in result.checks) else "failed"


def run_lab(
    lab: Lab,
    config: Any,
    *,
    out_dir: Path,
    device: str = "cpu",
    seed: int = 0,
    profile: str = "quick",
    deterministic: bool = False,
    reporter: Reporter | None = None,
    key: str = "",
) -> LabResult:
    """Run one lab into ``out_dir`` and save ``result.json`` there.

    An exception inside the lab becomes status ``error`` with its traceback;
    KeyboardInterrupt is saved as ``interrupted`` and raised again.
    """
    import torch

    reporter = reporter or Reporter()
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    cfg_dict = config_as_dict(config)
    key = key or cache_key(lab, cfg_dict, seed, device, deterministic)
    result = LabResult(
        lab=lab.name,
        title=lab.title,
        version=lab.version,
        profile=profile,
        seed=seed,
        device=device,
        cache_key=key,
        config=cfg_dict,
        started=now_iso(),
    )
    root = cache_root()
    ctx = LabContext(
        result,
        config,
        device=torch.device(device),
        seed=seed,
        profile=profile,
        out_dir=out_dir,
        cache_dir=root / "labs" / lab.name,
        state_dir=root / "state" / lab.name / key,
        reporter=reporter,
        deterministic=deterministic,
    )
    seed_everything(seed, deterministic)
    start = time.perf_counter()
    interrupted = False
    try:
        lab.run(ctx)
        result.status = status_of(result)
    except KeyboardInterrupt:
        interrupted = True
        result.status = "interrupted"
        result.error = {"type": "KeyboardInterrupt", "message": "interrupted by the user", "traceback": ""}
    except Exception as exc:
        result.status = "error"
        result.error = {
            "type": type(exc).__name__,
            "message": str(exc),
            "traceback": traceback.format_exc(),
        }
    result.duration_s = round(time.perf_counter() - start, 3)
    result.finished = now_iso()
    result.save(out_dir / "result.json")
    if interrupted:
        raise KeyboardInterrupt
    return result


# --------------------------------------------------------------------------- a whole run


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
        }


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
) -> RunSettings:
    """Resolve and validate everything a run needs; raises UsageError, writes nothing."""
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
    )


def new_run_dir(out: Path) -> Path:
    """``out/<timestamp>``, made unique, and ``out/latest`` pointing at it."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = out / stamp
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = out / f"{stamp}-{n}"
    run_dir.mkdir(parents=True)
    point_latest(out, run_dir)
    return run_dir


def point_latest(out: Path, run_dir: Path) -> None:
    latest = out / "latest"
    tmp = out / f".latest.{os.getpid()}"
    try:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(run_dir.name, target_is_directory=True)
        os.replace(tmp, latest)
    except OSError:  # no symlinks (some Windows setups): a text file names the run
        write_atomic(out / "LATEST", run_dir.name + "\n")


def find_run_dir(path: Path | None, out: Path = Path("reports")) -> Path:
    """The run folder named, or the latest one under ``out``."""
    if path is None:
        latest = out / "latest"
        if latest.exists():
            path = latest.resolve()
        elif (out / "LATEST").is_file():
            path = out / (out / "LATEST").read_text().strip()
        else:
            raise UsageError(f"no runs found in {out}/ (run 'labrunner run' first, or give RUN_DIR)")
    path = Path(path)
    if not (path / "run.json").is_file():
        raise UsageError(f"{path} is not a run folder (no run.json)")
    return path


def _use_cached(lab: Lab, key: str, out_dir: Path) -> LabResult | None:
    cached = cache_root() / "results" / lab.name / key
    if not (cached / "result.json").is_file():
        return None
    try:
        result = LabResult.load(cached / "result.json")
    except (OSError, ValueError, TypeError):
        return None
    if out_dir.exists():
        shutil.rmtree(out_dir)
    shutil.copytree(cached, out_dir)
    result.cached = True
    result.save(out_dir / "result.json")
    return result


def _store_cached(lab: Lab, key: str, out_dir: Path) -> None:
    target = cache_root() / "results" / lab.name / key
    tmp = target.with_name(f".{key}.{os.getpid()}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(out_dir, tmp)
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)


def execute(settings: RunSettings, plugins: Any, reporter: Reporter) -> tuple[Path, list[LabResult], bool]:
    """Run every selected lab; returns (run folder, results, interrupted)."""
    if settings.threads:
        import torch

        torch.set_num_threads(settings.threads)
    run_dir = new_run_dir(settings.out)
    run_info: dict[str, Any] = {
        "labrunner": __version__,
        "status": "running",
        "started": now_iso(),
        "finished": None,
        "settings": settings.as_dict(),
        "environment": environment(settings.device),
        "labs": [],
        "config": {name: config_as_dict(cfg) for name, cfg in settings.configs.items()},
    }
    write_json(run_dir / "run.json", run_info)
    write_atomic(run_dir / "config.yaml", _config_yaml(settings))
    hook = plugins.pm.hook
    hook.run_started(run_dir=run_dir, labs=[lab.name for lab in settings.labs], settings=settings.as_dict())
    results: list[LabResult] = []
    interrupted = False
    labs_bar = reporter.bar("labs", total=len(settings.labs))
    for lab in settings.labs:
        config = settings.configs[lab.name]
        out_dir = run_dir / lab.name
        key = cache_key(lab, config_as_dict(config), settings.seed, settings.device, settings.deterministic)
        hook.lab_started(lab=lab, config=config, out_dir=out_dir)
        result = None if settings.force else _use_cached(lab, key, out_dir)
        if result is not None:
            reporter.log(f"{lab.name}: reused cached result ({result.status}, key {key}); --force reruns it")
        else:
            reporter.log(f"{lab.name}: running ({settings.profile} profile, {settings.device})")
            bar = reporter.bar(lab.name, total=None)
            try:
                result = run_lab(
                    lab,
                    config,
                    out_dir=out_dir,
                    device=settings.device,
                    seed=settings.seed,
                    profile=settings.profile,
                    deterministic=settings.deterministic,
                    reporter=reporter,
                    key=key,
                )
            except KeyboardInterrupt:
                interrupted = True
                result = LabResult.load(out_dir / "result.json")
            finally:
                bar.close()
            if result.status in ("passed", "failed"):
                _store_cached(lab, key, out_dir)
            if result.status == "error":
                reporter.log(f"{lab.name}: error: {result.error['type']}: {result.error['message']}", "error")
        results.append(result)
        run_info["labs"].append(
            {
                "lab": lab.name,
                "status": result.status,
                "duration_s": result.duration_s,
                "cached": result.cached,
            }
        )
        write_json(run_dir / "run.json", run_info)
        hook.lab_finished(lab=lab, result=result)
        labs_bar.update(1)
        reporter.log(f"{lab.name}: {result.status} in {result.duration_s:.1f} s")
        if interrupted:
            break
    labs_bar.close()
    run_info["status"] = "interrupted" if interrupted else "finished"
    run_info["finished"] = now_iso()
    write_json(run_dir / "run.json", run_info)
    hook.run_finished(run_dir=run_dir, results=results)
    return run_dir, results, interrupted


def _config_yaml(settings: RunSettings) -> str:
    import yaml

    return yaml.safe_dump(settings.resolved_config(), sort_keys=False)


def exit_status(results: list[LabResult], interrupted: bool) -> int:
    if interrupted:
        return 130
    return 0 if all(r.status == "passed" for r in results) else 1


def format_summary(results: list[LabResult]) -> str:
    lines = []
    for r in results:
        checks = r.checks
        passed = sum(c.passed for c in checks)
        cached = " (cached)" if r.cached else ""
        lines.append(
            f"  {r.lab:<16} {r.status:<11} {passed}/{len(checks)} checks  {r.duration_s:7.1f} s{cached}"
        )
    return "\n".join(lines)
