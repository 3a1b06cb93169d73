"""Devices and seeding: which device a run uses, and the seeds set before a lab runs.

``resolve_device`` answers ``auto`` without importing torch where it can tell that no GPU
is present (no NVIDIA driver on Linux), so a run whose labs are all cached stays light.
"""

from __future__ import annotations

import os
import random
import re
import sys
from pathlib import Path

from .errors import UsageError

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
#: Files whose absence on Linux means no CUDA device can be found: the NVIDIA driver, or
#: WSL's GPU bridge.
_GPU_DRIVER_FILES = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/dxg", "/dev/kfd")


def check_device_syntax(spec: str) -> str:
    """``spec`` if it reads as a device name; raise :class:`UsageError` otherwise."""
    if not isinstance(spec, str) or not DEVICE_PATTERN.match(spec):
        raise UsageError(f"unknown device {spec!r}; expected auto, cpu, cuda, cuda:N or mps")
    return spec


def _surely_no_gpu() -> bool:
    """True when no GPU can be used without asking torch (Linux without a GPU driver)."""
    return sys.platform.startswith("linux") and not any(Path(p).exists() for p in _GPU_DRIVER_FILES)


def resolve_device(spec: str) -> str:
    """Turn ``auto|cpu|cuda|cuda:N|mps`` into an available device name, or raise."""
    check_device_syntax(spec)
    if spec == "cpu" or (spec == "auto" and _surely_no_gpu()):
        return "cpu"
    import torch

    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if spec == "auto":
        if torch.cuda.is_available():
            return "cuda:0"
        return "mps" if has_mps else "cpu"
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


def set_threads(threads: int | None) -> None:
    """Set torch's CPU threads (``None`` leaves torch's choice)."""
    if threads:
        import torch

        torch.set_num_threads(threads)
