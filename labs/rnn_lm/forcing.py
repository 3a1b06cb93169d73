"""Q2.4: teacher forcing against free running and scheduled sampling."""

from __future__ import annotations

import math

from labrunner import exercise_function
from labrunner.stats import (
    Difference,
    paired,
    sign_counts,
    time_ratio,
)

from . import figures, text
from .session import (
    MODE_LABELS,
    TIMING_BASELINE,
    Lab,
    Trained,
    first_step_below,
    ppl,
)

# --------------------------------------------------------------------------- Q2.4


#: The trainers Q2.4 compares, in the assignment's order.
MODES = ("teacher", "free", "scheduled")

SEEDS_BASELINE = (
    "paired over the seeds (each seed's trainers start from the same initialised model); "
    "± is the 95 % interval (Student's t)"
)


def seeds_of(lab: Lab) -> list[int]:
    """The seeds Q2.4 and Q2.5 train every trainer under: the run's seed first."""
    return [lab.ctx.seed + i for i in range(lab.cfg.distance_seeds)]


def train_seeds(lab: Lab, main: Trained) -> dict[int, dict[str, Trained]]:
    """Every trainer under every seed of :func:`seeds_of`; the run's teacher-forced model is
    ``main`` (trained for the earlier exercises).

    The run's seed trains each trainer alone: its learning curves and training times are
    shown. The other seeds count only through their final models, and train as one batched
    model per trainer where :meth:`.session.Lab.fit_seeds` can (each replica is the model its
    seed trains alone, up to float rounding)."""
    seed, *others = seeds_of(lab)
    mine = {m: main if m == "teacher" else lab.fit(m, seed, "Q2.4") for m in MODES}
    theirs = {m: lab.fit_seeds(m, others, "Q2.4") for m in MODES}
    return {seed: mine} | {s: {m: theirs[m][s] for m in MODES} for s in others}


def mean_nll(rows: list[float]) -> float:
    return sum(rows) / len(rows)


def seed_differences(by_seed: dict[int, dict[str, Trained]], x: str, y: str | list[float]) -> list[float]:
    """Per seed, the validation cross-entropy of trainer ``x`` minus that of trainer ``y``
    (or of a fixed baseline's rows, such as the unigram model's)."""

    def nll(models: dict[str, Trained], who: str | list[float]) -> float:
        return mean_nll(who if isinstance(who, list) else models[who].rows)

    return [nll(models, x) - nll(models, y) for models in by_seed.values()]


def seed_mean(diffs: list[float]) -> Difference:
    """The mean of per-seed differences, with its 95 % interval over the seeds."""
    return paired(diffs, [0.0] * len(diffs))


def seed_evidence(diffs: list[float], this_run: Difference, what: str) -> str:
    """A claim decided over seeds: the mean difference with its interval, how many seeds
    fall on each side, and (for reference) this run's seed over the validation rows."""
    d = seed_mean(diffs)
    lower, higher = sign_counts(diffs)
    return (
        f"{what}: {d.text()} nats/token over {d.n} seed(s) (lower in {lower}, higher in {higher}); "
        f"this run's seed alone, over {this_run.n} validation rows: {this_run.text()}"
    )


@exercise_function
def q2_4_teacher_forcing(lab: Lab, by_seed: dict[int, dict[str, Trained]]) -> dict[int, dict[str, Trained]]:
    cfg, ctx = lab.cfg, lab.ctx
    ex = lab.exercise(
        "Q2.4 Teacher forcing", text.Q24, points=2, bonus=True
    )  # opened first: a stub below ends this exercise
    models = by_seed[ctx.seed]
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
            "timing": timing[mode].text(1e6),
            "us": timing[mode].median * 1e6,
            # the share of teacher forcing's gain over the unigram model (cross-entropy, nats/token)
            "share": share_of_gain(lab.unigram_rows, tr.rows, models["teacher"].rows),
            "share_text": share_text(share_of_gain(lab.unigram_rows, tr.rows, models["teacher"].rows)),
        }
    with ex:
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
                    f"step {r['reached'][0]}" if r["reached"] else "not reached",
                    r["timing"],
                ]
                for m, r in res.items()
            ],
            columns=[
                "training",
                f"valid ppl at step {res['teacher']['first_step']}",
                "final valid ppl",
                f"this training: first below the unigram ppl ({unigram_ppl:.2f}) beyond the row spread",
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
        # The trainers are compared over seeds: one training is one draw, and the validation
        # rows of one seed say nothing about how much the next seed's training differs.
        seeds = list(by_seed)
        ex.table(
            [[s] + [round(ppl(by_seed[s][m].rows), 2) for m in MODES] for s in seeds],
            columns=["seed"] + [MODE_LABELS[m] for m in MODES],
            caption="Final validation perplexity of each trainer under each seed (the run's seed first); "
            f"each seed's three trainings start from the same initialised model. The unigram model scores "
            f"{unigram_ppl:.2f}.",
        )
        pairs = {
            "teacher_beats_free": ("teacher", "free", "below"),
            "free_beats_teacher": ("teacher", "free", "above"),
            "teacher_beats_scheduled": ("teacher", "scheduled", "below"),
            "scheduled_beats_teacher": ("teacher", "scheduled", "above"),
            "scheduled_beats_free": ("scheduled", "free", "below"),
        }
        for name, (x, y, side) in pairs.items():
            diffs = seed_differences(by_seed, x, y)
            win, lose = (x, y) if side == "below" else (y, x)
            ex.claim(
                name,
                getattr(seed_mean(diffs), side),
                statement=f"{MODE_LABELS[win]} reaches a lower validation perplexity than {MODE_LABELS[lose]}",
                evidence=seed_evidence(
                    diffs,
                    paired(models[x].rows, models[y].rows),
                    f"cross-entropy, {MODE_LABELS[x]} − {MODE_LABELS[y]}",
                ),
                baseline=SEEDS_BASELINE,
            )
        vs_unigram = {}
        for mode in MODES:
            diffs = seed_differences(by_seed, mode, lab.unigram_rows)
            vs_unigram[mode] = {"diffs": diffs, "d": seed_mean(diffs), "counts": sign_counts(diffs)}
            if mode == "teacher":  # Q2.1's beats_unigram, for one seed
                continue
            # Free running ends within about a hundredth of a nat of the unigram model: whether
            # it is below it is too small for the seeds to settle, so that is said with its
            # interval (free_nearer_unigram below is the verdict), not claimed either way.
            sides = [(f"{mode}_worse_than_unigram", "above")]
            if mode == "scheduled":
                sides.append((f"{mode}_beats_unigram", "below"))
            for name, side in sides:
                ex.claim(
                    name,
                    getattr(vs_unigram[mode]["d"], side),
                    statement=f"the {MODE_LABELS[mode]} model's validation perplexity is {side} the unigram model's",
                    evidence=seed_evidence(
                        diffs,
                        paired(models[mode].rows, lab.unigram_rows),
                        f"cross-entropy, {MODE_LABELS[mode]} − unigram",
                    ),
                    baseline=f"unigram model, perplexity {unigram_ppl:.2f}; " + SEEDS_BASELINE,
                )
        # Per seed: how much nearer free running ends to the unigram model than to teacher forcing.
        from_teacher = seed_differences(by_seed, "free", "teacher")
        nearer = [abs(t) - abs(u) for t, u in zip(from_teacher, vs_unigram["free"]["diffs"], strict=True)]
        d_nearer = seed_mean(nearer)
        for name, side, one, other in (
            ("free_nearer_unigram", "above", "the unigram model's", "teacher forcing's"),
            ("free_nearer_teacher", "below", "teacher forcing's", "the unigram model's"),
        ):
            ex.claim(
                name,
                getattr(d_nearer, side),
                statement=f"free running's validation cross-entropy ends nearer {one} than {other}",
                evidence=f"|free − teacher| − |free − unigram|: {d_nearer.text()} nats/token over {d_nearer.n} "
                f"seed(s); free − unigram {vs_unigram['free']['d'].text()}, teacher − unigram "
                f"{vs_unigram['teacher']['d'].text()}",
                baseline="the unigram model and teacher forcing; " + SEEDS_BASELINE,
            )
        for name, fast, slow in (
            ("free_costlier_per_token", "teacher", "free"),
            ("free_cheaper_per_token", "free", "teacher"),
        ):
            r = time_ratio(timing[slow], timing[fast])
            ex.claim(
                name,
                r.slower,
                statement=f"{MODE_LABELS[fast]} trains faster per token than {MODE_LABELS[slow]}",
                evidence=f"time per token, {MODE_LABELS[slow]} over {MODE_LABELS[fast]}: {r.text()}",
                baseline=TIMING_BASELINE,
            )
        ex.check(
            "every_trainer_evaluated",
            all(math.isfinite(r["ppl"]) for r in res.values()),
            expected="a finite validation perplexity per trainer",
            actual={m: round(r["ppl"], 3) for m, r in res.items()},
            points=1,
        )
        # STUDENT ANSWER
        ex.answer(
            text.A24,
            r=res,
            unigram_ppl=unigram_ppl,
            optimal_ppl=refs.get("true grammar (best achievable)"),
            n=len(seeds),
            setting=lab.setting,
            vs_unigram=vs_unigram,
        )
    return by_seed


def share_text(share: float) -> str:
    """``12.3 %``, or why there is no share (teacher forcing gained nothing over the unigram model)."""
    return "undefined (teacher forcing gained nothing)" if math.isnan(share) else f"{100 * share:.1f} %"


def share_of_gain(baseline: list[float], rows: list[float], reference: list[float]) -> float:
    """How much of the reference model's gain in cross-entropy over the baseline a model
    achieves (1: all of it, 0: none); NaN when the reference gains nothing."""
    gain = sum(baseline) - sum(reference)
    return (sum(baseline) - sum(rows)) / gain if gain > 0 else float("nan")
