"""Random DenseNet configurations, seeded: one generator, with a sampling space per use.

A :class:`ConfigSpace` says where each field is drawn from; :func:`random_config` draws one
configuration (valid or not) from it, :func:`random_valid_configs` a list of valid ones.

* :data:`LIMITS_SPACE` (test_config): small fields over the whole accepted range, input sizes
  down to 1 and compressions down to 0.01, so that many configurations fail validation.
* :data:`MEASURED_SPACE` (test_stats, the family contract): models small enough to build, run and
  measure on the CPU, with every connectivity.
* :data:`FORWARD_SPACE` (test_model): small models with inputs of at least 8 pixels, no dropout.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.errors import ConfigError


@dataclass(frozen=True)
class ConfigSpace:
    """Inclusive integer ranges and lists of choices, one per field."""

    growth_rate: tuple[int, int]
    num_blocks: tuple[int, int]
    block_depth: tuple[int, int]
    compressions: tuple[float, ...]
    bn_size: tuple[int, int]
    init_features: tuple[int, int]  # or None (2k), half the time
    in_channels: tuple[int, int]
    num_classes: tuple[int, int]
    drop_rates: tuple[float, ...] | None  # None: not drawn (the default drop rate)
    input_size: tuple[int, int]
    connectivities: tuple[str, ...] | None = None  # None: not drawn (dense)


LIMITS_SPACE = ConfigSpace(growth_rate=(1, 6), num_blocks=(1, 4), block_depth=(1, 3),
                           compressions=(1.0, 0.5, 0.25, 0.7, 0.05, 0.01), bn_size=(1, 4), init_features=(1, 12),
                           in_channels=(1, 4), num_classes=(1, 7), drop_rates=(0.0, 0.3), input_size=(1, 40))
MEASURED_SPACE = ConfigSpace(growth_rate=(1, 7), num_blocks=(1, 4), block_depth=(1, 4),
                             compressions=(1.0, 0.5, 0.3, 0.75, 0.2), bn_size=(1, 4), init_features=(1, 12),
                             in_channels=(1, 4), num_classes=(1, 12), drop_rates=(0.0, 0.25), input_size=(5, 40),
                             connectivities=("dense", "log", "window:1", "window:2", "window:3"))
FORWARD_SPACE = ConfigSpace(growth_rate=(1, 6), num_blocks=(1, 4), block_depth=(1, 3),
                            compressions=(1.0, 0.5, 0.3), bn_size=(1, 4), init_features=(1, 9),
                            in_channels=(1, 4), num_classes=(1, 9), drop_rates=None, input_size=(8, 40))


def random_config(rng: random.Random, space: ConfigSpace, **fixed) -> DenseNetConfig:
    """One configuration drawn from ``space``, not validated; ``fixed`` fields replace the drawn ones
    (every field is still drawn, so fixing one does not shift the draws of the others)."""
    values = dict(
        growth_rate=rng.randint(*space.growth_rate),
        block_depths=tuple(rng.randint(*space.block_depth) for _ in range(rng.randint(*space.num_blocks))),
        compression=rng.choice(space.compressions),
        bottleneck=rng.random() < 0.5,
        bn_size=rng.randint(*space.bn_size),
        init_features=rng.choice([None, rng.randint(*space.init_features)]),
        stem=rng.choice(["imagenet", "cifar"]),
        in_channels=rng.randint(*space.in_channels),
        num_classes=rng.randint(*space.num_classes),
    )
    if space.drop_rates is not None:
        values["drop_rate"] = rng.choice(space.drop_rates)
    values["input_size"] = rng.randint(*space.input_size)
    if space.connectivities is not None:
        values["connectivity"] = rng.choice(space.connectivities)
    values.update(fixed)
    return DenseNetConfig(**values)


def random_valid_configs(seed: int, count: int, space: ConfigSpace, **fixed) -> list[DenseNetConfig]:
    """The first ``count`` configurations drawn from ``space`` (seeded) that pass validation."""
    rng = random.Random(seed)
    out: list[DenseNetConfig] = []
    while len(out) < count:
        cfg = random_config(rng, space, **fixed)
        try:
            cfg.validate()
        except ConfigError:
            continue
        out.append(cfg)
    return out
