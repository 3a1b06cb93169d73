"""The lab's exercises, one function each, named after the assignment's question: each opens
its exercise, measures (:mod:`.equivariance`, :mod:`.readout`, :mod:`.ffn_exercise`, which
need no context), records what it measured, and answers (here, inside the exercise, so that
``labrunner assign`` finds the marked answer). No maths here."""

from __future__ import annotations

from typing import Any

import torch

from . import attention as att
from . import equivariance, ffn_exercise, readout, text
from .shared import Setup


def run_experiment(ctx: Any) -> None:
    """The lab: the note on the random cases, then the three exercises."""
    describe_setup(ctx)
    show_self_attention_is_permutation_equivariant(ctx)  # Q1: P S(X) = S(PX)
    construct_permutation_invariant_readout(ctx)  # Q2: G(PX) = G(X)
    implement_position_wise_ffn_three_ways(ctx)  # Q3: Linear, Conv1d, torch.func


def setup_of(ctx: Any) -> Setup:
    """The random cases of Exercises 1 and 2, from the lab's config and the run's seed."""
    cfg = ctx.config
    return Setup(cfg.shapes, cfg.draws, cfg.permutations, ctx.seed, cfg.alpha if cfg.alpha > 0 else None)


def describe_setup(ctx: Any) -> None:
    """The note at the top of the lab: what the random checks ran on."""
    s = setup_of(ctx)
    cases = list(att.random_cases(s.shapes, s.draws, s.permutations, torch.float64, s.seed))
    ctx.note(
        text.NOTE,
        n_shapes=len(s.shapes),
        shapes=", ".join(f"({t}, {d}, {k}, {v})" for t, d, k, v in s.shapes),
        draws=s.draws,
        permutations=s.permutations,
        n_cases=sum(len(c.p) for c in cases),
        n_nontrivial=sum(c.nontrivial for c in cases),
        setting={"has_single_token": s.has_single_token},
        alpha=f"{s.alpha:g}" if s.alpha else r"\sqrt{D_k}",
        device=str(ctx.device),
    )


def show_self_attention_is_permutation_equivariant(ctx: Any) -> None:
    """Q1: show that P S(X) = S(PX); verify it, and verify that the check catches mistakes."""
    with ctx.exercise(
        "1. Permutation equivariance of self-attention", question=text.Q1, fidelity="assignment"
    ) as ex:
        ctx.log("exercise 1: equivariance sweeps")
        measured = equivariance.measure_equivariance(setup_of(ctx), ctx.config.figure_tokens, ctx.progress)
        equivariance.record_equivariance(ex, measured)
        # STUDENT ANSWER
        ex.answer(text.A1, **equivariance.answer_values(measured))


def construct_permutation_invariant_readout(ctx: Any) -> None:
    """Q2: from S(X) and a linear operation, build G(X) with G(PX) = G(X); prove and verify it."""
    with ctx.exercise(
        "2. A permutation-invariant readout G(X)", question=text.Q2, fidelity="assignment"
    ) as ex:
        ctx.log("exercise 2: invariance sweeps")
        measured = readout.measure_readouts(setup_of(ctx))
        readout.record_readouts(ex, measured)
        # STUDENT ANSWER
        ex.answer(text.A2, **readout.answer_values(measured))


def implement_position_wise_ffn_three_ways(ctx: Any) -> None:
    """Q3: the position-wise FFN with nn.Linear, nn.Conv1d(k=1) and torch.func; do they agree,
    what does functionalize do, and how fast is each."""
    with ctx.exercise(
        "3. The position-wise feed-forward network, three ways", question=text.Q3, fidelity="assignment"
    ) as ex:
        ctx.log("exercise 3: FFN forms")
        measured = ffn_exercise.measure_ffn_forms(ctx.config, ctx.device, ctx.seed, ctx.progress)
        ffn_exercise.record_ffn_forms(ex, measured)
        # STUDENT ANSWER
        ex.answer(text.A3, **ffn_exercise.answer_values(measured))
