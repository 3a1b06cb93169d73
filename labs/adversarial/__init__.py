"""Built-in lab ``adversarial``: AlexNet classification and targeted adversarial examples
(Problem 1, Exercises 2 and 3 of the assignment).

Importing this package stays light: torch, torchvision and matplotlib are imported
inside :meth:`AdversarialLab.run` (by :mod:`.experiment`).
"""

from __future__ import annotations

from dataclasses import dataclass

import labrunner


@dataclass(frozen=True)
class AdversarialConfig:
    """Settings of the lab; the defaults are the assignment's."""

    #: ``auto`` (torch hub cache, else a download when online, else the offline stand-in),
    #: ``none`` (always the stand-in) or the path of an AlexNet state dict.
    weights: str = "auto"
    #: Whether ``auto`` may download the ImageNet weights when the machine is online.
    download: bool = True
    #: Image paths or URLs (``skimage:NAME`` and ``matplotlib:FILE`` also work);
    #: empty: Grace Hopper, plus scikit-image's photos when ``labrunner[images]`` is installed.
    images: tuple[str, ...] = ()
    top_k: int = 5
    #: The attack: this many random images, this many random targets each (seeded by the run).
    attack_images: int = 2
    targets_per_image: int = 3
    #: The assignment's method: loss = alpha * ||x' - x||_1 + CE(f(x'), target), Adam(lr).
    alpha: float = 0.001
    lr: float = 0.01
    max_iter: int = 100
    #: Baselines, in 1/255 pixel units: FGSM and iterative FGSM / PGD with L-inf radius eps.
    fgsm_eps: float = 8.0
    pgd_eps: float = 8.0
    pgd_step: float = 1.0
    #: Exercise 4 also runs both L1 methods with these larger penalties, to see where sparsity starts.
    sparsity_alphas: tuple[float, ...] = (0.01, 0.1, 0.3)
    #: The offline stand-in CNN: training-set size and epochs (cached per setting).
    fallback_train_size: int = 4000
    fallback_epochs: int = 6


class AdversarialLab(labrunner.Lab):
    name = "adversarial"
    title = "Problem 1: AlexNet and targeted adversarial examples"
    version = "1"
    description = (
        "AlexNet written out, top-5 classification, targeted adversarial examples vs FGSM, PGD and EAD"
    )
    Config = AdversarialConfig
    profiles = {
        "smoke": {
            "max_iter": 40,
            "fallback_train_size": 3000,
            "fallback_epochs": 5,
            "download": False,
            "sparsity_alphas": (0.1,),
        },
        "quick": {},
        "full": {},
    }

    def run(self, ctx: labrunner.LabContext) -> None:
        from .experiment import run_experiment

        run_experiment(ctx)


@labrunner.hookimpl
def register_labs(register) -> None:
    register(AdversarialLab())
