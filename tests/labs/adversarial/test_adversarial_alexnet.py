"""AlexNet written out, and finding, checking and loading its weights (never downloading)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
import torch
from labrunner.labs.adversarial import alexnet
from labrunner.labs.adversarial.images import Preprocess


@pytest.mark.slow  # two AlexNets built and run
def test_alexnet_matches_torchvision_and_has_61100840_parameters():
    assert alexnet.parameter_count(alexnet.AlexNet()) == alexnet.ALEXNET_PARAMETERS == 61_100_840
    assert alexnet.compare_with_torchvision(batch=1) <= 1e-6


@pytest.mark.slow  # two AlexNets initialised
def test_alexnet_state_dict_layout_is_torchvisions():
    import torchvision

    ours = {k: v.shape for k, v in alexnet.AlexNet().state_dict().items()}
    theirs = {k: v.shape for k, v in torchvision.models.alexnet(weights=None).state_dict().items()}
    assert ours == theirs


def test_preprocessing_and_classes_come_from_torchvision_metadata():
    from torchvision.models import AlexNet_Weights

    pre = Preprocess.from_torchvision(AlexNet_Weights.IMAGENET1K_V1.transforms())
    assert (pre.resize, pre.crop) == (256, 224)
    assert pre.mean == pytest.approx((0.485, 0.456, 0.406))
    assert len(AlexNet_Weights.IMAGENET1K_V1.meta["categories"]) == 1000
    assert Path(AlexNet_Weights.IMAGENET1K_V1.url).name == alexnet.OFFICIAL_FILE


def named_by_hash(path: Path, data: bytes, stem: str = "alexnet-owt") -> Path:
    target = path / f"{stem}-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    target.write_bytes(data)
    return target


def test_hash_prefix_is_checked_like_torchvision(tmp_path):
    good = named_by_hash(tmp_path, b"some weights")
    assert alexnet.check_hash_prefix(good) == good.name.split("-")[-1].split(".")[0]
    bad = tmp_path / "alexnet-owt-00000000.pth"
    bad.write_bytes(b"some weights")
    with pytest.raises(alexnet.WeightsError, match="does not start with 00000000"):
        alexnet.check_hash_prefix(bad)
    plain = tmp_path / "my_weights.pth"  # no hash in the name: nothing to check
    plain.write_bytes(b"x")
    assert alexnet.check_hash_prefix(plain) is None


def test_load_rejects_files_that_are_not_alexnet(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(2)}, path)
    with pytest.raises(alexnet.WeightsError, match="not an AlexNet state dict"):
        alexnet.load_alexnet_weights(path)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a pickle")
    with pytest.raises(alexnet.WeightsError, match="cannot be read"):
        alexnet.load_alexnet_weights(junk)
    with pytest.raises(alexnet.WeightsError, match="not found"):
        alexnet.load_alexnet_weights(tmp_path / "missing.pth")


def test_hub_candidates_put_the_official_file_first(tmp_path):
    for name in (
        "alexnet-owt-abcdef12.pth",
        alexnet.OFFICIAL_FILE,
        "resnet18-f37072fd.pth",
        "alexnet-owt-x.pth",
    ):
        (tmp_path / name).write_bytes(b"")
    names = [p.name for p in alexnet.hub_weights_candidates(tmp_path)]
    assert names == [alexnet.OFFICIAL_FILE, "alexnet-owt-abcdef12.pth"]
    assert alexnet.hub_weights_candidates(tmp_path / "absent") == []


def test_find_weights_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert alexnet.find_weights("none", allow_download=True).path is None
    assert alexnet.find_weights(str(tmp_path / "w.pth"), allow_download=False).path == tmp_path / "w.pth"
    offline = alexnet.find_weights("auto", allow_download=False)
    assert offline.path is None and "downloads are off" in offline.how
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    found = named_by_hash(checkpoints, b"weights")
    assert alexnet.find_weights("auto", allow_download=False).path == found


def test_auto_does_not_hang_when_offline(tmp_path, monkeypatch):
    """With downloads allowed and the server unreachable, auto falls back at once."""
    import socket

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/alexnet-owt-7be5be79.pth"
    start = time.perf_counter()
    source = alexnet.find_weights("auto", allow_download=True, timeout=2.0, probe_url=url)
    assert source.path is None and "offline" in source.how
    assert time.perf_counter() - start < 3.0
