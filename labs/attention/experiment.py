"""Exercises 1 and 2, one function each, named after the assignment's question (Exercise 3 is
in :mod:`.ffn_exercise`): each measures with :mod:`.attention` and records questions, answers
(:mod:`.text`), figures, tables, metrics, claims and checks. No maths here.

Every conclusion is a claim decided against a baseline with its uncertainty: an identity
"holds" when every difference is within the worst-case rounding bound of the two evaluations
(computed from the unit roundoff and the lengths of the sums), and "fails" when one difference
exceeds it, which rounding cannot explain; a timing gap counts when it has the same sign in
every interleaved round. The module is a little over 500 lines because the two exercises
each record many claims with their evidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import torch

from . import attention as att
from . import text
from .rounding import rounding_baseline


@dataclass(frozen=True)
class Setup:
    """What Exercises 1 and 2 share: the random cases and the temperature."""

    shapes: tuple[tuple[int, int, int, int], ...]
    draws: int
    permutations: int
    seed: int
    alpha: float | None

    def sweep_args(self) -> dict[str, Any]:
        return dict(draws=self.draws, permutations=self.permutations, seed=self.seed, alpha=self.alpha)


def setup_of(ctx: Any) -> Setup:
    cfg = ctx.config
    return Setup(cfg.shapes, cfg.draws, cfg.permutations, ctx.seed, cfg.alpha if cfg.alpha > 0 else None)


def within(sweep: att.Sweep, what: str) -> str:
    """Evidence of a bound-based claim: the largest error and its ratio to the bound."""
    return (
        f"largest {what} = {sweep.max_error:.2e}; largest ratio to its rounding bound "
        f"{sweep.max_ratio:.2e} over {sweep.cases} cases ({sweep.nontrivial} of them permuting something)"
    )


def describe_setup(ctx: Any) -> None:
    """The note at the top of the lab: what the random checks ran on."""
    s = setup_of(ctx)
    cases = list(att.random_cases(s.shapes, s.draws, s.permutations, torch.float64, s.seed))
    ctx.note(
        text.NOTE,
        n_shapes=len(s.shapes),
        shapes=", ".join(f"({t}, {d}, {k}, {v})" for t, d, k, v in s.shapes),
        draws=s.draws,
        permutations=s.permutations,
        n_cases=sum(len(c.p) for c in cases),
        n_nontrivial=sum(c.nontrivial for c in cases),
        setting={"has_single_token": any(shape[0] == 1 for shape in s.shapes)},
        alpha=f"{s.alpha:g}" if s.alpha else r"\sqrt{D_k}",
        device=str(ctx.device),
    )


# --------------------------------------------------------------------------- exercise 1


def show_self_attention_is_permutation_equivariant(ctx: Any) -> None:
    """Q1: show that P S(X) = S(PX); verify it, and verify that the check catches mistakes."""
    cfg = ctx.config
    s = setup_of(ctx)
    shapes, common = s.shapes, s.sweep_args()
    with ctx.exercise(
        "1. Permutation equivariance of self-attention", question=text.Q1, fidelity="assignment"
    ) as ex:
        ctx.log("exercise 1: equivariance sweeps")
        s64 = att.equivariance_sweep(att.self_attention, shapes, **common)
        s32 = att.equivariance_sweep(att.self_attention, shapes, dtype=torch.float32, **common)
        cases = list(att.random_cases(shapes, cfg.draws, min(cfg.permutations, 3), torch.float64, s.seed))
        lemma = [lemma_check(c, s.alpha) for c in cases]
        rows_ok = [att.row_sum_check(att.self_attention, c, s.alpha) for c in cases]

        # the same check on implementations that are wrong or position-dependent
        variants = {
            "correct (softmax over rows)": att.self_attention,
            "bug: softmax over columns": att.attention_softmax_over_columns,
            "bug: K^T written as K.reshape(D_k, T)": att.attention_transpose_by_reshape,
            "causal mask (decoder attention)": att.attention_causal,
            "sinusoidal positional encoding": att.with_positional_encoding(att.self_attention, "sinusoidal"),
            "learned positional encoding": att.with_positional_encoding(att.self_attention, "learned"),
        }
        position_free = ("correct (softmax over rows)", "bug: softmax over columns")
        sweeps: dict[str, att.Sweep] = {}
        row_sums: dict[str, att.Measured | None] = {}
        table = []
        for label, fn in ctx.progress(list(variants.items()), desc="implementations"):
            sweeps[label] = s64 if fn is att.self_attention else att.equivariance_sweep(fn, shapes, **common)
            # the row-sum probe appends a feature to X, which a position table would encode too
            row_sums[label] = (
                None if "encoding" in label else worst(att.row_sum_check(fn, c, s.alpha) for c in cases)
            )
            sw, rs = sweeps[label], row_sums[label]
            table.append(
                [
                    label,
                    f"{sw.max_error:.2e}",
                    f"{sw.max_ratio:.2e}",
                    "yes" if sw.within_rounding else "no",
                    "n/a" if rs is None else f"{rs.error:.2e}",
                ]
            )
        ex.table(
            [
                [
                    f"({t}, {d}, {k}, {v})",
                    f"{s64.per_shape[(t, d, k, v)]:.2e}",
                    f"{s32.per_shape[(t, d, k, v)]:.2e}",
                ]
                for t, d, k, v in shapes
            ],
            columns=["(T, D_in, D_k, D_v)", "max |PS(X) - S(PX)| float64", "float32"],
            caption=f"Largest error per shape over {cfg.draws} draws x {cfg.permutations} permutations.",
        )
        ex.table(
            table,
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

        fig, fig_perm, fig_err = attention_figure(ctx, s.alpha)
        ex.figure(
            fig,
            "attention_permuted",
            caption=text.CAPTION_ATTENTION.replace("{{ t }}", str(cfg.figure_tokens)),
        )

        ex.claim(
            "figure_maps_match",
            fig_err.ratio <= 1,
            statement="in the figure, the attention matrix of PX is that of X permuted on both axes",
            evidence=f"largest |softmax(PAP^T) - P softmax(A) P^T| = {fig_err.error:.2e}, "
            f"{fig_err.ratio:.2e} of its rounding bound",
            baseline=rounding_baseline(torch.float64),
        )
        wrong = [k for k in variants if k not in position_free]
        caught = [k for k in wrong if not sweeps[k].within_rounding]
        pe_sin, pe_learned = sweeps["sinusoidal positional encoding"], sweeps["learned positional encoding"]
        columns = sweeps["bug: softmax over columns"]
        causal = sweeps["causal mask (decoder attention)"]
        columns_rows = row_sums["bug: softmax over columns"]
        row_ok = worst(rows_ok)
        lemma_worst = worst(lemma)

        ex.metric("equivariance_max_err_f64", s64.max_error)
        ex.metric("equivariance_max_err_f32", s32.max_error)
        ex.metric("equivariance_bound_ratio_f64", s64.max_ratio)
        ex.metric("equivariance_bound_ratio_f32", s32.max_ratio)
        ex.metric("softmax_lemma_max_err", lemma_worst.error)
        ex.metric("attention_row_sum_max_err", row_ok.error)
        ex.metric("equivariance_err_sinusoidal_pe", pe_sin.max_error)
        ex.metric("equivariance_err_learned_pe", pe_learned.max_error)
        ex.metric("equivariance_err_softmax_columns", columns.max_error)
        ex.metric("equivariance_err_reshape_bug", sweeps["bug: K^T written as K.reshape(D_k, T)"].max_error)
        ex.metric("equivariance_err_causal", causal.max_error)
        ex.metric("equivariance_cases", s64.cases)
        ex.metric("equivariance_cases_nontrivial", s64.nontrivial)

        b64, b32 = rounding_baseline(torch.float64), rounding_baseline(torch.float32)
        reference = (
            f"; for scale, a position-dependent implementation (causal mask) is off by "
            f"{causal.max_error:.2e} on the same cases, {causal.max_ratio:.1e} times its bound"
        )
        ex.claim(
            "equivariant_f64",
            s64.within_rounding,
            statement="P S(X) = S(PX) holds in float64 up to rounding, on every case",
            evidence=within(s64, "|P S(X) - S(PX)|"),
            baseline=b64 + reference,
        )
        ex.claim(
            "equivariant_f32",
            s32.within_rounding,
            statement="P S(X) = S(PX) holds in float32 up to rounding, on every case",
            evidence=within(s32, "|P S(X) - S(PX)|"),
            baseline=b32 + reference,
        )
        ex.claim(
            "softmax_lemma_holds",
            lemma_worst.ratio <= 1,
            statement="softmax(P A P^T) = P softmax(A) P^T up to rounding",
            evidence=f"largest difference {lemma_worst.error:.2e}, {lemma_worst.ratio:.2e} of its rounding bound",
            baseline=b64,
        )
        ex.claim(
            "rows_sum_to_one",
            row_ok.ratio <= 1,
            statement="each row of the attention matrix sums to one, up to rounding",
            evidence=f"largest |A1 - 1| = {row_ok.error:.2e}, {row_ok.ratio:.2e} of its rounding bound",
            baseline=b64,
        )
        for key, sw, name in (
            ("sinusoidal", pe_sin, "the sinusoidal positional encoding"),
            ("learned", pe_learned, "a learned positional encoding"),
        ):
            ex.claim(
                f"{key}_encoding_breaks_equivariance",
                not sw.within_rounding,
                statement=f"with {name} added, self-attention is not permutation equivariant",
                evidence=within(sw, "|P S(X + E) - S(PX + E)|"),
                baseline=b64 + f"; without the encoding the ratio is {s64.max_ratio:.2e}",
            )
        ex.claim(
            "check_rejects_every_wrong_variant",
            len(caught) == len(wrong),
            statement="the equivariance check rejects every position-dependent implementation",
            evidence=f"{len(caught)} of {len(wrong)} rejected: "
            + "; ".join(f"{k}: {sweeps[k].max_ratio:.1e} times its bound" for k in wrong),
            baseline=b64,
        )
        ex.claim(
            "columns_softmax_equivariant",
            columns.within_rounding,
            statement="a softmax over the columns is still permutation equivariant",
            evidence=within(columns, "|P S(X) - S(PX)|"),
            baseline=b64,
        )
        ex.claim(
            "row_sums_catch_columns_softmax",
            columns_rows is not None and columns_rows.ratio > 1,
            statement="the row-sum check rejects the softmax over columns",
            evidence=f"largest |A1 - 1| = {columns_rows.error:.2e}, {columns_rows.ratio:.1e} times its "
            f"rounding bound (correct implementation: {row_ok.error:.2e})",
            baseline=b64,
        )

        ex.check_at_most("PS(X) = S(PX) in float64 (error / rounding bound)", s64.max_ratio, 1.0, points=3)
        ex.check_at_most("PS(X) = S(PX) in float32 (error / rounding bound)", s32.max_ratio, 1.0, points=1)
        ex.check_at_most("softmax(PAP^T) = P softmax(A) P^T (error / rounding bound)", lemma_worst.ratio, 1.0)
        ex.check_at_most("attention rows sum to one (error / rounding bound)", row_ok.ratio, 1.0)
        ex.check_at_least("sinusoidal positional encoding breaks equivariance", pe_sin.max_ratio, 1.0)
        ex.check_at_least("learned positional encoding breaks equivariance", pe_learned.max_ratio, 1.0)
        ex.check_equal("the check rejects every position-dependent variant", len(caught), len(wrong))
        ex.check_at_least("the row-sum check rejects softmax over columns", columns_rows.ratio, 1.0)

        # STUDENT ANSWER
        ex.answer(
            text.A1,
            n_cases=s64.cases,
            n_nontrivial=s64.nontrivial,
            n_trivial=s64.cases - s64.nontrivial,
            setting={"has_single_token": any(shape[0] == 1 for shape in shapes)},
            err64=s64.max_error,
            err32=s32.max_error,
            ratio64=s64.max_ratio,
            ratio32=s32.max_ratio,
            ulps64=round(s64.max_error / 2.0**-52),
            ulps32=round(s32.max_error / 2.0**-23),
            max_t=max(shape[0] for shape in shapes),
            err_lemma=lemma_worst.error,
            row_err=row_ok.error,
            fig_t=cfg.figure_tokens,
            fig_perm=", ".join(str(i + 1) for i in fig_perm),
            fig_err=fig_err.error,
            pe_sin=pe_sin.max_error,
            pe_learned=pe_learned.max_error,
            caught=len(caught),
            wrong=len(wrong),
            missed=", ".join(k for k in wrong if k not in caught),
            wrong_min=min(sweeps[k].max_error for k in wrong),
            columns_err=columns.max_error,
            columns_rows=columns_rows.error,
        )


def worst(measured: Any) -> att.Measured:
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


def attention_figure(ctx: Any, alpha: float | None) -> tuple[Any, list[int], att.Measured]:
    """Two rows of three panels: attention of X, of PX, and their difference, without and
    with a positional encoding. Returns the figure, the permutation and the top row's error
    with its ratio to the rounding bound of the two attention matrices."""
    t = ctx.config.figure_tokens
    d = 8
    gen = ctx.torch_generator(offset=11)
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

    fig, axes = plt.subplots(2, 3, figsize=(11.5, 8.2), gridspec_kw={"hspace": 0.45})
    labels = [str(i + 1) for i in range(t)]
    perm_labels = [str(int(i) + 1) for i in perm]
    errors = []
    for row, (a, a_perm), names in (
        (0, top, ("softmax(A) for X", "for PX (original token ids)", "P softmax(A) P^T")),
        (
            1,
            bottom,
            ("for X + E (positional encoding)", "for PX + E (original token ids)", "P softmax(A_E) P^T"),
        ),
    ):
        diff = (a_perm - p @ a @ p.T).abs()
        errors.append(float(diff.max()))
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
        ax.set_title(f"|map of the 2nd panel - {names[2]}|\nmax {errors[-1]:.1e}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046)
    bound = p @ att.attention_rounding_bound(x, w_q, w_k, w_q, alpha, weights=True) @ p.T
    bound = bound + att.attention_rounding_bound(p @ x, w_q, w_k, w_q, alpha, weights=True)
    top_diff = top[1] - p @ top[0] @ p.T
    return fig, perm.tolist(), att.Measured(errors[0], att.ratio_to_bound(top_diff, bound))


# --------------------------------------------------------------------------- exercise 2


def construct_permutation_invariant_readout(ctx: Any) -> None:
    """Q2: from S(X) and a linear operation, build G(X) with G(PX) = G(X); prove and verify it."""
    s = setup_of(ctx)
    shapes, common = s.shapes, s.sweep_args()
    with ctx.exercise(
        "2. A permutation-invariant readout G(X)", question=text.Q2, fidelity="assignment"
    ) as ex:
        ctx.log("exercise 2: invariance sweeps")

        def sum_pool(t: int, d: int, g: torch.Generator) -> att.Readout:
            return att.invariant_pool

        def mean_pool(t: int, d: int, g: torch.Generator) -> att.Readout:
            return lambda v: att.invariant_pool(v, "mean")

        def row_sum(t: int, d: int, g: torch.Generator) -> att.Readout:
            return att.row_sums

        sa = att.self_attention
        sum64 = att.invariance_sweep(sum_pool, sa, shapes, **common)
        sum32 = att.invariance_sweep(sum_pool, sa, shapes, dtype=torch.float32, **common)
        mean64 = att.invariance_sweep(mean_pool, sa, shapes, **common)
        mean32 = att.invariance_sweep(mean_pool, sa, shapes, dtype=torch.float32, **common)
        rows_inv = att.invariance_sweep(row_sum, sa, shapes, **common)
        rows_eq = att.invariance_sweep(row_sum, sa, shapes, equivariant=True, **common)
        flat = att.invariance_sweep(att.flatten_linear_readout, sa, shapes, **common)

        readouts = [
            ("sum over tokens, 1^T S", sum64, sum32, "invariant"),
            ("mean over tokens", mean64, mean32, "invariant"),
            ("row sums, S 1", rows_inv, None, "equivariant"),
            ("flatten + linear, W vec(S)", flat, None, "neither"),
        ]
        ex.table(
            [
                [
                    name,
                    f"{e64.max_error:.2e}",
                    f"{e64.max_ratio:.2e}",
                    "-" if e32 is None else f"{e32.max_error:.2e}",
                    kind,
                ]
                for name, e64, e32, kind in readouts
            ],
            columns=[
                "readout G",
                "max |G(PX) - G(X)| float64",
                "/ rounding bound",
                "float32",
                "by the proof",
            ],
            caption=f"Invariance of four readouts of S(X) over {sum64.cases} cases.",
        )
        ex.figure(readout_figure(readouts), "readout_invariance", caption=text.CAPTION_READOUTS)

        for name, sw in (
            ("invariance_max_err_sum_f64", sum64),
            ("invariance_max_err_sum_f32", sum32),
            ("invariance_max_err_mean_f64", mean64),
            ("invariance_max_err_mean_f32", mean32),
            ("invariance_err_row_sums", rows_inv),
            ("equivariance_err_row_sums", rows_eq),
            ("invariance_err_flatten_linear", flat),
        ):
            ex.metric(name, sw.max_error)
        ex.metric("invariance_bound_ratio_sum_f64", sum64.max_ratio)

        b64, b32 = rounding_baseline(torch.float64), rounding_baseline(torch.float32)
        what = "|G(PX) - G(X)|"
        ex.claim(
            "sum_pool_invariant",
            sum64.within_rounding,
            statement="G = 1^T S(X) is permutation invariant up to rounding (float64)",
            evidence=within(sum64, what),
            baseline=b64,
        )
        ex.claim(
            "sum_pool_invariant_f32",
            sum32.within_rounding,
            statement="G = 1^T S(X) is permutation invariant up to rounding (float32)",
            evidence=within(sum32, what),
            baseline=b32,
        )
        ex.claim(
            "mean_pool_invariant",
            mean64.within_rounding and mean32.within_rounding,
            statement="the mean over tokens is permutation invariant up to rounding (float64 and float32)",
            evidence=within(mean64, what) + "; float32: " + within(mean32, what),
            baseline=b64,
        )
        ex.claim(
            "row_sums_equivariant",
            rows_eq.within_rounding,
            statement="the row sums S(X) 1 are permutation equivariant up to rounding",
            evidence=within(rows_eq, "|S(PX) 1 - P S(X) 1|"),
            baseline=b64,
        )
        ex.claim(
            "row_sums_not_invariant",
            not rows_inv.within_rounding,
            statement="the row sums S(X) 1 are not permutation invariant",
            evidence=within(rows_inv, what),
            baseline=b64,
        )
        ex.claim(
            "flatten_linear_not_invariant",
            not flat.within_rounding,
            statement="a linear layer on the flattened S(X) is not permutation invariant",
            evidence=within(flat, what),
            baseline=b64 + f"; the sum over tokens: ratio {sum64.max_ratio:.2e}",
        )

        ex.check_at_most(
            "G = 1^T S(X) is invariant (float64, error / rounding bound)", sum64.max_ratio, 1.0, points=2
        )
        ex.check_at_most(
            "G = mean over tokens is invariant (float64, error / rounding bound)", mean64.max_ratio, 1.0
        )
        ex.check_at_most("G = 1^T S(X) is invariant (float32, error / rounding bound)", sum32.max_ratio, 1.0)
        ex.check_at_most("row sums S 1 are equivariant (error / rounding bound)", rows_eq.max_ratio, 1.0)
        ex.check_at_least("row sums S 1 are not invariant (error / rounding bound)", rows_inv.max_ratio, 1.0)
        ex.check_at_least("flatten + linear is not invariant (error / rounding bound)", flat.max_ratio, 1.0)

        # STUDENT ANSWER
        ex.answer(
            text.A2,
            n_cases=sum64.cases,
            sum64=sum64.max_error,
            sum32=sum32.max_error,
            mean64=mean64.max_error,
            mean32=mean32.max_error,
            rows_inv=rows_inv.max_error,
            rows_eq=rows_eq.max_error,
            flat=flat.max_error,
            flat_ratio=flat.max_ratio,
            sum_ratio=sum64.max_ratio,
            max_t=max(shape[0] for shape in shapes),
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
