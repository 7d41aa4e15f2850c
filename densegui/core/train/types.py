"""The default network of a training run and its adaptation to the data (torch-free).

The run's vocabulary is in :mod:`densegui.core.train.options`, what it records (result, resume
plan, checkpoint metadata) in :mod:`densegui.core.train.records`.
"""

from __future__ import annotations

from typing import Any

from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.errors import ConfigError

DATA_FIELDS = ("in_channels", "num_classes", "input_size")

# (channels, classes, image side) of the datasets whose shape is fixed by their kind.
_KNOWN_SHAPES = {"digits": (1, 10, 8), "cifar10": (3, 10, 32), "cifar100": (3, 100, 32), "mnist": (1, 10, 28),
                 "fashion-mnist": (1, 10, 28)}


def default_config() -> DenseNetConfig:
    """The shipped digits architecture: basic DenseNet, k=12, θ=1, 3 blocks of 5, CIFAR stem, 8×8×1 input."""
    return DenseNetConfig(growth_rate=12, block_depths=(5, 5, 5), compression=1.0, bottleneck=False,
                          init_features=16, stem="cifar", in_channels=1, num_classes=10, input_size=8)


def dataset_shape(spec: str) -> tuple[int, int, int] | None:
    """(channels, classes, image side) of the dataset ``spec`` names, when its kind fixes them
    (digits, cifar10, cifar100, mnist, fashion-mnist); None for folders, whose shape needs reading."""
    text = (spec or "").strip().lower()
    if text == "digits":
        return _KNOWN_SHAPES["digits"]
    kind, sep, rest = text.partition(":")
    if sep and rest and kind != "digits":
        return _KNOWN_SHAPES.get(kind)
    return None


def adapt_config(cfg: DenseNetConfig, shape_or_data: Any,
                 keep: tuple[str, ...] = ()) -> tuple[DenseNetConfig, list[str]]:
    """``cfg`` with in_channels / num_classes / input_size set from a Dataset or a
    ``(channels, classes, size)`` tuple. Fields in ``keep`` stay as the user set them and must
    then match. Returns the validated config and what was changed ("num_classes 100 → 10")."""
    if isinstance(shape_or_data, tuple):
        channels, classes, size = shape_or_data
        where = "the dataset"
    else:
        data = shape_or_data
        channels, classes, size = data.channels, data.num_classes, data.size
        where = f"the dataset {data.name}"
    want = {"in_channels": channels, "num_classes": classes, "input_size": size}
    changes, notes = {}, []
    for name, value in want.items():
        have = getattr(cfg, name)
        if have == value:
            continue
        if name in keep:
            raise ConfigError(f"{name} is {have} but {where} has {value}; "
                              f"drop --{name.replace('_', '-')} to adapt it automatically.")
        changes[name] = value
        notes.append(f"{name} {have} → {value}")
    return (cfg.replace(**changes).validate() if changes else cfg.validate()), notes
