"""Built-in lab ``adversarial``: AlexNet classification and targeted adversarial examples
(Problem 1, Exercises 2 and 3 of the assignment).

Importing this package stays light: torch, torchvision and matplotlib are imported
inside :meth:`AdversarialLab.run` (by :mod:`.experiment`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import labrunner
from labrunner.precision import Precision


@dataclass(frozen=True)
class AdversarialConfig:
    """Settings of the lab; the defaults are the assignment's. Counts, sizes and step sizes
    declare their bounds (``metadata``), so a setting the lab cannot run with, such as
    ``random_draws: 1`` or ``attack_images: 0``, is refused in one line before anything runs.
    Each ``#:`` comment is the setting's description in ``labrunner config adversarial``."""

    #: `auto` (torch hub cache, else a download, else the offline stand-in), `none` (the stand-in) or a state dict's path.
    weights: str = field(default="auto", metadata={"min_len": 1})
    #: Whether `auto` may download the ImageNet weights when the machine is online.
    download: bool = True
    #: Image paths or URLs (also `skimage:NAME`, `matplotlib:FILE`); empty: the photos that ship with the libraries.
    images: tuple[str, ...] = field(default=(), metadata={"min_len": 0})
    #: Classes listed per image in the classification table.
    top_k: int = field(default=5, metadata={"min": 1})
    #: Random images attacked (seeded by the run).
    attack_images: int = field(default=2, metadata={"min": 1})
    #: Random target classes per attacked image.
    targets_per_image: int = field(default=3, metadata={"min": 1})
    # The assignment's method: loss = alpha * ||u' - u||_1 + CE(f(u'), target), Adam(lr), with
    # alpha and lr in the normalised space u = (x - mean) / std the network sees; the lab runs
    # the exactly equivalent pixel-space update (alpha / std and lr * std per channel).
    #: The L1 penalty's weight alpha, in the normalised input space (the assignment's).
    alpha: float = field(default=0.001, metadata={"min": 0})
    #: Adam's learning rate on the image, in the normalised input space.
    lr: float = field(default=0.01, metadata={"above": 0})
    #: Most gradient steps per attack (an attack stops when the target is reached).
    max_iter: int = field(default=100, metadata={"min": 0})
    #: FGSM's L-inf radius, in 1/255 pixel units.
    fgsm_eps: float = field(default=8.0, metadata={"min": 0, "max": 255})
    #: PGD's (iterative FGSM's) L-inf radius, in 1/255 pixel units.
    pgd_eps: float = field(default=8.0, metadata={"min": 0, "max": 255})
    #: PGD's step, in 1/255 pixel units.
    pgd_step: float = field(default=1.0, metadata={"above": 0})
    #: Random sign steps of FGSM's size per (image, target) pair, the baseline of FGSM's step.
    random_draws: int = field(default=20, metadata={"min": 2})
    #: Exercise 4: larger L1 penalties both L1 methods also run with, to see where sparsity starts.
    sparsity_alphas: tuple[float, ...] = field(default=(0.01, 0.03, 0.1), metadata={"min": 0, "min_len": 0})
    #: The offline stand-in CNN's training-set size (trained with the run's seed, cached per seed and setting).
    fallback_train_size: int = field(default=4000, metadata={"min": 1})
    #: The offline stand-in CNN's training epochs.
    fallback_epochs: int = field(default=6, metadata={"min": 1})
    #: With the stand-in, attack every class's shape towards every other class (30 pairs; the shapes drawn with the seed).
    fallback_all_pairs: bool = False
    #: The attacks' forward pass: fp32, or autocast to bf16 or fp16 (CUDA only); loss and gradient stay fp32.
    precision: Precision = "fp32"


class AdversarialLab(labrunner.Lab):
    name = "adversarial"
    title = "Problem 1, Exercises 2–3: AlexNet and adversarial examples"
    part = "Problem 1"
    order = 2  # after cnn_receptive (Problem 1, Exercise 1: order 1), before rnn_lm (Problem 2: 20)
    expected_s = {"quick": 26}  # about the seconds of a run: labs in parallel start the longest first
    version = "2"
    description = (
        "AlexNet written out, top-5 classification, targeted adversarial examples vs FGSM, PGD and EAD"
    )
    Config = AdversarialConfig
    profiles = {
        "smoke": {
            "max_iter": 60,
            "fallback_train_size": 3000,
            "fallback_epochs": 5,
            "download": False,
            "sparsity_alphas": (0.03,),
        },
        # The stand-in attacks all its 30 pairs, so that the paired comparisons can decide.
        "quick": {"fallback_all_pairs": True},
        "full": {},
    }

    def run(self, ctx: labrunner.LabContext) -> None:
        from .experiment import run_experiment

        run_experiment(ctx)


@labrunner.hookimpl
def register_labs(register) -> None:
    register(AdversarialLab())
