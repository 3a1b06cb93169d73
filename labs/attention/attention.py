"""Exercises 1 and 2: self-attention, its permutation equivariance, and invariant readouts.

The assignment's self-attention of ``X`` in ``R^{T x D_in}``::

    S(X) = softmax((1/alpha) X W_q W_k^T X^T) X W_v      (softmax over each row)

Every function here works on a sequence ``X`` (a ``T x D`` matrix, tokens on the rows), exactly
as in the assignment, so that ``P @ X`` is the permutation of the tokens. Leading batch axes
are allowed (``(..., T, D)``): the checks use them to try many permutations in one call.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from .rounding import gamma, ratio_to_bound, softmax_rounding_bound, unit_roundoff

#: ``attention(x, w_q, w_k, w_v, alpha) -> S(x)``; every variant below has this signature so
#: that the checks take the implementation under test as an argument.
AttentionFn = Callable[[Tensor, Tensor, Tensor, Tensor, "float | None"], Tensor]
#: ``readout(S) -> G``: a map from ``S(X)`` (``T x D_v``) to the pooled output.
Readout = Callable[[Tensor], Tensor]
#: ``make_readout(T, D_v, generator) -> readout``: readouts with parameters depend on the shape.
ReadoutFactory = Callable[[int, int, torch.Generator], Readout]
Shape = tuple[int, int, int, int]  # (T, D_in, D_k, D_v)


# --------------------------------------------------------------------------- rounding


def attention_rounding_bound(
    x: Tensor,
    w_q: Tensor,
    w_k: Tensor,
    w_v: Tensor,
    alpha: float | None = None,
    dtype: torch.dtype | None = None,
    *,
    dx: Tensor | float = 0.0,
    softmax_dim: int = -1,
    causal: bool = False,
    keys_by_reshape: bool = False,
    weights: bool = False,
) -> Tensor:
    """Entrywise first-order bound on ``|fl(S(X)) - S(X)|``: how far self-attention computed in
    ``dtype`` (default: ``x``'s) can be from the exact ``S(X)`` of the same inputs, by rounding alone.

    The standard error analysis of each step (Higham, *Accuracy and Stability of Numerical
    Algorithms*, ch. 3): ``Q = X W_q``, ``K``, ``V`` are dot products of ``D_in`` terms, the scores
    of ``D_k`` terms, the softmax as in :func:`softmax_rounding_bound`, the output ``A V`` of ``T``
    terms. ``dx`` is an error already in the input (an addition before attention). The flags
    follow the deliberate mistakes (softmax over columns, a causal mask, ``K.reshape``), so that
    each variant is compared with its own rounding. Two evaluations that agree mathematically
    differ by at most the sum of their bounds; a larger difference is not rounding. With
    ``weights``, the bound is on the attention matrix ``softmax(A)`` instead of ``S``.
    """
    u = unit_roundoff(dtype or x.dtype)
    x, w_q, w_k, w_v = (v.detach().to("cpu", torch.float64) for v in (x, w_q, w_k, w_v))
    dx = torch.as_tensor(dx, dtype=torch.float64)
    d_in, d_k = w_q.shape[-2:]
    t = x.shape[-2]
    ax = x.abs()

    def product(w: Tensor) -> tuple[Tensor, Tensor]:
        return x @ w, gamma(d_in, u) * (ax @ w.abs()) + dx.expand_as(x) @ w.abs()

    (q, dq), (k, dk), (v, dv) = product(w_q), product(w_k), product(w_v)
    k_t, dk_t = k.transpose(-2, -1), dk.transpose(-2, -1)
    if keys_by_reshape:
        k_t, dk_t = k.reshape(*k.shape[:-2], d_k, t), dk.reshape(*dk.shape[:-2], d_k, t)
    scale = scale_of(d_k, alpha)
    a = q @ k_t / scale
    da = (gamma(d_k, u) * (q.abs() @ k_t.abs()) + dq @ k_t.abs() + q.abs() @ dk_t) / scale + u * a.abs()
    if causal:
        a = a.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), -math.inf)
    p = torch.softmax(a, dim=softmax_dim)
    dp = softmax_rounding_bound(a, da, u, dim=softmax_dim)
    if weights:
        return dp
    return gamma(t, u) * (p @ v.abs()) + dp @ v.abs() + p @ dv


def rounding_bound_of(attention: AttentionFn) -> Callable[..., Tensor]:
    """The rounding bound that fits ``attention``: its own ``rounding_bound`` attribute (set on
    the variants below), else :func:`attention_rounding_bound`."""
    return getattr(attention, "rounding_bound", attention_rounding_bound)


# --------------------------------------------------------------------------- self-attention


def scale_of(d_k: int, alpha: float | None) -> float:
    """The temperature ``alpha``: the given value, or ``sqrt(D_k)`` (Vaswani et al.) when None."""
    return math.sqrt(d_k) if alpha is None else float(alpha)


def attention_scores(x: Tensor, w_q: Tensor, w_k: Tensor, alpha: float | None = None) -> Tensor:
    """The ``T x T`` logits ``(1/alpha) (X W_q)(X W_k)^T``: row ``i`` scores token ``i``'s query
    against every key."""
    # BEGIN SOLUTION the attention scores
    q, k = x @ w_q, x @ w_k
    return (q @ k.transpose(-2, -1)) / scale_of(w_k.shape[-1], alpha)
    # END SOLUTION


def attention_matrix(x: Tensor, w_q: Tensor, w_k: Tensor, alpha: float | None = None) -> Tensor:
    """The ``T x T`` attention weights ``softmax(scores)``, each row a probability vector."""
    return torch.softmax(attention_scores(x, w_q, w_k, alpha), dim=-1)


def self_attention(x: Tensor, w_q: Tensor, w_k: Tensor, w_v: Tensor, alpha: float | None = None) -> Tensor:
    """``S(X)``: the ``T x D_v`` output of single-head self-attention, as the assignment defines it."""
    # BEGIN SOLUTION self-attention
    return attention_matrix(x, w_q, w_k, alpha) @ (x @ w_v)
    # END SOLUTION


# --------------------------------------------------------------------------- deliberate mistakes


def attention_softmax_over_columns(
    x: Tensor, w_q: Tensor, w_k: Tensor, w_v: Tensor, alpha: float | None = None
) -> Tensor:
    """A classic bug: the softmax normalises each *column* (``dim=-2``) instead of each row.

    It is still permutation equivariant (normalising columns commutes with permuting rows and
    columns together), so only a row-sum check catches it; see :func:`row_sum_error`.
    """
    return torch.softmax(attention_scores(x, w_q, w_k, alpha), dim=-2) @ (x @ w_v)


attention_softmax_over_columns.rounding_bound = functools.partial(attention_rounding_bound, softmax_dim=-2)


def attention_transpose_by_reshape(
    x: Tensor, w_q: Tensor, w_k: Tensor, w_v: Tensor, alpha: float | None = None
) -> Tensor:
    """A classic bug: ``K^T`` written as ``K.reshape(D_k, T)``, which keeps the memory order and
    so mixes tokens with features; the function no longer treats tokens as a set."""
    q, k = x @ w_q, x @ w_k
    k_t = k.reshape(*k.shape[:-2], k.shape[-1], k.shape[-2])  # should be k.transpose(-2, -1)
    scores = q @ k_t / scale_of(w_k.shape[-1], alpha)
    return torch.softmax(scores, dim=-1) @ (x @ w_v)


attention_transpose_by_reshape.rounding_bound = functools.partial(
    attention_rounding_bound, keys_by_reshape=True
)


def attention_causal(x: Tensor, w_q: Tensor, w_k: Tensor, w_v: Tensor, alpha: float | None = None) -> Tensor:
    """Decoder (causal) attention: token ``i`` sees only tokens ``j <= i``. Correct in a language
    model, but the mask is tied to positions, so it is not permutation equivariant."""
    scores = attention_scores(x, w_q, w_k, alpha)
    t = scores.shape[-1]
    future = torch.ones(t, t, dtype=torch.bool, device=scores.device).triu(1)
    return torch.softmax(scores.masked_fill(future, -math.inf), dim=-1) @ (x @ w_v)


attention_causal.rounding_bound = functools.partial(attention_rounding_bound, causal=True)


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

    def table(x: Tensor) -> Tensor:
        t, d = x.shape[-2:]
        if encoding == "sinusoidal":
            return sinusoidal_positional_encoding(t, d, x.dtype).to(x.device)
        return learned_positional_encoding(t, d, torch.Generator().manual_seed(1000 * t + d), x.dtype).to(
            x.device
        )

    def encoded(x: Tensor, w_q: Tensor, w_k: Tensor, w_v: Tensor, alpha: float | None = None) -> Tensor:
        return attention(x + table(x), w_q, w_k, w_v, alpha)

    def bound(x: Tensor, w_q: Tensor, w_k: Tensor, w_v: Tensor, alpha=None, dtype=None, **kw) -> Tensor:
        # the sum X + E rounds once before attention sees it
        x_e = x + table(x)
        dx = unit_roundoff(dtype or x.dtype) * x_e.abs().to(torch.float64)
        return rounding_bound_of(attention)(x_e, w_q, w_k, w_v, alpha, dtype or x.dtype, dx=dx, **kw)

    encoded.__name__ = f"{getattr(attention, '__name__', 'attention')}_with_{encoding}_encoding"
    encoded.rounding_bound = bound
    return encoded


# --------------------------------------------------------------------------- readouts


def invariant_pool(s: Tensor, reduction: Literal["sum", "mean"] = "sum") -> Tensor:
    """``G = w^T S`` with ``w = 1`` (``sum``) or ``w = 1/T`` (``mean``): one ``D_v`` vector,
    the column sums (or means) of ``S``, i.e. a reduction over the token axis."""
    # BEGIN SOLUTION the permutation-invariant readout
    if reduction == "sum":
        return s.sum(dim=-2)
    if reduction == "mean":
        return s.mean(dim=-2)
    # END SOLUTION
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

    readout.magnitude = lambda s: s.flatten(-2) @ weight.abs().to(s).T
    return readout


def readout_rounding_bound(readout: Readout, s: Tensor, ds: Tensor, dtype: torch.dtype) -> Tensor:
    """Entrywise bound on ``|fl(G(S)) - G(S_exact)|`` for a linear readout ``G`` of an ``S``
    that is off by at most ``ds``: ``|G|(ds) + gamma_n |G|(|S|)`` with ``n = T D_v`` terms at most.

    ``|G|`` is ``G`` with the magnitudes of its coefficients (``readout.magnitude`` when it has
    signed weights; the sums and the mean have none).
    """
    magnitude = getattr(readout, "magnitude", readout)
    s, ds = s.detach().to("cpu", torch.float64), ds.to(torch.float64)
    n = s.shape[-2] * s.shape[-1]
    return magnitude(ds) + gamma(n, unit_roundoff(dtype)) * magnitude(s.abs())


# --------------------------------------------------------------------------- random cases


def permutation_matrix(perm: Tensor, dtype: torch.dtype = torch.float64) -> Tensor:
    """The ``T x T`` matrix ``P`` with ``(P X)_i = X_{perm[i]}``, i.e. ``P = I[perm]``."""
    return torch.eye(len(perm), dtype=dtype)[perm]


def random_permutation(t: int, generator: torch.Generator) -> Tensor:
    """A random permutation of ``T`` tokens other than the identity (which tests nothing),
    uniform over the ``T! - 1`` others; for ``T = 1`` the identity is the only one."""
    identity = torch.arange(t)
    while True:
        perm = torch.randperm(t, generator=generator)
        if t == 1 or not torch.equal(perm, identity):
            return perm


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

    @property
    def nontrivial(self) -> int:
        """How many of the permutations are not the identity (the others test nothing)."""
        eye = torch.eye(self.p.shape[-1], dtype=self.p.dtype)
        return int((self.p != eye).any(dim=-1).any(dim=-1).sum())


def random_cases(
    shapes: tuple[Shape, ...], draws: int, permutations: int, dtype: torch.dtype, seed: int
) -> Iterator[Case]:
    """For each shape, ``draws`` random (X, W_q, W_k, W_v), each with ``permutations`` random P
    other than the identity (stacked into one tensor, so that a check makes one batched call).

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
            perms = [random_permutation(t, gen) for _ in range(permutations)]
            p = torch.stack([permutation_matrix(perm, dtype) for perm in perms])
            yield Case((t, d_in, d_k, d_v), x, w_q, w_k, w_v, p, gen)


# --------------------------------------------------------------------------- the checks


@dataclass
class Measured:
    """The largest error of one check on one case, and its ratio to the rounding bound
    (at most 1: rounding can explain it; above 1: it cannot)."""

    error: float
    ratio: float


def equivariance_check(attention: AttentionFn, case: Case, alpha: float | None = None) -> Measured:
    """``max |P S(X) - S(P X)|`` over the case's permutations, and its ratio to the rounding
    bound of the two evaluations, ``P B(X) + B(PX)``."""
    args = (case.w_q, case.w_k, case.w_v, alpha)
    px = case.p @ case.x
    s, s_perm = attention(case.x, *args), attention(px, *args)
    diff = case.p @ s - s_perm
    bound_of = rounding_bound_of(attention)
    p64 = case.p.to(torch.float64)
    bound = p64 @ bound_of(case.x, *args, case.x.dtype) + bound_of(px, *args, case.x.dtype)
    return Measured(float(diff.abs().max()), ratio_to_bound(diff, bound))


def equivariance_error(attention: AttentionFn, case: Case, alpha: float | None = None) -> float:
    """``max |P S(X) - S(P X)|`` over the case's permutations (0 for an equivariant ``attention``,
    up to rounding)."""
    return equivariance_check(attention, case, alpha).error


def invariance_check(
    readout: Readout, attention: AttentionFn, case: Case, alpha: float | None = None, *, equivariant=False
) -> Measured:
    """``max |G(P X) - G(X)|`` over the case's permutations, ``G = readout(attention(.))``, and
    its ratio to the rounding bound. With ``equivariant``, ``max |G(PX) - P G(X)|`` instead (for
    readouts that keep one value per token)."""
    args = (case.w_q, case.w_k, case.w_v, alpha)
    px = case.p @ case.x
    s, s_perm = attention(case.x, *args), attention(px, *args)
    g, g_perm = readout(s), readout(s_perm)
    bound_of = rounding_bound_of(attention)
    dtype = case.x.dtype
    b = readout_rounding_bound(readout, s, bound_of(case.x, *args, dtype), dtype)
    b_perm = readout_rounding_bound(readout, s_perm, bound_of(px, *args, dtype), dtype)
    if equivariant:
        p = case.p.to(g.dtype)
        diff = g_perm - (p @ g.unsqueeze(-1)).squeeze(-1)
        bound = b_perm + (case.p.to(torch.float64) @ b.unsqueeze(-1)).squeeze(-1)
    else:
        diff, bound = g_perm - g, b_perm + b
    return Measured(float(diff.abs().max()), ratio_to_bound(diff, bound))


def invariance_error(
    readout: Readout, attention: AttentionFn, case: Case, alpha: float | None = None
) -> float:
    """``max |G(P X) - G(X)|`` over the case's permutations, with ``G = readout(attention(.))``."""
    return invariance_check(readout, attention, case, alpha).error


def row_sum_check(attention: AttentionFn, case: Case, alpha: float | None = None) -> Measured:
    """``max |A 1 - 1|``: how far the attention rows of ``attention`` are from summing to one,
    and the ratio of that to the rounding bound (above 1: the rows do not sum to one).

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
    bound = rounding_bound_of(attention)(x1, w_q, w_k, w_v, alpha, case.x.dtype)
    return Measured(float((rows - 1).abs().max()), ratio_to_bound(rows - 1, bound))


def row_sum_error(attention: AttentionFn, case: Case, alpha: float | None = None) -> float:
    """``max |A 1 - 1|`` of :func:`row_sum_check`."""
    return row_sum_check(attention, case, alpha).error


@dataclass
class Sweep:
    """The worst error over many cases, the worst per shape, the worst ratio to the rounding
    bound, and how many cases permuted something (``nontrivial``)."""

    max_error: float = 0.0
    max_ratio: float = 0.0
    cases: int = 0
    nontrivial: int = 0
    per_shape: dict[Shape, float] = field(default_factory=dict)

    def add(self, case: Case, measured: Measured) -> None:
        self.cases += len(case.p)
        self.nontrivial += case.nontrivial
        self.max_error = max(self.max_error, measured.error)
        self.max_ratio = max(self.max_ratio, measured.ratio)
        self.per_shape[case.shape] = max(self.per_shape.get(case.shape, 0.0), measured.error)

    @property
    def within_rounding(self) -> bool:
        """Every case's difference is within its rounding bound: the identity holds as far as
        floating point can show. False means at least one case proves it does not hold."""
        return self.max_ratio <= 1.0


def sweep(measure: Callable[[Case], Measured], cases: Iterator[Case] | list[Case]) -> Sweep:
    """Apply ``measure`` to every case and keep the maxima."""
    result = Sweep()
    for case in cases:
        result.add(case, measure(case))
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
    return sweep(lambda c: equivariance_check(attention, c, alpha), cases)


def invariance_sweep(
    make_readout: ReadoutFactory,
    attention: AttentionFn,
    shapes: tuple[Shape, ...],
    draws: int = 3,
    permutations: int = 10,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
    alpha: float | None = None,
    equivariant: bool = False,
) -> Sweep:
    """The largest ``|G(PX) - G(X)|``, ``G = make_readout(T, D_v)(attention(X))`` (with
    ``equivariant``, ``|G(PX) - P G(X)|``); a readout with parameters gets the same parameters
    for ``X`` and ``PX``."""
    result = Sweep()
    for case in random_cases(shapes, draws, permutations, dtype, seed):
        readout = make_readout(case.shape[0], case.shape[3], case.generator)
        result.add(case, invariance_check(readout, attention, case, alpha, equivariant=equivariant))
    return result


def is_equivariant(
    attention: AttentionFn,
    shapes: tuple[Shape, ...] = ((2, 3, 4, 5), (7, 8, 4, 6), (16, 12, 8, 8)),
    **kwargs,
) -> bool:
    """The lab's float64 check as a predicate: every ``|P S(X) - S(PX)|`` within its rounding bound."""
    return equivariance_sweep(attention, shapes, **kwargs).within_rounding
