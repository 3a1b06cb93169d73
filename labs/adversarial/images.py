"""The images the lab classifies and attacks: paths, URLs (fetched once into the cache), and
the embedded default (matplotlib's sample photo, plus scikit-image's bundled photos when the
optional extra ``labrunner[images]`` is installed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

#: Photos scikit-image ships in its wheel (public domain or CC0), read offline from skimage.data.
SKIMAGE_PHOTOS = ("chelsea", "coffee", "rocket", "astronaut")


@dataclass(frozen=True)
class Preprocess:
    """Resize the shorter side to ``resize``, centre-crop ``crop`` x ``crop``; the model then
    normalises with ``mean`` and ``std`` (torchvision's ImageClassification, split in two)."""

    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def from_torchvision(cls, transforms) -> Preprocess:
        """From ``AlexNet_Weights.IMAGENET1K_V1.transforms()`` (256, 224, ImageNet statistics)."""
        return cls(
            resize=int(transforms.resize_size[0]),
            crop=int(transforms.crop_size[0]),
            mean=tuple(float(v) for v in transforms.mean),
            std=tuple(float(v) for v in transforms.std),
        )


@dataclass
class LabImage:
    """A named image: ``pixels`` is ``(3, crop, crop)`` in [0, 1], on the 8-bit grid."""

    name: str
    source: str
    pixels: torch.Tensor


def skimage_available() -> bool:
    try:
        import skimage.data  # noqa: F401
    except ImportError:
        return False
    return True


def default_sources() -> list[str]:
    """The embedded default: matplotlib's Grace Hopper, and scikit-image's photos if installed."""
    sources = ["matplotlib:grace_hopper.jpg"]
    if skimage_available():
        sources += [f"skimage:{name}" for name in SKIMAGE_PHOTOS]
    return sources


def read_source(source: str, cache_dir: Path) -> tuple[str, np.ndarray]:
    """Read one image source into (name, uint8 ``(H, W, 3)`` array).

    ``source`` is ``matplotlib:<sample file>``, ``skimage:<name>``, an http(s) URL (fetched
    once into ``cache_dir`` with :func:`labrunner.data.cached_url`) or a file path.
    Raises :class:`labrunner.data.DataError` when it cannot be read.
    """
    from PIL import Image

    from labrunner.data import DataError, cached_url, is_url

    kind, _, rest = source.partition(":")
    if kind == "matplotlib" and rest:
        import matplotlib.cbook

        path = Path(matplotlib.cbook.get_sample_data(rest, asfileobj=False))
        name = Path(rest).stem
    elif kind == "skimage" and rest:
        try:
            import skimage.data
        except ImportError:
            raise DataError(f"image {source!r} needs scikit-image: pip install 'labrunner[images]'") from None
        loader = getattr(skimage.data, rest, None) if rest in SKIMAGE_PHOTOS else None
        if loader is None:
            raise DataError(f"image {source!r}: scikit-image photos are {', '.join(SKIMAGE_PHOTOS)}")
        return rest, np.asarray(loader(), dtype=np.uint8)[..., :3]
    elif is_url(source):
        path = cached_url(source, cache_dir)
        name = Path(source.split("?")[0]).stem or "download"
    else:
        path = Path(source).expanduser()
        name = path.stem
    try:
        with Image.open(path) as img:
            return name, np.asarray(img.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read image {source!r}: {exc}") from None


def prepare(array: np.ndarray, pre: Preprocess) -> torch.Tensor:
    """Resize (shorter side, bilinear with antialiasing, as torchvision) and centre-crop an
    uint8 ``(H, W, 3)`` image; return ``(3, crop, crop)`` in [0, 1] rounded to 8 bits, so the
    clean image is itself exactly a PNG and the round trip compares like with like."""
    import torchvision.transforms.functional as TF

    x = torch.from_numpy(np.array(array, dtype=np.uint8)).permute(2, 0, 1).float()
    x = TF.resize(x, [pre.resize], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    x = TF.center_crop(x, [pre.crop, pre.crop])
    return x.round().clamp(0, 255).div(255.0)


def load_images(sources: Sequence[str], pre: Preprocess, cache_dir: Path) -> list[LabImage]:
    """Read and prepare every source; names are made unique (``a``, ``a-2``)."""
    out: list[LabImage] = []
    seen: dict[str, int] = {}
    for source in sources:
        name, array = read_source(source, cache_dir)
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name}-{seen[name]}"
        out.append(LabImage(name, source, prepare(array, pre)))
    return out
