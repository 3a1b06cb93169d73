"""The lab's run: one function per exercise of Problem 2, in the assignment's order.

Each exercise function measures, decides its claims against a baseline with its
uncertainty, and records the answer; this module only orchestrates.
"""

from __future__ import annotations

import labrunner

from . import text
from .bptt import q2_1_detach_or_not
from .distances import q2_5_distance_under_each_training
from .embeddings import q2_3_embedding_distance
from .forcing import q2_4_teacher_forcing
from .sampling import q2_2_sampling
from .session import prepare
from .trained_model import training_the_language_model
from .training import check_lstm_precision


def run_experiment(ctx: labrunner.LabContext) -> None:
    check_lstm_precision(ctx.config.precision, ctx.device)
    lab = prepare(ctx)
    main = training_the_language_model(lab)
    q2_1_detach_or_not(lab)
    q2_2_sampling(lab, main)
    by_seed = q2_3_embedding_distance(lab, main)  # trains every seed: Q2.3 is decided over them
    q2_4_teacher_forcing(lab, by_seed)
    q2_5_distance_under_each_training(lab, by_seed)
    if lab.resumed:
        ctx.note(text.RESUMED, resumed=lab.resumed)
