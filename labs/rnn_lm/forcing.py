"""Q2.4: teacher forcing against free running and scheduled sampling."""

from __future__ import annotations

import math

from . import figures, text
from .session import (
    MODE_LABELS,
    ROWS_BASELINE,
    Lab,
    Trained,
    first_step_below,
    nll_claim_evidence,
    ppl,
)
from .stats import (
    clearly_faster,
    paired,
)

# --------------------------------------------------------------------------- Q2.4


def q2_4_teacher_forcing(lab: Lab, main: Trained) -> dict[str, Trained]:
    cfg, ctx = lab.cfg, lab.ctx
    models = {
        "teacher": main,
        "free": lab.fit("free", ctx.seed, "Q2.4"),
        "scheduled": lab.fit("scheduled", ctx.seed, "Q2.4"),
    }
    unigram_ppl = ppl(lab.unigram_rows)
    part = lab.train[:, : min(cfg.timing_windows * cfg.bptt_window * cfg.seq_len, lab.train.shape[1] - 1) + 1]
    timing = lab.timings(
        {m: lab.timed(tr.model, part, m, 1) for m, tr in models.items()}, "Q2.4 timing, interleaved"
    )
    refs = {"unigram model": unigram_ppl}
    if lab.grammar_rows is not None:
        refs["true grammar (best achievable)"] = ppl(lab.grammar_rows)
    res = {}
    for mode, tr in models.items():
        hh = tr.history
        reached = first_step_below(hh, lab.unigram_rows)
        res[mode] = {
            "ppl": hh.valid_ppl[-1],
            "first": hh.valid_ppl[0],
            # validation perplexity at the start and the end of the last epoch
            "last_epoch": (
                hh.valid_ppl[max(len(hh.valid_ppl) - 1 - cfg.evals_per_epoch, 0)],
                hh.valid_ppl[-1],
            ),
            "first_step": hh.steps[0],
            "steps": hh.steps[-1],
            "reached": reached,
            "time": hh.train_seconds,
            "timing": timing[mode].text(),
            "us": timing[mode].median * 1e6,
            # the share of teacher forcing's gain over the unigram model (cross-entropy, nats/token)
            "share": share_of_gain(lab.unigram_rows, tr.rows, main.rows),
        }
    with lab.exercise("Q2.4 Teacher forcing", text.Q24) as ex:
        ex.figure(
            figures.learning_curves(
                {
                    MODE_LABELS[m]: (tr.history.steps, tr.history.seconds, tr.history.valid_ppl)
                    for m, tr in models.items()
                },
                refs,
            ),
            "teacher_forcing_curves",
            caption=text.CURVES_CAPTION,
        )
        ex.table(
            [
                [
                    MODE_LABELS[m],
                    round(r["first"], 2),
                    round(r["ppl"], 2),
                    f"step {r['reached'][0]} ({r['reached'][1]:.2f} s)" if r["reached"] else "not reached",
                    r["timing"],
                ]
                for m, r in res.items()
            ],
            columns=[
                "training",
                f"valid ppl at step {res['teacher']['first_step']}",
                "final valid ppl",
                f"measurably below the unigram ppl ({unigram_ppl:.2f}) from",
                "µs per token, median (IQR)",
            ],
            caption="Validation perplexity is always measured with teacher forcing (the standard perplexity); "
            f"times from {cfg.timing_repeats} interleaved repeats of each trainer on the same data.",
        )
        ex.metric("valid_ppl_free_running", res["free"]["ppl"])
        ex.metric("valid_ppl_scheduled_sampling", res["scheduled"]["ppl"])
        ex.metric("free_running_tokens_per_s", 1e6 / res["free"]["us"])
        ex.metric("scheduled_sampling_tokens_per_s", 1e6 / res["scheduled"]["us"])
        ex.metric("teacher_forcing_tokens_per_s", 1e6 / res["teacher"]["us"])
        ex.metric("free_running_cost_per_token", res["free"]["us"] / res["teacher"]["us"])
        pairs = {
            "teacher_beats_free": ("teacher", "free", "below"),
            "free_beats_teacher": ("teacher", "free", "above"),
            "teacher_beats_scheduled": ("teacher", "scheduled", "below"),
            "scheduled_beats_teacher": ("teacher", "scheduled", "above"),
            "scheduled_beats_free": ("scheduled", "free", "below"),
        }
        for name, (x, y, side) in pairs.items():
            d = paired(models[x].rows, models[y].rows)
            win, lose = (x, y) if side == "below" else (y, x)
            ex.claim(
                name,
                getattr(d, side),
                statement=f"{MODE_LABELS[win]} reaches a lower validation perplexity than {MODE_LABELS[lose]}",
                evidence=nll_claim_evidence(d, f"cross-entropy, {MODE_LABELS[x]} − {MODE_LABELS[y]}"),
                baseline=ROWS_BASELINE,
            )
        for mode in ("free", "scheduled"):
            d = paired(models[mode].rows, lab.unigram_rows)
            for name, holds, word in (
                (f"{mode}_beats_unigram", d.below, "below"),
                (f"{mode}_worse_than_unigram", d.above, "above"),
            ):
                ex.claim(
                    name,
                    holds,
                    statement=f"the {MODE_LABELS[mode]} model's validation perplexity is {word} the unigram model's",
                    evidence=nll_claim_evidence(d, f"cross-entropy, {MODE_LABELS[mode]} − unigram"),
                    baseline=f"unigram model, perplexity {unigram_ppl:.2f}; " + ROWS_BASELINE,
                )
        for name, fast, slow in (
            ("free_costlier_per_token", "teacher", "free"),
            ("free_cheaper_per_token", "free", "teacher"),
        ):
            ex.claim(
                name,
                clearly_faster(timing[fast], timing[slow]),
                statement=f"{MODE_LABELS[fast]} trains faster per token than {MODE_LABELS[slow]}",
                evidence=f"µs per token, median (IQR): {MODE_LABELS[fast]} {timing[fast].text()}, "
                f"{MODE_LABELS[slow]} {timing[slow].text()}",
                baseline=f"{cfg.timing_repeats} interleaved repeats; a gap counts when the interquartile ranges do not overlap",
            )
        ex.check(
            "every_trainer_evaluated",
            all(math.isfinite(r["ppl"]) for r in res.values()),
            expected="a finite validation perplexity per trainer",
            actual={m: round(r["ppl"], 3) for m, r in res.items()},
            points=1,
        )
        ex.answer(
            text.A24,
            r=res,
            unigram_ppl=unigram_ppl,
            optimal_ppl=refs.get("true grammar (best achievable)"),
            one_epoch=cfg.epochs == 1,
        )
    return models


def share_of_gain(baseline: list[float], rows: list[float], reference: list[float]) -> float:
    """How much of the reference model's gain in cross-entropy over the baseline a model
    achieves (1: all of it, 0: none); NaN when the reference gains nothing."""
    gain = sum(baseline) - sum(reference)
    return (sum(baseline) - sum(rows)) / gain if gain > 0 else float("nan")
