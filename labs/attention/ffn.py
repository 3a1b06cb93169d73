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

import time
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, functionalize, vmap

from labrunner.stats import Timing, interleaved

from .rounding import gamma, unit_roundoff


def default_d_ff(d_model: int, d_ff: int = 0) -> int:
    """The hidden width: ``d_ff`` when positive, else ``4 * d_model`` (Vaswani et al.)."""
    return d_ff if d_ff > 0 else 4 * d_model


def ffn_reference(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
    """The formula itself, ``max(0, x W_1 + b_1) W_2 + b_2``, with ``W_1`` of shape
    ``(D, d_ff)`` and ``W_2`` of shape ``(d_ff, D)`` (the transposes of nn.Linear's weights)."""
    return torch.clamp(x @ w1 + b1, min=0) @ w2 + b2


def ffn_rounding_bound(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
    """Entrywise first-order bound on ``|fl(FFN(x)) - FFN(x)|`` in ``x``'s precision, for any
    order of the sums: the hidden layer sums ``D + 1`` terms, the output ``d_ff + 1``, and the
    ReLU passes an error on without growing it. Two forms that compute the same function
    differ by at most twice this; a larger difference is not rounding."""
    u = unit_roundoff(x.dtype)
    x, w1, b1, w2, b2 = (v.detach().to("cpu", torch.float64) for v in (x, w1, b1, w2, b2))
    h = x @ w1 + b1
    dh = gamma(w1.shape[0] + 1, u) * (x.abs() @ w1.abs() + b1.abs())
    r = torch.clamp(h, min=0)
    return gamma(w2.shape[0] + 1, u) * (r @ w2.abs() + b2.abs()) + dh @ w2.abs()


class LinearFFN(nn.Module):
    """The position-wise FFN with ``nn.Linear``; input and output ``(..., T, D)``."""

    def __init__(self, d_model: int, d_ff: int = 0):
        super().__init__()
        self.d_model, self.d_ff = d_model, default_d_ff(d_model, d_ff)
        self.fc1 = nn.Linear(d_model, self.d_ff)
        self.fc2 = nn.Linear(self.d_ff, d_model)

    def forward(self, x: Tensor) -> Tensor:
        # BEGIN SOLUTION the FFN with nn.Linear
        return self.fc2(torch.relu(self.fc1(x)))
        # END SOLUTION


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
        # BEGIN SOLUTION the FFN with nn.Conv1d(kernel_size=1)
        # Conv1d wants channels (features) before length (time).
        y = self.conv2(torch.relu(self.conv1(x.transpose(1, 2))))
        return y.transpose(1, 2)
        # END SOLUTION


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

    # BEGIN SOLUTION the FFN with torch.func.vmap
    def per_position(p: dict[str, Tensor], v: Tensor) -> Tensor:
        return ffn_position(module, p, v)

    over_time = vmap(per_position, in_dims=(None, 0))
    return vmap(over_time, in_dims=(None, 0))(params, x)
    # END SOLUTION


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
    forms: dict[str, Callable[[Tensor], Tensor]],
    x: Tensor,
    repeats: int,
    warmup: int = 3,
    rounds: int | None = None,
) -> dict[str, Timing]:
    """Forward times (seconds) of each form on ``x``, measured side by side with
    :func:`labrunner.stats.interleaved`: call by call in alternation, the order rotating
    from one pass to the next, ``repeats // rounds`` calls per form and round (by default
    one), so that a burst of load on a shared machine hits all forms alike and a stall stays
    in the few rounds it falls in. On CUDA each call waits for its kernels."""
    rounds = rounds or repeats
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)

    def reading(fn: Callable[[Tensor], Tensor]) -> Callable[[], float]:
        def once() -> float:
            sync()
            start = time.perf_counter()
            fn(x)
            sync()  # CUDA runs asynchronously: wait for the kernels, not just the launch
            return time.perf_counter() - start

        return once

    with torch.inference_mode():
        return interleaved(
            {name: reading(fn) for name, fn in forms.items()},
            rounds=rounds,
            per_round=max(1, repeats // rounds),
            warmup=warmup,
        )
