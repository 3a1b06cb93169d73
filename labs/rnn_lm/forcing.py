"""Q2.4: teacher forcing against free running and scheduled sampling."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from labrunner import exercise_function
from labrunner.stats import Difference, Timing, paired, sign_counts, time_ratio

from . import figures, text
from .session import (
    MODE_LABELS,
    TIMING_BASELINE,
    Lab,
    Trained,
    first_step_below,
    ppl,
)
from .training import History

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


@dataclass(frozen=True)
class TeacherForcing:
    """What Q2.4 measured: every trainer's final validation rows under every seed, the run's
    seed's learning curves and interleaved timings (seconds per token), and the baselines.
    Every comparison between trainers is decided here, over the seeds."""

    #: Final validation cross-entropy per row, by seed (the run's seed first) and trainer.
    rows: dict[int, dict[str, list[float]]]
    #: The run's seed: each trainer's training history.
    histories: dict[str, History]
    timing: dict[str, Timing]
    unigram_rows: list[float]
    grammar_rows: list[float] | None
    evals_per_epoch: int
    repeats: int

    @property
    def seeds(self) -> list[int]:
        return list(self.rows)

    @property
    def run_rows(self) -> dict[str, list[float]]:
        return self.rows[self.seeds[0]]

    @property
    def unigram_ppl(self) -> float:
        return ppl(self.unigram_rows)

    @property
    def refs(self) -> dict[str, float]:
        """The figure's reference lines."""
        refs = {"unigram model": self.unigram_ppl}
        if self.grammar_rows is not None:
            refs["true grammar (best achievable)"] = ppl(self.grammar_rows)
        return refs

    def differences(self, x: str, y: str | list[float]) -> list[float]:
        """Per seed, the validation cross-entropy of trainer ``x`` minus that of trainer ``y``
        (or of a fixed baseline's rows, such as the unigram model's)."""

        def nll(rows: dict[str, list[float]], who: str | list[float]) -> float:
            return mean_nll(who if isinstance(who, list) else rows[who])

        return [nll(rows, x) - nll(rows, y) for rows in self.rows.values()]

    def trainer(self, mode: str) -> dict[str, Any]:
        """The run's seed's trainer ``mode``: its table row and the answer's numbers."""
        hh, timing = self.histories[mode], self.timing[mode]
        share = share_of_gain(self.unigram_rows, self.run_rows[mode], self.run_rows["teacher"])
        return {
            "ppl": hh.valid_ppl[-1],
            "first": hh.valid_ppl[0],
            # validation perplexity at the start and the end of the last epoch
            "last_epoch": (
                hh.valid_ppl[max(len(hh.valid_ppl) - 1 - self.evals_per_epoch, 0)],
                hh.valid_ppl[-1],
            ),
            "first_step": hh.steps[0],
            "steps": hh.steps[-1],
            "reached": first_step_below(hh, self.unigram_rows),
            "time": hh.train_seconds,
            "timing": timing.text(1e6),
            "us": timing.median * 1e6,
            # the share of teacher forcing's gain over the unigram model (cross-entropy, nats/token)
            "share": share,
            "share_text": share_text(share),
        }

    @property
    def vs_unigram(self) -> dict[str, dict[str, Any]]:
        """Per trainer: its per-seed differences from the unigram model, their mean and signs."""
        out = {}
        for mode in MODES:
            diffs = self.differences(mode, self.unigram_rows)
            out[mode] = {"diffs": diffs, "d": seed_mean(diffs), "counts": sign_counts(diffs)}
        return out

    @property
    def nearer(self) -> Difference:
        """Per seed, |free − teacher| − |free − unigram|: above 0 when free running ends nearer
        the unigram model than teacher forcing."""
        from_teacher = self.differences("free", "teacher")
        to_unigram = self.differences("free", self.unigram_rows)
        return seed_mean([abs(t) - abs(u) for t, u in zip(from_teacher, to_unigram, strict=True)])

    @property
    def every_trainer_evaluated(self) -> bool:
        return all(math.isfinite(self.histories[m].valid_ppl[-1]) for m in self.histories)


def measure_teacher_forcing(lab: Lab, by_seed: dict[int, dict[str, Trained]]) -> TeacherForcing:
    """Time the run's seed's trainers side by side (interleaved, on the same data) and gather
    every seed's final validation rows."""
    cfg = lab.cfg
    models = by_seed[lab.ctx.seed]
    part = lab.train[:, : min(cfg.timing_windows * cfg.bptt_window * cfg.seq_len, lab.train.shape[1] - 1) + 1]
    timing = lab.timings(
        {m: lab.timed(tr.model, part, m, 1) for m, tr in models.items()}, "Q2.4 timing, interleaved"
    )
    return TeacherForcing(
        rows={s: {m: tr.rows for m, tr in trainers.items()} for s, trainers in by_seed.items()},
        histories={m: tr.history for m, tr in models.items()},
        timing=timing,
        unigram_rows=lab.unigram_rows,
        grammar_rows=lab.grammar_rows,
        evals_per_epoch=cfg.evals_per_epoch,
        repeats=cfg.timing_repeats,
    )


# --------------------------------------------------------------------------- recording


def record_teacher_forcing(ex: Any, m: TeacherForcing) -> None:
    """Q2.4's figure, tables, metrics, claims and check."""
    res = {mode: m.trainer(mode) for mode in m.histories}
    curves = {MODE_LABELS[mode]: (h.steps, h.seconds, h.valid_ppl) for mode, h in m.histories.items()}
    ex.figure(figures.learning_curves(curves, m.refs), "teacher_forcing_curves", caption=text.CURVES_CAPTION)
    ex.table(
        [
            [
                MODE_LABELS[mode],
                round(r["first"], 2),
                round(r["ppl"], 2),
                f"step {r['reached'][0]}" if r["reached"] else "not reached",
                r["timing"],
            ]
            for mode, r in res.items()
        ],
        columns=[
            "training",
            f"valid ppl at step {res['teacher']['first_step']}",
            "final valid ppl",
            f"this training: first below the unigram ppl ({m.unigram_ppl:.2f}) beyond the row spread",
            "µs per token, median (IQR)",
        ],
        caption="Validation perplexity is always measured with teacher forcing (the standard perplexity); "
        f"times from {m.repeats} interleaved repeats of each trainer on the same data.",
    )
    ex.metric("valid_ppl_free_running", res["free"]["ppl"])
    ex.metric("valid_ppl_scheduled_sampling", res["scheduled"]["ppl"])
    ex.metric("free_running_tokens_per_s", 1e6 / res["free"]["us"])
    ex.metric("scheduled_sampling_tokens_per_s", 1e6 / res["scheduled"]["us"])
    ex.metric("teacher_forcing_tokens_per_s", 1e6 / res["teacher"]["us"])
    ex.metric("free_running_cost_per_token", res["free"]["us"] / res["teacher"]["us"])
    # The trainers are compared over seeds: one training is one draw, and the validation
    # rows of one seed say nothing about how much the next seed's training differs.
    ex.table(
        [[s] + [round(ppl(m.rows[s][mode]), 2) for mode in MODES] for s in m.seeds],
        columns=["seed"] + [MODE_LABELS[mode] for mode in MODES],
        caption="Final validation perplexity of each trainer under each seed (the run's seed first); "
        f"each seed's three trainings start from the same initialised model. The unigram model scores "
        f"{m.unigram_ppl:.2f}.",
    )
    record_trainer_claims(ex, m)
    record_unigram_claims(ex, m)
    record_time_claims(ex, m)
    ex.check(
        "every_trainer_evaluated",
        m.every_trainer_evaluated,
        expected="a finite validation perplexity per trainer",
        actual={mode: round(r["ppl"], 3) for mode, r in res.items()},
        points=1,
    )


#: Claim name -> (x, y, side): x − y over the seeds is ``below`` or ``above`` 0.
TRAINER_CLAIMS = {
    "teacher_beats_free": ("teacher", "free", "below"),
    "free_beats_teacher": ("teacher", "free", "above"),
    "teacher_beats_scheduled": ("teacher", "scheduled", "below"),
    "scheduled_beats_teacher": ("teacher", "scheduled", "above"),
    "scheduled_beats_free": ("scheduled", "free", "below"),
}


def record_trainer_claims(ex: Any, m: TeacherForcing) -> None:
    """Which trainer reaches the lower validation perplexity, decided over the seeds."""
    for name, (x, y, side) in TRAINER_CLAIMS.items():
        diffs = m.differences(x, y)
        win, lose = (x, y) if side == "below" else (y, x)
        ex.claim(
            name,
            getattr(seed_mean(diffs), side),
            statement=f"{MODE_LABELS[win]} reaches a lower validation perplexity than {MODE_LABELS[lose]}",
            evidence=seed_evidence(
                diffs,
                paired(m.run_rows[x], m.run_rows[y]),
                f"cross-entropy, {MODE_LABELS[x]} − {MODE_LABELS[y]}",
            ),
            baseline=SEEDS_BASELINE,
        )


def record_unigram_claims(ex: Any, m: TeacherForcing) -> None:
    """Free running and scheduled sampling against the unigram model, and whether free running
    ends nearer the unigram model or teacher forcing."""
    vs_unigram = m.vs_unigram
    # Free running ends within about a hundredth of a nat of the unigram model: whether it is
    # below it is too small for the seeds to settle, so that is said with its interval
    # (free_nearer_unigram below is the verdict), not claimed either way. Teacher forcing
    # against the unigram model is the first exercise's beats_unigram, for one seed.
    for mode, sides in (("free", ["above"]), ("scheduled", ["above", "below"])):
        for side in sides:
            ex.claim(
                f"{mode}_worse_than_unigram" if side == "above" else f"{mode}_beats_unigram",
                getattr(vs_unigram[mode]["d"], side),
                statement=f"the {MODE_LABELS[mode]} model's validation perplexity is {side} the unigram model's",
                evidence=seed_evidence(
                    vs_unigram[mode]["diffs"],
                    paired(m.run_rows[mode], m.unigram_rows),
                    f"cross-entropy, {MODE_LABELS[mode]} − unigram",
                ),
                baseline=f"unigram model, perplexity {m.unigram_ppl:.2f}; " + SEEDS_BASELINE,
            )
    d_nearer = m.nearer
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


def record_time_claims(ex: Any, m: TeacherForcing) -> None:
    """Teacher forcing against free running in time per token (interleaved)."""
    for name, fast, slow in (
        ("free_costlier_per_token", "teacher", "free"),
        ("free_cheaper_per_token", "free", "teacher"),
    ):
        r = time_ratio(m.timing[slow], m.timing[fast])
        ex.claim(
            name,
            r.slower,
            statement=f"{MODE_LABELS[fast]} trains faster per token than {MODE_LABELS[slow]}",
            evidence=f"time per token, {MODE_LABELS[slow]} over {MODE_LABELS[fast]}: {r.text()}",
            baseline=TIMING_BASELINE,
        )


def answer_values(m: TeacherForcing, setting: dict) -> dict[str, Any]:
    """The values the answer template (A24) is filled with."""
    return dict(
        r={mode: m.trainer(mode) for mode in m.histories},
        unigram_ppl=m.unigram_ppl,
        optimal_ppl=m.refs.get("true grammar (best achievable)"),
        n=len(m.seeds),
        setting=setting,
        vs_unigram=m.vs_unigram,
    )


@exercise_function
def q2_4_teacher_forcing(lab: Lab, by_seed: dict[int, dict[str, Trained]]) -> dict[int, dict[str, Trained]]:
    ex = lab.exercise(
        "Q2.4 Teacher forcing", text.Q24, points=2, bonus=True
    )  # opened first: a stub below ends this exercise
    m = measure_teacher_forcing(lab, by_seed)
    with ex:
        record_teacher_forcing(ex, m)
        # STUDENT ANSWER
        ex.answer(text.A24, **answer_values(m, lab.setting))
    return by_seed


def share_text(share: float) -> str:
    """``12.3 %``, or why there is no share (teacher forcing gained nothing over the unigram model)."""
    return "undefined (teacher forcing gained nothing)" if math.isnan(share) else f"{100 * share:.1f} %"


def share_of_gain(baseline: list[float], rows: list[float], reference: list[float]) -> float:
    """How much of the reference model's gain in cross-entropy over the baseline a model
    achieves (1: all of it, 0: none); NaN when the reference gains nothing."""
    gain = sum(baseline) - sum(reference)
    return (sum(baseline) - sum(rows)) / gain if gain > 0 else float("nan")
