"""The ResNet plan: the units of a :class:`ResNetConfig` with torchvision's module names
(``conv1``/``bn1``, ``layerS.B``, ``fc``) and every state-dict entry's shape."""

from __future__ import annotations

from functools import lru_cache

from densegui.core.arch.plan import Plan, Unit, bn, conv, linear, stride2
from densegui.core.arch.resnet.config import ResNetConfig


def plan(config: ResNetConfig) -> Plan:
    """The validated ``config``'s units in module order (cached per configuration)."""
    return _plan(config.validate())


# A few plans only: the layer tables are cached, and a plan is thousands of objects the cyclic
# garbage collector would otherwise walk in every full collection.
@lru_cache(maxsize=4)
def _plan(cfg: ResNetConfig) -> Plan:
    sw, size = cfg.stem_width, cfg.input_size
    stem_conv_size = size if cfg.stem == "cifar" else stride2(size, 7, 3)
    kernel = 7 if cfg.stem == "imagenet" else 3
    units = [Unit("conv1", "stem", None, None, cfg.in_channels, sw, size, cfg.stem_size(),
                  conv("conv1", sw, cfg.in_channels, kernel, stem_conv_size) + bn("bn1", sw))]
    size = cfg.stem_size()
    for st, ((c_stage, c_out), depth, w, s_out) in enumerate(
            zip(cfg.stage_channels(), cfg.stage_depths, cfg.widths, cfg.spatial_sizes()), 1):
        for i in range(1, depth + 1):
            p = f"layer{st}.{i - 1}"
            s_in, cin = (size, c_stage) if i == 1 else (s_out, c_out)
            if cfg.block == "basic":
                t = (conv(f"{p}.conv1", w, cin, 3, s_out) + bn(f"{p}.bn1", w)
                     + conv(f"{p}.conv2", w, w, 3, s_out) + bn(f"{p}.bn2", w))
            else:  # the stride is on the 3×3 conv: conv1 runs at the input's size
                t = (conv(f"{p}.conv1", w, cin, 1, s_in) + bn(f"{p}.bn1", w) + conv(f"{p}.conv2", w, w, 3, s_out)
                     + bn(f"{p}.bn2", w) + conv(f"{p}.conv3", c_out, w, 1, s_out) + bn(f"{p}.bn3", c_out))
            if cfg.reshapes(st, i) and cfg.shortcut == "B":
                t += conv(f"{p}.downsample.0", c_out, cin, 1, s_out) + bn(f"{p}.downsample.1", c_out)
            units.append(Unit(p, "residual", st, i, cin, c_out, s_in, s_out, t,
                              weighted_layers=2 if cfg.block == "basic" else 3, residual=True))
        size = s_out
    c = cfg.final_channels
    units.append(Unit("fc", "head", None, None, c, cfg.num_classes, size, 1, linear("fc", c, cfg.num_classes)))
    return Plan(cfg, tuple(units))
