"""The RDNet ``nn.Module`` for any valid :class:`RDNetConfig`, with timm's module names
(``timm/models/rdnet.py``), so a timm RDNet state_dict loads with ``strict=True`` and gives timm's
outputs. Dropout, drop path and gradient checkpointing (training options of timm's) are left out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from densegui.core.arch.layers import build_on
from densegui.core.arch.rdnet.config import RDNetConfig, multiple_of_8


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor (timm's ``LayerNorm2d``, eps 1e-6)."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, eps=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                            self.eps).permute(0, 3, 1, 2)


class EffectiveSE(nn.Module):
    """Effective squeeze-excitation (CenterMask): x · hard-sigmoid(1×1 conv(mean over space))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, kernel_size=1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(self.fc(x.mean((2, 3), keepdim=True)))


class Mixer(nn.Module):
    """timm's ``Block``/``BlockESE``: its ``layers`` Sequential, indices as timm's."""

    def __init__(self, cin: int, inter: int, k: int, ese: bool) -> None:
        super().__init__()
        parts = [nn.Conv2d(cin, cin, kernel_size=7, padding=3, groups=cin), LayerNorm2d(cin),
                 nn.Conv2d(cin, inter, kernel_size=1), nn.GELU(), nn.Conv2d(inter, k, kernel_size=1)]
        if ese:
            parts.append(EffectiveSE(k))
        self.layers = nn.Sequential(*parts)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class DenseBlock(nn.Module):
    """One block of a stage: concatenate, mix, scale by γ."""

    def __init__(self, cin: int, k: int, width_ratio: float, ese: bool) -> None:
        super().__init__()
        self.gamma = nn.Parameter(1e-6 * torch.ones(k))
        self.layers = Mixer(cin, multiple_of_8(cin * width_ratio), k, ese)

    concat = staticmethod(torch.cat)  # (a meta-device summary swaps in a shape-only version)

    def forward(self, inputs: list[Tensor]) -> Tensor:
        return self.layers(self.concat(inputs, 1)).mul(self.gamma.reshape(1, -1, 1, 1))


class DenseStage(nn.Sequential):
    concat = staticmethod(torch.cat)

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for block in self:
            features.append(block(features))
        return self.concat(features, 1)


class Head(nn.Module):
    """Global average pool, LayerNorm, linear (timm's ``NormMlpClassifierHead``, no hidden layer)."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.norm = LayerNorm2d(channels)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.norm(x.mean((2, 3), keepdim=True)), 1))


class RDNet(nn.Module):
    def __init__(self, config: RDNetConfig) -> None:
        super().__init__()
        cfg = self.config = config.validate()
        c, p = cfg.init_features, cfg.patch_size
        self.stem = nn.Sequential(nn.Conv2d(cfg.in_channels, c, kernel_size=p, stride=p), LayerNorm2d(c))
        stages = []
        for s, (depth, k) in enumerate(zip(cfg.stage_depths, cfg.growth_rates)):
            parts: list[nn.Module] = []
            if s:
                out, kernel = multiple_of_8(c * cfg.compression), 2 if cfg.downsample[s] else 1
                parts += [LayerNorm2d(c), nn.Conv2d(c, out, kernel_size=kernel, stride=kernel)]
                c = out
            stage = DenseStage()
            for j in range(depth):
                stage.add_module(f"dense_block{j}", DenseBlock(c + j * k, k, cfg.width_ratio, s + 1 >= cfg.ese_from))
            parts.append(stage)
            c += depth * k
            stages.append(nn.Sequential(*parts))
        self.dense_stages = nn.Sequential(*stages)
        self.head = Head(c, cfg.num_classes)
        if self.head.fc.weight.device.type != "meta":
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """timm's initialisation: He-normal convs, zero linear bias."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.Linear):
                nn.init.constant_(m.bias, 0)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.dense_stages(self.stem(x)))


def shape_only_ops(model: RDNet):
    """The concatenations a meta-device summary makes shape-only (``Family.shape_only``)."""
    for m in model.modules():
        if isinstance(m, (DenseBlock, DenseStage)):
            yield m, "concat", "cat"


def build_model(config: RDNetConfig, device: torch.device | str | None = None) -> RDNet:
    """Build an RDNet for ``config``; on ``device="meta"`` no memory is allocated."""
    return build_on(lambda: RDNet(config), device)
