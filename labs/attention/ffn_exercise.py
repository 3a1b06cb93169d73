"""Exercise 3, measured then recorded: :func:`measure_ffn_forms` compares the position-wise
FFN's three forms of :mod:`.ffn` (agreement, functionalize, timing) and returns an
:class:`FFNForms` (no context needed); :func:`record_ffn_forms` records it with its claims
(rounding bounds for agreement, paired interleaved rounds for timing). No maths here."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

from labrunner import quiet_progress
from labrunner.stats import Ratio, SignTest, Timing, sign_test_needed, time_ratio

from . import ffn, text
from .rounding import check_against_bound, ratio_to_bound, rounding_baseline

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


@dataclass(frozen=True)
class FFNForms:
    """What Exercise 3 measured: per form, the largest difference from the formula over the
    shapes and its largest ratio to the rounding bound (``errors``, ``ratios``), the table of
    differences per shape, whether the Conv1d form shares the Linear form's weights; the
    in-place operations before and after ``functionalize`` and its output's difference; and
    the interleaved timings of the forms on ``timing_shape``."""

    ffn_shapes: tuple[tuple[int, int, int], ...]
    d_ff: int
    rows: list[list[Any]]
    errors: dict[str, float]
    ratios: dict[str, float]
    shared: bool
    inplace: list[str]
    inplace_func: list[str]
    err_func: float
    ratio_func: float
    timing_shape: tuple[int, int, int]
    timing_dff: int
    repeats: int
    device: str
    times: dict[str, Timing]

    @property
    def rounds(self) -> int:
        return len(self.times["nn.Linear"].rounds)

    @property
    def needed(self) -> int | None:
        """Rounds on one side that a sign test needs to decide (None: too few rounds)."""
        return sign_test_needed(self.rounds)

    @property
    def chance(self) -> float:
        """What a form no different from nn.Linear reaches by chance, on either side."""
        return SignTest(self.needed, self.rounds - self.needed).p_two_sided if self.needed else 1.0

    @property
    def ratio(self) -> dict[str, Ratio]:
        """Each form's time over nn.Linear's, round by round."""
        return {name: time_ratio(tm, self.times["nn.Linear"]) for name, tm in self.times.items()}

    @property
    def verdicts(self) -> dict[str, str]:
        """Each form against nn.Linear: "slower", "faster" or "same" (the sign test's verdict)."""
        ratio = self.ratio
        return {
            name: "slower" if ratio[name].slower else "faster" if ratio[name].faster else "same"
            for name in TIMED_KEYS
            if name != "nn.Linear"
        }


def measure_ffn_forms(
    cfg: Any, device: Any, seed: int, progress: Callable[..., Iterable[Any]] = quiet_progress
) -> FFNForms:
    """Q3's measurements on ``cfg``'s shapes (``ffn_shapes``, ``d_ff``, ``timing_shape``,
    ``timing_repeats``). Inputs are drawn from a generator seeded with ``seed + 3``; the
    modules take nn's initialisation from torch's global generator (seeded by the run)."""
    gen = torch.Generator().manual_seed(seed + 3)
    rows = []
    errors = dict.fromkeys(KEYS, 0.0)
    ratios = dict.fromkeys(KEYS, 0.0)
    shared = True
    for b, t, d in progress(list(cfg.ffn_shapes), desc="FFN shapes"):
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
            errors[k] = max(errors[k], float((out - ref).abs().max()))
            ratios[k] = max(ratios[k], ratio_to_bound(out - ref, bound))
        rows.append(
            [f"({b}, {t}, {d})", linear.d_ff, *(f"{float((outs[k] - ref).abs().max()):.2e}" for k in KEYS)]
        )

    # functionalize, on a small input (tracing cost grows with nothing but the graph)
    small = ffn.LinearFFN(16, cfg.d_ff).to(device)
    xs = torch.randn(2, 3, 16, generator=gen).to(device)
    weights = ffn.linear_weights(small)
    inplace = ffn.inplace_ops(ffn.ffn_inplace, xs, *weights)
    inplace_func = ffn.inplace_ops(ffn.functionalized_ffn(), xs, *weights)
    with torch.inference_mode():
        func_diff = ffn.functionalized_ffn()(xs, *weights) - ffn.ffn_reference(xs, *weights)
    ratio_func = ratio_to_bound(func_diff, 2 * ffn.ffn_rounding_bound(xs, *weights))

    linear, times = time_ffn_forms(cfg, device, gen)
    return FFNForms(
        tuple(cfg.ffn_shapes),
        cfg.d_ff,
        rows,
        errors,
        ratios,
        bool(shared),
        inplace,
        inplace_func,
        float(func_diff.abs().max()),
        ratio_func,
        tuple(cfg.timing_shape),
        linear.d_ff,
        cfg.timing_repeats,
        str(device),
        times,
    )


def time_ffn_forms(cfg: Any, device: Any, gen: torch.Generator) -> tuple[ffn.LinearFFN, dict[str, Timing]]:
    """The three forms (and the functionalized one) timed side by side on ``cfg.timing_shape``."""
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
    return linear, ffn.time_forms(forms, xt, repeats=cfg.timing_repeats)


# --------------------------------------------------------------------------- recording


def record_ffn_forms(ex: Any, m: FFNForms) -> None:
    """Record Exercise 3: the two tables, metrics, claims and the checks on them."""
    ratio = m.ratio
    ex.table(m.rows, columns=["(B, T, D)", "d_ff", *KEYS], caption=text.CAPTION_FFN_ERRORS)
    ex.table(
        [
            [
                name,
                f"{1e3 * tm.median:.3f}",
                f"{ratio[name].median:.2f}",
                "-" if name == "nn.Linear" else interval_text(ratio[name]),
            ]
            for name, tm in m.times.items()
        ],
        columns=["form", "median ms", "time / nn.Linear (median of the rounds)", "95 % interval"],
        caption=text.CAPTION_TIMING,
    )
    for k, key in KEYS.items():
        ex.metric(f"ffn_max_err_{key}", m.errors[k])
    ex.metric("ffn_max_err_functionalize", m.err_func)
    for name, key in TIMED_KEYS.items():
        if name != "nn.Linear":
            ex.metric(f"ffn_time_ratio_{key}", ratio[name].median)
    ex.metric("ffn_time_linear_ms", 1e3 * m.times["nn.Linear"].median)

    shared, removed, kept = record_agreement(ex, m)
    record_timing(ex, m)
    for k, name in (
        ("nn.Linear", "nn.Linear form = formula"),
        ("nn.Conv1d(k=1)", "Conv1d(kernel_size=1) form = formula"),
        ("torch.func vmap", "vmap(functional_call) form = formula"),
    ):
        points = 1.0 if k == "nn.Linear" else 2.0
        check_against_bound(
            ex, f"{name} (error / rounding bound)", m.ratios[k] <= 1, m.ratios[k], points=points
        )
    ex.check("the forms share one set of weights", shared, expected=True, actual=shared)
    check_against_bound(ex, "functionalize keeps the output (error / rounding bound)", kept, m.ratio_func)
    ex.check("functionalize removes every in-place op", removed, expected=0, actual=len(m.inplace_func))


def record_agreement(ex: Any, m: FFNForms) -> tuple[bool, bool, bool]:
    """The claims on what the forms compute; returns the outcomes that checks test too
    (shared weights, no in-place operation left, functionalize keeps the output)."""
    b32 = rounding_baseline(torch.float32)
    ex.claim(
        "ffn_forms_agree",
        all(r <= 1 for r in m.ratios.values()),
        statement="the three forms compute the formula, up to rounding, on every shape",
        evidence="; ".join(
            f"{k}: largest difference {m.errors[k]:.2e}, {m.ratios[k]:.2e} of the rounding bound"
            for k in KEYS
        ),
        baseline=b32,
    )
    shared = ex.claim(
        "ffn_forms_share_weights",
        m.shared,
        statement="the Conv1d form's weights are the Linear form's, in the same memory",
        evidence=f"data pointers equal on all {len(m.ffn_shapes)} shapes: {m.shared}",
    )
    ex.claim(
        "vmap_bit_identical",
        m.errors["torch.func vmap"] == 0,
        statement="the vmap form returns exactly the formula's numbers",
        evidence=f"largest difference {m.errors['torch.func vmap']:.2e}",
        baseline="exact equality: no rounding allowance",
    )
    removed = ex.claim(
        "functionalize_removes_mutation",
        not m.inplace_func,
        statement="torch.func.functionalize leaves no in-place operation",
        evidence=f"in-place aten ops: {len(m.inplace)} before ({', '.join(m.inplace) or 'none'}), "
        f"{len(m.inplace_func)} after ({', '.join(m.inplace_func) or 'none'})",
        baseline="the count recorded by a TorchDispatchMode, exact",
    )
    kept = ex.claim(
        "functionalize_keeps_output",
        m.ratio_func <= 1,
        statement="the functionalized FFN returns the formula's output, up to rounding",
        evidence=f"largest difference {m.err_func:.2e}, {m.ratio_func:.2e} of the rounding bound",
        baseline=b32,
    )
    return shared, removed, kept


def record_timing(ex: Any, m: FFNForms) -> None:
    """The claims on speed: each form slower, faster or no different than nn.Linear."""
    needed, n_rounds, ratio, verdicts = m.needed, m.rounds, m.ratio, m.verdicts
    baseline = (
        f"nn.Linear in the same rounds; a form that is no different is on one side in at least "
        f"{needed} of {n_rounds} rounds with probability {m.chance:.3f} (sign test, two-sided)"
        if needed
        else f"nn.Linear in the same rounds; {n_rounds} rounds are too few for the sign test to decide"
    )
    for name, verdict in verdicts.items():
        for side in ("slower", "faster"):
            ex.claim(
                f"ffn_{TIMED_KEYS[name]}_{side}",
                verdict == side,
                statement=f"{name} is {side} than nn.Linear (in at least {needed} of {n_rounds} rounds)",
                evidence=f"time / nn.Linear, median of the interleaved rounds: {ratio[name].text()}",
                baseline=baseline,
            )
    ex.claim(
        "ffn_linear_fastest",
        all(v == "slower" for v in verdicts.values()),
        statement="nn.Linear is the fastest form",
        evidence=", ".join(f"{name}: {v}" for name, v in verdicts.items()),
        baseline=f"each form against nn.Linear in {n_rounds} interleaved rounds",
    )


def answer_values(m: FFNForms) -> dict[str, Any]:
    """The values the answer template (A3) is filled with."""
    d0 = m.ffn_shapes[0][2]
    d_ff0 = ffn.default_d_ff(d0, m.d_ff)
    ratio = m.ratio
    return dict(
        n_params=2 * d0 * d_ff0 + d_ff0 + d0,
        d_model=d0,
        d_ff=d_ff0,
        n_shapes=len(m.ffn_shapes),
        ffn_shapes=", ".join(f"({b}, {t}, {d})" for b, t, d in m.ffn_shapes),
        err_linear=m.errors["nn.Linear"],
        err_conv=m.errors["nn.Conv1d(k=1)"],
        err_vmap=m.errors["torch.func vmap"],
        max_ratio=max(m.ratios.values()),
        n_inplace=len(m.inplace),
        inplace_names=", ".join(f"`{n}`" for n in m.inplace) or "none",
        n_inplace_func=len(m.inplace_func),
        func_names=", ".join(f"`{n}`" for n in m.inplace_func) or "none",
        err_func=m.err_func,
        timing_shape="({}, {}, {})".format(*m.timing_shape),
        timing_dff=m.timing_dff,
        device=m.device,
        repeats=m.repeats,
        rounds=m.rounds,
        needed=m.needed,
        setting={"rounds_can_decide": m.needed is not None},
        chance=m.chance,
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
