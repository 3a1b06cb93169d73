"""Exercise 1, measured then recorded: :func:`classify_images` classifies the images (and,
on the stand-in, one held-out shape per class), :func:`compare_alexnet` checks the written-out
AlexNet against torchvision's; :func:`record_classification` records both and
:func:`answer_values` gives the answer its numbers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from labrunner.stats import rate_text, wilson

from . import alexnet, figures, shapes
from .attacks import PixelClassifier, predict
from .figures import short
from .images import LabImage, default_sources, load_images, skimage_available
from .model import Model, stand_in_settings


@dataclass(frozen=True)
class Classified:
    """The images (photos, and on the stand-in its attacked shapes) and the model's top ``k``
    classes of each, with their probabilities."""

    images: list[LabImage]
    top_p: torch.Tensor
    top_i: torch.Tensor
    k: int


@dataclass(frozen=True)
class WrittenOut:
    """The written-out AlexNet against torchvision's: the largest difference of the logits on
    a random batch, and its parameter count."""

    max_diff: float
    n_params: int


def classify_images(
    cfg: Any, model: Model, net: PixelClassifier, device: Any, seed: int, cache: Path
) -> Classified:
    """Load the configured images (``cache``: where downloads are kept) and classify them."""
    sources = list(cfg.images) or default_sources()
    images = load_images(sources, model.pre, cache)
    if model.is_stand_in:
        # The stand-in knows shapes, not photos: add one held-out image per class, and
        # attack only those (photos are classified to show what out-of-distribution means).
        # The held-out set and each class's image are drawn with the run's seed, so every
        # seed attacks other images and a seed sweep replicates the attacks.
        for name, pixels in shapes.attacked_shapes(stand_in_settings(cfg, seed)):
            images.append(LabImage(f"shape-{name}", "generated", pixels))
    batch = torch.stack([im.pixels for im in images]).to(device)
    probs = predict(net, batch).cpu()
    k = min(cfg.top_k, len(model.categories))
    top_p, top_i = probs.topk(k, dim=1)
    return Classified(images, top_p, top_i, k)


def compare_alexnet(state_dict: dict[str, torch.Tensor] | None, seed: int) -> WrittenOut:
    """The written-out AlexNet on a random batch against torchvision's (a stub stops here)."""
    max_diff = alexnet.compare_with_torchvision(state_dict, seed=seed)
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        n_params = alexnet.parameter_count(alexnet.AlexNet())
    return WrittenOut(max_diff, n_params)


def record_classification(ex: Any, c: Classified, w: WrittenOut, model: Model, cfg: Any, seed: int) -> None:
    """The architecture's checks (the assignment's whatever the weights), the stand-in's
    accuracy, the classification figure and table."""
    ex.metric("alexnet_max_abs_diff_vs_torchvision", w.max_diff)
    ex.metric("alexnet_parameters", w.n_params)
    ex.check_at_most("own_alexnet_equals_torchvision", w.max_diff, 1e-5, points=2, fidelity="assignment")
    ex.check_equal("alexnet_parameter_count", w.n_params, alexnet.ALEXNET_PARAMETERS, fidelity="assignment")
    ex.claim(
        "alexnet_bit_identical",
        w.max_diff == 0,
        fidelity="assignment",
        statement="the written-out AlexNet computes bit for bit what torchvision's computes",
        evidence=f"largest difference of the logits on a random batch: {w.max_diff:.2e}",
        baseline="float32 rounding: the same sums in another order differ by about 1e-7 of the logits",
    )
    cats = model.categories
    if model.is_stand_in:
        n_test = stand_in_settings(cfg, seed).test_size
        correct = round(model.fallback_accuracy * n_test)
        chance = 1 / len(cats)
        ex.metric("fallback_test_accuracy", model.fallback_accuracy)
        ex.check_at_least("fallback_test_accuracy", model.fallback_accuracy, 0.95, points=2)
        ex.claim(
            "standin_beats_chance",
            wilson(correct, n_test)[0] > chance,
            statement="the stand-in CNN classifies held-out generated shapes far above chance",
            evidence=f"correct on {rate_text(correct, n_test)} held-out shapes",
            baseline=f"chance, 1/{len(cats)} = {100 * chance:.1f} %",
        )
    # One row per image: the k classes in order, each with its probability.
    rows = [
        [im.name]
        + [f"{short(cats[int(i)], 28)} ({100 * float(p):.1f} %)" for p, i in zip(ps, idx, strict=True)]
        for im, ps, idx in zip(c.images, c.top_p, c.top_i, strict=True)
    ]
    fig = figures.classification_figure(c.images, c.top_p, c.top_i, cats)
    ex.figure(fig, "classification", caption="Each image as the model sees it, titled with its top class.")
    ex.table(
        rows,
        columns=["image", *[f"top-{r + 1}" for r in range(c.k)]],
        caption=f"Top-{c.k} classes per image with their probabilities.",
    )
    ex.metric("top1_probability_first_image", float(c.top_p[0, 0]))


def answer_values(c: Classified, w: WrittenOut, model: Model) -> dict[str, Any]:
    """The values the answer template (A1) is filled with."""
    cats = model.categories
    photos = [
        {"name": im.name, "top": cats[int(i[0])], "p": float(p[0])}
        for im, p, i in zip(c.images, c.top_p, c.top_i, strict=True)
        if im.source != "generated"
    ]
    return dict(
        max_diff=w.max_diff,
        n_params=w.n_params,
        photos=photos,
        accuracy=model.fallback_accuracy,
        classes=len(cats),
        setting={"model": model.kind, "skimage": skimage_available()},
        k=c.k,
    )
