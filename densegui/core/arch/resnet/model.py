"""The ResNet ``nn.Module`` for any valid :class:`~densegui.core.arch.resnet.config.ResNetConfig`.

Written like torchvision's ``models/resnet.py`` and with its module names (``conv1``, ``bn1``,
``layer1`` … ``layerN``, blocks ``layerS.I.{conv1,bn1,conv2,bn2[,conv3,bn3],downsample.0/1}``,
``fc``), so a torchvision ResNet state_dict loads with ``strict=True``. Beyond torchvision:
any number of stages and widths, the CIFAR stem, and He et al.'s parameter-free option A
shortcut (:class:`ShortcutA`, also named ``downsample``, with no parameters or buffers).
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from densegui.core.arch.layers import build_on, layers
from densegui.core.arch.resnet.config import ResNetConfig


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return layers().Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return layers().Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class ShortcutA(nn.Module):
    """Option A: keep every ``stride``-th pixel and pad the new channels with zeros; no parameters."""

    def __init__(self, stride: int, extra_channels: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra_channels = extra_channels

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))  # pads dim 1 (channels) at the end

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra_channels={self.extra_channels}"


def _add_in_place(out: Tensor, identity: Tensor) -> Tensor:
    out += identity
    return out


class BasicBlock(nn.Module):
    expansion = 1
    add = staticmethod(_add_in_place)  # (a meta-device summary swaps in a shape-only version)

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = layers().BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = layers().BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(self.add(out, identity))


class Bottleneck(nn.Module):
    """1×1 → 3×3 (the stride, "ResNet v1.5") → 1×1 to ``planes × 4`` channels."""

    expansion = 4
    add = staticmethod(_add_in_place)  # (as BasicBlock.add)

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = layers().BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = layers().BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = layers().BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(self.add(out, identity))


class ResNet(nn.Module):
    """A ResNet built from a validated config (``model.config`` keeps it)."""

    def __init__(self, config: ResNetConfig) -> None:
        super().__init__()
        cfg = config.validate()
        self.config = cfg
        block = BasicBlock if cfg.block == "basic" else Bottleneck
        self.inplanes = cfg.stem_width
        if cfg.stem == "imagenet":
            self.conv1 = layers().Conv2d(cfg.in_channels, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        else:
            self.conv1 = conv3x3(cfg.in_channels, self.inplanes)
        self.bn1 = layers().BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1) if cfg.stem == "imagenet" else nn.Identity()
        for i, (depth, width) in enumerate(zip(cfg.stage_depths, cfg.widths)):
            self.add_module(f"layer{i + 1}", self._make_layer(block, width, depth, i + 1))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = layers().Linear(self.inplanes, cfg.num_classes)
        # No values to initialise on the meta device (and meta normal_() is slow).
        if self.fc.weight.device.type != "meta":
            self.reset_parameters()

    def _make_layer(self, block: type[BasicBlock | Bottleneck], planes: int, blocks: int, stage: int) -> nn.Sequential:
        out, stride = planes * block.expansion, 1 if stage == 1 else 2
        downsample = None
        if self.config.reshapes(stage, 1):
            if self.config.shortcut == "B":
                downsample = nn.Sequential(conv1x1(self.inplanes, out, stride), layers().BatchNorm2d(out))
            else:
                downsample = ShortcutA(stride, out - self.inplanes)
        units = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = out
        units += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*units)

    def reset_parameters(self) -> None:
        """torchvision's initialisation: He-normal (fan-out) convs, BN 1/0, the default linear."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, f"layer{i + 1}") for i in range(self.config.num_stages)]

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in self.stages():
            x = stage(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def _shortcut_a_shape(module: ShortcutA, x: Tensor) -> Tensor:
    n, c, h, w = x.shape
    s = module.stride
    return torch.empty(n, c + module.extra_channels, -(-h // s), -(-w // s), dtype=x.dtype, device=x.device)


def shape_only_ops(model: ResNet) -> Iterator[tuple[nn.Module, str, Any]]:
    """The ResNet's own ops a meta-device summary makes shape-only (``Family.shape_only``): the
    residual adds and option A's slice and pad."""
    for m in model.modules():
        if isinstance(m, (BasicBlock, Bottleneck)):
            yield m, "add", "add"
        elif isinstance(m, ShortcutA):
            yield m, "forward", types.MethodType(_shortcut_a_shape, m)


def build_model(config: ResNetConfig, device: torch.device | str | None = None) -> ResNet:
    """Build a ResNet for ``config``; on ``device="meta"`` no memory is allocated."""
    return build_on(lambda: ResNet(config), device)
