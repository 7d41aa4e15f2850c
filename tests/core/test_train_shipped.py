"""The checkpoint shipped in resources/: loads, has the promised architecture, and its recorded
held-out accuracy is re-measured here on the held-out split."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from densegui.core.resources import resource_path

PT = resource_path("densenet-digits.pt")
SIDECAR = resource_path("densenet-digits.json")


@pytest.fixture(scope="module")
def shipped():
    return torch.load(PT, map_location="cpu", weights_only=True)


def test_loads_safely_with_the_promised_architecture(shipped):
    from densegui.core.checkpoint import load_checkpoint

    assert PT.stat().st_size < 1_000_000
    loaded = load_checkpoint(PT)
    cfg = loaded.config
    assert not loaded.inferred
    assert (cfg.num_blocks, cfg.growth_rate, cfg.compression, cfg.bottleneck, cfg.stem) == (3, 12, 1.0, False, "cifar")
    assert (cfg.in_channels, cfg.num_classes, cfg.input_size) == (1, 10, 8)
    assert len(set(cfg.block_depths)) == 1 and 4 <= cfg.block_depths[0] <= 6
    meta = shipped["metadata"]
    assert meta["complete"] is True and meta["epochs_done"] == meta["epochs"]
    assert meta["heldout_accuracy"] >= 0.95
    assert meta["dataset"]["spec"] == "digits" and meta["dataset"]["split"] == {"kind": "stratified",
                                                                                 "fraction": 0.2, "seed": 0}
    assert "optimizer" not in shipped["train_state"]  # finished run: nothing to resume, file kept small


def test_recorded_accuracy_is_remeasured_on_the_heldout_split(shipped):
    """Independent of densegui's data and training modules: the digits come straight from
    scikit-learn, the recorded split recipe and normalisation are re-applied here with plain torch."""
    from sklearn.datasets import load_digits

    from densegui.core.config import DenseNetConfig
    from densegui.core.model import build_model

    meta = shipped["metadata"]
    split = meta["dataset"]["split"]
    sk = load_digits()
    labels = torch.from_numpy(sk.target.astype(np.int64))
    g = torch.Generator().manual_seed(split["seed"])
    held = []
    for c in torch.unique(labels).tolist():  # the documented recipe: per class, a seeded permutation, first 20 %
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        held.append(idx[: int(round(split["fraction"] * len(idx)))])
    held = torch.cat(held)
    assert len(held) == meta["dataset"]["num_test"] == 359
    x = torch.from_numpy(sk.images.astype(np.float32))[held].unsqueeze(1) / 16.0
    norm = meta["normalize"]
    x = (x - norm["mean"][0]) / norm["std"][0]
    model = build_model(DenseNetConfig.from_dict(shipped["config"]))
    model.load_state_dict(shipped["state_dict"])
    model.eval()
    with torch.no_grad():
        pred = model(x).argmax(1)
    correct = int((pred == labels[held]).sum())
    assert correct / len(held) >= 0.95
    # the same number of correct images as recorded (at most one image's disagreement across CPUs/BLAS)
    assert abs(correct - round(meta["heldout_accuracy"] * len(held))) <= 1


def test_sidecar_agrees_with_the_checkpoint(shipped):
    side = json.loads(SIDECAR.read_text(encoding="utf-8"))
    assert side["sha256"] == hashlib.sha256(PT.read_bytes()).hexdigest()
    assert side["heldout_accuracy"] == shipped["metadata"]["heldout_accuracy"]
    assert side["config"] == shipped["config"]
    assert side["command"].startswith("densegui train ") and "--seed 0" in side["command"]
    assert side["parameters"] == sum(v.numel() for k, v in shipped["state_dict"].items()
                                     if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
