"""Built-in lab ``cnn_receptive``: receptive fields of any CNN, computed and verified
(Problem 1, Exercise 1 of the assignment, turned into a general tool).

The calculator is :func:`labrunner.labs.cnn_receptive.receptive.receptive_fields`: the
geometry of one layer in :mod:`.geometry`, the rule of each layer type in :mod:`.rules`,
tracing in :mod:`.tracing`. Importing this package stays light: torch, torchvision and
matplotlib are imported inside :meth:`ReceptiveFieldLab.run` (by :mod:`.experiment`), which
has one function per exercise: it measures with the exercise's module (a function that needs
no context and returns a frozen dataclass) and records the result with the same module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import labrunner


@dataclass(frozen=True)
class ReceptiveConfig:
    """Settings of the lab; the defaults are the assignment's. Each ``#:`` comment is the
    setting's description in ``labrunner config cnn_receptive``."""

    #: Exercise 2: AlexNet's input size (from 95 pixels on, its last pooling map is larger than 1 x 1).
    alexnet_input: int = field(default=224, metadata={"min": 95})
    #: Exercise 3: random inputs averaged for the effective receptive field, split between the initialisations.
    erf_samples: int = field(default=16, metadata={"min": 2})
    #: Exercise 3: random initialisations the effective field is averaged over (without trained weights).
    erf_initialisations: int = field(default=4, metadata={"min": 1})
    #: Exercise 5: torchvision classification models whose final field is computed and verified.
    models: tuple[str, ...] = field(
        default=("vgg16", "resnet18", "resnet50", "inception_v3"), metadata={"min_len": 1}
    )
    #: Exercise 5: also verify every layer of these models at input 224 (not only the final one).
    verify_all_layers: bool = False
    #: Exercise 5: also compute (not verify) the field of every torchvision classification model.
    all_models: bool = False


class ReceptiveFieldLab(labrunner.Lab):
    name = "cnn_receptive"
    title = "Problem 1, Exercise 1: receptive fields"
    part = "Problem 1"
    order = 1
    expected_s = {"quick": 11}  # about the seconds of a run: labs in parallel start the longest first
    version = "2"
    description = "Receptive fields (n, j, r, start, centre box) of any CNN, checked against gradients"
    Config = ReceptiveConfig
    profiles = {
        "smoke": {"erf_samples": 4, "erf_initialisations": 2, "models": ("vgg16", "resnet18")},
        "quick": {},
        "full": {"erf_samples": 64, "erf_initialisations": 8, "verify_all_layers": True, "all_models": True},
    }

    def validate(self, config: ReceptiveConfig) -> None:
        if config.erf_samples < config.erf_initialisations:
            raise ValueError(
                f"erf_samples: {config.erf_samples} inputs cannot be shared between "
                f"{config.erf_initialisations} initialisations (erf_initialisations); give at least one each"
            )

    def run(self, ctx: labrunner.LabContext[ReceptiveConfig]) -> None:
        from .experiment import run_experiment

        run_experiment(ctx)


@labrunner.hookimpl
def register_labs(register) -> None:
    register(ReceptiveFieldLab())
