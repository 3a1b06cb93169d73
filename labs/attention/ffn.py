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

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call, functionalize, vmap

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


@dataclass
class Timing:
    """The forward times of one form (seconds): every sample, and the median of each
    interleaved round (the rounds of two forms are paired: they ran under the same load)."""

    samples: list[float]
    rounds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


#: Two-sided level of the sign test that decides a timing verdict.
SIGN_TEST_LEVEL = 0.05


def sign_test_p(k: int, n: int) -> float:
    """Two-sided p-value of the sign test: the chance that, with no difference, at least
    ``k`` of ``n`` paired rounds fall on the same side (either side)."""
    k = max(k, n - k)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k, n + 1)) / 2**n)


def rounds_needed(n: int) -> int | None:
    """The fewest of ``n`` paired rounds that must fall on one side for the sign test to
    decide at :data:`SIGN_TEST_LEVEL` (9 of 10); None when no count of ``n`` can."""
    for k in range(n // 2 + 1, n + 1):
        if sign_test_p(k, n) <= SIGN_TEST_LEVEL:
            return k
    return None


def compare_times(form: Timing, base: Timing) -> str:
    """``"slower"`` or ``"faster"`` when ``form`` is slower (faster) than ``base`` in at
    least :func:`rounds_needed` of the paired rounds (the sign test: a form no different
    from the base gets there with probability under 5 %), else ``"same"``: a gap smaller
    than the round-to-round spread is not a finding. One stalled round on a busy machine
    does not turn the verdict."""
    pairs = list(zip(form.rounds, base.rounds, strict=True))
    needed = rounds_needed(len(pairs))
    slower = sum(f > b for f, b in pairs)
    faster = sum(f < b for f, b in pairs)
    if needed is not None and slower >= needed:
        return "slower"
    if needed is not None and faster >= needed:
        return "faster"
    return "same"


def time_forms(
    forms: dict[str, Callable[[Tensor], Tensor]],
    x: Tensor,
    repeats: int,
    warmup: int = 3,
    rounds: int | None = None,
) -> dict[str, Timing]:
    """Forward times of each form on ``x``, measured side by side.

    The forms are timed in rounds, and within a round call by call in alternation, the
    order rotating from one pass to the next (A B C, B C A, ...), so that a burst of load
    on a shared machine, or a stall of the thread pool after a pause, hits all of them
    alike. Each round runs every form ``repeats // rounds`` times (at least once; by
    default ``rounds = repeats``, one call per form), and its median per form is that
    round's paired value. Short rounds keep a stall to the few rounds it falls in.
    """
    rounds = rounds or repeats
    samples: dict[str, list[float]] = {name: [] for name in forms}
    medians: dict[str, list[float]] = {name: [] for name in forms}
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    with torch.inference_mode():
        for fn in forms.values():
            for _ in range(warmup):
                fn(x)
        per_round = max(1, repeats // rounds)
        names = list(forms)
        passes = 0
        for _ in range(rounds):
            times: dict[str, list[float]] = {name: [] for name in forms}
            for _ in range(per_round):
                shift = passes % len(names)
                passes += 1
                for name in names[shift:] + names[:shift]:
                    fn = forms[name]
                    sync()
                    start = time.perf_counter()
                    fn(x)
                    sync()  # CUDA runs asynchronously: wait for the kernels, not just the launch
                    times[name].append(time.perf_counter() - start)
            for name in forms:
                samples[name] += times[name]
                medians[name].append(statistics.median(times[name]))
    return {name: Timing(samples[name], medians[name]) for name in forms}
