"""Built-in lab ``attention``: self-attention's permutation equivariance, a permutation-invariant
readout, and the position-wise feed-forward network three ways (Problem 3 of the assignment).

Importing this package stays light: torch and matplotlib are imported inside
:meth:`AttentionLab.run`. The maths is importable on its own from :mod:`.attention`
(``self_attention``, ``invariant_pool``, the checks), :mod:`.ffn` (the FFN forms) and
:mod:`.rounding` (the rounding bounds every claim is decided against). :mod:`.experiment` has
one function per exercise, which measures with :mod:`.equivariance`, :mod:`.readout` or
:mod:`.ffn_exercise` (functions that need no context and return a frozen dataclass) and
records the result with the same module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import labrunner

#: Shapes (T, D_in, D_k, D_v) of the random checks in the quick profile; full adds larger ones.
QUICK_SHAPES: tuple[tuple[int, int, int, int], ...] = (
    (1, 4, 4, 4),
    (2, 3, 4, 5),
    (5, 8, 8, 8),
    (16, 32, 16, 24),
    (33, 7, 3, 11),
    (64, 64, 32, 32),
)


@dataclass(frozen=True)
class AttentionConfig:
    """Settings of the lab; the defaults are the ``quick`` profile. Each ``#:`` comment is the
    setting's description in ``labrunner config attention``; shapes and counts declare their
    bounds, so an empty or non-positive one is refused before the lab runs."""

    #: Exercises 1, 2: shapes (T, D_in, D_k, D_v) of the random checks.
    shapes: tuple[tuple[int, int, int, int], ...] = field(
        default=QUICK_SHAPES, metadata={"min": 1, "min_len": 1}
    )
    #: Exercises 1, 2: random draws of (X, W_q, W_k, W_v) per shape.
    draws: int = field(default=5, metadata={"min": 1})
    #: Exercises 1, 2: random permutations per draw.
    permutations: int = field(default=20, metadata={"min": 1})
    #: The temperature alpha of the scores; 0 means sqrt(D_k).
    alpha: float = field(default=0.0, metadata={"min": 0})
    #: Tokens in the attention-map figure.
    figure_tokens: int = field(default=8, metadata={"min": 1})
    #: Exercise 3: shapes (B, T, D) on which the FFN forms are compared (the first is the assignment's).
    ffn_shapes: tuple[tuple[int, int, int], ...] = field(
        default=((16, 32, 64), (1, 1, 8), (3, 7, 16), (8, 128, 32), (4, 16, 128)),
        metadata={"min": 1, "min_len": 1},
    )
    #: Exercise 3: hidden width of the FFN; 0 means 4 * D.
    d_ff: int = field(default=0, metadata={"min": 0})
    #: Exercise 3: the shape (B, T, D) of the timing.
    timing_shape: tuple[int, int, int] = field(default=(16, 32, 64), metadata={"min": 1})
    #: Exercise 3: timed rounds, each one forward pass per form.
    timing_repeats: int = field(default=30, metadata={"min": 1})


class AttentionLab(labrunner.Lab):
    name = "attention"
    title = "Problem 3: self-attention and the position-wise FFN"
    part = "Problem 3"
    order = 30
    expected_s = {"quick": 3}  # about the seconds of a run: labs in parallel start the longest first
    version = "2"
    description = (
        "Self-attention is permutation equivariant (proved, measured), invariant pooling, FFN three ways"
    )
    Config = AttentionConfig
    profiles = {
        "smoke": {
            "shapes": ((2, 3, 4, 5), (5, 8, 8, 8), (16, 12, 8, 8)),
            "draws": 2,
            "permutations": 4,
            "ffn_shapes": ((16, 32, 64), (3, 7, 16)),
            "timing_repeats": 6,
        },
        "quick": {},
        "full": {
            "shapes": (*QUICK_SHAPES, (128, 128, 64, 64), (256, 64, 16, 16)),
            "draws": 10,
            "permutations": 50,
            "ffn_shapes": ((16, 32, 64), (1, 1, 8), (3, 7, 16), (8, 128, 32), (4, 16, 128), (32, 256, 512)),
            "timing_shape": (16, 128, 512),
            "timing_repeats": 30,
        },
    }

    def run(self, ctx: labrunner.LabContext) -> None:
        from .experiment import run_experiment

        run_experiment(ctx)


@labrunner.hookimpl
def register_labs(register) -> None:
    register(AttentionLab())
