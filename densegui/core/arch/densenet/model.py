"""The DenseNet ``nn.Module`` for any valid :class:`DenseNetConfig`.

Module names are torchvision's (``features.conv0``,
``features.denseblockN.denselayerM.norm1``, ``features.transitionN.conv``,
``features.norm5``, ``classifier``), so a torchvision DenseNet state_dict
loads with ``strict=True``. Beyond torchvision this builder expresses basic
(non-bottleneck) layers, any compression θ, the CIFAR stem and timm's deep stem (timm's names,
``features.conv0``-``conv2`` and ``norm0``-``norm2``: timm's ``densenet264d`` loads as it is).

Dropout follows torchvision: only after the layer's last (3×3) conv.
A basic layer is ``norm1 → relu1 → conv1`` (3×3); a bottleneck layer adds
``norm2 → relu2 → conv2`` after a 1×1 ``conv1``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from itertools import pairwise

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from torch import Tensor, nn

from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.arch.layers import build_on, layers
from densegui.core.weights.statedict import rename_legacy_keys


class DenseLayer(nn.Module):
    def __init__(self, in_channels: int, growth_rate: int, bn_size: int, bottleneck: bool, drop_rate: float,
                 memory_efficient: bool) -> None:
        super().__init__()
        self.bottleneck = bottleneck
        self.norm1 = layers().BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        if bottleneck:
            inter = bn_size * growth_rate
            self.conv1 = layers().Conv2d(in_channels, inter, kernel_size=1, stride=1, bias=False)
            self.norm2 = layers().BatchNorm2d(inter)
            self.relu2 = nn.ReLU(inplace=True)
            self.conv2 = layers().Conv2d(inter, growth_rate, kernel_size=3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = layers().Conv2d(in_channels, growth_rate, kernel_size=3, stride=1, padding=1, bias=False)
        self.drop_rate = float(drop_rate)
        self.memory_efficient = memory_efficient

    concat = staticmethod(torch.cat)  # (a meta-device summary swaps in a shape-only version)

    def first(self, inputs: list[Tensor]) -> Tensor:
        """concat → BN → ReLU → first conv: the part recomputed in memory-efficient mode."""
        return self.conv1(self.relu1(self.norm1(self.concat(inputs, 1))))

    def forward(self, inputs: list[Tensor]) -> Tensor:
        if self.memory_efficient and torch.is_grad_enabled() and any(t.requires_grad for t in inputs):
            out = cp.checkpoint(lambda *xs: self.first(list(xs)), *inputs, use_reentrant=False)
        else:
            out = self.first(inputs)
        if self.bottleneck:
            out = self.conv2(self.relu2(self.norm2(out)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return out


class DenseBlock(nn.ModuleDict):
    def __init__(self, depth: int, in_channels: int, cfg: DenseNetConfig) -> None:
        super().__init__()
        k = cfg.growth_rate
        # Which earlier feature maps each layer reads: None where it reads them all (dense).
        self.picks: list[tuple[int, ...] | None] = []
        for i in range(1, depth + 1):
            picked = cfg.layer_sources(i)
            self.picks.append(None if picked == tuple(range(i)) else picked)
            self.add_module(
                f"denselayer{i}",
                DenseLayer(sum(in_channels if j == 0 else k for j in picked), k, cfg.bn_size, cfg.bottleneck,
                           cfg.drop_rate, cfg.memory_efficient),
            )

    concat = staticmethod(torch.cat)  # (as DenseLayer.concat)

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for layer, picked in zip(self.values(), self.picks):
            features.append(layer(features if picked is None else [features[j] for j in picked]))
        return self.concat(features, 1)


class Transition(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm = layers().BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = layers().Conv2d(in_channels, out_channels, kernel_size=1, stride=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(nn.Module):
    """A DenseNet built from a validated config (``model.config`` keeps it)."""

    def __init__(self, config: DenseNetConfig) -> None:
        super().__init__()
        cfg = config.validate()
        self.config = cfg
        init = cfg.num_init_features
        if cfg.stem == "imagenet":
            stem = [
                ("conv0", layers().Conv2d(cfg.in_channels, init, kernel_size=7, stride=2, padding=3, bias=False)),
                ("norm0", layers().BatchNorm2d(init)),
                ("relu0", nn.ReLU(inplace=True)),
                ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
            ]
        elif cfg.stem == "deep":  # timm's stem_type="deep" (its BatchNormAct2d: BN, then an in-place ReLU)
            stem = []
            widths = (cfg.in_channels, cfg.growth_rate, cfg.growth_rate, init)
            for i, (c_in, c_out) in enumerate(pairwise(widths)):
                stem += [(f"conv{i}", layers().Conv2d(c_in, c_out, kernel_size=3, stride=1 if i else 2, padding=1,
                                                      bias=False)),
                         (f"norm{i}", layers().BatchNorm2d(c_out)), (f"relu{i}", nn.ReLU(inplace=True))]
            stem.append(("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)))
        else:
            stem = [("conv0", layers().Conv2d(cfg.in_channels, init, kernel_size=3, stride=1, padding=1, bias=False))]
        self.features = nn.Sequential(OrderedDict(stem))
        for i, ((c_in, c_out), depth) in enumerate(zip(cfg.block_channels(), cfg.block_depths)):
            self.features.add_module(f"denseblock{i + 1}", DenseBlock(depth, c_in, cfg))
            if i < cfg.num_blocks - 1:
                self.features.add_module(f"transition{i + 1}", Transition(c_out, cfg.transition_out(c_out)))
        self.features.add_module("norm5", layers().BatchNorm2d(cfg.final_channels))
        self.classifier = layers().Linear(cfg.final_channels, cfg.num_classes)
        # On the meta device there are no values to initialise, and meta normal_() goes through
        # a slow Python decomposition (and a first-call import of torch._dynamo).
        if self.classifier.weight.device.type != "meta":
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """torchvision's initialisation: He-normal convs, BN 1/0, linear bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.constant_(m.bias, 0)

    def set_memory_efficient(self, enabled: bool) -> None:
        """Switch every dense layer's recomputation on or off in place."""
        for m in self.modules():
            if isinstance(m, DenseLayer):
                m.memory_efficient = enabled
        self.config = self.config.replace(memory_efficient=enabled)

    @staticmethod
    def global_pool(x: Tensor) -> Tensor:  # (a meta-device summary swaps in a shape-only version)
        return F.adaptive_avg_pool2d(x, (1, 1))

    def forward(self, x: Tensor) -> Tensor:
        features = self.features(x)
        out = F.relu(features, inplace=True)
        out = self.global_pool(out)
        out = torch.flatten(out, 1)
        return self.classifier(out)

    def load_state_dict(self, state_dict: Mapping[str, Tensor], strict: bool = True, assign: bool = False):
        """Like ``nn.Module.load_state_dict``, accepting torchvision's legacy key names too."""
        return super().load_state_dict(rename_legacy_keys(state_dict), strict=strict, assign=assign)


def shape_only_ops(model: DenseNet) -> Iterator[tuple[nn.Module, str, str]]:
    """The DenseNet's own ops a meta-device summary makes shape-only (``Family.shape_only``): the
    concatenations and the global pooling."""
    for m in model.modules():
        if isinstance(m, (DenseLayer, DenseBlock)):
            yield m, "concat", "cat"
    yield model, "global_pool", "global_pool"


def build_model(config: DenseNetConfig, device: torch.device | str | None = None) -> DenseNet:
    """Build a DenseNet for ``config``; on ``device="meta"`` no memory is allocated."""
    return build_on(lambda: DenseNet(config), device)
