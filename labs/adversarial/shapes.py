"""The offline stand-in for ImageNet AlexNet: a small CNN trained on generated shapes.

Each class is a shape (disc, square, triangle, plus, ring, stripes) drawn at a random
position and size, in random foreground and background colours with noise, so colour
says nothing about the class and the network has to look at the form.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CLASSES = ("disc", "square", "triangle", "plus", "ring", "stripes")
MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)


def shape_mask(kind: int, size: int, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    """A boolean ``(size, size)`` mask of shape ``CLASSES[kind]`` centred at (cx, cy) with radius r."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    # Rotate the frame so squares, triangles and stripes are not axis-aligned templates.
    c, s = np.cos(angle), np.sin(angle)
    u = c * (xx - cx) + s * (yy - cy)
    v = -s * (xx - cx) + c * (yy - cy)
    name = CLASSES[kind]
    if name == "disc":
        return u**2 + v**2 <= r**2
    if name == "square":
        return (np.abs(u) <= 0.8 * r) & (np.abs(v) <= 0.8 * r)
    if name == "triangle":  # apex up in the rotated frame
        return (v <= 0.6 * r) & (v >= -r + 1.6 * np.abs(u) * 1.15)
    if name == "plus":
        arm = 0.3 * r
        return ((np.abs(u) <= arm) & (np.abs(v) <= r)) | ((np.abs(v) <= arm) & (np.abs(u) <= r))
    if name == "ring":
        d2 = u**2 + v**2
        return (d2 <= r**2) & (d2 >= (0.55 * r) ** 2)
    if name == "stripes":  # three bars filling a disc
        return (u**2 + v**2 <= r**2) & (np.cos(u * 2 * np.pi / (0.66 * r)) > 0)
    raise ValueError(f"unknown shape {kind}")


def generate_shapes(n: int, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images ``(n, size, size, 3)`` uint8 and their labels ``(n,)``, classes balanced."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(CLASSES)
    rng.shuffle(labels)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    for i, kind in enumerate(labels):
        r = rng.uniform(0.28, 0.42) * size
        cx, cy = rng.uniform(r, size - r, 2)
        mask = shape_mask(int(kind), size, cx, cy, r, rng.uniform(0, 2 * np.pi))
        bg = rng.uniform(0, 1, 3)
        fg = rng.uniform(0, 1, 3)
        while np.abs(fg - bg).sum() < 0.6:  # keep the shape visible
            fg = rng.uniform(0, 1, 3)
        img = np.where(mask[..., None], fg, bg) + rng.normal(0, 0.04, (size, size, 3))
        images[i] = np.clip(np.round(img * 255), 0, 255).astype(np.uint8)
    return images, labels.astype(np.int64)


def as_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` images as float ``(N, 3, H, W)`` in [0, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0)


class ShapesCNN(nn.Module):
    """Three conv blocks and a linear layer; works on any input size (global average pooling)."""

    def __init__(self, num_classes: int = len(CLASSES), width: int = 24) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1, bias=False),
            nn.BatchNorm2d(4 * width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(4 * width, 4 * width, 3, padding=1, bias=False),
            nn.BatchNorm2d(4 * width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


@dataclass(frozen=True)
class TrainSettings:
    """Everything that decides the trained weights, with the code of this module (and so
    their cache key). ``seed`` draws the training and held-out shapes, the initial weights
    and the order of the batches: the lab passes the run's seed."""

    train_size: int = 3000
    test_size: int = 600
    epochs: int = 4
    image_size: int = 32
    batch_size: int = 64
    lr: float = 1e-2
    seed: int = 0

    def key(self) -> str:
        """The stand-in's cache key: these settings and the sha256 of this module, which
        generates the data, defines the network and trains it (any edit retrains)."""
        from labrunner.base.hashing import sha256_file, stable_hash

        return stable_hash({**asdict(self), "code": sha256_file(Path(__file__))})


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = 500) -> float:
    """Fraction of ``images`` (already normalised) that ``model`` classifies as ``labels``."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(images), batch):
            correct += int((model(images[i : i + batch]).argmax(1) == labels[i : i + batch]).sum())
    return correct / len(images)


def normalise(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def train_shapes_cnn(settings: TrainSettings, progress=None) -> ShapesCNN:
    """Train :class:`ShapesCNN` on generated shapes with Adam and cross-entropy (CPU, seconds).

    ``progress`` is an optional callable ``(epoch, loss)`` called after every batch, with the
    mean loss of the epoch so far (:func:`train_steps` batches in all).
    """
    images, labels = generate_shapes(settings.train_size, settings.image_size, seed=settings.seed)
    x, y = normalise(as_tensor(images)), torch.from_numpy(labels)
    gen = torch.Generator().manual_seed(settings.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        model = ShapesCNN()
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=settings.lr, total_steps=train_steps(settings))
    for epoch in range(settings.epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), settings.batch_size):
            idx = order[i : i + settings.batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            if progress is not None:
                progress(epoch, total / (i + len(idx)))
    return model.eval()


def train_steps(settings: TrainSettings) -> int:
    """The number of batches :func:`train_shapes_cnn` takes: what its progress counts to."""
    return settings.epochs * -(-settings.train_size // settings.batch_size)


def held_out_set(settings: TrainSettings) -> tuple[np.ndarray, np.ndarray]:
    """The held-out images and labels (a seed the training set never uses)."""
    return generate_shapes(settings.test_size, settings.image_size, seed=settings.seed + 1_000_003)


def attacked_shapes(settings: TrainSettings) -> list[tuple[str, torch.Tensor]]:
    """One held-out image per class, ``(class name, (3, size, size) pixels in [0, 1])``, each
    drawn among its class's held-out images with ``settings.seed``."""
    images, labels = held_out_set(settings)
    draw = np.random.default_rng([settings.seed, 31])
    out = []
    for k, name in enumerate(CLASSES):
        i = int(draw.choice(np.flatnonzero(labels == k)))
        out.append((name, as_tensor(images[i : i + 1])[0]))
    return out


#: The files of a stored stand-in: its weights, what they were trained with, their sha256s.
WEIGHTS_FILE = "weights.pt"
SETTINGS_FILE = "settings.json"


def stored_model_dir(settings: TrainSettings, cache_dir: Path) -> Path:
    """Where :func:`load_or_train` keeps the stand-in trained with ``settings``."""
    return Path(cache_dir) / f"shapes_cnn-{settings.key()}"


def load_stored(settings: TrainSettings, folder: Path) -> ShapesCNN:
    """The stand-in stored in ``folder``, verified first: every file against the folder's
    sha256 manifest and the settings it records against ``settings``, then the weights read
    with ``torch.load(weights_only=True)``. Raises ValueError saying what is wrong."""
    from labrunner.records.files import MANIFEST, manifest_problem

    problem = manifest_problem(folder, MANIFEST)
    if problem:
        raise ValueError(problem)
    stored = json.loads((folder / SETTINGS_FILE).read_text(encoding="utf-8"))
    expected = {**asdict(settings), "key": settings.key()}
    if stored != expected:
        raise ValueError(f"{SETTINGS_FILE} records other settings")
    model = ShapesCNN()
    model.load_state_dict(torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True))
    return model.eval()


def store(model: ShapesCNN, settings: TrainSettings, folder: Path) -> None:
    """Store ``model`` as ``folder`` whole: written into a temporary folder next to it (weights,
    settings, sha256 manifest), made read-only, then renamed into place."""
    from labrunner.records.files import MANIFEST, make_read_only, remove_tree, write_manifest

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        (tmp / WEIGHTS_FILE).write_bytes(buf.getvalue())
        record = {**asdict(settings), "key": settings.key()}
        (tmp / SETTINGS_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        write_manifest(tmp, MANIFEST)
        make_read_only(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes folders private
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            remove_tree(tmp)


def discard(folder: Path) -> None:
    """Move a stored stand-in out of the way in one rename, then delete it."""
    from labrunner.records.files import discard_tree

    discard_tree(folder)


def load_or_train(
    settings: TrainSettings,
    cache_dir: Path,
    progress: Callable[[int, float], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> tuple[ShapesCNN, bool]:
    """The stand-in trained with ``settings``: from ``cache_dir`` when stored there and
    verified (:func:`load_stored`), else trained now and stored; returns (model, was_cached).

    One run at a time trains a given stand-in (a lock per cache key), so runs started together
    with the same seed and settings train it once. A stored stand-in that fails verification
    is discarded with one ``warn`` line and trained again, never used.
    """
    from filelock import FileLock

    folder = stored_model_dir(settings, cache_dir)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder.with_name(f".{folder.name}.lock"))):
        if folder.exists():
            try:
                return load_stored(settings, folder), True
            except Exception as exc:  # noqa: BLE001  (a damaged store is retrained, never trusted)
                if warn is not None:
                    warn(f"stored stand-in CNN {folder.name} discarded ({exc}); training it again")
                discard(folder)
        model = train_shapes_cnn(settings, progress)
        store(model, settings, folder)
    return model, False
