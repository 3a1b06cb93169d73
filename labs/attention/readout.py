"""Exercise 2, measured then recorded: :func:`measure_readouts` sweeps four readouts of
``S(X)`` and returns a :class:`Readouts` (no context needed); :func:`record_readouts` records
the table, figure, metrics and claims with their checks; :func:`answer_values` gives the
answer its numbers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import torch

from . import attention as att
from . import text
from .rounding import check_against_bound, rounding_baseline
from .shared import Setup, within


def sum_pool(t: int, d: int, g: torch.Generator) -> att.Readout:
    return att.invariant_pool


def mean_pool(t: int, d: int, g: torch.Generator) -> att.Readout:
    return lambda v: att.invariant_pool(v, "mean")


def row_sum(t: int, d: int, g: torch.Generator) -> att.Readout:
    return att.row_sums


@dataclass(frozen=True)
class Readouts:
    """What Exercise 2 measured: the invariance sweeps of the sum and the mean over tokens
    (float64 and float32), of the row sums (and their equivariance), and of a linear layer
    on the flattened ``S(X)``."""

    setup: Setup
    sum64: att.Sweep
    sum32: att.Sweep
    mean64: att.Sweep
    mean32: att.Sweep
    rows_inv: att.Sweep
    rows_eq: att.Sweep
    flat: att.Sweep

    @property
    def table(self) -> list[tuple[str, att.Sweep, att.Sweep | None, str]]:
        """Each readout with its float64 and float32 sweeps and what the proof says of it."""
        return [
            ("sum over tokens, 1^T S", self.sum64, self.sum32, "invariant"),
            ("mean over tokens", self.mean64, self.mean32, "invariant"),
            ("row sums, S 1", self.rows_inv, None, "equivariant"),
            ("flatten + linear, W vec(S)", self.flat, None, "neither"),
        ]


def measure_readouts(setup: Setup) -> Readouts:
    """Q2's measurements: ``|G(PX) - G(X)|`` of four readouts ``G`` of self-attention on the
    random cases of ``setup``, against their rounding bounds."""
    shapes, common = setup.shapes, setup.sweep_args()
    sa = att.self_attention
    return Readouts(
        setup,
        sum64=att.invariance_sweep(sum_pool, sa, shapes, **common),
        sum32=att.invariance_sweep(sum_pool, sa, shapes, dtype=torch.float32, **common),
        mean64=att.invariance_sweep(mean_pool, sa, shapes, **common),
        mean32=att.invariance_sweep(mean_pool, sa, shapes, dtype=torch.float32, **common),
        rows_inv=att.invariance_sweep(row_sum, sa, shapes, **common),
        rows_eq=att.invariance_sweep(row_sum, sa, shapes, equivariant=True, **common),
        flat=att.invariance_sweep(att.flatten_linear_readout, sa, shapes, **common),
    )


def record_readouts(ex: Any, m: Readouts) -> None:
    """Record Exercise 2: the table, the figure, metrics, and claims with their checks."""
    ex.table(
        [
            [
                name,
                f"{e64.max_error:.2e}",
                f"{e64.max_ratio:.2e}",
                "-" if e32 is None else f"{e32.max_error:.2e}",
                kind,
            ]
            for name, e64, e32, kind in m.table
        ],
        columns=["readout G", "max |G(PX) - G(X)| float64", "/ rounding bound", "float32", "by the proof"],
        caption=f"Invariance of four readouts of S(X) over {m.sum64.cases} cases.",
    )
    ex.figure(readout_figure(m.table), "readout_invariance", caption=text.CAPTION_READOUTS)
    for name, sw in (
        ("invariance_max_err_sum_f64", m.sum64),
        ("invariance_max_err_sum_f32", m.sum32),
        ("invariance_max_err_mean_f64", m.mean64),
        ("invariance_max_err_mean_f32", m.mean32),
        ("invariance_err_row_sums", m.rows_inv),
        ("equivariance_err_row_sums", m.rows_eq),
        ("invariance_err_flatten_linear", m.flat),
    ):
        ex.metric(name, sw.max_error)
    ex.metric("invariance_bound_ratio_sum_f64", m.sum64.max_ratio)
    record_conclusions(ex, m)


def answer_values(m: Readouts) -> dict[str, Any]:
    """The values the answer template (A2) is filled with."""
    return dict(
        n_cases=m.sum64.cases,
        sum64=m.sum64.max_error,
        sum32=m.sum32.max_error,
        mean64=m.mean64.max_error,
        mean32=m.mean32.max_error,
        rows_inv=m.rows_inv.max_error,
        rows_eq=m.rows_eq.max_error,
        flat=m.flat.max_error,
        flat_ratio=m.flat.max_ratio,
        sum_ratio=m.sum64.max_ratio,
        max_t=max(shape[0] for shape in m.setup.shapes),
    )


def record_conclusions(ex: Any, m: Readouts) -> None:
    """The claims of Exercise 2, each with the check on the same condition."""
    b64, b32 = rounding_baseline(torch.float64), rounding_baseline(torch.float32)
    what = "|G(PX) - G(X)|"
    holds = ex.claim(
        "sum_pool_invariant",
        m.sum64.within_rounding,
        statement="G = 1^T S(X) is permutation invariant up to rounding (float64)",
        evidence=within(m.sum64, what),
        baseline=b64,
    )
    check_against_bound(
        ex, "G = 1^T S(X) is invariant (float64, error / rounding bound)", holds, m.sum64.max_ratio, points=2
    )
    check_against_bound(
        ex,
        "G = mean over tokens is invariant (float64, error / rounding bound)",
        m.mean64.within_rounding,
        m.mean64.max_ratio,
    )
    holds = ex.claim(
        "sum_pool_invariant_f32",
        m.sum32.within_rounding,
        statement="G = 1^T S(X) is permutation invariant up to rounding (float32)",
        evidence=within(m.sum32, what),
        baseline=b32,
    )
    check_against_bound(
        ex, "G = 1^T S(X) is invariant (float32, error / rounding bound)", holds, m.sum32.max_ratio
    )
    ex.claim(
        "mean_pool_invariant",
        m.mean64.within_rounding and m.mean32.within_rounding,
        statement="the mean over tokens is permutation invariant up to rounding (float64 and float32)",
        evidence=within(m.mean64, what) + "; float32: " + within(m.mean32, what),
        baseline=b64,
    )
    holds = ex.claim(
        "row_sums_equivariant",
        m.rows_eq.within_rounding,
        statement="the row sums S(X) 1 are permutation equivariant up to rounding",
        evidence=within(m.rows_eq, "|S(PX) 1 - P S(X) 1|"),
        baseline=b64,
    )
    check_against_bound(
        ex, "row sums S 1 are equivariant (error / rounding bound)", holds, m.rows_eq.max_ratio
    )
    holds = ex.claim(
        "row_sums_not_invariant",
        not m.rows_inv.within_rounding,
        statement="the row sums S(X) 1 are not permutation invariant",
        evidence=within(m.rows_inv, what),
        baseline=b64,
    )
    check_against_bound(
        ex,
        "row sums S 1 are not invariant (error / rounding bound)",
        holds,
        m.rows_inv.max_ratio,
        beyond=True,
    )
    holds = ex.claim(
        "flatten_linear_not_invariant",
        not m.flat.within_rounding,
        statement="a linear layer on the flattened S(X) is not permutation invariant",
        evidence=within(m.flat, what),
        baseline=b64 + f"; the sum over tokens: ratio {m.sum64.max_ratio:.2e}",
    )
    check_against_bound(
        ex, "flatten + linear is not invariant (error / rounding bound)", holds, m.flat.max_ratio, beyond=True
    )


def readout_figure(readouts: list[tuple[str, att.Sweep, att.Sweep | None, str]]) -> Any:
    fig, ax = plt.subplots(figsize=(7.5, 3.0))
    names = [r[0] for r in readouts]
    values = [max(r[1].max_ratio, 1e-18) for r in readouts]  # an exact 0 has no place on a log axis
    colors = ["tab:green" if r[1].within_rounding else "tab:red" for r in readouts]
    ax.barh(names, values, color=colors)
    ax.set_xscale("log")
    ax.axvline(1.0, color="k", linestyle="--", linewidth=1)
    ax.invert_yaxis()
    ax.set_xlabel("max |G(PX) - G(X)| / its rounding bound")
    return fig
