"""The data reuse measures on an ImageNet-style folder (generated here; no network, no Qt)."""

from __future__ import annotations

import numpy as np
import torch

from densegui.core.weights.checkpoint import save_checkpoint
from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.arch.densenet.model import build_model


def test_imagenet_folder_data_for_a_file_without_recorded_data(tmp_path):
    """--data imagenet:FOLDER on a generated ImageNet-style folder: torchvision's normalisation (the
    file records none), the val/ split, and the measures run (core, no window)."""
    from PIL import Image

    from densegui.core.weights.checkpoint import load_checkpoint
    from densegui.core.analysis.reuse_images import IMAGENET_MEAN, IMAGENET_STD
    from densegui.core.analysis.reuse_run import analyse

    cfg = DenseNetConfig(growth_rate=4, block_depths=(2, 2), compression=0.5, bottleneck=True, bn_size=2,
                         init_features=8, stem="imagenet", in_channels=3, num_classes=2, input_size=32)
    torch.manual_seed(3)
    path = save_checkpoint(tmp_path / "net.pt", build_model(cfg).state_dict(), cfg, {})
    rng = np.random.default_rng(0)
    for split, n in (("train", 2), ("val", 3)):
        for cls in ("cat", "dog"):
            folder = tmp_path / "imagenet" / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    loaded = load_checkpoint(path)
    result = analyse(loaded, ["activation", "ablation"], data=f"imagenet:{tmp_path / 'imagenet'}")
    assert result.data["images"] == 6  # val/: 3 per class
    assert result.data["normalize"]["mean"] == IMAGENET_MEAN and result.data["normalize"]["std"] == IMAGENET_STD
    for name in ("activation", "ablation"):
        assert all(np.isfinite(b.matrix[~np.isnan(b.matrix)]).all() for b in result.measures[name])
    assert result.baseline["images"] == 6
