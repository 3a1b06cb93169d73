"""AlexNet written out, and its ImageNet weights: found in the torch hub cache,
downloaded through torchvision when the machine is online, checked like torchvision checks them.

The module layout (``features``, ``avgpool``, ``classifier`` and the indices inside them)
is torchvision's, so the official state dict loads into :class:`AlexNet` unchanged.
"""

from __future__ import annotations

import re
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

#: Parameters of AlexNet with 1000 classes (torchvision's weights metadata says the same).
ALEXNET_PARAMETERS = 61_100_840
#: torchvision's file name of the ImageNet weights; ``7be5be79`` is the start of its sha256.
OFFICIAL_FILE = "alexnet-owt-7be5be79.pth"
# torchvision's rule (torch.hub.HASH_REGEX): the hex part after the last '-' is a sha256 prefix.
HASH_IN_NAME = re.compile(r"-([a-f0-9]+)\.")
HUB_NAME = re.compile(r"^alexnet-owt-[a-f0-9]{8,64}\.pth$")


class AlexNet(nn.Module):
    """AlexNet (Krizhevsky et al., 2012) in the one-GPU form of torchvision ("One weird trick").

    Input: a normalised batch ``(N, 3, H, W)`` with H, W >= 63 (224 for ImageNet);
    output: ``(N, num_classes)`` logits.
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        # BEGIN SOLUTION AlexNet's layers
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),  # 224 -> 55
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),  # 55 -> 27
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),  # 27 -> 13
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),  # 13 -> 6
        )
        # Makes any input size >= 63 work; at 224 the map is already 6 x 6.
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )
        # END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # BEGIN SOLUTION AlexNet's forward pass
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))
        # END SOLUTION


def not_written() -> str:
    """ "" when :class:`AlexNet` can be built and run, else the "not implemented yet" of its
    stub (the student version of the lab): the lab then runs on the stand-in."""
    try:
        with torch.device("meta"):
            AlexNet()(torch.empty(1, 3, 224, 224))
    except NotImplementedError as exc:
        if not str(exc).startswith("not implemented yet"):
            raise
        return str(exc)
    return ""


def parameter_count(model: nn.Module) -> int:
    """The number of scalar parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())


def compare_with_torchvision(
    state_dict: dict[str, torch.Tensor] | None = None, batch: int = 2, seed: int = 0
) -> float:
    """Load the same weights into :class:`AlexNet` and ``torchvision.models.alexnet`` and
    return the largest absolute difference of their logits on a random batch.

    Without ``state_dict`` both get torchvision's random initialisation (seeded with ``seed``).
    """
    import torchvision

    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        reference = torchvision.models.alexnet(weights=None)
    if state_dict is not None:
        reference.load_state_dict(state_dict)
    own = AlexNet()
    own.load_state_dict(reference.state_dict())
    own.eval()
    reference.eval()
    x = torch.randn(batch, 3, 224, 224, generator=gen)
    with torch.no_grad():
        return float((own(x) - reference(x)).abs().max())


# --------------------------------------------------------------------------- weights


class WeightsError(Exception):
    """A weights file that cannot be used (missing, wrong hash, wrong layout)."""


@dataclass(frozen=True)
class WeightsSource:
    """Where the AlexNet weights come from: ``path`` is None when there are none."""

    path: Path | None
    how: str  # "hub cache", "downloaded", "path", or why there are none


def hub_checkpoints() -> Path:
    """The torch hub checkpoint folder (``$TORCH_HOME/hub/checkpoints`` by default)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def hub_weights_candidates(folder: Path | None = None) -> list[Path]:
    """AlexNet weight files in the hub cache, torchvision's own file first.

    Besides :data:`OFFICIAL_FILE`, any ``alexnet-owt-<sha256 prefix>.pth`` counts: the name
    carries the hash its content must have, which :func:`check_hash_prefix` enforces, so a
    file is used only when it is what its name says.
    """
    folder = hub_checkpoints() if folder is None else Path(folder)
    if not folder.is_dir():
        return []
    others = sorted(p for p in folder.iterdir() if HUB_NAME.match(p.name) and p.name != OFFICIAL_FILE)
    official = folder / OFFICIAL_FILE
    return ([official] if official.is_file() else []) + others


def check_hash_prefix(path: Path) -> str | None:
    """torchvision's ``check_hash``: if the file name has a ``-<hex>.`` part, the file's
    sha256 must start with it. Returns the prefix checked (None when the name has none);
    raises :class:`WeightsError` on a mismatch."""
    match = HASH_IN_NAME.search(Path(path).name)
    if match is None:
        return None
    prefix = match.group(1)
    from labrunner.data import sha256_file

    digest = sha256_file(path)
    if not digest.startswith(prefix):
        raise WeightsError(f"{path}: sha256 {digest[:12]}... does not start with {prefix} (its name)")
    return prefix


def load_alexnet_weights(path: Path) -> dict[str, torch.Tensor]:
    """Read an AlexNet state dict with ``weights_only=True`` after checking its hash prefix;
    raise :class:`WeightsError` if the file is not a valid AlexNet state dict."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    check_hash_prefix(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise WeightsError(f"{path}: cannot be read as a state dict ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a state dict, got {type(state).__name__}")
    with torch.device("meta"):  # only the names and shapes: no memory, no initialisation
        expected = AlexNet().state_dict()
    if set(state) != set(expected) or any(state[k].shape != expected[k].shape for k in expected):
        raise WeightsError(f"{path}: not an AlexNet state dict (keys or shapes differ)")
    return state


def url_reachable(url: str, timeout: float = 3.0) -> bool:
    """True when a HEAD request to ``url`` answers within ``timeout`` seconds.

    Run in a daemon thread so that a hanging DNS lookup (which socket timeouts do not
    cover) cannot hold the lab: offline, this returns False after ``timeout``.
    """
    answer: list[bool] = []

    def probe() -> None:
        try:
            request = urllib.request.Request(url, method="HEAD")
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                answer.append(response.status < 400)
        except Exception:
            answer.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answer and answer[0])


def download_official_weights() -> Path:
    """Download the ImageNet weights through torchvision into the hub cache (hash checked)."""
    from torchvision.models import AlexNet_Weights

    AlexNet_Weights.IMAGENET1K_V1.get_state_dict(progress=False, check_hash=True)
    return hub_checkpoints() / OFFICIAL_FILE


def find_weights(
    setting: str, allow_download: bool, timeout: float = 3.0, probe_url: str | None = None
) -> WeightsSource:
    """Resolve the ``weights`` setting (``auto``, ``none`` or a path) to a file, or to a
    reason why there is none. ``auto``: the hub cache, else a download when the server
    (``probe_url``, default torchvision's weights URL) answers within ``timeout`` seconds
    and ``allow_download``."""
    if setting == "none":
        return WeightsSource(None, "weights: none was set")
    if setting != "auto":
        return WeightsSource(Path(setting).expanduser(), "path")
    candidates = hub_weights_candidates()
    if candidates:
        return WeightsSource(candidates[0], "hub cache")
    if not allow_download:
        return WeightsSource(None, f"no {OFFICIAL_FILE} in the torch hub cache and downloads are off")
    from torchvision.models import AlexNet_Weights

    if not url_reachable(probe_url or AlexNet_Weights.IMAGENET1K_V1.url, timeout):
        return WeightsSource(None, f"no {OFFICIAL_FILE} in the torch hub cache and the machine is offline")
    try:
        return WeightsSource(download_official_weights(), "downloaded")
    except Exception as exc:
        return WeightsSource(None, f"the download failed ({type(exc).__name__}: {exc})")
