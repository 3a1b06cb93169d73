"""The lab's material: the assignment's network and its worked answer, torchvision's models,
the trained weights when the torch hub cache has them, and the photo the boxes are drawn on."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .receptive import feature_output, receptive_fields

#: The assignment's network (Problem 1, Exercise 1): input 227 x 227.
ASSIGNMENT_INPUT = 227
#: The worked answer: (n, j, r, centre box in 1-based input coordinates) of each layer.
ASSIGNMENT_ANSWER = {
    "conv1": (55, 4, 11, (109, 119)),
    "pool1": (27, 8, 19, (105, 123)),
    "conv2": (27, 8, 51, (89, 139)),
}
#: Final receptive fields published for these architectures (Araujo et al., "Computing
#: receptive fields of convolutional neural networks", Distill 2019), used as a cross-check.
PUBLISHED_RF = {"alexnet": 195, "vgg16": 212, "inception_v3": 1311}


def assignment_network(relu: bool = True, max_pool: bool = True) -> nn.Sequential:
    """The assignment's network: conv 11x11 stride 4 (96 filters, as AlexNet), max-pool 3x3
    stride 2, conv 5x5 stride 1 padding 2 (256 filters), each conv followed by a ReLU.
    ``relu=False`` / ``max_pool=False`` give the variants used to show why a naive gradient
    measurement fails."""
    act = nn.ReLU if relu else nn.Identity
    pool = nn.MaxPool2d(3, 2) if max_pool else nn.AvgPool2d(3, 2)
    layers = [
        ("conv1", nn.Conv2d(3, 96, 11, stride=4)),
        ("relu1", act()),
        ("pool1", pool),
        ("conv2", nn.Conv2d(96, 256, 5, padding=2)),
        ("relu2", act()),
    ]
    return nn.Sequential(OrderedDict(layers))


def build_model(name: str, meta: bool = False) -> nn.Module:
    """A torchvision classification model with its default initialisation (never downloads).

    ``meta=True`` builds it on the meta device, without allocating or initialising any
    weight: enough for the calculator and the gradient probe, which only need the geometry,
    and much faster (VGG-16's classifier alone has 120 M weights to draw)."""
    import torchvision

    kwargs: dict[str, Any] = {"weights": None}
    if name in ("inception_v3", "googlenet"):
        kwargs.update(aux_logits=False, init_weights=False)
    if meta:
        try:
            with torch.device("meta"):
                return torchvision.models.get_model(name, **kwargs).eval()
        except (NotImplementedError, RuntimeError):  # a constructor that reads values (RegNet)
            with _weights_on_meta():
                return torchvision.models.get_model(name, **kwargs).eval()
    return torchvision.models.get_model(name, **kwargs).eval()


@contextmanager
def _weights_on_meta() -> Iterator[None]:
    """Every parameter and buffer a module registers goes to the meta device as it is
    registered, so the initialisers that follow draw nothing; other tensors stay real (RegNet
    computes its stage widths with torch on the CPU, which the meta device cannot)."""
    register_parameter, register_buffer = nn.Module.register_parameter, nn.Module.register_buffer

    def parameter(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None and not param.is_meta:
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register_parameter(module, name, param)

    def buffer(module: nn.Module, name: str, tensor: torch.Tensor | None, persistent: bool = True) -> None:
        register_buffer(module, name, None if tensor is None else tensor.to("meta"), persistent)

    nn.Module.register_parameter, nn.Module.register_buffer = parameter, buffer  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter, nn.Module.register_buffer = register_parameter, register_buffer  # type: ignore[method-assign]


def classification_models() -> list[str]:
    """Every torchvision classification model name."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def hub_weights(name: str) -> Path | None:
    """The ImageNet weights torchvision publishes for model ``name``, when they happen to be
    in the torch hub cache (never downloaded); the file name comes from torchvision's own
    weights API."""
    import torchvision

    url = torchvision.models.get_model_weights(name).DEFAULT.url
    path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    return path if path.is_file() else None


def load_grace_hopper(size: int) -> np.ndarray:
    """The photo matplotlib ships, centre-cropped to a square and resized to ``size``."""
    from matplotlib import cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        img = Image.open(fh).convert("RGB")
        side = min(img.size)
        left, top = (img.width - side) // 2, (img.height - side) // 2
        img = img.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
        return np.asarray(img)


def smallest_input_holding_box(
    model: nn.Module,
    base: int = 224,
    step: int = 16,
    limit: int = 1024,
    tick: Callable[[int], Any] = lambda n: None,
) -> int:
    """The smallest input size (``base``, ``base + step``, ...) at which the whole box of the
    centre unit of the final feature layer lies inside the image (no padding in it); ``limit``
    when no size up to it does. ``tick(size)`` is called for each size tried."""
    size = base
    while size < limit:
        tick(size)
        final = feature_output(receptive_fields(model, size))
        if final.centre_box_clipped == final.centre_box:
            return size
        size += step
    return limit


def verification_size(model: nn.Module, tick: Callable[[int], Any] = lambda n: None) -> int:
    """The input size at which exercise 5 checks a model's final field: the smallest of 224,
    256, ... 640 at which the centre unit sees no padding, so that the gradient check tests
    the whole box and not only the image border."""
    return smallest_input_holding_box(model, step=32, limit=640, tick=tick)
