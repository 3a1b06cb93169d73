"""The lab's run: each exercise measures with :mod:`.attention` and :mod:`.ffn` and records
questions, answers (:mod:`.text`), figures, tables, metrics and checks. No maths here."""

from __future__ import annotations

import math
from typing import Any

import matplotlib
import torch

from . import attention as att
from . import ffn, text

matplotlib.use("Agg")  # before pyplot: the lab never opens a window

import matplotlib.pyplot as plt  # noqa: E402

TOL64 = 1e-12  # float64: a few hundred ulps of headroom over the rounding seen in practice
TOL32 = 1e-5  # float32 (and the FFN forms, as the assignment asks)
BROKEN = 1e-3  # an error this large is not rounding: the property fails


def run_experiment(ctx: Any) -> None:
    cfg = ctx.config
    alpha = cfg.alpha if cfg.alpha > 0 else None
    common = dict(draws=cfg.draws, permutations=cfg.permutations, seed=ctx.seed, alpha=alpha)
    n_cases = len(cfg.shapes) * cfg.draws * cfg.permutations
    ctx.note(
        text.NOTE,
        n_shapes=len(cfg.shapes),
        shapes=", ".join(f"({t}, {d}, {k}, {v})" for t, d, k, v in cfg.shapes),
        draws=cfg.draws,
        permutations=cfg.permutations,
        n_cases=n_cases,
        alpha=f"{alpha:g}" if alpha else r"\sqrt{D_k}",
        device=str(ctx.device),
    )
    exercise_equivariance(ctx, common, n_cases)
    exercise_invariance(ctx, common, n_cases)
    exercise_ffn(ctx)


# --------------------------------------------------------------------------- exercise 1


def exercise_equivariance(ctx: Any, common: dict[str, Any], n_cases: int) -> None:
    cfg = ctx.config
    shapes = cfg.shapes
    with ctx.exercise("1. Permutation equivariance of self-attention", question=text.Q1) as ex:
        ctx.log("exercise 1: equivariance sweeps")
        s64 = att.equivariance_sweep(att.self_attention, shapes, **common)
        s32 = att.equivariance_sweep(att.self_attention, shapes, dtype=torch.float32, **common)
        cases = list(att.random_cases(shapes, cfg.draws, min(cfg.permutations, 3), torch.float64, ctx.seed))
        err_lemma = max(lemma_error(c, common["alpha"]) for c in cases)
        row_err = max(att.row_sum_error(att.self_attention, c, common["alpha"]) for c in cases)

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
        rows, results = [], {}
        for label, fn in ctx.progress(list(variants.items()), desc="implementations"):
            err = (
                s64.max_error
                if fn is att.self_attention
                else att.equivariance_sweep(fn, shapes, **common).max_error
            )
            # the row-sum probe appends a feature to X, which a position table would encode too
            rsum = (
                max(att.row_sum_error(fn, c, common["alpha"]) for c in cases)
                if "encoding" not in label
                else None
            )
            results[label] = (err, rsum)
            rows.append(
                [
                    label,
                    f"{err:.2e}",
                    "yes" if err < TOL64 else "no",
                    "n/a" if rsum is None else f"{rsum:.2e}",
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
            rows,
            columns=["implementation", "max |PS(X) - S(PX)|", "passes (< 1e-12)", "max |A1 - 1|"],
            caption="The equivariance check (float64) and the row-sum check on correct and wrong implementations.",
        )

        fig, fig_perm, fig_err = attention_figure(ctx, common["alpha"])
        ex.figure(
            fig,
            "attention_permuted",
            caption=text.CAPTION_ATTENTION.replace("{{ t }}", str(cfg.figure_tokens)),
        )

        pe_sin = results["sinusoidal positional encoding"][0]
        pe_learned = results["learned positional encoding"][0]
        columns_err, columns_rows = results["bug: softmax over columns"]
        wrong = [k for k in variants if k not in position_free]
        caught = sum(results[k][0] > BROKEN for k in wrong)

        ex.metric("equivariance_max_err_f64", s64.max_error)
        ex.metric("equivariance_max_err_f32", s32.max_error)
        ex.metric("softmax_lemma_max_err", err_lemma)
        ex.metric("attention_row_sum_max_err", row_err)
        ex.metric("equivariance_err_sinusoidal_pe", pe_sin)
        ex.metric("equivariance_err_learned_pe", pe_learned)
        ex.metric("equivariance_err_softmax_columns", columns_err)
        ex.metric("equivariance_err_reshape_bug", results["bug: K^T written as K.reshape(D_k, T)"][0])
        ex.metric("equivariance_err_causal", results["causal mask (decoder attention)"][0])
        ex.metric("equivariance_cases", n_cases)

        ex.check_at_most("PS(X) = S(PX) in float64", s64.max_error, TOL64, points=3)
        ex.check_at_most("PS(X) = S(PX) in float32", s32.max_error, TOL32, points=1)
        ex.check_at_most("softmax(PAP^T) = P softmax(A) P^T", err_lemma, TOL64, points=1)
        ex.check_at_most("attention rows sum to one", row_err, TOL64, points=1)
        ex.check_at_least("sinusoidal positional encoding breaks equivariance", pe_sin, BROKEN, points=1)
        ex.check_at_least("learned positional encoding breaks equivariance", pe_learned, BROKEN, points=1)
        ex.check_equal("the check rejects every position-dependent variant", caught, len(wrong), points=1)
        ex.check_at_least("the row-sum check rejects softmax over columns", columns_rows, BROKEN, points=1)

        ex.answer(
            text.A1,
            n_cases=n_cases,
            err64=s64.max_error,
            err32=s32.max_error,
            err64_ok=s64.max_error < TOL64,
            ulps64=round(s64.max_error / 2.0**-52),
            ulps32=round(s32.max_error / 2.0**-23),
            max_t=max(shape[0] for shape in shapes),
            err_lemma=err_lemma,
            row_err=row_err,
            fig_t=cfg.figure_tokens,
            fig_perm=", ".join(str(i + 1) for i in fig_perm),
            fig_err=fig_err,
            pe_sin=pe_sin,
            pe_learned=pe_learned,
            caught=caught,
            wrong=len(wrong),
            wrong_min=min(results[k][0] for k in wrong),
            columns_equivariant=columns_err < TOL64,
            columns_err=columns_err,
            columns_rows=columns_rows,
        )


def lemma_error(case: att.Case, alpha: float | None) -> float:
    """``max |softmax(P A P^T) - P softmax(A) P^T|`` on one case's scores."""
    a = att.attention_scores(case.x, case.w_q, case.w_k, alpha)
    p = case.p
    p_t = p.transpose(-2, -1)
    return float((torch.softmax(p @ a @ p_t, dim=-1) - p @ torch.softmax(a, dim=-1) @ p_t).abs().max())


def attention_figure(ctx: Any, alpha: float | None) -> tuple[Any, list[int], float]:
    """Two rows of three panels: attention of X, of PX, and their difference, without and
    with a positional encoding. Returns the figure, the permutation and the top row's error."""
    t = ctx.config.figure_tokens
    d = 8
    gen = ctx.torch_generator(offset=11)
    x = torch.randn(t, d, generator=gen, dtype=torch.float64)
    # larger weights than the sweeps, so that the maps have visible structure
    w_q, w_k = (2.0 * torch.randn(d, d, generator=gen, dtype=torch.float64) / math.sqrt(d) for _ in range(2))
    perm = torch.randperm(t, generator=gen)
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
    return fig, perm.tolist(), errors[0]


# --------------------------------------------------------------------------- exercise 2


def exercise_invariance(ctx: Any, common: dict[str, Any], n_cases: int) -> None:
    shapes = ctx.config.shapes
    with ctx.exercise("2. A permutation-invariant readout G(X)", question=text.Q2) as ex:
        ctx.log("exercise 2: invariance sweeps")

        def sum_pool(t: int, d: int, g: torch.Generator) -> att.Readout:
            return att.invariant_pool

        def mean_pool(t: int, d: int, g: torch.Generator) -> att.Readout:
            return lambda s: att.invariant_pool(s, "mean")

        def row_sum(t: int, d: int, g: torch.Generator) -> att.Readout:
            return att.row_sums

        sa = att.self_attention
        sum64 = att.invariance_sweep(sum_pool, sa, shapes, **common).max_error
        sum32 = att.invariance_sweep(sum_pool, sa, shapes, dtype=torch.float32, **common).max_error
        mean64 = att.invariance_sweep(mean_pool, sa, shapes, **common).max_error
        mean32 = att.invariance_sweep(mean_pool, sa, shapes, dtype=torch.float32, **common).max_error
        rows_inv = att.invariance_sweep(row_sum, sa, shapes, **common).max_error
        rows_eq = att.equivariance_sweep(
            lambda *a: att.row_sums(sa(*a)).unsqueeze(-1), shapes, **common
        ).max_error
        flat = att.invariance_sweep(att.flatten_linear_readout, sa, shapes, **common).max_error

        readouts = [
            ("sum over tokens, 1^T S", sum64, sum32, "invariant"),
            ("mean over tokens", mean64, mean32, "invariant"),
            ("row sums, S 1", rows_inv, None, "equivariant"),
            ("flatten + linear, W vec(S)", flat, None, "neither"),
        ]
        ex.table(
            [
                [name, f"{e64:.2e}", "-" if e32 is None else f"{e32:.2e}", kind]
                for name, e64, e32, kind in readouts
            ],
            columns=["readout G", "max |G(PX) - G(X)| float64", "float32", "by the proof"],
            caption=f"Invariance of four readouts of S(X) over {n_cases} cases.",
        )
        ex.figure(readout_figure(readouts), "readout_invariance", caption=text.CAPTION_READOUTS)

        for name, value in (
            ("invariance_max_err_sum_f64", sum64),
            ("invariance_max_err_sum_f32", sum32),
            ("invariance_max_err_mean_f64", mean64),
            ("invariance_max_err_mean_f32", mean32),
            ("invariance_err_row_sums", rows_inv),
            ("equivariance_err_row_sums", rows_eq),
            ("invariance_err_flatten_linear", flat),
        ):
            ex.metric(name, value)
        ex.check_at_most("G = 1^T S(X) is invariant (float64)", sum64, TOL64, points=2)
        ex.check_at_most("G = mean over tokens is invariant (float64)", mean64, TOL64, points=1)
        ex.check_at_most("G = 1^T S(X) is invariant (float32)", sum32, 10 * TOL32, points=1)
        ex.check_at_most("row sums S 1 are equivariant", rows_eq, TOL64, points=1)
        ex.check_at_least("row sums S 1 are not invariant", rows_inv, BROKEN, points=1)
        ex.check_at_least("flatten + linear is not invariant", flat, BROKEN, points=1)

        ex.answer(
            text.A2,
            n_cases=n_cases,
            sum64=sum64,
            sum32=sum32,
            mean64=mean64,
            mean32=mean32,
            rows_inv=rows_inv,
            rows_eq=rows_eq,
            flat=flat,
            sum_ok=sum64 < TOL64,
            mean_ok=mean64 < TOL64,
            flat_fails=flat > BROKEN,
            max_t=max(s[0] for s in shapes),
        )


def readout_figure(readouts: list[tuple[str, float, float | None, str]]) -> Any:
    fig, ax = plt.subplots(figsize=(7.5, 3.0))
    names = [r[0] for r in readouts]
    values = [max(r[1], 1e-18) for r in readouts]  # an exact 0 has no place on a log axis
    colors = ["tab:green" if r[1] < TOL64 else "tab:red" for r in readouts]
    ax.barh(names, values, color=colors)
    ax.set_xscale("log")
    ax.axvline(TOL64, color="k", linestyle="--", linewidth=1)
    ax.invert_yaxis()
    ax.set_xlabel("max |G(PX) - G(X)|")
    return fig


# --------------------------------------------------------------------------- exercise 3

#: Why a form is slower than nn.Linear, or why it is not (the text picks by the measured ratio).
SLOWER = {
    "nn.Conv1d(k=1)": "the two transposes copy the activations to channels-first and back, and the "
    "convolution path is more general (and less tuned) than a plain matrix multiplication for a "
    "width-one kernel.",
    "torch.func vmap": "`vmap` rewrites each per-position operation into a batched one (it never loops "
    "in Python), but `functional_call` swaps the parameters in and the batching rules run on every "
    "call, a fixed overhead that matters most for small inputs.",
    "functionalize(in-place)": "`functionalize` is a transform applied at every call, intercepting each "
    "operation and replaying it out of place, a cost that a compiler pays once when tracing, not per call.",
}
SAME = {
    "nn.Conv1d(k=1)": "the backend maps a width-one convolution onto the same matrix multiplication, and "
    "the transposes are cheap at this size.",
    "torch.func vmap": "the batching rules turn the per-position products into the same matrix "
    "multiplication, and their overhead is small next to it at this size.",
    "functionalize(in-place)": "replaying the three in-place operations out of place costs little next "
    "to the two matrix multiplications.",
}


def exercise_ffn(ctx: Any) -> None:
    cfg = ctx.config
    device = ctx.device
    with ctx.exercise("3. The position-wise feed-forward network, three ways", question=text.Q3) as ex:
        ctx.log("exercise 3: FFN forms")
        gen = ctx.torch_generator(offset=3)
        rows, worst = [], {"nn.Linear": 0.0, "nn.Conv1d(k=1)": 0.0, "torch.func vmap": 0.0}
        shared = True
        for b, t, d in ctx.progress(list(cfg.ffn_shapes), desc="FFN shapes"):
            linear = ffn.LinearFFN(d, cfg.d_ff).to(device)  # nn's init, from the run's seeded RNG
            conv = ffn.ConvFFN(linear)
            shared &= conv.conv1.weight.data_ptr() == linear.fc1.weight.data_ptr()
            x = torch.randn(b, t, d, generator=gen).to(device)
            with torch.inference_mode():
                ref = ffn.ffn_reference(x, *ffn.linear_weights(linear))
                outs = {
                    "nn.Linear": linear(x),
                    "nn.Conv1d(k=1)": conv(x),
                    "torch.func vmap": ffn.make_vmap_ffn(linear)(x),
                }
            errs = {k: float((v - ref).abs().max()) for k, v in outs.items()}
            for k, v in errs.items():
                worst[k] = max(worst[k], v)
            rows.append([f"({b}, {t}, {d})", linear.d_ff, *(f"{errs[k]:.2e}" for k in worst)])
        ex.table(rows, columns=["(B, T, D)", "d_ff", *worst], caption=text.CAPTION_FFN_ERRORS)

        # functionalize, on a small input (tracing cost grows with nothing but the graph)
        small = ffn.LinearFFN(16, cfg.d_ff).to(device)
        xs = torch.randn(2, 3, 16, generator=gen).to(device)
        weights = ffn.linear_weights(small)
        inplace = ffn.inplace_ops(ffn.ffn_inplace, xs, *weights)
        inplace_func = ffn.inplace_ops(ffn.functionalized_ffn(), xs, *weights)
        with torch.inference_mode():
            err_func = float(
                (ffn.functionalized_ffn()(xs, *weights) - ffn.ffn_reference(xs, *weights)).abs().max()
            )

        # timing: the three forms (and the functionalized one) side by side in one run
        b, t, d = cfg.timing_shape
        linear = ffn.LinearFFN(d, cfg.d_ff).to(device)
        conv = ffn.ConvFFN(linear)
        w = ffn.linear_weights(linear)
        functional = ffn.functionalized_ffn()
        forms = {
            "nn.Linear": linear,
            "nn.Conv1d(k=1)": conv,
            "torch.func vmap": ffn.make_vmap_ffn(linear),
            "functionalize(in-place)": lambda v: functional(v, *w),
        }
        xt = torch.randn(b, t, d, generator=gen).to(device)
        times = ffn.time_forms(forms, xt, repeats=cfg.timing_repeats)
        base = times["nn.Linear"]
        ex.table(
            [[name, f"{1e3 * s:.3f}", f"{s / base:.2f}"] for name, s in times.items()],
            columns=["form", "median ms", "time / nn.Linear"],
            caption=text.CAPTION_TIMING,
        )
        fastest = min(times, key=times.get)

        for k, key in (("nn.Linear", "linear"), ("nn.Conv1d(k=1)", "conv1d"), ("torch.func vmap", "vmap")):
            ex.metric(f"ffn_max_err_{key}", worst[k])
        ex.metric("ffn_max_err_functionalize", err_func)
        ex.metric("ffn_time_ratio_conv1d", times["nn.Conv1d(k=1)"] / base)
        ex.metric("ffn_time_ratio_vmap", times["torch.func vmap"] / base)
        ex.metric("ffn_time_ratio_functionalize", times["functionalize(in-place)"] / base)
        ex.metric("ffn_time_linear_ms", 1e3 * base)

        ex.check_at_most("nn.Linear form = formula", worst["nn.Linear"], TOL32, points=1)
        ex.check_at_most("Conv1d(kernel_size=1) form = formula", worst["nn.Conv1d(k=1)"], TOL32, points=2)
        ex.check_at_most("vmap(functional_call) form = formula", worst["torch.func vmap"], TOL32, points=2)
        ex.check("the forms share one set of weights", shared, expected=True, actual=shared, points=1)
        ex.check_at_most("functionalize keeps the output", err_func, TOL32, points=1)
        ex.check_equal("functionalize removes every in-place op", len(inplace_func), 0, points=1)

        d0 = cfg.ffn_shapes[0][2]
        d_ff0 = ffn.default_d_ff(d0, cfg.d_ff)
        ex.answer(
            text.A3,
            n_params=2 * d0 * d_ff0 + d_ff0 + d0,
            d_model=d0,
            d_ff=d_ff0,
            shared="checked" if shared else "**not** the case",
            n_shapes=len(cfg.ffn_shapes),
            ffn_shapes=", ".join(f"({b}, {t}, {d})" for b, t, d in cfg.ffn_shapes),
            err_linear=worst["nn.Linear"],
            err_conv=worst["nn.Conv1d(k=1)"],
            err_vmap=worst["torch.func vmap"],
            all_close=max(worst.values()) <= TOL32,
            n_inplace=len(inplace),
            inplace_names=", ".join(f"`{n}`" for n in inplace) or "none",
            n_inplace_func=len(inplace_func),
            func_names="none" if not inplace_func else ", ".join(f"`{n}`" for n in inplace_func),
            err_func=err_func,
            timing_shape=f"({b}, {t}, {d})",
            timing_dff=linear.d_ff,
            device=str(device),
            repeats=cfg.timing_repeats,
            fastest=fastest,
            ratios=[
                {
                    "name": name,
                    "ratio": times[name] / base,
                    "slower": SLOWER[name],
                    "same": SAME[name],
                }
                for name in times
                if name != "nn.Linear"
            ],
        )
