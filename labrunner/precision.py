"""The precision of a lab's forward passes: fp32, or autocast to bf16 or fp16.

A lab that offers the choice declares the typed setting in its config, and ``--precision P``
then sets it for the run (an explicit ``--set LAB.precision=...`` wins):

    from labrunner.precision import Precision

    @dataclass(frozen=True)
    class MyConfig:
        #: Forward passes in fp32, or under autocast to bf16 or fp16 (CUDA only).
        precision: Precision = "fp32"

and wraps each forward pass in ``with ctx.autocast():`` (the config's precision on
``ctx.device``; nothing changes for fp32). Loss and gradients are best computed in fp32:
call ``.float()`` on the logits. fp16 needs a CUDA device and is refused before a run
starts on any other; training in fp16 needs :func:`grad_scaler`.

Importing this module does not import torch.
"""

from __future__ import annotations

import contextlib
import typing
from typing import Any, Literal

#: The type of a ``precision`` setting.
Precision = Literal["fp32", "bf16", "fp16"]
#: Its values, in the order of ``--precision``'s help.
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)


def device_type(device: Any) -> str:
    """``cuda``, ``cpu`` or ``mps`` for a ``torch.device`` or a name such as ``cuda:1``."""
    return getattr(device, "type", None) or str(device).partition(":")[0]


def precision_problem(precision: str, device: Any = None) -> str | None:
    """Why ``precision`` cannot run on ``device`` (a ``torch.device`` or its name), as the
    words that follow "precision" in a message; None when it can. Without a device only the
    value is checked."""
    if precision not in PRECISIONS:
        return f"must be one of {', '.join(PRECISIONS)}, got {precision!r}"
    if precision == "fp16" and device is not None and device_type(device) != "cuda":
        return f"fp16 needs a CUDA device, but this run is on {device}: use bf16 or fp32"
    return None


def check_precision(precision: str, device: Any = None) -> None:
    """Raise ValueError (``precision ...``) when :func:`precision_problem` finds one."""
    problem = precision_problem(precision, device)
    if problem:
        raise ValueError(f"precision {problem}")


def autocast_dtype(precision: str) -> Any:
    """The ``torch.dtype`` the forward pass is autocast to: None for fp32."""
    import torch

    check_precision(precision)
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def autocast(precision: str, device: Any) -> contextlib.AbstractContextManager:
    """The forward pass's context: ``torch.autocast`` to bf16 or fp16 on ``device``, or a
    no-op for fp32. Raises ValueError for a precision the device cannot run."""
    check_precision(precision, device)
    dtype = autocast_dtype(precision)
    if dtype is None:
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type=device_type(device), dtype=dtype)


def grad_scaler(precision: str, device: Any) -> Any:
    """The ``torch.amp.GradScaler`` a training step in fp16 needs (scale the loss, unscale the
    gradients before clipping); disabled, and so a pass-through, for fp32 and bf16."""
    import torch

    check_precision(precision, device)
    return torch.amp.GradScaler(device_type(device), enabled=precision == "fp16")
