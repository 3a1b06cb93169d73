"""The effective receptive field (Luo et al., 2016) of AlexNet and ResNet-18: which networks,
with which weights, their statistics, and the heat-map figure."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from .networks import build_model, hub_alexnet_weights  # noqa: E402
from .receptive import LayerField, feature_output, receptive_fields  # noqa: E402
from .verify import centred_mass_width, gaussian_fit  # noqa: E402


def erf_networks(x_final: LayerField) -> tuple[list[tuple[nn.Module, LayerField]], str]:
    """The networks whose effective field is measured, with their own weights: AlexNet
    (ImageNet weights when the torch hub cache has them, else its default initialisation)
    at its last pooling layer, and ResNet-18 (default initialisation) at its last block."""
    weights = hub_alexnet_weights()
    alexnet = build_model("alexnet")
    if weights is not None:
        alexnet.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        how = f"AlexNet with the ImageNet weights found in the torch hub cache (`{weights.name}`)"
    else:
        how = "AlexNet with torchvision's default random initialisation (no trained weights offline)"
    resnet = build_model("resnet18")
    r_final = feature_output(receptive_fields(resnet, x_final.input_size))
    how += ", ResNet-18 with its default random initialisation"
    return [(alexnet, x_final), (resnet, r_final)], how


def erf_statistics(f: LayerField, heat: torch.Tensor) -> dict[str, Any]:
    """Size and shape of an effective receptive field: the standard deviation of a Gaussian
    fitted to its row and column profiles (mean of the two), ``4 std / r`` (the +-2 std width
    against the theoretical field), the centred square holding 95 % of the mass, the worse
    R^2 of the two fits, and the share of the mass inside the theoretical box."""
    heat = heat.double()
    (r0, r1), (c0, c1) = f.centre_box_clipped
    centre = tuple((lo + hi) / 2 for lo, hi in f.centre_box)
    _, std_x, r2_x = gaussian_fit(heat.sum(0))
    _, std_y, r2_y = gaussian_fit(heat.sum(1))
    std = (std_x + std_y) / 2
    return {
        "network": "alexnet" if f.name.startswith("features") else "resnet18",
        "label": "AlexNet" if f.name.startswith("features") else "ResNet-18",
        "layer": f.name,
        "r": f.rf[0],
        "std": std,
        "ratio": 4 * std / f.rf[0],
        "width95": centred_mass_width(heat, centre, 0.95),
        "r2": min(r2_x, r2_y),
        "inside": float(heat[r0 : r1 + 1, c0 : c1 + 1].sum() / heat.sum()),
    }


def erf_figure(erfs: list[tuple[LayerField, torch.Tensor]]) -> Any:
    from matplotlib.patches import Rectangle

    fig, axes = plt.subplots(1, len(erfs), figsize=(5 * len(erfs), 4.6))
    axes = np.atleast_1d(axes)
    for ax, (f, heat) in zip(axes, erfs, strict=False):
        im = ax.imshow(heat.numpy(), cmap="magma")
        (r0, r1), (c0, c1) = f.centre_box
        ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, fill=False, ec="cyan", lw=1.5))
        lo = min(-0.5, c0 - 2.0, r0 - 2.0)
        hi = max(heat.shape[1] - 0.5, c1 + 2.0, r1 + 2.0)
        ax.set_xlim(lo, hi)
        ax.set_ylim(hi, lo)
        network = "AlexNet" if f.name.startswith("features") else "ResNet-18"
        ax.set_title(f"{network} {f.name}: theoretical r = {f.rf[0]} (cyan)", fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.046, label="mean |gradient|")
    fig.tight_layout()
    return fig
