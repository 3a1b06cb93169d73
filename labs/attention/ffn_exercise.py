"""Exercise 3, named after the assignment's question: the position-wise FFN three ways,
measured with :mod:`.ffn` and recorded with its claims (rounding bounds for agreement, paired
interleaved rounds for timing). No maths here."""

from __future__ import annotations

from typing import Any

import torch

from labrunner.stats import Ratio, SignTest, sign_test_needed, time_ratio

from . import ffn, text
from .rounding import ratio_to_bound, rounding_baseline

# --------------------------------------------------------------------------- exercise 3

#: Why a form is slower than nn.Linear, or why it is not (the text picks by the recorded claims).
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
#: Metric and claim names of the forms.
KEYS = {"nn.Linear": "linear", "nn.Conv1d(k=1)": "conv1d", "torch.func vmap": "vmap"}
TIMED_KEYS = {**KEYS, "functionalize(in-place)": "functionalize"}


def implement_position_wise_ffn_three_ways(ctx: Any) -> None:
    """Q3: the position-wise FFN with nn.Linear, nn.Conv1d(k=1) and torch.func; do they agree,
    what does functionalize do, and how fast is each."""
    cfg = ctx.config
    device = ctx.device
    with ctx.exercise(
        "3. The position-wise feed-forward network, three ways", question=text.Q3, fidelity="assignment"
    ) as ex:
        ctx.log("exercise 3: FFN forms")
        gen = ctx.torch_generator(offset=3)
        rows = []
        worst_err = dict.fromkeys(KEYS, 0.0)
        worst_ratio = dict.fromkeys(KEYS, 0.0)
        shared = True
        for b, t, d in ctx.progress(list(cfg.ffn_shapes), desc="FFN shapes"):
            linear = ffn.LinearFFN(d, cfg.d_ff).to(device)  # nn's init, from the run's seeded RNG
            conv = ffn.ConvFFN(linear)
            shared &= conv.conv1.weight.data_ptr() == linear.fc1.weight.data_ptr()
            x = torch.randn(b, t, d, generator=gen).to(device)
            weights = ffn.linear_weights(linear)
            with torch.inference_mode():
                ref = ffn.ffn_reference(x, *weights)
                outs = {
                    "nn.Linear": linear(x),
                    "nn.Conv1d(k=1)": conv(x),
                    "torch.func vmap": ffn.make_vmap_ffn(linear)(x),
                }
            bound = 2 * ffn.ffn_rounding_bound(x, *weights)  # the form's rounding and the formula's
            for k, out in outs.items():
                worst_err[k] = max(worst_err[k], float((out - ref).abs().max()))
                worst_ratio[k] = max(worst_ratio[k], ratio_to_bound(out - ref, bound))
            rows.append(
                [
                    f"({b}, {t}, {d})",
                    linear.d_ff,
                    *(f"{float((outs[k] - ref).abs().max()):.2e}" for k in KEYS),
                ]
            )
        ex.table(rows, columns=["(B, T, D)", "d_ff", *KEYS], caption=text.CAPTION_FFN_ERRORS)

        # functionalize, on a small input (tracing cost grows with nothing but the graph)
        small = ffn.LinearFFN(16, cfg.d_ff).to(device)
        xs = torch.randn(2, 3, 16, generator=gen).to(device)
        weights = ffn.linear_weights(small)
        inplace = ffn.inplace_ops(ffn.ffn_inplace, xs, *weights)
        inplace_func = ffn.inplace_ops(ffn.functionalized_ffn(), xs, *weights)
        with torch.inference_mode():
            func_diff = ffn.functionalized_ffn()(xs, *weights) - ffn.ffn_reference(xs, *weights)
        err_func = float(func_diff.abs().max())
        ratio_func = ratio_to_bound(func_diff, 2 * ffn.ffn_rounding_bound(xs, *weights))

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
        n_rounds = len(base.rounds)
        needed = sign_test_needed(n_rounds)
        # what a form no different from nn.Linear reaches by chance, on either side
        chance = SignTest(needed, n_rounds - needed).p_two_sided if needed else 1.0
        ratio = {name: time_ratio(tm, base) for name, tm in times.items()}
        ex.table(
            [
                [
                    name,
                    f"{1e3 * tm.median:.3f}",
                    f"{ratio[name].median:.2f}",
                    "-" if name == "nn.Linear" else interval_text(ratio[name]),
                ]
                for name, tm in times.items()
            ],
            columns=["form", "median ms", "time / nn.Linear (median of the rounds)", "95 % interval"],
            caption=text.CAPTION_TIMING,
        )

        for k, key in KEYS.items():
            ex.metric(f"ffn_max_err_{key}", worst_err[k])
        ex.metric("ffn_max_err_functionalize", err_func)
        for name, key in TIMED_KEYS.items():
            if name != "nn.Linear":
                ex.metric(f"ffn_time_ratio_{key}", ratio[name].median)
        ex.metric("ffn_time_linear_ms", 1e3 * base.median)

        b32 = rounding_baseline(torch.float32)
        ex.claim(
            "ffn_forms_agree",
            all(r <= 1 for r in worst_ratio.values()),
            statement="the three forms compute the formula, up to rounding, on every shape",
            evidence="; ".join(
                f"{k}: largest difference {worst_err[k]:.2e}, {worst_ratio[k]:.2e} of the rounding bound"
                for k in KEYS
            ),
            baseline=b32,
        )
        ex.claim(
            "ffn_forms_share_weights",
            shared,
            statement="the Conv1d form's weights are the Linear form's, in the same memory",
            evidence=f"data pointers equal on all {len(cfg.ffn_shapes)} shapes: {shared}",
        )
        ex.claim(
            "vmap_bit_identical",
            worst_err["torch.func vmap"] == 0,
            statement="the vmap form returns exactly the formula's numbers",
            evidence=f"largest difference {worst_err['torch.func vmap']:.2e}",
            baseline="exact equality: no rounding allowance",
        )
        ex.claim(
            "functionalize_removes_mutation",
            not inplace_func,
            statement="torch.func.functionalize leaves no in-place operation",
            evidence=f"in-place aten ops: {len(inplace)} before ({', '.join(inplace) or 'none'}), "
            f"{len(inplace_func)} after ({', '.join(inplace_func) or 'none'})",
            baseline="the count recorded by a TorchDispatchMode, exact",
        )
        ex.claim(
            "functionalize_keeps_output",
            ratio_func <= 1,
            statement="the functionalized FFN returns the formula's output, up to rounding",
            evidence=f"largest difference {err_func:.2e}, {ratio_func:.2e} of the rounding bound",
            baseline=b32,
        )
        verdicts = {}
        for name, key in TIMED_KEYS.items():
            if name == "nn.Linear":
                continue
            r = ratio[name]
            verdicts[name] = "slower" if r.slower else "faster" if r.faster else "same"
            evidence = f"time / nn.Linear, median of the interleaved rounds: {r.text()}"

            baseline = (
                f"nn.Linear in the same rounds; a form that is no different is on one side in at least "
                f"{needed} of {n_rounds} rounds with probability {chance:.3f} (sign test, two-sided)"
                if needed
                else f"nn.Linear in the same rounds; {n_rounds} rounds are too few for the sign test to decide"
            )
            for side in ("slower", "faster"):
                ex.claim(
                    f"ffn_{key}_{side}",
                    verdicts[name] == side,
                    statement=f"{name} is {side} than nn.Linear (in at least {needed} of {n_rounds} rounds)",
                    evidence=evidence,
                    baseline=baseline,
                )
        ex.claim(
            "ffn_linear_fastest",
            all(v == "slower" for v in verdicts.values()),
            statement="nn.Linear is the fastest form",
            evidence=", ".join(f"{name}: {v}" for name, v in verdicts.items()),
            baseline=f"each form against nn.Linear in {n_rounds} interleaved rounds",
        )

        ex.check_at_most("nn.Linear form = formula (error / rounding bound)", worst_ratio["nn.Linear"], 1.0)
        ex.check_at_most(
            "Conv1d(kernel_size=1) form = formula (error / rounding bound)",
            worst_ratio["nn.Conv1d(k=1)"],
            1.0,
            points=2,
        )
        ex.check_at_most(
            "vmap(functional_call) form = formula (error / rounding bound)",
            worst_ratio["torch.func vmap"],
            1.0,
            points=2,
        )
        ex.check("the forms share one set of weights", shared, expected=True, actual=shared)
        ex.check_at_most("functionalize keeps the output (error / rounding bound)", ratio_func, 1.0)
        ex.check_equal("functionalize removes every in-place op", len(inplace_func), 0)

        d0 = cfg.ffn_shapes[0][2]
        d_ff0 = ffn.default_d_ff(d0, cfg.d_ff)
        # STUDENT ANSWER
        ex.answer(
            text.A3,
            n_params=2 * d0 * d_ff0 + d_ff0 + d0,
            d_model=d0,
            d_ff=d_ff0,
            n_shapes=len(cfg.ffn_shapes),
            ffn_shapes=", ".join(f"({b}, {t}, {d})" for b, t, d in cfg.ffn_shapes),
            err_linear=worst_err["nn.Linear"],
            err_conv=worst_err["nn.Conv1d(k=1)"],
            err_vmap=worst_err["torch.func vmap"],
            max_ratio=max(worst_ratio.values()),
            n_inplace=len(inplace),
            inplace_names=", ".join(f"`{n}`" for n in inplace) or "none",
            n_inplace_func=len(inplace_func),
            func_names=", ".join(f"`{n}`" for n in inplace_func) or "none",
            err_func=err_func,
            timing_shape=f"({b}, {t}, {d})",
            timing_dff=linear.d_ff,
            device=str(device),
            repeats=cfg.timing_repeats,
            rounds=n_rounds,
            needed=needed,
            setting={"rounds_can_decide": needed is not None},
            chance=chance,
            ratios=[
                {
                    "name": name,
                    "key": key,
                    "ratio": ratio[name].median,
                    "interval": interval_text(ratio[name]),
                    "slower": SLOWER[name],
                    "same": SAME[name],
                }
                for name, key in TIMED_KEYS.items()
                if name != "nn.Linear"
            ],
        )


def interval_text(r: Ratio) -> str:
    """``1.12–1.31`` (the 95 % interval of the median per-round ratio), or why there is none."""
    return f"{r.low:.2f}–{r.high:.2f}" if r.low is not None and r.high is not None else "too few rounds"
