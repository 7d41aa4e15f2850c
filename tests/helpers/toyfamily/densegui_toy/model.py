"""ToyNet's nn.Module (module paths as in the plan: stem.conv, stages.S.layers.I.{pool,conv,bn,relu}, head.fc)."""

from __future__ import annotations

import torch
from torch import nn


class ConvUnit(nn.Module):
    def __init__(self, cin: int, cout: int, pool: bool = False) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.bn(self.conv(self.pool(x))))


class Stage(nn.Module):
    def __init__(self, cin: int, width: int, depth: int, pool: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList(ConvUnit(cin if i == 0 else width, width, pool and i == 0) for i in range(depth))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class Head(nn.Module):
    def __init__(self, cin: int, classes: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(x), 1))


class ToyNet(nn.Module):
    def __init__(self, cfg) -> None:
        super().__init__()
        self.config = cfg.validate()
        self.stem = ConvUnit(cfg.in_channels, cfg.stem_width)
        widths = (cfg.stem_width, *cfg.widths)
        self.stages = nn.ModuleList(Stage(widths[s], cfg.widths[s], cfg.depths[s], s > 0) for s in range(len(cfg.depths)))
        self.head = Head(cfg.widths[-1], cfg.num_classes)

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)


def build_model(cfg, device=None) -> ToyNet:
    if device is not None and str(device) == "meta":
        with torch.device("meta"):
            return ToyNet(cfg)
    model = ToyNet(cfg)
    return model.to(device) if device is not None else model
