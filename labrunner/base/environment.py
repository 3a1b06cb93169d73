"""What run.json records about the machine and the software: versions, hardware, git.

Versions come from the installed distributions' metadata, so recording them does not
import torch (a run whose labs are all cached never imports it).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from .version import __version__


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


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cpu_name() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu


def torch_facts(device: str) -> dict[str, Any]:
    """What only torch knows (its threads, the GPU's name); asked where the lab runs."""
    import torch

    gpu = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else None
    return {"torch_threads": torch.get_num_threads(), "gpu": gpu}


def environment(device: str, threads: int | None = None) -> dict[str, Any]:
    """Versions and hardware, recorded in run.json.

    ``torch_threads`` and ``gpu`` are filled from torch only where it is already imported
    or the device is a GPU; otherwise ``torch_threads`` is the ``--threads`` setting (or
    ``None``), and the runner completes it from the first lab that runs.
    """
    env: dict[str, Any] = {
        "labrunner": __version__,
        "python": platform.python_version(),
        "torch": _version("torch"),
        "torchvision": _version("torchvision"),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": threads,
        "gpu": None,
        "git": git_info(),
    }
    if "torch" in sys.modules or device.startswith("cuda"):
        env.update(torch_facts(device))
        if threads:
            env["torch_threads"] = threads
    return env
