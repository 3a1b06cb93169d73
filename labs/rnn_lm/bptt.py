"""The trained model's perplexity against its baselines, and Q2.1: truncated BPTT against
longer windows and full BPTT."""

from __future__ import annotations

import math

from labrunner import exercise_function
from labrunner.stats import (
    Timing,
    paired,
    time_ratio,
)

from . import figures, text
from .model import (
    backward_memory,
)
from .session import ROWS_BASELINE, TIMING_BASELINE, Lab, Trained, nll_claim_evidence, ppl, still_improving

# --------------------------------------------------------------------------- training


@exercise_function
def training_the_language_model(lab: Lab) -> Trained:
    cfg, ctx = lab.cfg, lab.ctx
    ex = lab.exercise(
        "Training the language model", text.TRAIN_Q
    )  # opened first: a stub below ends this exercise
    main = lab.fit("teacher", ctx.seed, "Training")
    h = main.history
    unigram_ppl = ppl(lab.unigram_rows)
    with ex:
        ex.table(
            [
                [s, round(sec, 2), round(loss, 4), round(math.exp(loss), 2), round(p, 2)]
                for s, sec, loss, p in zip(h.steps, h.seconds, h.train_loss, h.valid_ppl, strict=True)
            ],
            columns=["step", "train time (s)", "train loss", "train ppl", "valid ppl"],
            caption="Teacher-forced training; validation perplexity measured during training.",
        )
        ex.metric("valid_ppl", h.valid_ppl[-1])
        ex.metric("train_ppl", math.exp(h.train_loss[-1]))
        ex.metric("unigram_ppl", unigram_ppl)
        ex.metric("train_tokens_per_s", h.tokens_per_s)
        vs_unigram = paired(main.rows, lab.unigram_rows)
        ex.claim(
            "beats_unigram",
            vs_unigram.below,
            statement="the trained model's validation perplexity is below the unigram model's",
            evidence=nll_claim_evidence(vs_unigram, "cross-entropy, model − unigram"),
            baseline=f"unigram model of the training split (add-one smoothed), perplexity {unigram_ppl:.2f}; "
            + ROWS_BASELINE,
        )
        values = dict(
            valid_ppl=h.valid_ppl[-1],
            first_ppl=h.valid_ppl[0],
            first_step=h.steps[0],
            train_ppl=math.exp(h.train_loss[-1]),
            unigram_ppl=unigram_ppl,
            vs_unigram=vs_unigram,
            tokens_per_s=h.tokens_per_s,
            epochs=cfg.epochs,
            steps=h.steps[-1],
            vocab=lab.vocab,
            optimal_ppl=None,
            entropy=lab.corpus.entropy,
        )
        if lab.grammar_rows is not None:
            optimal_valid = ppl(lab.grammar_rows)
            gap = paired(main.rows, lab.grammar_rows)
            closed = (math.log(unigram_ppl) - math.log(h.valid_ppl[-1])) / (
                math.log(unigram_ppl) - math.log(optimal_valid)
            )
            ex.metric("optimal_ppl", lab.corpus.optimal_ppl)
            ex.metric("optimal_ppl_valid", optimal_valid)
            ex.metric("excess_nats_over_optimum", gap.mean)
            ex.metric("gap_closed_unigram_to_optimum", closed)
            ex.claim(
                "above_optimum",
                gap.above,
                statement="the model's cross-entropy is above the true grammar's on the same validation text "
                "(it has not reached the best achievable perplexity)",
                evidence=nll_claim_evidence(gap, "cross-entropy, model − true grammar"),
                baseline="the true grammar's log-probability of the same validation tokens; " + ROWS_BASELINE,
            )
            ex.check(
                "valid_ppl_not_below_optimum",
                not gap.below,
                expected="model cross-entropy not significantly below the true grammar's",
                actual=gap.text(),
                points=1,
            )
            values.update(
                optimal_ppl=lab.corpus.optimal_ppl, optimal_valid=optimal_valid, gap=gap, closed=closed
            )
        still_improving(ex, "still_improving", h, "teacher forcing")
        ex.check_at_most("valid_ppl_below_uniform", h.valid_ppl[-1], float(lab.vocab), points=1)
        ex.check_equal(
            "checkpoint_per_epoch",
            (ctx.state_dir / f"teacher_seed{ctx.seed}.pt").is_file() and h.epochs_done == cfg.epochs,
            True,
            points=1,
        )
        # STUDENT ANSWER
        ex.answer(text.TRAIN_A, setting=lab.setting, **values)
    return main


# --------------------------------------------------------------------------- Q2.1


@exercise_function
def q2_1_detach_or_not(lab: Lab) -> None:
    cfg, ctx, train = lab.cfg, lab.ctx, lab.train
    ex = lab.exercise(
        "Q2.1 Detach or not", text.Q21, points=10
    )  # opened first: a stub below ends this exercise
    k, seq, length = cfg.bptt_window, cfg.seq_len, train.shape[1]
    full_k = (length - 1) // seq  # one window over the whole row: one update per epoch
    windows = {"truncated": 1, "window": k}
    mem = {}
    for kind, win in windows.items():
        span = min(win * seq, length - 1)
        mem[kind] = backward_memory(
            lab.new_model(ctx.seed), train[:, :span], train[:, 1 : span + 1], ctx.autocast
        )
    # saved bytes = fixed part (parameters) + bytes per token of the window, from the two measurements
    per_token = (mem["window"]["saved_bytes"] - mem["truncated"]["saved_bytes"]) / ((k - 1) * seq)
    fixed = mem["truncated"]["saved_bytes"] - per_token * seq
    predicted_full = fixed + per_token * full_k * seq
    run_full = full_k > k and predicted_full <= cfg.full_bptt_max_mb * 2**20
    if run_full:
        windows["full"] = full_k
        span = full_k * seq
        mem["full"] = backward_memory(
            lab.new_model(ctx.seed), train[:, :span], train[:, 1 : span + 1], ctx.autocast
        )
    runs = {
        "truncated": lab.fit("teacher", ctx.seed, "Q2.1 truncated BPTT", "tbptt", epochs=cfg.detach_epochs),
        "window": lab.fit(
            "teacher", ctx.seed, f"Q2.1 window of {k}", f"bptt{k}", epochs=cfg.detach_epochs, bptt_window=k
        ),
    }
    if run_full:
        runs["full"] = lab.fit(
            "teacher", ctx.seed, "Q2.1 full BPTT", "bpttfull", epochs=cfg.detach_epochs, bptt_window=full_k
        )
    part = train[:, : min(cfg.timing_windows * k * seq, length - 1) + 1]
    variants = {
        kind: lab.timed(runs[kind].model, part, "teacher", windows[kind]) for kind in ("truncated", "window")
    }
    timing = lab.timings(variants, "Q2.1 timing, interleaved")
    if run_full:  # one update per epoch over the whole split: timed once, in its training run
        full_hist = runs["full"].history
        reading = full_hist.train_seconds / full_hist.train_tokens
        timing["full"] = Timing((reading,), (reading,))
    labels = {
        "truncated": f"truncated BPTT, window of 1 segment ({seq} tokens)",
        "window": f"truncated BPTT, window of {k} segments ({k * seq} tokens)",
        "full": f"full BPTT over the epoch ({full_k * seq} tokens)",
    }
    cuda = ctx.device.type == "cuda"
    rows, vals = [], {}
    for kind, win in windows.items():
        t = timing[kind]
        tokens = win * seq
        v = vals[kind] = {
            "label": labels[kind],
            "tokens": tokens,
            "updates": runs[kind].history.steps[-1],
            "us_per_token": t.median * 1e6,
            "us_per_token_text": t.text(1e6),
            "ms_per_update": t.median * tokens * cfg.batch_size * 1e3,
            "saved_mb": mem[kind]["saved_bytes"] / 2**20,
            "cuda_mb": mem[kind].get("cuda_peak_bytes", 0.0) / 2**20,
            "ppl": runs[kind].history.valid_ppl[-1],
        }
        rows.append(
            [
                labels[kind],
                v["updates"],
                round(v["ms_per_update"], 2),
                v["us_per_token_text"],
                round(v["saved_mb"], 3),
                round(v["cuda_mb"], 2) if cuda else "n/a (CPU)",
                round(v["ppl"], 2),
            ]
        )
    with ex:
        ex.figure(figures.unrolled_graph(k), "bptt_graph", caption=text.GRAPH_CAPTION)
        ex.table(
            rows,
            columns=[
                "training",
                "updates",
                "ms per update (median)",
                "µs per token, median (IQR)",
                "saved for backward (MiB)",
                "CUDA peak (MiB)",
                "valid ppl",
            ],
            caption=f"The same data ({cfg.detach_epochs} epoch(s), {length // seq} segments per row of the batch); "
            f"times from {cfg.timing_repeats} interleaved repeats of each variant"
            + (" (full BPTT: its training run, timed once)." if run_full else "."),
        )
        ratio_mem = mem["window"]["saved_bytes"] / mem["truncated"]["saved_bytes"]
        ex.metric("saved_bytes_truncated", mem["truncated"]["saved_bytes"])
        ex.metric("saved_bytes_long_window", mem["window"]["saved_bytes"])
        ex.metric("saved_bytes_ratio", ratio_mem)
        ex.metric("saved_bytes_per_token", per_token)
        if run_full:
            ex.metric("saved_bytes_full_bptt", mem["full"]["saved_bytes"])
            ex.metric("valid_ppl_full_bptt", vals["full"]["ppl"])
        if cuda:
            ex.metric("cuda_peak_bytes_truncated", mem["truncated"]["cuda_peak_bytes"])
            ex.metric("cuda_peak_bytes_long_window", mem["window"]["cuda_peak_bytes"])
        ex.metric("us_per_token_truncated", vals["truncated"]["us_per_token"])
        ex.metric("us_per_token_long_window", vals["window"]["us_per_token"])
        ex.metric("valid_ppl_long_window", vals["window"]["ppl"])
        memory_key = "cuda_peak_bytes" if cuda else "saved_bytes"
        ex.claim(
            "window_holds_more_memory",
            mem["window"][memory_key] > mem["truncated"][memory_key],
            statement=f"backpropagating through {k} segments holds more memory than through one",
            evidence=f"{memory_key.replace('_', ' ')}: {mem['window'][memory_key]:,} against "
            f"{mem['truncated'][memory_key]:,}",
            baseline="truncated BPTT measured the same way on the same tokens (an exact count)",
        )
        per_token_ratio = time_ratio(timing["window"], timing["truncated"])
        per_update_ratio = per_token_ratio.times(k)
        ex.metric("time_ratio_long_window", per_token_ratio.median)
        for name, holds, statement, r in (
            (
                "window_slower_per_update",
                per_update_ratio.slower,
                f"an update through {k} segments takes longer than one through a single segment",
                per_update_ratio,
            ),
            (
                "window_costlier_per_token",
                per_token_ratio.slower,
                "the long window costs more per token than truncated BPTT",
                per_token_ratio,
            ),
            (
                "window_cheaper_per_token",
                per_token_ratio.faster,
                "the long window costs less per token than truncated BPTT",
                per_token_ratio,
            ),
        ):
            ex.claim(
                name,
                holds,
                statement=statement,
                evidence=f"time of the window of {k} over truncated BPTT "
                f"({'per update' if r is per_update_ratio else 'per token'}): {r.text()}",
                baseline=TIMING_BASELINE,
            )
        d = paired(runs["truncated"].rows, runs["window"].rows)
        for name, holds, who in (
            ("truncated_lower_ppl", d.below, "truncated BPTT (one segment)"),
            ("window_lower_ppl", d.above, f"the window of {k} segments"),
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
            predicted_full <= cfg.full_bptt_max_mb * 2**20,
            statement=f"full BPTT over the epoch fits this run's memory limit ({cfg.full_bptt_max_mb:g} MiB)",
            evidence=f"{predicted_full / 2**20:.1f} MiB saved for backward over {full_k * seq} tokens per row, "
            "predicted from the two measured windows",
            baseline="the setting full_bptt_max_mb; saved bytes grow linearly with the window (an exact count)",
        )
        if run_full:
            ex.claim(
                "full_holds_more_memory",
                mem["full"][memory_key] > mem["window"][memory_key],
                statement="full BPTT over the epoch holds more memory than the window",
                evidence=f"{memory_key.replace('_', ' ')}: {mem['full'][memory_key]:,} against {mem['window'][memory_key]:,}",
                baseline="the window measured the same way (an exact count)",
            )
        ex.check(
            "long_window_saves_more_for_backward",
            mem["window"]["saved_bytes"] > mem["truncated"]["saved_bytes"],
            expected="more bytes than one segment",
            actual=ratio_mem,
            points=1,
        )
        # STUDENT ANSWER
        ex.answer(
            text.A21,
            k=k,
            seq=seq,
            full_k=full_k,
            v=vals,
            ratio_mem=ratio_mem,
            per_token_kib=per_token / 1024,
            fixed_mb=fixed / 2**20,
            predicted_full_mb=predicted_full / 2**20,
            limit_mb=cfg.full_bptt_max_mb,
            batch=cfg.batch_size,
            setting={**lab.setting, "full_beyond_window": full_k > k},
        )
