"""Rounding: how far a floating-point evaluation can be from the exact value, so that a
difference between two evaluations that agree mathematically can be told apart from a real
one. The standard first-order error analysis (Higham, *Accuracy and Stability of Numerical
Algorithms*, ch. 3): a bound per entry, from the unit roundoff and the lengths of the sums."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

#: What every bound-based claim of the lab is compared with, in the report's words.
ROUNDING_BASELINE = (
    "the worst-case rounding of the two evaluations (first-order error analysis: unit roundoff "
    "{u:.1e} of {dtype} times the lengths of the sums and the magnitudes of the terms); a "
    "difference within it may be rounding, one above it cannot be"
)


def unit_roundoff(dtype: torch.dtype) -> float:
    """``u``, half the distance from 1 to the next number: 2^-53 for float64, 2^-24 for float32."""
    return torch.finfo(dtype).eps / 2


def gamma(n: int, u: float) -> float:
    """``gamma_n = n u / (1 - n u)``: a sum or dot product of ``n`` terms computed in floating
    point, in any order, is off by at most ``gamma_n`` times the sum of the terms' magnitudes."""
    return n * u / (1 - n * u)


def softmax_rounding_bound(a: Tensor, da: Tensor | float, u: float, dim: int = -1) -> Tensor:
    """First-order bound on ``|fl(softmax(a)) - softmax(a)|`` (entrywise), when the scores
    ``a`` themselves are off by at most ``da`` (entrywise).

    Each ``exp(a_j - max a)`` is off, relatively, by its score's error, the maximum's error,
    the rounding of the subtraction and of ``exp`` (a few ``u``); the normaliser sums ``T``
    such terms (``gamma_T``) and the division rounds once more. Masked scores (``-inf``)
    contribute nothing.
    """
    a = a.to(torch.float64)
    da = torch.as_tensor(da, dtype=torch.float64).expand_as(a)
    masked = torch.isinf(a)
    p = torch.softmax(a, dim=dim)
    m = a.amax(dim, keepdim=True)
    e = torch.where(masked, 0.0, da + da.masked_fill(masked, 0).amax(dim, keepdim=True))
    e = e + torch.where(masked, 0.0, u * (a - m).abs() + 3 * u)
    rel = e + e.amax(dim, keepdim=True) + gamma(a.shape[dim], u) + 2 * u
    return p * rel


def ratio_to_bound(difference: Tensor, bound: Tensor) -> float:
    """``max |difference| / bound`` entrywise: at most 1 when the difference can be rounding
    alone, above 1 when it cannot (0/0 counts as 0)."""
    d = difference.detach().abs().to("cpu", torch.float64)
    safe = torch.where(bound > 0, bound, 1.0)
    ratio = torch.where(bound > 0, d / safe, torch.where(d > 0, math.inf, 0.0))
    return float(ratio.max()) if ratio.numel() else 0.0


def rounding_baseline(dtype: torch.dtype) -> str:
    """The baseline of a bound-based claim, as the report states it."""
    return ROUNDING_BASELINE.format(u=unit_roundoff(dtype), dtype=str(dtype).replace("torch.", ""))


def check_against_bound(
    ex: Any, name: str, holds: bool, ratio: float, *, beyond: bool = False, points: float = 1.0
) -> bool:
    """Record the check on a claim's condition: ``holds`` is what the claim decided (the ratio
    to the rounding bound at most 1, or with ``beyond`` above 1), shown with that ratio; the
    condition is written once, where the claim is decided."""
    return ex.check(name, holds, expected="> 1" if beyond else "≤ 1", actual=ratio, points=points)
