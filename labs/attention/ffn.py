"""Exercise 3: the position-wise feed-forward network, written three ways over one set of weights.

``FFN(x) = max(0, x W_1 + b_1) W_2 + b_2`` applied to every position ``x`` (a row of the
``T x D`` sequence) independently:

- :class:`LinearFFN`: two ``nn.Linear`` layers (they act on the last axis, so on each position);
- :class:`ConvFFN`: two ``nn.Conv1d(kernel_size=1)`` layers on ``(B, D, T)``, sharing the
  Linear layers' parameters (a kernel of width one sees one position at a time);
- :func:`ffn_vmap`: the Linear module as a pure function of its parameters
  (``torch.func.functional_call``) on one position, mapped over batch and time with ``vmap``.

:func:`ffn_inplace` and :func:`inplace_ops` show what ``torch.func.functionalize`` does.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, functionalize, vmap


def default_d_ff(d_model: int, d_ff: int = 0) -> int:
    """The hidden width: ``d_ff`` when positive, else ``4 * d_model`` (Vaswani et al.)."""
    return d_ff if d_ff > 0 else 4 * d_model


def ffn_reference(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
    """The formula itself, ``max(0, x W_1 + b_1) W_2 + b_2``, with ``W_1`` of shape
    ``(D, d_ff)`` and ``W_2`` of shape ``(d_ff, D)`` (the transposes of nn.Linear's weights)."""
    return torch.clamp(x @ w1 + b1, min=0) @ w2 + b2


class LinearFFN(nn.Module):
    """The position-wise FFN with ``nn.Linear``; input and output ``(..., T, D)``."""

    def __init__(self, d_model: int, d_ff: int = 0):
        super().__init__()
        self.d_model, self.d_ff = d_model, default_d_ff(d_model, d_ff)
        self.fc1 = nn.Linear(d_model, self.d_ff)
        self.fc2 = nn.Linear(self.d_ff, d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


class ConvFFN(nn.Module):
    """The same FFN with ``nn.Conv1d(kernel_size=1)``; input and output ``(B, T, D)``.

    Built from a :class:`LinearFFN`, its parameters are views of the Linear ones (the same
    storage): one set of weights, two layouts (``(out, in)`` vs ``(out, in, 1)``).
    """

    def __init__(self, linear: LinearFFN):
        super().__init__()
        d, h = linear.d_model, linear.d_ff
        self.conv1 = nn.Conv1d(d, h, kernel_size=1)
        self.conv2 = nn.Conv1d(h, d, kernel_size=1)
        self.conv1.weight = nn.Parameter(linear.fc1.weight.detach().unsqueeze(-1))
        self.conv1.bias = nn.Parameter(linear.fc1.bias.detach())
        self.conv2.weight = nn.Parameter(linear.fc2.weight.detach().unsqueeze(-1))
        self.conv2.bias = nn.Parameter(linear.fc2.bias.detach())

    def forward(self, x: Tensor) -> Tensor:
        # Conv1d wants channels (features) before length (time).
        y = self.conv2(torch.relu(self.conv1(x.transpose(1, 2))))
        return y.transpose(1, 2)


def ffn_params(linear: LinearFFN) -> dict[str, Tensor]:
    """The parameters of ``linear`` by name, as ``functional_call`` takes them (not copies)."""
    return dict(linear.named_parameters())


def ffn_position(module: LinearFFN, params: dict[str, Tensor], x: Tensor) -> Tensor:
    """The FFN on one position ``x`` of shape ``(D,)``, as a pure function of ``params``."""
    return functional_call(module, params, (x,))


def ffn_vmap(module: LinearFFN, params: dict[str, Tensor], x: Tensor) -> Tensor:
    """The FFN on a ``(B, T, D)`` batch: :func:`ffn_position` mapped over time, then batch.

    ``in_dims=(None, 0)`` shares the parameters across positions: the map is position-wise
    by construction, which is the whole point of the layer.
    """

    def per_position(p: dict[str, Tensor], v: Tensor) -> Tensor:
        return ffn_position(module, p, v)

    over_time = vmap(per_position, in_dims=(None, 0))
    return vmap(over_time, in_dims=(None, 0))(params, x)


def make_vmap_ffn(linear: LinearFFN) -> Callable[[Tensor], Tensor]:
    """``x -> ffn_vmap(linear, its params, x)``, a one-argument form for timing and tests."""
    params = ffn_params(linear)
    return lambda x: ffn_vmap(linear, params, x)


def ffn_inplace(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
    """The FFN written with in-place updates (``add_``, ``relu_``), as memory-saving code often is."""
    h = x @ w1
    h.add_(b1)
    h.relu_()
    out = h @ w2
    out.add_(b2)
    return out


def functionalized_ffn() -> Callable[..., Tensor]:
    """``torch.func.functionalize(ffn_inplace)``: the same function with every mutation
    replaced by its out-of-place equivalent (what compilers and transforms want)."""
    return functionalize(ffn_inplace)


def dispatched_ops(fn: Callable[..., Tensor], *args: Tensor) -> list[str]:
    """The aten ops that reach the kernels when ``fn(*args)`` runs, in order (recorded with a
    ``TorchDispatchMode``, which sits below functionalization in the dispatcher)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Recorder(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.ops: list[str] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append(str(func))
            return func(*args, **(kwargs or {}))

    with Recorder() as recorder:
        fn(*args)
    return recorder.ops


def inplace_ops(fn: Callable[..., Tensor], *args: Tensor) -> list[str]:
    """The in-place aten ops (``aten.add_``, ``aten.relu_``, ...) that ``fn(*args)`` runs, in order."""
    return [
        op
        for op in dispatched_ops(fn, *args)
        if op.split(".")[1].endswith("_") and not op.split(".")[1].startswith("_")
    ]


def linear_weights(linear: LinearFFN) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(W_1, b_1, W_2, b_2)`` in the formula's layout (``W`` = nn.Linear's weight transposed)."""
    return (
        linear.fc1.weight.detach().T,
        linear.fc1.bias.detach(),
        linear.fc2.weight.detach().T,
        linear.fc2.bias.detach(),
    )


def time_forms(
    forms: dict[str, Callable[[Tensor], Tensor]], x: Tensor, repeats: int, warmup: int = 3, rounds: int = 5
) -> dict[str, float]:
    """Median forward time of each form on ``x`` (seconds), measured side by side.

    The forms are timed in interleaved rounds (A B C, A B C, ...) so that a burst of load on
    a shared machine hits all of them alike; each form's result is its median over all runs.
    """
    samples: dict[str, list[float]] = {name: [] for name in forms}
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    with torch.inference_mode():
        for fn in forms.values():
            for _ in range(warmup):
                fn(x)
        per_round = max(1, repeats // rounds)
        for _ in range(rounds):
            for name, fn in forms.items():
                for _ in range(per_round):
                    sync()
                    start = time.perf_counter()
                    fn(x)
                    sync()  # CUDA runs asynchronously: wait for the kernels, not just the launch
                    samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in samples.items()}
