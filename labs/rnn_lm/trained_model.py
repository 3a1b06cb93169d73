"""The trained model's perplexity against its baselines: :func:`measure_trained_model` turns a
training's history and the validation rows into a :class:`TrainedModel` (no context needed),
:func:`record_trained_model` records it, and :func:`training_the_language_model` is the
exercise that trains, measures and records."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from labrunner import exercise_function
from labrunner.stats import Difference, paired

from . import text
from .session import ROWS_BASELINE, Lab, Trained, nll_claim_evidence, ppl, still_improving
from .training import History


@dataclass(frozen=True)
class TrainedModel:
    """What the exercise measured: the teacher-forced training's history and validation rows,
    the unigram model's and (on the synthetic corpus) the true grammar's rows, and whether a
    checkpoint was saved after every epoch."""

    history: History
    rows: list[float]
    unigram_rows: list[float]
    #: The true grammar's rows; None on a corpus without one.
    grammar_rows: list[float] | None
    #: The true grammar's perplexity over the whole distribution (None without a grammar).
    optimal_ppl: float | None
    vocab: int
    entropy: float | None
    epochs: int
    checkpoints_saved: bool

    @property
    def unigram_ppl(self) -> float:
        return ppl(self.unigram_rows)

    @property
    def vs_unigram(self) -> Difference:
        """Cross-entropy, model − unigram, paired over the validation rows."""
        return paired(self.rows, self.unigram_rows)

    @property
    def gap(self) -> Difference | None:
        """Cross-entropy, model − true grammar, paired over the validation rows."""
        return None if self.grammar_rows is None else paired(self.rows, self.grammar_rows)

    @property
    def optimal_valid(self) -> float | None:
        return None if self.grammar_rows is None else ppl(self.grammar_rows)

    @property
    def closed(self) -> float | None:
        """The share of the gap from the unigram model to the true grammar the model closed."""
        if self.optimal_valid is None:
            return None
        unigram, final = math.log(self.unigram_ppl), math.log(self.history.valid_ppl[-1])
        return (unigram - final) / (unigram - math.log(self.optimal_valid))


def measure_trained_model(lab: Lab, main: Trained) -> TrainedModel:
    """The trained model ``main`` with the baselines of ``lab``'s validation rows."""
    checkpoint = lab.ctx.state_dir / f"teacher_seed{lab.ctx.seed}.pt"
    return TrainedModel(
        history=main.history,
        rows=main.rows,
        unigram_rows=lab.unigram_rows,
        grammar_rows=lab.grammar_rows,
        optimal_ppl=lab.corpus.optimal_ppl,
        vocab=lab.vocab,
        entropy=lab.corpus.entropy,
        epochs=lab.cfg.epochs,
        checkpoints_saved=checkpoint.is_file() and main.history.epochs_done == lab.cfg.epochs,
    )


def record_trained_model(ex: Any, m: TrainedModel) -> None:
    """The learning curve's table, the metrics, and the claims and checks against the baselines."""
    h = m.history
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
    ex.metric("unigram_ppl", m.unigram_ppl)
    ex.metric("train_tokens_per_s", h.tokens_per_s)
    ex.claim(
        "beats_unigram",
        m.vs_unigram.below,
        statement="the trained model's validation perplexity is below the unigram model's",
        evidence=nll_claim_evidence(m.vs_unigram, "cross-entropy, model − unigram"),
        baseline=f"unigram model of the training split (add-one smoothed), perplexity {m.unigram_ppl:.2f}; "
        + ROWS_BASELINE,
    )
    if m.gap is not None:
        ex.metric("optimal_ppl", m.optimal_ppl)
        ex.metric("optimal_ppl_valid", m.optimal_valid)
        ex.metric("excess_nats_over_optimum", m.gap.mean)
        ex.metric("gap_closed_unigram_to_optimum", m.closed)
        ex.claim(
            "above_optimum",
            m.gap.above,
            statement="the model's cross-entropy is above the true grammar's on the same validation text "
            "(it has not reached the best achievable perplexity)",
            evidence=nll_claim_evidence(m.gap, "cross-entropy, model − true grammar"),
            baseline="the true grammar's log-probability of the same validation tokens; " + ROWS_BASELINE,
        )
        ex.check(
            "valid_ppl_not_below_optimum",
            not m.gap.below,
            expected="model cross-entropy not significantly below the true grammar's",
            actual=m.gap.text(),
            points=1,
        )
    still_improving(ex, "still_improving", h, "teacher forcing")
    ex.check_at_most("valid_ppl_below_uniform", h.valid_ppl[-1], float(m.vocab), points=1)
    ex.check_equal("checkpoint_per_epoch", m.checkpoints_saved, True, points=1)


def answer_values(m: TrainedModel) -> dict[str, Any]:
    """The values the answer template (TRAIN_A) is filled with."""
    h = m.history
    values = dict(
        valid_ppl=h.valid_ppl[-1],
        first_ppl=h.valid_ppl[0],
        first_step=h.steps[0],
        train_ppl=math.exp(h.train_loss[-1]),
        unigram_ppl=m.unigram_ppl,
        vs_unigram=m.vs_unigram,
        tokens_per_s=h.tokens_per_s,
        epochs=m.epochs,
        steps=h.steps[-1],
        vocab=m.vocab,
        optimal_ppl=None,
        entropy=m.entropy,
    )
    if m.gap is not None:
        values.update(optimal_ppl=m.optimal_ppl, optimal_valid=m.optimal_valid, gap=m.gap, closed=m.closed)
    return values


@exercise_function
def training_the_language_model(lab: Lab) -> Trained:
    ex = lab.exercise(
        "Training the language model", text.TRAIN_Q
    )  # opened first: a stub below ends this exercise
    main = lab.fit("teacher", lab.ctx.seed, "Training")
    m = measure_trained_model(lab, main)
    with ex:
        record_trained_model(ex, m)
        # STUDENT ANSWER
        ex.answer(text.TRAIN_A, setting=lab.setting, **answer_values(m))
    return main
