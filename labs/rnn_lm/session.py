"""What every exercise of the lab shares: the context, the data on the device, the
baselines on the validation rows, training with checkpoints, and interleaved timing."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

import labrunner
from labrunner.data import DataError
from labrunner.stats import (
    Difference,
    Timing,
    interleaved,
    mean_se,
    paired,
    t_critical,
)

from . import corpus as corpora
from . import text
from .model import (
    LSTMLanguageModel,
    batchify,
    segment_starts,
)
from .replicas import ResumeMismatch, batching_blocker, train_replicas
from .training import History, TrainConfig, train_model

MODE_LABELS = {"teacher": "teacher forcing", "free": "free running", "scheduled": "scheduled sampling"}
#: The assignment's model size (embedding, hidden).
ASSIGNMENT_SIZE = (128, 1024)


@dataclass
class Trained:
    model: LSTMLanguageModel
    history: History
    #: The embedding matrix before training (the same for every trainer of one seed).
    init_embedding: np.ndarray

    @property
    def rows(self) -> list[float]:
        """Final validation cross-entropy per row of the batchified split."""
        return self.history.valid_row_nll[-1]


@dataclass
class Lab:
    """What every exercise needs: the context, the data on the device, the baselines."""

    ctx: labrunner.LabContext
    corpus: corpora.Corpus
    train: torch.Tensor
    valid: torch.Tensor
    #: Per validation row: mean cross-entropy of the unigram model and of the true grammar.
    unigram_rows: list[float]
    grammar_rows: list[float] | None
    stand_in: str
    resumed: list[str] = field(default_factory=list)
    #: What the run was given, for the templates' conditions (``setting.synthetic``): the
    #: corpus, the device, the files read; never a measurement.
    setting: dict = field(default_factory=dict)

    @property
    def cfg(self):
        return self.ctx.config

    @property
    def vocab(self) -> int:
        return len(self.corpus.dictionary)

    def exercise(self, title: str, question: str, **points: Any) -> labrunner.ExerciseRecorder:
        """Open an exercise (on the stand-in when the corpus is one); ``points`` and ``bonus``:
        what the assignment gives it (Q2.1 10 points, Q2.2 7, Q2.3 8, Q2.4 a bonus of 2, Q2.5 a
        bonus of 1; the training itself is no question of its own)."""
        if self.stand_in:
            return self.ctx.exercise(title, question, fidelity="stand-in", reason=self.stand_in, **points)
        return self.ctx.exercise(title, question, **points)

    def train_config(self, mode: str, **kw) -> TrainConfig:
        cfg = self.cfg
        return TrainConfig(
            epochs=kw.pop("epochs", cfg.epochs),
            batch_size=cfg.batch_size,
            seq_len=cfg.seq_len,
            lr=cfg.lr,
            clip=cfg.clip,
            mode=mode,
            evals_per_epoch=kw.pop("evals_per_epoch", cfg.evals_per_epoch),
            precision=cfg.precision,
            **kw,
        )

    def new_model(self, seed: int) -> LSTMLanguageModel:
        torch.manual_seed(seed)
        return LSTMLanguageModel(self.vocab, self.cfg.embedding_dim, self.cfg.hidden_size).to(self.ctx.device)

    def fit(self, mode: str, seed: int, purpose: str, tag: str = "", **kw) -> Trained:
        """Train a fresh model of ``seed`` (resuming from its checkpoint), with a progress bar
        that names the trainer and ticks per batch."""
        tc = self.train_config(mode, **kw)
        model = self.new_model(seed)
        init = model.embed.weight.detach().cpu().double().numpy().copy()
        steps = tc.epochs * len(segment_starts(self.train.shape[1], tc.seq_len * tc.bptt_window))
        name = f"{tag or mode}_seed{seed}"
        with self.ctx.progress(total=steps, desc=f"{purpose}: {MODE_LABELS[mode]}, seed {seed}") as bar:
            hist = train_model(
                model,
                self.train,
                self.valid,
                tc,
                checkpoint=self.ctx.state_dir / f"{name}.pt",
                progress=lambda n, post: bar.update(n, **post),
                log=self.ctx.log,
                generator=torch.Generator().manual_seed(seed + 7919),
            )
        if hist.resumed_from_epoch:
            self.resumed.append(f"`{name}` after epoch {hist.resumed_from_epoch} of {tc.epochs}")
        return Trained(model, hist, init)

    def fit_seeds(self, mode: str, seeds: list[int], purpose: str, **kw) -> dict[int, Trained]:
        """Train a fresh model of each seed, as :meth:`fit` does one: as one batched model of
        replicas when the settings allow it (``batch_seeds``, fp32 on the CPU, not
        ``--deterministic``, checkpoints at one epoch), else one at a time."""
        blocker = self.batching_blocker()
        if blocker or len(seeds) < 2:
            return {s: self.fit(mode, s, purpose, **kw) for s in seeds}
        tc = self.train_config(mode, **kw)
        models = [self.new_model(s) for s in seeds]
        inits = [m.embed.weight.detach().cpu().double().numpy().copy() for m in models]
        names = [f"{mode}_seed{s}" for s in seeds]
        steps = tc.epochs * len(segment_starts(self.train.shape[1], tc.seq_len * tc.bptt_window))
        desc = f"{purpose}: {MODE_LABELS[mode]}, seeds {seeds[0]}-{seeds[-1]} batched"
        with self.ctx.progress(total=steps, desc=desc) as bar:
            try:
                hists = train_replicas(
                    models,
                    self.train,
                    self.valid,
                    tc,
                    checkpoints=[self.ctx.state_dir / f"{n}.pt" for n in names],
                    generators=[torch.Generator().manual_seed(s + 7919) for s in seeds],
                    progress=lambda n, post: bar.update(n, **post),
                    log=self.ctx.log,
                )
            except ResumeMismatch as e:  # an earlier run stopped between the replicas' saves
                self.ctx.log(f"{e}: training them one at a time")
                hists = None
        if hists is None:
            return {s: self.fit(mode, s, purpose, **kw) for s in seeds}
        for name, hist in zip(names, hists, strict=True):
            if hist.resumed_from_epoch:
                self.resumed.append(f"`{name}` after epoch {hist.resumed_from_epoch} of {tc.epochs}")
        return {s: Trained(m, h, i) for s, m, h, i in zip(seeds, models, hists, inits, strict=True)}

    def batching_blocker(self) -> str:
        """Why :meth:`fit_seeds` trains one seed at a time ('' when it batches them)."""
        if not self.cfg.batch_seeds:
            return "the setting batch_seeds is off"
        return batching_blocker(self.ctx.device, self.cfg.precision, self.ctx.deterministic)

    def timed(self, model: LSTMLanguageModel, data: torch.Tensor, mode: str, window: int):
        """A callable for :func:`labrunner.stats.interleaved` (through a per-token reading): one epoch over ``data`` on a copy of
        ``model``, without evaluation; returns (training seconds, tokens)."""
        tc = self.train_config(mode, epochs=1, evals_per_epoch=0, bptt_window=window)

        def run() -> tuple[float, int]:
            hist = train_model(copy.deepcopy(model), data, None, tc)
            return hist.train_seconds, hist.train_tokens

        return run

    def timings(self, variants: dict, desc: str) -> dict[str, Timing]:
        repeats = self.cfg.timing_repeats
        with self.ctx.progress(total=repeats * len(variants), desc=desc) as bar:
            per_token = {name: _per_token(fn) for name, fn in variants.items()}
            return interleaved(per_token, rounds=repeats, tick=bar.update)


def _per_token(run: Callable[[], tuple[float, int]]) -> Callable[[], float]:
    def reading() -> float:
        seconds, tokens = run()
        return seconds / tokens

    return reading


# --------------------------------------------------------------------------- set-up


def load_corpus(ctx: labrunner.LabContext) -> corpora.Corpus:
    """The corpus the config names (synthetic, PTB, or a folder)."""
    cfg = ctx.config
    if cfg.corpus == "synthetic":
        return corpora.synthetic_corpus(
            ctx.seed, cfg.synthetic_tokens, cfg.synthetic_vocab, cfg.synthetic_zipf, cfg.synthetic_end_prob
        )
    if cfg.corpus == "ptb":
        if cfg.corpus_path:
            return corpora.load_folder(cfg.corpus_path, corpora.PTB_FILES)
        folder = ctx.cache_dir / "ptb"
        if not all((folder / n).is_file() for n in corpora.PTB_FILES.values()) and not cfg.download:
            raise DataError(
                f"PTB is not in the cache ({folder}) and download is off: set corpus_path to a folder "
                "with ptb.train.txt, ptb.valid.txt and ptb.test.txt, or download: true"
            )
        return corpora.load_folder(
            corpora.fetch_ptb(ctx.cache_dir, cfg.ptb_url, cfg.ptb_sha256), corpora.PTB_FILES
        )
    return corpora.load_folder(cfg.corpus)


def stand_in_reason(corpus: corpora.Corpus, cfg) -> str:
    """Why the run is a stand-in for the assignment ('' when it is the assignment)."""
    reasons = []
    if corpus.source == "synthetic":
        reasons.append(
            "it did not use Penn Treebank: it trained on the synthetic corpus generated offline "
            f"({len(corpus.train):,} training tokens, {len(corpus.dictionary)} words)"
        )
    elif corpus.source != "ptb" and not any(n in corpus.sha256 for n in corpora.PTB_FILES.values()):
        reasons.append(f"it did not use Penn Treebank but the corpus in {corpus.source}")
    if (cfg.embedding_dim, cfg.hidden_size) != ASSIGNMENT_SIZE:
        reasons.append(
            f"its model is smaller than the assignment's (embedding {cfg.embedding_dim}, hidden "
            f"{cfg.hidden_size} instead of {ASSIGNMENT_SIZE[0]}, {ASSIGNMENT_SIZE[1]})"
        )
    text_ = "; ".join(reasons)
    return text_[0].upper() + text_[1:] + "." if reasons else ""


def prepare(ctx: labrunner.LabContext) -> Lab:
    """Corpus, batchified splits on the device, and the baselines on the validation rows."""
    cfg = ctx.config
    corpus = load_corpus(ctx)
    train = batchify(corpus.train, cfg.batch_size, ctx.device)
    valid = batchify(corpus.valid, cfg.batch_size, ctx.device)
    rows = valid.cpu().numpy()
    unigram_rows = (-corpus.unigram_logp()[rows[:, 1:]]).mean(1).tolist()
    grammar_rows = None
    if corpus.grammar is not None:
        grammar_rows = (-corpus.grammar_logp(rows[:, :-1], rows[:, 1:])).mean(1).tolist()
    lab = Lab(ctx, corpus, train, valid, unigram_rows, grammar_rows, stand_in_reason(corpus, cfg))
    a, b = cfg.distance_words
    lab.setting = {
        "synthetic": corpus.grammar is not None,
        "cuda": ctx.device.type == "cuda",
        "stand_in": lab.stand_in,
        "files": corpus.sha256,
        "pinned": bool(cfg.ptb_sha256),
        "md5_checked": cfg.corpus == "ptb" and not cfg.corpus_path and cfg.ptb_url == corpora.PTB_BASE_URL,
        "words_known": a in corpus.dictionary and b in corpus.dictionary,
    }
    grammar = mean_se(grammar_rows) if grammar_rows else (math.nan, math.nan)
    margin = t_critical(len(grammar_rows or [])) * grammar[1]
    ctx.note(
        text.NOTE,
        grammar_valid=math.exp(grammar[0]),
        grammar_lo=math.exp(grammar[0] - margin),
        grammar_hi=math.exp(grammar[0] + margin),
        grammar_rows=len(grammar_rows or []),
        source=corpus.source,
        vocab=lab.vocab,
        n_train=len(corpus.train),
        n_valid=len(corpus.valid),
        optimal_ppl=corpus.optimal_ppl,
        device=str(ctx.device),
        setting=lab.setting,
    )
    return lab


def ppl(rows: list[float]) -> float:
    return math.exp(sum(rows) / len(rows))


def nll_claim_evidence(d: Difference, what: str) -> str:
    return f"{what}: {d.text()} nats/token over {d.n} validation rows"


ROWS_BASELINE = "paired over the rows of the validation split; ± is the 95 % interval (Student's t)"
TIMING_BASELINE = (
    "the two trainings timed side by side in interleaved rounds under the same load; a difference "
    "counts when the 95 % interval of the median per-round ratio excludes 1 (the sign test over the rounds)"
)


def still_improving(ex, name: str, hist: History, label: str) -> bool:
    """Claim that validation cross-entropy still fell between the last two measurements."""
    if len(hist.valid_row_nll) < 2:
        return ex.claim(
            name,
            False,
            statement=f"{label}: validation cross-entropy was still falling at the end",
            evidence="only one validation measurement: no trend to read",
        )
    d = paired(hist.valid_row_nll[-1], hist.valid_row_nll[-2])
    return ex.claim(
        name,
        d.below,
        statement=f"{label}: validation cross-entropy was still falling at the end",
        evidence=nll_claim_evidence(
            d, f"last − previous measurement (steps {hist.steps[-1]} and {hist.steps[-2]})"
        ),
        baseline=ROWS_BASELINE,
    )


def first_step_below(hist: History, baseline_rows: list[float]) -> tuple[int, float] | None:
    """The first (step, seconds) at which the validation cross-entropy was measurably below
    the baseline's (paired over the validation rows, as the claims decide)."""
    for step, sec, rows in zip(hist.steps, hist.seconds, hist.valid_row_nll, strict=True):
        if paired(rows, baseline_rows).below:
            return step, sec
    return None
