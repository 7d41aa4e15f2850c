"""The DenseNet plan: the one place that states which units a :class:`DenseNetConfig` has, what each
dense layer concatenates, and every state-dict entry with its shape (torchvision's names)."""

from __future__ import annotations

from functools import lru_cache

from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.arch.plan import Plan, Unit, bn, conv, linear, stride2


def plan(config: DenseNetConfig) -> Plan:
    """The validated ``config``'s units in module order (cached per configuration)."""
    return _plan(config.validate())


@lru_cache(maxsize=64)
def _plan(cfg: DenseNetConfig) -> Plan:
    k, inter, init, c_in = cfg.growth_rate, cfg.bn_size * cfg.growth_rate, cfg.num_init_features, cfg.in_channels
    size = cfg.input_size
    if cfg.stem == "imagenet":  # 7×7/2 conv, BN, ReLU, 3×3/2 max pool
        s1 = stride2(size, 7, 3)
        stem = Unit("features.conv0", "stem", None, None, c_in, init, size, stride2(s1),
                    conv("features.conv0", init, c_in, 7, s1) + bn("features.norm0", init))
    else:  # one 3×3 conv
        stem = Unit("features.conv0", "stem", None, None, c_in, init, size, size,
                    conv("features.conv0", init, c_in, 3, size))
    units = [stem]
    sizes = cfg.spatial_sizes()
    for b, ((c0, c_end), depth) in enumerate(zip(cfg.block_channels(), cfg.block_depths), 1):
        s = sizes[b - 1]
        block_input = units[-1].path
        earlier: list[str] = []
        for i in range(1, depth + 1):
            p = f"features.denseblock{b}.denselayer{i}"
            cin = c0 + (i - 1) * k
            if cfg.bottleneck:
                tensors = (bn(f"{p}.norm1", cin) + conv(f"{p}.conv1", inter, cin, 1, s) + bn(f"{p}.norm2", inter)
                           + conv(f"{p}.conv2", k, inter, 3, s))
            else:
                tensors = bn(f"{p}.norm1", cin) + conv(f"{p}.conv1", k, cin, 3, s)
            units.append(Unit(p, "dense", b, i, cin, k, s, s, tensors, (block_input, *earlier),
                              (c0, *(k,) * len(earlier)), 2 if cfg.bottleneck else 1, f"{p}.conv1"))
            earlier.append(p)
        if b < cfg.num_blocks:
            p, out = f"features.transition{b}", cfg.transition_out(c_end)
            units.append(Unit(p, "transition", b, None, c_end, out, s, sizes[b],
                              bn(f"{p}.norm", c_end) + conv(f"{p}.conv", out, c_end, 1, s),
                              (block_input, *earlier), (c0, *(k,) * depth), 1, f"{p}.conv"))
    c = cfg.final_channels
    block_input = units[-cfg.block_depths[-1] - 1].path
    earlier = [u.path for u in units[-cfg.block_depths[-1]:]]
    units.append(Unit("classifier", "head", None, None, c, cfg.num_classes, sizes[-1], 1,
                      bn("features.norm5", c) + linear("classifier", c, cfg.num_classes),
                      (block_input, *earlier), (cfg.block_channels()[-1][0], *(k,) * len(earlier)), 1, "classifier"))
    return Plan(cfg, tuple(units))
