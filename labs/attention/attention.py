"""Exercises 1 and 2: self-attention, its permutation equivariance, and invariant readouts.

The assignment's self-attention of ``X`` in ``R^{T x D_in}``::

    S(X) = softmax((1/alpha) X W_q W_k^T X^T) X W_v      (softmax over each row)

Every function here works on a sequence ``X`` (a ``T x D`` matrix, tokens on the rows), exactly
as in the assignment, so that ``P @ X`` is the permutation of the tokens. Leading batch axes
are allowed (``(..., T, D)``): the checks use them to try many permutations in one call.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

#: ``attention(x, w_q, w_k, w_v, alpha) -> S(x)``; every variant below has this signature so
#: that the checks take the implementation under test as an argument.
AttentionFn = Callable[[Tensor, Tensor, Tensor, Tensor, "float | None"], Tensor]
#: ``readout(S) -> G``: a map from ``S(X)`` (``T x D_v``) to the pooled output.
Readout = Callable[[Tensor], Tensor]
#: ``make_readout(T, D_v, generator) -> readout``: readouts with parameters depend on the shape.
ReadoutFactory = Callable[[int, int, torch.Generator], Readout]
Shape = tuple[int, int, int, int]  # (T, D_in, D_k, D_v)


# --------------------------------------------------------------------------- self-attention


def scale_of(d_k: int, alpha: float | None) -> float:
    """The temperature ``alpha``: the given value, or ``sqrt(D_k)`` (Vaswani et al.) when None."""
    return math.sqrt(d_k) if alpha is None else float(alpha)


def attention_scores(x: Tensor, w_q: Tensor, w_k: Tensor, alpha: float | None = None) -> Tensor:
    """The ``T x T`` logits ``(1/alpha) (X W_q)(X W_k)^T``: row ``i`` scores token ``i``'s query
    against every key."""
    q, k = x @ w_q, x @ w_k
    return (q @ k.transpose(-2, -1)) / scale_of(w_k.shape[-1], alpha)


def attention_matrix(x: Tensor, w_q: Tensor, w_k: Tensor, alpha: float | None = None) -> Tensor:
    """The ``T x T`` attention weights ``softmax(scores)``, each row a probability vector."""
    return torch.softmax(attention_scores(x, w_q, w_k, alpha), dim=-1)


def self_attention(x: Tensor, w_q: Tensor, w_k: Tensor, w_v: Tensor, alpha: float | None = None) -> Tensor:
    """``S(X)``: the ``T x D_v`` output of single-head self-attention, as the assignment defines it."""
    return attention_matrix(x, w_q, w_k, alpha) @ (x @ w_v)


# --------------------------------------------------------------------------- deliberate mistakes


def attention_softmax_over_columns(
    x: Tensor, w_q: Tensor, w_k: Tensor, w_v: Tensor, alpha: float | None = None
) -> Tensor:
    """A classic bug: the softmax normalises each *column* (``dim=-2``) instead of each row.

    It is still permutation equivariant (normalising columns commutes with permuting rows and
    columns together), so only a row-sum check catches it; see :func:`row_sum_error`.
    """
    return torch.softmax(attention_scores(x, w_q, w_k, alpha), dim=-2) @ (x @ w_v)


def attention_transpose_by_reshape(
    x: Tensor, w_q: Tensor, w_k: Tensor, w_v: Tensor, alpha: float | None = None
) -> Tensor:
    """A classic bug: ``K^T`` written as ``K.reshape(D_k, T)``, which keeps the memory order and
    so mixes tokens with features; the function no longer treats tokens as a set."""
    q, k = x @ w_q, x @ w_k
    k_t = k.reshape(*k.shape[:-2], k.shape[-1], k.shape[-2])  # should be k.transpose(-2, -1)
    scores = q @ k_t / scale_of(w_k.shape[-1], alpha)
    return torch.softmax(scores, dim=-1) @ (x @ w_v)


def attention_causal(x: Tensor, w_q: Tensor, w_k: Tensor, w_v: Tensor, alpha: float | None = None) -> Tensor:
    """Decoder (causal) attention: token ``i`` sees only tokens ``j <= i``. Correct in a language
    model, but the mask is tied to positions, so it is not permutation equivariant."""
    scores = attention_scores(x, w_q, w_k, alpha)
    t = scores.shape[-1]
    future = torch.ones(t, t, dtype=torch.bool, device=scores.device).triu(1)
    return torch.softmax(scores.masked_fill(future, -math.inf), dim=-1) @ (x @ w_v)


# --------------------------------------------------------------------------- positional encodings


def sinusoidal_positional_encoding(t: int, d: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """The ``T x D`` sinusoidal encoding of Vaswani et al. (2017):
    ``E[p, 2i] = sin(p / 10000^(2i/D))``, ``E[p, 2i+1] = cos(p / 10000^(2i/D))``."""
    pos = torch.arange(t, dtype=torch.float64).unsqueeze(1)
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, d, 2, dtype=torch.float64) / d)
    enc = torch.zeros(t, d, dtype=torch.float64)
    enc[:, 0::2] = torch.sin(pos * freq)
    enc[:, 1::2] = torch.cos(pos * freq)[:, : d // 2]
    return enc.to(dtype)


def learned_positional_encoding(
    t: int, d: int, generator: torch.Generator, dtype: torch.dtype = torch.float64
) -> Tensor:
    """A learned ``T x D`` position table (as in BERT/GPT) at its initialisation, ``N(0, 1)``
    entries: training would change the values, not the fact that row ``p`` belongs to position ``p``."""
    return torch.randn(t, d, generator=generator, dtype=torch.float64).to(dtype)


def with_positional_encoding(
    attention: AttentionFn, encoding: Literal["sinusoidal", "learned"]
) -> AttentionFn:
    """``X -> S(X + E)``: ``attention`` applied after adding a position table ``E`` to the tokens.

    The learned table is drawn from a generator seeded by its shape, so the same table is
    used for ``X`` and for ``PX``, as a trained model would.
    """

    def encoded(x: Tensor, w_q: Tensor, w_k: Tensor, w_v: Tensor, alpha: float | None = None) -> Tensor:
        t, d = x.shape[-2:]
        if encoding == "sinusoidal":
            enc = sinusoidal_positional_encoding(t, d, x.dtype)
        else:
            enc = learned_positional_encoding(t, d, torch.Generator().manual_seed(1000 * t + d), x.dtype)
        return attention(x + enc.to(x.device), w_q, w_k, w_v, alpha)

    encoded.__name__ = f"{getattr(attention, '__name__', 'attention')}_with_{encoding}_encoding"
    return encoded


# --------------------------------------------------------------------------- readouts


def invariant_pool(s: Tensor, reduction: Literal["sum", "mean"] = "sum") -> Tensor:
    """``G = w^T S`` with ``w = 1`` (``sum``) or ``w = 1/T`` (``mean``): one ``D_v`` vector,
    the column sums (or means) of ``S``, i.e. a reduction over the token axis."""
    if reduction == "sum":
        return s.sum(dim=-2)
    if reduction == "mean":
        return s.mean(dim=-2)
    raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")


def row_sums(s: Tensor) -> Tensor:
    """``S 1``: one number per token (a reduction over the feature axis); equivariant, not invariant."""
    return s.sum(dim=-1)


def flatten_linear_readout(t: int, d_v: int, generator: torch.Generator, out_features: int = 4) -> Readout:
    """``S -> W vec(S)``, a linear layer on the flattened ``T x D_v`` matrix (random ``W``):
    each weight is tied to a position, so the readout is not permutation invariant."""
    weight = torch.randn(out_features, t * d_v, generator=generator, dtype=torch.float64) / math.sqrt(t * d_v)

    def readout(s: Tensor) -> Tensor:
        return s.flatten(-2) @ weight.to(s).T

    return readout


# --------------------------------------------------------------------------- random cases


def permutation_matrix(perm: Tensor, dtype: torch.dtype = torch.float64) -> Tensor:
    """The ``T x T`` matrix ``P`` with ``(P X)_i = X_{perm[i]}``, i.e. ``P = I[perm]``."""
    return torch.eye(len(perm), dtype=dtype)[perm]


@dataclass
class Case:
    """One random draw: a sequence ``x``, attention weights, and a stack ``p`` of permutation
    matrices (``n x T x T``), each a case of the check."""

    shape: Shape
    x: Tensor
    w_q: Tensor
    w_k: Tensor
    w_v: Tensor
    p: Tensor
    generator: torch.Generator


def random_cases(
    shapes: tuple[Shape, ...], draws: int, permutations: int, dtype: torch.dtype, seed: int
) -> Iterator[Case]:
    """For each shape, ``draws`` random (X, W_q, W_k, W_v), each with ``permutations`` random P
    (stacked into one tensor, so that a check makes one batched call, not one per permutation).

    ``X`` has ``N(0, 1)`` entries and the weights ``N(0, 1/D_in)``, so the scores are of order
    one and the softmax is neither uniform nor one-hot. The values are drawn in float64 and
    then cast, so float32 and float64 see the same inputs.
    """
    for index, (t, d_in, d_k, d_v) in enumerate(shapes):
        for draw in range(draws):
            gen = torch.Generator().manual_seed(seed * 1_000_003 + index * 1009 + draw)
            std = 1.0 / math.sqrt(d_in)

            def rand(*size: int, scale: float = 1.0, gen: torch.Generator = gen) -> Tensor:
                return (scale * torch.randn(*size, generator=gen, dtype=torch.float64)).to(dtype)

            x, w_q, w_k, w_v = (
                rand(t, d_in),
                rand(d_in, d_k, scale=std),
                rand(d_in, d_k, scale=std),
                rand(d_in, d_v, scale=std),
            )
            perms = [torch.randperm(t, generator=gen) for _ in range(permutations)]
            p = torch.stack([permutation_matrix(perm, dtype) for perm in perms])
            yield Case((t, d_in, d_k, d_v), x, w_q, w_k, w_v, p, gen)


# --------------------------------------------------------------------------- the checks


def equivariance_error(attention: AttentionFn, case: Case, alpha: float | None = None) -> float:
    """``max |P S(X) - S(P X)|`` over the case's permutations (0 for an equivariant ``attention``,
    up to rounding)."""
    s = attention(case.x, case.w_q, case.w_k, case.w_v, alpha)
    s_perm = attention(case.p @ case.x, case.w_q, case.w_k, case.w_v, alpha)
    return float((case.p @ s - s_perm).abs().max())


def invariance_error(
    readout: Readout, attention: AttentionFn, case: Case, alpha: float | None = None
) -> float:
    """``max |G(P X) - G(X)|`` over the case's permutations, with ``G = readout(attention(.))``."""
    g = readout(attention(case.x, case.w_q, case.w_k, case.w_v, alpha))
    g_perm = readout(attention(case.p @ case.x, case.w_q, case.w_k, case.w_v, alpha))
    return float((g_perm - g).abs().max())


def row_sum_error(attention: AttentionFn, case: Case, alpha: float | None = None) -> float:
    """``max |A 1 - 1|``: how far the attention rows of ``attention`` are from summing to one.

    Seen from outside, ``S(X) = A V``; appending a constant feature to ``X`` (ignored by the
    queries and keys, whose weights get a zero row) and letting ``W_v`` pick only that feature
    makes ``V`` a column of ones, so ``S`` returns the row sums ``A 1`` without opening the
    implementation.
    """
    ones = torch.ones(case.x.shape[0], 1, dtype=case.x.dtype)
    x1 = torch.cat([case.x, ones], dim=1)
    pad = torch.zeros(1, case.w_q.shape[1], dtype=case.x.dtype)
    w_q, w_k = torch.cat([case.w_q, pad]), torch.cat([case.w_k, pad])
    w_v = torch.zeros(x1.shape[1], 1, dtype=case.x.dtype)
    w_v[-1, 0] = 1.0  # V = X1 W_v = the constant feature = 1
    rows = attention(x1, w_q, w_k, w_v, alpha)  # D_k is unchanged, so is the default alpha
    return float((rows - 1).abs().max())


@dataclass
class Sweep:
    """The worst error over many cases, and the worst per shape."""

    max_error: float = 0.0
    cases: int = 0
    per_shape: dict[Shape, float] = field(default_factory=dict)

    def add(self, shape: Shape, error: float, cases: int = 1) -> None:
        self.cases += cases
        self.max_error = max(self.max_error, error)
        self.per_shape[shape] = max(self.per_shape.get(shape, 0.0), error)


def sweep(measure: Callable[[Case], float], cases: Iterator[Case] | list[Case]) -> Sweep:
    """Apply ``measure`` to every case and keep the maxima."""
    result = Sweep()
    for case in cases:
        result.add(case.shape, measure(case), len(case.p))
    return result


def equivariance_sweep(
    attention: AttentionFn,
    shapes: tuple[Shape, ...],
    draws: int = 3,
    permutations: int = 10,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
    alpha: float | None = None,
) -> Sweep:
    """The largest ``|P S(X) - S(PX)|`` over random shapes, inputs and permutations."""
    cases = random_cases(shapes, draws, permutations, dtype, seed)
    return sweep(lambda c: equivariance_error(attention, c, alpha), cases)


def invariance_sweep(
    make_readout: ReadoutFactory,
    attention: AttentionFn,
    shapes: tuple[Shape, ...],
    draws: int = 3,
    permutations: int = 10,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
    alpha: float | None = None,
) -> Sweep:
    """The largest ``|G(PX) - G(X)|``, ``G = make_readout(T, D_v)(attention(X))``; a readout
    with parameters gets the same parameters for ``X`` and ``PX``."""
    result = Sweep()
    for case in random_cases(shapes, draws, permutations, dtype, seed):
        readout = make_readout(case.shape[0], case.shape[3], case.generator)
        result.add(case.shape, invariance_error(readout, attention, case, alpha), len(case.p))
    return result


def is_equivariant(
    attention: AttentionFn,
    shapes: tuple[Shape, ...] = ((2, 3, 4, 5), (7, 8, 4, 6), (16, 12, 8, 8)),
    tol: float = 1e-12,
    **kwargs,
) -> bool:
    """The lab's float64 check as a predicate: max ``|P S(X) - S(PX)|`` below ``tol``."""
    return equivariance_sweep(attention, shapes, **kwargs).max_error < tol
