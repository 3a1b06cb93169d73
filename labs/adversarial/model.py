"""Which classifier the lab attacks: AlexNet with ImageNet weights when they can be had,
else the offline stand-in CNN trained on generated shapes, with the reason."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import alexnet, shapes
from .attacks import PixelClassifier
from .images import Preprocess


@dataclass
class Model:
    """The classifier the lab attacks, and what the report says about it."""

    net: PixelClassifier
    kind: str  # "alexnet" or "fallback"
    categories: list[str]
    pre: Preprocess
    state_dict: dict[str, torch.Tensor] | None = None
    weights_how: str = ""
    weights_path: str = ""
    fallback_accuracy: float | None = None
    fallback_cached: bool = False
    fallback_reason: str = ""

    @property
    def is_stand_in(self) -> bool:
        return self.kind == "fallback"


def stand_in_settings(cfg: Any, seed: int) -> shapes.TrainSettings:
    """The stand-in's training settings from the lab config and the run's seed (its data,
    initial weights and batch order: each seed of a sweep trains its own stand-in)."""
    return shapes.TrainSettings(train_size=cfg.fallback_train_size, epochs=cfg.fallback_epochs, seed=seed)


def fallback_model(ctx, reason: str) -> Model:
    """The stand-in CNN of the run's seed (from the lab's cache, verified, or trained now
    with a bar ticking per batch and stored for the next run with the same seed)."""
    settings = stand_in_settings(ctx.config, ctx.seed)
    with ctx.progress(total=shapes.train_steps(settings), desc="training the stand-in CNN (batches)") as bar:
        net, cached = shapes.load_or_train(
            settings,
            ctx.cache_dir / "models",
            progress=lambda epoch, loss: bar.update(1, epoch=f"{epoch + 1}/{settings.epochs}", loss=loss),
            warn=lambda message: ctx.log(message, level="warning"),
        )
    images, labels = shapes.held_out_set(settings)
    acc = shapes.accuracy(net, shapes.normalise(shapes.as_tensor(images)), torch.from_numpy(labels))
    ctx.log(f"stand-in CNN: test accuracy {acc:.3f} ({'cached' if cached else 'trained now'})")
    pre = Preprocess(resize=settings.image_size, crop=settings.image_size, mean=shapes.MEAN, std=shapes.STD)
    return Model(
        PixelClassifier(net, shapes.MEAN, shapes.STD),
        "fallback",
        list(shapes.CLASSES),
        pre,
        fallback_accuracy=acc,
        fallback_cached=cached,
        fallback_reason=reason,
    )


def choose_model(ctx) -> Model:
    """AlexNet with ImageNet weights when they can be had; else the stand-in, with the reason."""
    from torchvision.models import AlexNet_Weights

    cfg = ctx.config
    missing = alexnet.not_written()
    if missing:  # the student version, before AlexNet is written
        return fallback_model(ctx, f"AlexNet is {missing}")
    source = alexnet.find_weights(cfg.weights, cfg.download)
    if source.path is None:
        return fallback_model(ctx, source.how)
    # In the hub cache, any file that is what its name says will do (official one first).
    candidates = alexnet.hub_weights_candidates() if source.how == "hub cache" else [source.path]
    problems = []
    for path in candidates:
        try:
            state = alexnet.load_alexnet_weights(path)
            break
        except alexnet.WeightsError as exc:
            if cfg.weights != "auto":
                raise  # a path the user gave must work; silently using the stand-in would hide it
            problems.append(str(exc))
    else:
        return fallback_model(ctx, f"the weights in the hub cache are unusable: {'; '.join(problems)}")
    meta = AlexNet_Weights.IMAGENET1K_V1
    net = alexnet.AlexNet()
    net.load_state_dict(state)
    pre = Preprocess.from_torchvision(meta.transforms())
    return Model(
        PixelClassifier(net, pre.mean, pre.std),
        "alexnet",
        list(meta.meta["categories"]),
        pre,
        state_dict=state,
        weights_how=source.how,
        weights_path=str(path),
    )


def model_note(model: Model) -> dict[str, Any]:
    """The values of the note at the top of the lab's section, saying which model ran."""
    return {
        "how": model.weights_how,
        "weights_file": Path(model.weights_path).name if model.weights_path else "",
        "reason": model.fallback_reason,
        "official_file": alexnet.OFFICIAL_FILE,
        "accuracy": model.fallback_accuracy,
        "classes": len(model.categories),
        "setting": {
            "model": model.kind,
            "official_weights": bool(model.weights_path)
            and model.weights_path.endswith(alexnet.OFFICIAL_FILE),
            "cached": model.fallback_cached,
        },
    }
