"""Q2.1: truncated BPTT against longer windows and full BPTT.

:func:`measure_detach_or_not` trains and times each window and measures the memory autograd
saves for backward; :class:`DetachOrNot` holds those readings and decides every condition
(no context needed); :func:`record_detach_or_not` records it; :func:`q2_1_detach_or_not` is
the exercise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labrunner import exercise_function
from labrunner.stats import Difference, Ratio, Timing, paired, time_ratio

from . import figures, text
from .model import backward_memory
from .session import ROWS_BASELINE, TIMING_BASELINE, Lab, nll_claim_evidence
from .training import History

#: The three trainings, in the order of the table.
KINDS = ("truncated", "window", "full")


@dataclass(frozen=True)
class Window:
    """One training of Q2.1: its window, the memory of one step, its training and its timing."""

    label: str
    #: Tokens per window (one segment of ``seq_len`` tokens: truncated BPTT).
    tokens: int
    #: :func:`.model.backward_memory`'s reading: ``saved_bytes`` (and ``cuda_peak_bytes`` on CUDA).
    memory: dict[str, float]
    history: History
    #: Seconds per token.
    timing: Timing


def memory_line(truncated: float, window: float, k: int, seq: int) -> tuple[float, float]:
    """Bytes saved for backward as ``fixed + per_token * tokens``, from one segment and a
    window of ``k`` segments of ``seq`` tokens: (fixed, per_token)."""
    per_token = (window - truncated) / ((k - 1) * seq)
    return truncated - per_token * seq, per_token


@dataclass(frozen=True)
class DetachOrNot:
    """What Q2.1 measured, and every condition its claims and checks decide (each once)."""

    k: int
    seq: int
    #: Segments of one window over the whole row of the batch (full BPTT: one update per epoch).
    full_k: int
    length: int
    batch: int
    cuda: bool
    limit_mb: float
    epochs: int
    repeats: int
    #: By kind (``truncated``, ``window`` and, when it fits, ``full``).
    windows: dict[str, Window]

    @property
    def saved(self) -> dict[str, float]:
        return {kind: w.memory["saved_bytes"] for kind, w in self.windows.items()}

    @property
    def fixed(self) -> float:
        return memory_line(self.saved["truncated"], self.saved["window"], self.k, self.seq)[0]

    @property
    def per_token(self) -> float:
        return memory_line(self.saved["truncated"], self.saved["window"], self.k, self.seq)[1]

    @property
    def predicted_full(self) -> float:
        """Bytes full BPTT over the epoch would save, predicted from the two measured windows."""
        return self.fixed + self.per_token * self.full_k * self.seq

    @property
    def full_fits(self) -> bool:
        return self.predicted_full <= self.limit_mb * 2**20

    @property
    def ran_full(self) -> bool:
        return "full" in self.windows

    @property
    def memory_key(self) -> str:
        """What the memory claims compare: the CUDA peak on a GPU, else the bytes saved."""
        return "cuda_peak_bytes" if self.cuda else "saved_bytes"

    def more_memory(self, kind: str, than: str) -> bool:
        return self.windows[kind].memory[self.memory_key] > self.windows[than].memory[self.memory_key]

    @property
    def window_saves_more(self) -> bool:
        return self.saved["window"] > self.saved["truncated"]

    @property
    def ratio_mem(self) -> float:
        return self.saved["window"] / self.saved["truncated"]

    @property
    def per_token_ratio(self) -> Ratio:
        return time_ratio(self.windows["window"].timing, self.windows["truncated"].timing)

    @property
    def per_update_ratio(self) -> Ratio:
        return self.per_token_ratio.times(self.k)

    @property
    def rows_difference(self) -> Difference:
        """Cross-entropy, truncated − window, paired over the validation rows."""
        return paired(
            self.windows["truncated"].history.valid_row_nll[-1],
            self.windows["window"].history.valid_row_nll[-1],
        )

    def values(self) -> dict[str, dict[str, Any]]:
        """Per kind: the row of the table and the answer's numbers."""
        out = {}
        for kind, w in self.windows.items():
            out[kind] = {
                "label": w.label,
                "tokens": w.tokens,
                "updates": w.history.steps[-1],
                "us_per_token": w.timing.median * 1e6,
                "us_per_token_text": w.timing.text(1e6),
                "ms_per_update": w.timing.median * w.tokens * self.batch * 1e3,
                "saved_mb": w.memory["saved_bytes"] / 2**20,
                "cuda_mb": w.memory.get("cuda_peak_bytes", 0.0) / 2**20,
                "ppl": w.history.valid_ppl[-1],
            }
        return out


def measure_detach_or_not(lab: Lab) -> DetachOrNot:
    """The memory of one step through one segment, through ``bptt_window`` segments and (when
    its predicted memory fits ``full_bptt_max_mb``) through the whole row; a training of each;
    and interleaved timings of the first two (full BPTT: its training run, timed once)."""
    cfg, ctx, train = lab.cfg, lab.ctx, lab.train
    k, seq, length = cfg.bptt_window, cfg.seq_len, train.shape[1]
    full_k = (length - 1) // seq  # one window over the whole row: one update per epoch
    segments = {"truncated": 1, "window": k}

    def memory(win: int) -> dict[str, float]:
        span = min(win * seq, length - 1)
        return backward_memory(lab.new_model(ctx.seed), train[:, :span], train[:, 1 : span + 1], ctx.autocast)

    mem = {kind: memory(win) for kind, win in segments.items()}
    fixed, per_token = memory_line(mem["truncated"]["saved_bytes"], mem["window"]["saved_bytes"], k, seq)
    if full_k > k and fixed + per_token * full_k * seq <= cfg.full_bptt_max_mb * 2**20:
        segments["full"] = full_k
        mem["full"] = memory(full_k)
    tags = {
        "truncated": ("Q2.1 truncated BPTT", "tbptt"),
        "window": (f"Q2.1 window of {k}", f"bptt{k}"),
        "full": ("Q2.1 full BPTT", "bpttfull"),
    }
    runs = {
        kind: lab.fit("teacher", ctx.seed, *tags[kind], epochs=cfg.detach_epochs, bptt_window=win)
        for kind, win in segments.items()
    }
    part = train[:, : min(cfg.timing_windows * k * seq, length - 1) + 1]
    variants = {kind: lab.timed(runs[kind].model, part, "teacher", segments[kind]) for kind in KINDS[:2]}
    timing = lab.timings(variants, "Q2.1 timing, interleaved")
    if "full" in segments:  # one update per epoch over the whole split: timed once, in its training run
        reading = runs["full"].history.train_seconds / runs["full"].history.train_tokens
        timing["full"] = Timing((reading,), (reading,))
    labels = {
        "truncated": f"truncated BPTT, window of 1 segment ({seq} tokens)",
        "window": f"truncated BPTT, window of {k} segments ({k * seq} tokens)",
        "full": f"full BPTT over the epoch ({full_k * seq} tokens)",
    }
    windows = {
        kind: Window(labels[kind], win * seq, mem[kind], runs[kind].history, timing[kind])
        for kind, win in segments.items()
    }
    return DetachOrNot(
        k, seq, full_k, length, cfg.batch_size, ctx.device.type == "cuda", cfg.full_bptt_max_mb,
        cfg.detach_epochs, cfg.timing_repeats, windows,
    )  # fmt: skip


# --------------------------------------------------------------------------- recording


def record_detach_or_not(ex: Any, m: DetachOrNot) -> None:
    """Q2.1's figure, table, metrics, claims and check."""
    ex.figure(figures.unrolled_graph(m.k), "bptt_graph", caption=text.GRAPH_CAPTION)
    vals = m.values()
    ex.table(
        [
            [
                v["label"],
                v["updates"],
                round(v["ms_per_update"], 2),
                v["us_per_token_text"],
                round(v["saved_mb"], 3),
                round(v["cuda_mb"], 2) if m.cuda else "n/a (CPU)",
                round(v["ppl"], 2),
            ]
            for v in vals.values()
        ],
        columns=[
            "training",
            "updates",
            "ms per update (median)",
            "µs per token, median (IQR)",
            "saved for backward (MiB)",
            "CUDA peak (MiB)",
            "valid ppl",
        ],
        caption=f"The same data ({m.epochs} epoch(s), {m.length // m.seq} segments per row of the batch); "
        f"times from {m.repeats} interleaved repeats of each variant"
        + (" (full BPTT: its training run, timed once)." if m.ran_full else "."),
    )
    record_metrics(ex, m, vals)
    record_memory_claim(ex, m, "window", "truncated")
    ex.metric("time_ratio_long_window", m.per_token_ratio.median)
    record_time_claims(ex, m)
    d = m.rows_difference
    for name, holds, who in (
        ("truncated_lower_ppl", d.below, "truncated BPTT (one segment)"),
        ("window_lower_ppl", d.above, f"the window of {m.k} segments"),
    ):
        ex.claim(
            name,
            holds,
            statement=f"after the same data, {who} reached the lower validation perplexity",
            evidence=nll_claim_evidence(d, "cross-entropy, truncated − window"),
            baseline=ROWS_BASELINE,
        )
    ex.claim(
        "full_bptt_fits",
        m.full_fits,
        statement=f"full BPTT over the epoch fits this run's memory limit ({m.limit_mb:g} MiB)",
        evidence=f"{m.predicted_full / 2**20:.1f} MiB saved for backward over {m.full_k * m.seq} tokens per row, "
        "predicted from the two measured windows",
        baseline="the setting full_bptt_max_mb; saved bytes grow linearly with the window (an exact count)",
    )
    if m.ran_full:
        record_memory_claim(ex, m, "full", "window")
    ex.check(
        "long_window_saves_more_for_backward",
        m.window_saves_more,
        expected="more bytes than one segment",
        actual=m.ratio_mem,
        points=1,
    )


def record_metrics(ex: Any, m: DetachOrNot, vals: dict[str, dict[str, Any]]) -> None:
    ex.metric("saved_bytes_truncated", m.saved["truncated"])
    ex.metric("saved_bytes_long_window", m.saved["window"])
    ex.metric("saved_bytes_ratio", m.ratio_mem)
    ex.metric("saved_bytes_per_token", m.per_token)
    if m.ran_full:
        ex.metric("saved_bytes_full_bptt", m.saved["full"])
        ex.metric("valid_ppl_full_bptt", vals["full"]["ppl"])
    if m.cuda:
        ex.metric("cuda_peak_bytes_truncated", m.windows["truncated"].memory["cuda_peak_bytes"])
        ex.metric("cuda_peak_bytes_long_window", m.windows["window"].memory["cuda_peak_bytes"])
    ex.metric("us_per_token_truncated", vals["truncated"]["us_per_token"])
    ex.metric("us_per_token_long_window", vals["window"]["us_per_token"])
    ex.metric("valid_ppl_long_window", vals["window"]["ppl"])


def record_memory_claim(ex: Any, m: DetachOrNot, kind: str, than: str) -> None:
    """``window_holds_more_memory`` (the window against one segment) or
    ``full_holds_more_memory`` (full BPTT against the window): an exact count."""
    key = m.memory_key
    more, less = m.windows[kind].memory[key], m.windows[than].memory[key]
    evidence = f"{key.replace('_', ' ')}: {more:,} against {less:,}"
    if kind == "window":
        name, statement = (
            "window_holds_more_memory",
            f"backpropagating through {m.k} segments holds more memory than through one",
        )
        baseline = "truncated BPTT measured the same way on the same tokens (an exact count)"
    else:
        name, statement = (
            "full_holds_more_memory",
            "full BPTT over the epoch holds more memory than the window",
        )
        baseline = "the window measured the same way (an exact count)"
    ex.claim(name, m.more_memory(kind, than), statement=statement, evidence=evidence, baseline=baseline)


def record_time_claims(ex: Any, m: DetachOrNot) -> None:
    """The window against truncated BPTT in time, per update and per token (interleaved)."""
    per_token, per_update = m.per_token_ratio, m.per_update_ratio
    for name, holds, statement, r in (
        (
            "window_slower_per_update",
            per_update.slower,
            f"an update through {m.k} segments takes longer than one through a single segment",
            per_update,
        ),
        (
            "window_costlier_per_token",
            per_token.slower,
            "the long window costs more per token than truncated BPTT",
            per_token,
        ),
        (
            "window_cheaper_per_token",
            per_token.faster,
            "the long window costs less per token than truncated BPTT",
            per_token,
        ),
    ):
        ex.claim(
            name,
            holds,
            statement=statement,
            evidence=f"time of the window of {m.k} over truncated BPTT "
            f"({'per update' if r is per_update else 'per token'}): {r.text()}",
            baseline=TIMING_BASELINE,
        )


def answer_values(m: DetachOrNot, setting: dict) -> dict[str, Any]:
    """The values the answer template (A21) is filled with."""
    return dict(
        k=m.k,
        seq=m.seq,
        full_k=m.full_k,
        v=m.values(),
        ratio_mem=m.ratio_mem,
        per_token_kib=m.per_token / 1024,
        fixed_mb=m.fixed / 2**20,
        predicted_full_mb=m.predicted_full / 2**20,
        limit_mb=m.limit_mb,
        batch=m.batch,
        setting={**setting, "full_beyond_window": m.full_k > m.k},
    )


@exercise_function
def q2_1_detach_or_not(lab: Lab) -> None:
    ex = lab.exercise(
        "Q2.1 Detach or not", text.Q21, points=10
    )  # opened first: a stub below ends this exercise
    m = measure_detach_or_not(lab)
    with ex:
        record_detach_or_not(ex, m)
        # STUDENT ANSWER
        ex.answer(text.A21, **answer_values(m, lab.setting))
