"""The checkpoints shipped in resources/: each loads, has the promised architecture, and its recorded
held-out accuracy is re-measured here on the held-out split. The default one (what ``densegui reuse``
and the Feature reuse tab show) is the paper's Figure 5 net, DenseNet L=40, k=12; the small
5-layers-per-block net (``densegui train``'s default architecture) ships beside it."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from densegui.core.resources import resource_path
from densegui.core.analysis.reuse import DEFAULT_CHECKPOINT

# file -> (layers per block, at most this many bytes, at least this held-out accuracy)
SHIPPED = {
    "densenet40-digits.pt": ((12, 12, 12), 5_000_000, 0.97),  # paper Figure 5: L=40, 3 blocks of 12
    "densenet-digits.pt": ((5, 5, 5), 1_000_000, 0.95),
}


def test_the_default_checkpoint_is_the_figure_5_net_and_is_tested_here():
    assert DEFAULT_CHECKPOINT == "densenet40-digits.pt" and DEFAULT_CHECKPOINT in SHIPPED


@pytest.fixture(scope="module", params=sorted(SHIPPED))
def name(request):
    return request.param


@pytest.fixture(scope="module")
def shipped(name):
    return torch.load(resource_path(name), map_location="cpu", weights_only=True)


def test_loads_safely_with_the_promised_architecture(name, shipped):
    from densegui.core.weights.checkpoint import load_checkpoint

    depths, max_bytes, min_accuracy = SHIPPED[name]
    pt = resource_path(name)
    assert pt.stat().st_size < max_bytes
    loaded = load_checkpoint(pt)
    cfg = loaded.config
    assert not loaded.inferred
    assert (cfg.num_blocks, cfg.growth_rate, cfg.compression, cfg.bottleneck, cfg.stem) == (3, 12, 1.0, False, "cifar")
    assert (cfg.in_channels, cfg.num_classes, cfg.input_size, cfg.num_init_features) == (1, 10, 8, 16)
    assert cfg.block_depths == depths
    meta = shipped["metadata"]
    assert meta["complete"] is True and meta["epochs_done"] == meta["epochs"]
    assert meta["heldout_accuracy"] >= min_accuracy
    assert meta["dataset"]["spec"] == "digits" and meta["dataset"]["split"] == {"kind": "stratified",
                                                                                 "fraction": 0.2, "seed": 0}
    assert "optimizer" not in shipped["train_state"]  # finished run: nothing to resume, file kept small


def test_recorded_accuracy_is_remeasured_on_the_heldout_split(name, shipped):
    """Independent of densegui's data and training modules: the digits come straight from
    scikit-learn, the recorded split recipe and normalisation are re-applied here with plain torch."""
    from sklearn.datasets import load_digits

    from densegui.core.arch.densenet.config import DenseNetConfig
    from densegui.core.arch.densenet.model import build_model

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
    assert correct / len(held) >= SHIPPED[name][2]
    # the same number of correct images as recorded (at most one image's disagreement across CPUs/BLAS)
    assert abs(correct - round(meta["heldout_accuracy"] * len(held))) <= 1


def test_sidecar_agrees_with_the_checkpoint(name, shipped):
    pt = resource_path(name)
    side = json.loads(resource_path(name.removesuffix(".pt") + ".json").read_text(encoding="utf-8"))
    assert side["file"] == name
    assert side["sha256"] == hashlib.sha256(pt.read_bytes()).hexdigest() and side["bytes"] == pt.stat().st_size
    assert side["heldout_accuracy"] == shipped["metadata"]["heldout_accuracy"]
    assert side["config"] == shipped["config"]
    assert side["command"].startswith("densegui train ") and "--seed 0" in side["command"]
    assert side["command"].endswith(f"--out resources/{name}")
    assert side["recipe"] == shipped["metadata"]["recipe"]
    assert side["parameters"] == sum(v.numel() for k, v in shipped["state_dict"].items()
                                     if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
