"""Seeded random RDNet configurations small enough to build and run on the CPU."""

from __future__ import annotations

import random

from densegui.core.arch.rdnet.config import RDNetConfig
from densegui.core.errors import ConfigError


def random_rdnet_configs(seed: int, n: int) -> list[RDNetConfig]:
    """``n`` valid configurations: 1–4 stages of 1–3 blocks, with and without ESE and downsampling."""
    rng = random.Random(seed)
    out: list[RDNetConfig] = []
    while len(out) < n:
        stages = rng.randint(1, 4)
        cfg = RDNetConfig(stage_depths=tuple(rng.randint(1, 3) for _ in range(stages)),
                          growth_rates=tuple(8 * rng.randint(1, 3) for _ in range(stages)),
                          downsample=(0, *(rng.randint(0, 1) for _ in range(stages - 1))),
                          ese_from=rng.randint(1, stages + 1), width_ratio=rng.choice((1.0, 2.0, 4.0)),
                          compression=rng.choice((0.5, 1.0)), init_features=8 * rng.randint(1, 3),
                          patch_size=rng.choice((1, 2, 4)), in_channels=rng.randint(1, 3),
                          num_classes=rng.randint(1, 10), input_size=rng.randint(8, 24))
        try:
            out.append(cfg.validate())
        except ConfigError:
            continue
    return out
