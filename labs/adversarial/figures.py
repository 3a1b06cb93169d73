"""The lab's figures: images as the model sees them, adversarial examples with their
perturbations, and the sparsity histograms. Each function returns a matplotlib figure."""

from __future__ import annotations

import math

import numpy as np
import torch

from .records import MethodRun


def show(ax, image: torch.Tensor, title: str) -> None:
    ax.imshow(image.permute(1, 2, 0).clamp(0, 1).cpu().numpy(), interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def amplified(delta: torch.Tensor) -> tuple[torch.Tensor, float]:
    """``delta`` mapped to [0, 1] around grey, scaled so its largest entry reaches the edge."""
    peak = float(delta.abs().max())
    gain = 0.5 / peak if peak > 0 else 1.0
    return (0.5 + gain * delta).clamp(0, 1), gain


def short(name: str, width: int = 22) -> str:
    """A class name cut to its first synonym and ``width`` characters."""
    name = name.split(",")[0]
    return name if len(name) <= width else name[: width - 1] + "…"


#: Width of every figure in inches: the text width of an A4 page, so nothing is scaled down in print.
PAGE_WIDTH = 7.2


def classification_figure(images, top_p: torch.Tensor, top_i: torch.Tensor, cats: list[str]):
    """Each image as the model sees it, titled with its top class, up to six to a row."""
    import matplotlib.pyplot as plt

    cols = min(len(images), 6)
    nrows = math.ceil(len(images) / cols)
    side = PAGE_WIDTH / cols
    fig, axes = plt.subplots(nrows, cols, figsize=(PAGE_WIDTH, (side + 0.35) * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, im, ps, idx in zip(axes.flat, images, top_p, top_i, strict=False):
        show(ax, im.pixels, f"{im.name}\n{short(cats[int(idx[0])])} ({ps[0]:.0%})")
    return fig


def draw_example(row, run: MethodRun, cats: list[str], j: int, title: str) -> None:
    """One row of a figure: the original (titled ``title``), the adversarial image titled
    with its prediction, and the perturbation amplified."""
    e = run.examples[j]
    show(row[0], e.original, title)
    mark = "" if e.success else "\n(failed)"  # on a line of its own: beside it, it runs into the next title
    show(row[1], e.adversarial, f"{short(cats[e.pred])} ({e.conf:.0%}){mark}")
    delta, gain = amplified(e.delta)
    show(row[2], delta, f"perturbation x{gain:.0f}")


def triplet_axes(n: int):
    """A figure of ``n`` (image, adversarial, perturbation) triplets, two to a row, at page width."""
    import matplotlib.pyplot as plt

    rows = max(1, math.ceil(n / 2))
    side = PAGE_WIDTH / 6
    fig, axes = plt.subplots(rows, 6, figsize=(PAGE_WIDTH, (side + 0.55) * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    triplets = [axes[k // 2, 3 * (k % 2) : 3 * (k % 2) + 3] for k in range(n)]
    fig.subplots_adjust(wspace=0.08, hspace=0.5)
    return fig, triplets


#: At most this many examples in a figure of examples (the table lists them all).
MAX_EXAMPLES = 6


def grid_figure(run: MethodRun, cats: list[str]):
    """The first :data:`MAX_EXAMPLES` examples of ``run``."""
    examples = run.examples[:MAX_EXAMPLES]
    fig, triplets = triplet_axes(len(examples))
    for j, (e, row) in enumerate(zip(examples, triplets, strict=True)):
        draw_example(row, run, cats, j, f"{e.image}\ntarget: {short(cats[e.target], 14)}")
    return fig


def method_figure(runs: dict[str, MethodRun], cats: list[str], j: int):
    """Example ``j`` under each method."""
    fig, triplets = triplet_axes(len(runs))
    for run, row in zip(runs.values(), triplets, strict=True):
        e = run.examples[j]
        draw_example(row, run, cats, j, f"{e.image}\n→ {short(cats[e.target], 12)}")
        # the method over its three images: in one image's title it runs into the next one's
        left, right = row[0].get_position(), row[2].get_position()
        top = left.y1 + 0.42 / fig.get_figheight()
        fig.text(
            (left.x0 + right.x1) / 2, top, run.label, ha="center", va="bottom", fontsize=8, weight="bold"
        )
    return fig


def sparsity_figure(runs: dict[tuple[str, float], MethodRun], alpha: float, alpha_max: float):
    """Histograms of |delta| for both L1 methods at ``alpha`` and ``alpha_max``, and the pixels
    each changes in the first example at ``alpha_max``."""
    import matplotlib.pyplot as plt

    alphas = [alpha] if alpha_max == alpha else [alpha, alpha_max]
    fig, grid = plt.subplots(2, 2, figsize=(PAGE_WIDTH, 0.9 * PAGE_WIDTH), squeeze=False)
    axes = list(grid.flat)  # histograms in the first row, changed pixels in the second
    if len(alphas) == 1:
        grid[0, 1].axis("off")
    bins = np.concatenate([[0.0], np.logspace(-4, np.log10(255), 50)])
    for ax, a in zip(axes, alphas, strict=False):
        for key, colour in (("l1_adam", "tab:blue"), ("l1_ista", "tab:orange")):
            run = runs[key, a]
            d = torch.cat([(e.delta.abs() * 255).flatten() for e in run.examples])
            zeros = float((d == 0).double().mean())
            name = "Adam" if key == "l1_adam" else "ISTA"
            ax.hist(
                d.clamp_min(1e-4).numpy(),
                bins=bins,
                histtype="step",
                color=colour,
                label=f"{name} ({zeros:.0%} exact zeros)",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.axvline(0.5, color="grey", ls="--", lw=0.8)
        ax.set_xlabel("|δ| in 0-255 units (zeros at 1e-4)")
        ax.set_title(f"α = {a:g}", fontsize=9, pad=20)
        # above the axes, under the title: inside, the histograms fill every corner
        ax.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2, frameon=False,
                  handlelength=1.2, columnspacing=0.8)  # fmt: skip
    axes[0].set_ylabel("count")
    fig.subplots_adjust(hspace=0.45, wspace=0.3)
    for ax, key in zip(axes[2:], ("l1_adam", "l1_ista"), strict=True):
        e = runs[key, alpha_max].examples[0]
        changed = (e.delta != 0).any(dim=0).float()
        ax.imshow(changed.numpy(), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        name = "Adam" if key == "l1_adam" else "ISTA"
        mark = "" if e.success else ", failed"
        ax.set_title(
            f"{name}, α = {alpha_max:g}: changed pixels (black)\n{e.image}, {changed.mean():.0%}{mark}",
            fontsize=8,
        )
        ax.axis("off")
    return fig
