"""ResNet test builders: seeded random configurations, and torchvision-style state_dicts written
from torchvision's naming scheme and shape formulas (not from densegui's model code)."""

from __future__ import annotations

import random

import torch

from densegui.core.arch.resnet.config import ResNetConfig

# torchvision.models.resnet: (block, layers) per depth.
TORCHVISION_LAYOUT = {18: ("basic", [2, 2, 2, 2]), 34: ("basic", [3, 4, 6, 3]), 50: ("bottleneck", [3, 4, 6, 3]),
                      101: ("bottleneck", [3, 4, 23, 3]), 152: ("bottleneck", [3, 8, 36, 3])}


def random_resnet_configs(seed: int, n: int, max_size: int = 24) -> list[ResNetConfig]:
    """``n`` small valid configurations covering both blocks, stems and shortcuts."""
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        stages = rng.randint(1, 3)
        block, stem, shortcut = rng.choice(("basic", "bottleneck")), rng.choice(("imagenet", "cifar")), rng.choice("AB")
        widths = [rng.randint(1, 8) for _ in range(stages)]
        if shortcut == "A":
            widths.sort()
        stem_width = rng.randint(1, 8)
        if shortcut == "A":  # option A cannot reduce channels
            stem_width = min(stem_width, widths[0] * (4 if block == "bottleneck" else 1))
        cfg = ResNetConfig(stage_depths=tuple(rng.randint(1, 3) for _ in range(stages)), widths=tuple(widths),
                           block=block, stem=stem, stem_width=stem_width, shortcut=shortcut,
                           in_channels=rng.randint(1, 4), num_classes=rng.randint(1, 12),
                           input_size=rng.randint(5 if stem == "imagenet" else 3, max_size))
        out.append(cfg.validate())
    return out


def _bn(prefix: str, c: int, sd: dict, tracked: bool) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        sd[f"{prefix}.{name}"] = torch.randn(c) if name != "running_var" else torch.rand(c) + 0.5
    if tracked:
        sd[f"{prefix}.num_batches_tracked"] = torch.tensor(7)


def torchvision_resnet_state_dict(depth: int, num_classes: int = 1000, tracked: bool = True) -> dict[str, torch.Tensor]:
    """A random state_dict with exactly the keys and shapes of torchvision's ``resnet{depth}()``."""
    block, layers = TORCHVISION_LAYOUT[depth]
    expansion = 1 if block == "basic" else 4
    sd: dict[str, torch.Tensor] = {"conv1.weight": torch.randn(64, 3, 7, 7)}
    _bn("bn1", 64, sd, tracked)
    inplanes = 64
    for s, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers), 1):
        stride = 1 if s == 1 else 2
        for i in range(blocks):
            p = f"layer{s}.{i}"
            if block == "basic":
                sd[f"{p}.conv1.weight"] = torch.randn(planes, inplanes, 3, 3)
                _bn(f"{p}.bn1", planes, sd, tracked)
                sd[f"{p}.conv2.weight"] = torch.randn(planes, planes, 3, 3)
                _bn(f"{p}.bn2", planes, sd, tracked)
            else:
                sd[f"{p}.conv1.weight"] = torch.randn(planes, inplanes, 1, 1)
                _bn(f"{p}.bn1", planes, sd, tracked)
                sd[f"{p}.conv2.weight"] = torch.randn(planes, planes, 3, 3)
                _bn(f"{p}.bn2", planes, sd, tracked)
                sd[f"{p}.conv3.weight"] = torch.randn(planes * 4, planes, 1, 1)
                _bn(f"{p}.bn3", planes * 4, sd, tracked)
            if i == 0 and (stride != 1 or inplanes != planes * expansion):
                sd[f"{p}.downsample.0.weight"] = torch.randn(planes * expansion, inplanes, 1, 1)
                _bn(f"{p}.downsample.1", planes * expansion, sd, tracked)
            inplanes = planes * expansion
    sd["fc.weight"] = torch.randn(num_classes, 512 * expansion)
    sd["fc.bias"] = torch.randn(num_classes)
    return sd
