"""Built-in lab ``adversarial``: AlexNet classification and targeted adversarial examples
(Problem 1, Exercises 2 and 3 of the assignment).

Importing this package stays light: torch, torchvision and matplotlib are imported
inside :meth:`AdversarialLab.run` (by :mod:`.experiment`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import labrunner


@dataclass(frozen=True)
class AdversarialConfig:
    """Settings of the lab; the defaults are the assignment's. Counts, sizes and step sizes
    declare their bounds (``metadata``), so a setting the lab cannot run with, such as
    ``random_draws: 1`` or ``attack_images: 0``, is refused in one line before anything runs."""

    #: ``auto`` (torch hub cache, else a download when online, else the offline stand-in),
    #: ``none`` (always the stand-in) or the path of an AlexNet state dict.
    weights: str = "auto"
    #: Whether ``auto`` may download the ImageNet weights when the machine is online.
    download: bool = True
    #: Image paths or URLs (``skimage:NAME`` and ``matplotlib:FILE`` also work);
    #: empty: Grace Hopper, plus scikit-image's photos when ``labrunner[images]`` is installed.
    images: tuple[str, ...] = ()
    top_k: int = field(default=5, metadata={"min": 1})
    #: The attack: this many random images, this many random targets each (seeded by the run).
    attack_images: int = field(default=2, metadata={"min": 1})
    targets_per_image: int = field(default=3, metadata={"min": 1})
    #: The assignment's method: loss = alpha * ||u' - u||_1 + CE(f(u'), target), Adam(lr), with
    #: alpha and lr in the normalised space u = (x - mean) / std the network sees; the lab runs
    #: the exactly equivalent pixel-space update (alpha / std and lr * std per channel).
    alpha: float = field(default=0.001, metadata={"min": 0})
    lr: float = field(default=0.01, metadata={"above": 0})
    max_iter: int = field(default=100, metadata={"min": 0})
    #: Baselines, in 1/255 pixel units: FGSM and iterative FGSM / PGD with L-inf radius eps.
    fgsm_eps: float = field(default=8.0, metadata={"min": 0, "max": 255})
    pgd_eps: float = field(default=8.0, metadata={"min": 0, "max": 255})
    pgd_step: float = field(default=1.0, metadata={"above": 0})
    #: Random sign steps of FGSM's size per (image, target) pair: the baseline FGSM's step is measured against.
    random_draws: int = field(default=20, metadata={"min": 2})
    #: Exercise 4 also runs both L1 methods with these larger penalties, to see where sparsity starts.
    sparsity_alphas: tuple[float, ...] = field(default=(0.01, 0.03, 0.1), metadata={"min": 0})
    #: The offline stand-in CNN: training-set size and epochs (cached per setting).
    fallback_train_size: int = field(default=4000, metadata={"min": 1})
    fallback_epochs: int = field(default=6, metadata={"min": 1})
    #: With the stand-in, attack every generated shape towards every other class (6 x 5 pairs)
    #: instead of ``attack_images`` x ``targets_per_image``: enough pairs for the paired tests
    #: to decide, and the same pairs under every seed.
    fallback_all_pairs: bool = False
    #: The model's forward pass in the attacks: fp32, or under autocast to bf16 (CPU or CUDA)
    #: or fp16 (CUDA only); the attack's loss and the image's gradient stay fp32.
    precision: str = "fp32"


class AdversarialLab(labrunner.Lab):
    name = "adversarial"
    title = "Problem 1, Exercises 2–3: AlexNet and adversarial examples"
    part = "Problem 1"
    order = 2  # after cnn_receptive (Problem 1, Exercise 1: order 1), before rnn_lm (Problem 2: 20)
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

    def validate(self, config: AdversarialConfig) -> None:
        """Settings the bounds on single fields cannot express."""
        if config.precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"precision: must be one of fp32, bf16, fp16, got {config.precision!r}")

    def run(self, ctx: labrunner.LabContext) -> None:
        from .experiment import run_experiment

        run_experiment(ctx)


@labrunner.hookimpl
def register_labs(register) -> None:
    register(AdversarialLab())
