"""Exercise 1, measured then recorded: :func:`measure_equivariance` runs the sweeps of
:mod:`.attention` and returns an :class:`Equivariance` (no context needed);
:func:`record_equivariance` records its tables, figure, metrics, claims and checks, and
:func:`answer_values` gives the answer its numbers.

Every conclusion is a claim decided against the rounding bound of the two evaluations: an
identity "holds" when every difference is within it, and "fails" when one difference exceeds
it, which rounding cannot explain. A check records the outcome of the claim on the same
condition, so each condition is written once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import torch

from labrunner import quiet_progress

from . import attention as att
from . import text
from .rounding import check_against_bound, rounding_baseline
from .shared import Setup, within

#: Implementations whose equivariance the check must accept (the others depend on position).
POSITION_FREE = ("correct (softmax over rows)", "bug: softmax over columns")
COLUMNS = "bug: softmax over columns"
SINUSOIDAL, LEARNED = "sinusoidal positional encoding", "learned positional encoding"


def implementations() -> dict[str, att.AttentionFn]:
    """The implementations the check runs on: the correct one, two bugs, and three that depend
    on position. Looked up at each call, so a test can swap ``att.self_attention``."""
    return {
        "correct (softmax over rows)": att.self_attention,
        COLUMNS: att.attention_softmax_over_columns,
        "bug: K^T written as K.reshape(D_k, T)": att.attention_transpose_by_reshape,
        "causal mask (decoder attention)": att.attention_causal,
        SINUSOIDAL: att.with_positional_encoding(att.self_attention, "sinusoidal"),
        LEARNED: att.with_positional_encoding(att.self_attention, "learned"),
    }


@dataclass(frozen=True)
class AttentionMaps:
    """The figure's data: the attention matrices of X and PX, without (``top``) and with
    (``bottom``) a positional encoding, the permutation, and the top row's error with its ratio
    to the rounding bound of the two attention matrices."""

    tokens: int
    perm: list[int]
    p: torch.Tensor
    top: tuple[torch.Tensor, torch.Tensor]
    bottom: tuple[torch.Tensor, torch.Tensor]
    error: att.Measured


@dataclass(frozen=True)
class Equivariance:
    """What Exercise 1 measured: the float64 and float32 sweeps of the correct implementation,
    the softmax lemma and the row sums on its cases, the float64 sweep and the row sums of every
    implementation (``None`` where a position table makes the row-sum probe meaningless), and
    the figure's maps."""

    setup: Setup
    s64: att.Sweep
    s32: att.Sweep
    lemma: att.Measured
    rows: att.Measured
    sweeps: dict[str, att.Sweep]
    row_sums: dict[str, att.Measured | None]
    maps: AttentionMaps

    @property
    def wrong(self) -> list[str]:
        return [k for k in self.sweeps if k not in POSITION_FREE]

    @property
    def caught(self) -> list[str]:
        return [k for k in self.wrong if not self.sweeps[k].within_rounding]

    @property
    def columns_rows(self) -> att.Measured | None:
        return self.row_sums[COLUMNS]

    # the conditions, each decided once for the claim and the check that test it
    @property
    def lemma_holds(self) -> bool:
        return self.lemma.ratio <= 1

    @property
    def rows_sum_to_one(self) -> bool:
        return self.rows.ratio <= 1

    @property
    def every_wrong_variant_rejected(self) -> bool:
        return len(self.caught) == len(self.wrong)

    @property
    def row_sums_catch_columns(self) -> bool:
        return self.columns_rows is not None and self.columns_rows.ratio > 1


def measure_equivariance(
    setup: Setup, figure_tokens: int, progress: Callable[..., Iterable[Any]] = quiet_progress
) -> Equivariance:
    """Q1's measurements: ``P S(X) = S(PX)`` on the random cases of ``setup`` in float64 and
    float32, the lemma and the row sums, and the same checks on wrong implementations."""
    shapes, common = setup.shapes, setup.sweep_args()
    s64 = att.equivariance_sweep(att.self_attention, shapes, **common)
    s32 = att.equivariance_sweep(att.self_attention, shapes, dtype=torch.float32, **common)
    cases = list(att.random_cases(shapes, setup.draws, min(setup.permutations, 3), torch.float64, setup.seed))
    lemma = worst(lemma_check(c, setup.alpha) for c in cases)
    rows = worst(att.row_sum_check(att.self_attention, c, setup.alpha) for c in cases)
    sweeps: dict[str, att.Sweep] = {}
    row_sums: dict[str, att.Measured | None] = {}
    for label, fn in progress(list(implementations().items()), desc="implementations"):
        sweeps[label] = s64 if fn is att.self_attention else att.equivariance_sweep(fn, shapes, **common)
        # the row-sum probe appends a feature to X, which a position table would encode too
        row_sums[label] = (
            None if "encoding" in label else worst(att.row_sum_check(fn, c, setup.alpha) for c in cases)
        )
    maps = attention_maps(figure_tokens, setup.alpha, torch.Generator().manual_seed(setup.seed + 11))
    return Equivariance(setup, s64, s32, lemma, rows, sweeps, row_sums, maps)


def worst(measured: Iterable[att.Measured]) -> att.Measured:
    """The case with the largest ratio to its bound (and the largest error over all cases)."""
    items = list(measured)
    return att.Measured(max(m.error for m in items), max(m.ratio for m in items))


def lemma_check(case: att.Case, alpha: float | None) -> att.Measured:
    """``max |softmax(P A P^T) - P softmax(A) P^T|`` on one case's scores, and its ratio to
    the rounding bound of the two softmaxes (the scores themselves are the same numbers)."""
    a = att.attention_scores(case.x, case.w_q, case.w_k, alpha)
    p = case.p
    p_t = p.transpose(-2, -1)
    pap = p @ a @ p_t  # exact: a permutation only moves entries
    diff = torch.softmax(pap, dim=-1) - p @ torch.softmax(a, dim=-1) @ p_t
    u = att.unit_roundoff(a.dtype)
    bound = att.softmax_rounding_bound(pap, 0.0, u) + p @ att.softmax_rounding_bound(a, 0.0, u) @ p_t
    return att.Measured(float(diff.abs().max()), att.ratio_to_bound(diff, bound))


def attention_maps(t: int, alpha: float | None, gen: torch.Generator) -> AttentionMaps:
    """The attention matrices of a random X of ``t`` tokens and of PX, without and with a
    sinusoidal positional encoding, drawn from ``gen``."""
    d = 8
    x = torch.randn(t, d, generator=gen, dtype=torch.float64)
    # larger weights than the sweeps, so that the maps have visible structure
    w_q, w_k = (2.0 * torch.randn(d, d, generator=gen, dtype=torch.float64) / math.sqrt(d) for _ in range(2))
    perm = att.random_permutation(t, gen)
    p = att.permutation_matrix(perm)
    enc = att.sinusoidal_positional_encoding(t, d)
    top = (att.attention_matrix(x, w_q, w_k, alpha), att.attention_matrix(p @ x, w_q, w_k, alpha))
    bottom = (
        att.attention_matrix(x + enc, w_q, w_k, alpha),
        att.attention_matrix(p @ x + enc, w_q, w_k, alpha),
    )
    bound = p @ att.attention_rounding_bound(x, w_q, w_k, w_q, alpha, weights=True) @ p.T
    bound = bound + att.attention_rounding_bound(p @ x, w_q, w_k, w_q, alpha, weights=True)
    top_diff = top[1] - p @ top[0] @ p.T
    error = att.Measured(float(top_diff.abs().max()), att.ratio_to_bound(top_diff, bound))
    return AttentionMaps(t, perm.tolist(), p, top, bottom, error)


# --------------------------------------------------------------------------- recording


def record_equivariance(ex: Any, m: Equivariance) -> None:
    """Record Exercise 1: its tables, the figure, metrics, and claims with their checks."""
    ex.table(
        [
            [
                f"({t}, {d}, {k}, {v})",
                f"{m.s64.per_shape[(t, d, k, v)]:.2e}",
                f"{m.s32.per_shape[(t, d, k, v)]:.2e}",
            ]
            for t, d, k, v in m.setup.shapes
        ],
        columns=["(T, D_in, D_k, D_v)", "max |PS(X) - S(PX)| float64", "float32"],
        caption=f"Largest error per shape over {m.setup.draws} draws x {m.setup.permutations} permutations.",
    )
    ex.table(
        [
            [
                label,
                f"{sw.max_error:.2e}",
                f"{sw.max_ratio:.2e}",
                "yes" if sw.within_rounding else "no",
                "n/a" if m.row_sums[label] is None else f"{m.row_sums[label].error:.2e}",
            ]
            for label, sw in m.sweeps.items()
        ],
        columns=[
            "implementation",
            "max |PS(X) - S(PX)|",
            "/ rounding bound",
            "equivariant (within rounding)",
            "max |A1 - 1|",
        ],
        caption="The equivariance check (float64) and the row-sum check on correct and wrong "
        "implementations. A ratio above 1 cannot be rounding.",
    )
    ex.figure(
        attention_figure(m.maps),
        "attention_permuted",
        caption=text.CAPTION_ATTENTION.replace("{{ t }}", str(m.maps.tokens)),
    )
    b64 = rounding_baseline(torch.float64)
    ex.claim(
        "figure_maps_match",
        m.maps.error.ratio <= 1,
        statement="in the figure, the attention matrix of PX is that of X permuted on both axes",
        evidence=f"largest |softmax(PAP^T) - P softmax(A) P^T| = {m.maps.error.error:.2e}, "
        f"{m.maps.error.ratio:.2e} of its rounding bound",
        baseline=b64,
    )
    record_metrics(ex, m)
    record_identities(ex, m)
    record_wrong_implementations(ex, m)


def answer_values(m: Equivariance) -> dict[str, Any]:
    """The values the answer template (A1) is filled with."""
    pe_sin, pe_learned = m.sweeps[SINUSOIDAL], m.sweeps[LEARNED]
    return dict(
        n_cases=m.s64.cases,
        n_nontrivial=m.s64.nontrivial,
        n_trivial=m.s64.cases - m.s64.nontrivial,
        setting={"has_single_token": m.setup.has_single_token},
        err64=m.s64.max_error,
        err32=m.s32.max_error,
        ratio64=m.s64.max_ratio,
        ratio32=m.s32.max_ratio,
        ulps64=round(m.s64.max_error / 2.0**-52),
        ulps32=round(m.s32.max_error / 2.0**-23),
        max_t=max(shape[0] for shape in m.setup.shapes),
        err_lemma=m.lemma.error,
        row_err=m.rows.error,
        fig_t=m.maps.tokens,
        fig_perm=", ".join(str(i + 1) for i in m.maps.perm),
        fig_err=m.maps.error.error,
        pe_sin=pe_sin.max_error,
        pe_learned=pe_learned.max_error,
        caught=len(m.caught),
        wrong=len(m.wrong),
        missed=", ".join(k for k in m.wrong if k not in m.caught),
        wrong_min=min(m.sweeps[k].max_error for k in m.wrong),
        columns_err=m.sweeps[COLUMNS].max_error,
        columns_rows=m.columns_rows.error,
    )


def record_metrics(ex: Any, m: Equivariance) -> None:
    ex.metric("equivariance_max_err_f64", m.s64.max_error)
    ex.metric("equivariance_max_err_f32", m.s32.max_error)
    ex.metric("equivariance_bound_ratio_f64", m.s64.max_ratio)
    ex.metric("equivariance_bound_ratio_f32", m.s32.max_ratio)
    ex.metric("softmax_lemma_max_err", m.lemma.error)
    ex.metric("attention_row_sum_max_err", m.rows.error)
    ex.metric("equivariance_err_sinusoidal_pe", m.sweeps[SINUSOIDAL].max_error)
    ex.metric("equivariance_err_learned_pe", m.sweeps[LEARNED].max_error)
    ex.metric("equivariance_err_softmax_columns", m.sweeps[COLUMNS].max_error)
    ex.metric("equivariance_err_reshape_bug", m.sweeps["bug: K^T written as K.reshape(D_k, T)"].max_error)
    ex.metric("equivariance_err_causal", m.sweeps["causal mask (decoder attention)"].max_error)
    ex.metric("equivariance_cases", m.s64.cases)
    ex.metric("equivariance_cases_nontrivial", m.s64.nontrivial)


def record_identities(ex: Any, m: Equivariance) -> None:
    """The claims that the identities hold for the correct implementation, each with the
    check on the same condition."""
    b64, b32 = rounding_baseline(torch.float64), rounding_baseline(torch.float32)
    causal = m.sweeps["causal mask (decoder attention)"]
    reference = (
        f"; for scale, a position-dependent implementation (causal mask) is off by "
        f"{causal.max_error:.2e} on the same cases, {causal.max_ratio:.1e} times its bound"
    )
    for key, sw, baseline, points in (("f64", m.s64, b64, 3), ("f32", m.s32, b32, 1)):
        holds = ex.claim(
            f"equivariant_{key}",
            sw.within_rounding,
            statement=f"P S(X) = S(PX) holds in float{key[1:]} up to rounding, on every case",
            evidence=within(sw, "|P S(X) - S(PX)|"),
            baseline=baseline + reference,
        )
        check_against_bound(
            ex,
            f"PS(X) = S(PX) in float{key[1:]} (error / rounding bound)",
            holds,
            sw.max_ratio,
            points=points,
        )
    holds = ex.claim(
        "softmax_lemma_holds",
        m.lemma_holds,
        statement="softmax(P A P^T) = P softmax(A) P^T up to rounding",
        evidence=f"largest difference {m.lemma.error:.2e}, {m.lemma.ratio:.2e} of its rounding bound",
        baseline=b64,
    )
    check_against_bound(
        ex, "softmax(PAP^T) = P softmax(A) P^T (error / rounding bound)", holds, m.lemma.ratio
    )
    holds = ex.claim(
        "rows_sum_to_one",
        m.rows_sum_to_one,
        statement="each row of the attention matrix sums to one, up to rounding",
        evidence=f"largest |A1 - 1| = {m.rows.error:.2e}, {m.rows.ratio:.2e} of its rounding bound",
        baseline=b64,
    )
    check_against_bound(ex, "attention rows sum to one (error / rounding bound)", holds, m.rows.ratio)


def record_wrong_implementations(ex: Any, m: Equivariance) -> None:
    """The claims that the checks reject what depends on position (and what they cannot
    see), each with the check on the same condition where it has one."""
    b64 = rounding_baseline(torch.float64)
    for key, label, name in (
        ("sinusoidal", SINUSOIDAL, "the sinusoidal positional encoding"),
        ("learned", LEARNED, "a learned positional encoding"),
    ):
        sw = m.sweeps[label]
        breaks = ex.claim(
            f"{key}_encoding_breaks_equivariance",
            not sw.within_rounding,
            statement=f"with {name} added, self-attention is not permutation equivariant",
            evidence=within(sw, "|P S(X + E) - S(PX + E)|"),
            baseline=b64 + f"; without the encoding the ratio is {m.s64.max_ratio:.2e}",
        )
        check_against_bound(ex, f"{label} breaks equivariance", breaks, sw.max_ratio, beyond=True)
    rejected = ex.claim(
        "check_rejects_every_wrong_variant",
        m.every_wrong_variant_rejected,
        statement="the equivariance check rejects every position-dependent implementation",
        evidence=f"{len(m.caught)} of {len(m.wrong)} rejected: "
        + "; ".join(f"{k}: {m.sweeps[k].max_ratio:.1e} times its bound" for k in m.wrong),
        baseline=b64,
    )
    ex.check(
        "the check rejects every position-dependent variant",
        rejected,
        expected=len(m.wrong),
        actual=len(m.caught),
    )
    columns = m.sweeps[COLUMNS]
    ex.claim(
        "columns_softmax_equivariant",
        columns.within_rounding,
        statement="a softmax over the columns is still permutation equivariant",
        evidence=within(columns, "|P S(X) - S(PX)|"),
        baseline=b64,
    )
    rows = m.columns_rows
    caught = ex.claim(
        "row_sums_catch_columns_softmax",
        m.row_sums_catch_columns,
        statement="the row-sum check rejects the softmax over columns",
        evidence=f"largest |A1 - 1| = {rows.error:.2e}, {rows.ratio:.1e} times its "
        f"rounding bound (correct implementation: {m.rows.error:.2e})",
        baseline=b64,
    )
    check_against_bound(ex, "the row-sum check rejects softmax over columns", caught, rows.ratio, beyond=True)


def attention_figure(maps: AttentionMaps) -> Any:
    """Two rows of three panels: attention of X, of PX, and their difference, without and
    with a positional encoding."""
    t, p = maps.tokens, maps.p
    fig, axes = plt.subplots(2, 3, figsize=(11.5, 8.2), gridspec_kw={"hspace": 0.45})
    labels = [str(i + 1) for i in range(t)]
    perm_labels = [str(int(i) + 1) for i in maps.perm]
    for row, (a, a_perm), names in (
        (0, maps.top, ("softmax(A) for X", "for PX (original token ids)", "P softmax(A) P^T")),
        (
            1,
            maps.bottom,
            ("for X + E (positional encoding)", "for PX + E (original token ids)", "P softmax(A_E) P^T"),
        ),
    ):
        diff = (a_perm - p @ a @ p.T).abs()
        for col, (mat, title, ticks) in enumerate(((a, names[0], labels), (a_perm, names[1], perm_labels))):
            ax = axes[row, col]
            im = ax.imshow(mat.numpy(), cmap="viridis", vmin=0, vmax=1)
            ax.set_title(title, fontsize=10)
            ax.set_xticks(range(t), ticks, fontsize=7)
            ax.set_yticks(range(t), ticks, fontsize=7)
            ax.set_xlabel("key token")
            ax.set_ylabel("query token")
        fig.colorbar(im, ax=axes[row, :2].tolist(), fraction=0.025)
        ax = axes[row, 2]
        im = ax.imshow(diff.numpy(), cmap="magma")
        ax.set_title(f"|map of the 2nd panel - {names[2]}|\nmax {float(diff.max()):.1e}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046)
    return fig
