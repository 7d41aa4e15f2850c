"""The family registry: one entry point for DenseNets and ResNets (torch-free at module level).

Anything that takes "a configuration" goes through here: presets of both families, a config from
a dict or file (dispatched on its ``"family"``, DenseNet when absent), the analytic layer table,
the model, the probe's memory estimate and FLOPs. :mod:`densegui.core.config`'s ``PRESETS``
stays the DenseNet presets (the DenseNet controls use it); :data:`PRESETS` here is the union.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from densegui.core import config as densenet
from densegui.core import resnet, stats
from densegui.core.config import (
    DenseNetConfig,
    Preset,
    config_from_file_with,
    parse_config_json,
    unwrap_summary_json,
)
from densegui.core.errors import ConfigError
from densegui.core.resnet import ResNetConfig
from densegui.core.table import LayerTable, estimate_from_table

if TYPE_CHECKING:
    import torch

Config = Union[DenseNetConfig, ResNetConfig]

FAMILIES: dict[str, type] = {"densenet": DenseNetConfig, "resnet": ResNetConfig}
FAMILY_NAMES = {"densenet": "DenseNet", "resnet": "ResNet"}

PRESETS: dict[str, Preset] = {**densenet.PRESETS, **resnet.PRESETS}  # DenseNets first, in their order


def family_of(cfg: Any) -> str:
    """``cfg``'s family name (ConfigError for anything that is not a configuration)."""
    family = getattr(cfg, "family", None)
    if family not in FAMILIES or not isinstance(cfg, FAMILIES[family]):
        raise ConfigError(f"not a network configuration: {type(cfg).__name__}.")
    return family


def get_preset(name: str) -> Config:
    """The configuration of preset ``name``, of either family (ConfigError listing the valid names)."""
    try:
        return PRESETS[name].config
    except KeyError:
        raise ConfigError(f"unknown preset {name!r:.60}; valid presets: {', '.join(PRESETS)}.") from None


def preset_names(family: str | None = None) -> list[str]:
    """Every preset's name, or only ``family``'s."""
    if family is not None and family not in FAMILIES:
        raise ConfigError(f"unknown family {family!r:.40}; valid families: {', '.join(FAMILIES)}.")
    return [n for n, p in PRESETS.items() if family is None or p.family == family]


def preset_of(cfg: Config, ignore_run_settings: bool = False) -> str | None:
    """The name of the preset ``cfg`` is, or None (run settings: input size, memory-efficient)."""
    if family_of(cfg) == "resnet":
        return resnet.preset_of(cfg, ignore_run_settings)
    return densenet.preset_of(cfg, ignore_run_settings)


# ----------------------------------------------------------------------------- configurations
def _own_fields() -> dict[str, set[str]]:
    named = {name: {f.name for f in dataclasses.fields(cls)} for name, cls in FAMILIES.items()}
    return {name: fields - set().union(*(f for other, f in named.items() if other != name))
            for name, fields in named.items()}


_OWN_FIELDS = _own_fields()  # family → the fields no other family has


def _family_of_fields(data: dict) -> str:
    """The family whose own fields ``data`` uses; DenseNet when it uses none. A hand-written
    ResNet JSON without ``"family"`` is then still read as a ResNet."""
    users = {name: sorted(fields & data.keys()) for name, fields in _OWN_FIELDS.items() if fields & data.keys()}
    if len(users) > 1:
        mixed = "; ".join(f"{name}: {', '.join(fields)}" for name, fields in users.items())
        raise ConfigError(f"the configuration mixes fields of different families ({mixed}); "
                          f"say which with \"family\": one of {', '.join(FAMILIES)}.")
    return next(iter(users), "densenet")


def config_from_dict(data: Any) -> Config:
    """A validated configuration of the family ``data["family"]`` names; when absent, of the family
    whose own fields it uses (DenseNet by default)."""
    if not isinstance(data, dict):
        raise ConfigError(f"a configuration must be a JSON object, got {type(data).__name__}.")
    family = data["family"] if "family" in data else _family_of_fields(data)
    if not isinstance(family, str) or family not in FAMILIES:
        raise ConfigError(f"unknown family {family!r:.40}; valid families: {', '.join(FAMILIES)}.")
    if family == "densenet":
        # DenseNetConfig.to_dict() has no "family" key; accept one that says "densenet".
        return DenseNetConfig.from_dict({k: v for k, v in data.items() if k != "family"})
    return ResNetConfig.from_dict(data)


_FIELDS = {f.name for cls in FAMILIES.values() for f in dataclasses.fields(cls)}  # not "family", a summary key too


def config_from_json(text: str) -> Config:
    """A configuration from JSON text: a config object, or the whole ``summary --json`` output
    (its "config" object is used when the top level holds no configuration field)."""
    return config_from_dict(unwrap_summary_json(parse_config_json(text), _FIELDS))


def config_from_file(path: str | Path) -> Config:
    """:func:`config_from_json` of a file; errors are one line starting with the file's name."""
    return config_from_file_with(config_from_json, path)


# ----------------------------------------------------------------------------- analytic numbers
def layer_table(cfg: Config) -> LayerTable:
    """The analytic layer table of any family (validated first; cached per configuration)."""
    if family_of(cfg) == "resnet":
        return resnet.resnet_layer_table(cfg)
    return stats.layer_table(cfg)


def estimate_memory(cfg: Config, batch_size: int, mode: str) -> int:
    """The probe's memory estimate (:func:`densegui.core.table.estimate_from_table`) for any family."""
    return estimate_from_table(layer_table(cfg), batch_size, mode, efficient=cfg.memory_efficient)


def flops_per_iteration(cfg: Config, batch_size: int, mode: str) -> int:
    """FLOPs of one probe iteration, by :data:`densegui.core.stats.FLOPS_CONVENTION`."""
    flops = 2 * layer_table(cfg).macs * batch_size
    return 3 * flops if mode == "training" else flops


# ----------------------------------------------------------------------------- models
def build_model(cfg: Config, device: torch.device | str | None = None) -> torch.nn.Module:
    """The ``nn.Module`` of any family (torch is imported here, not when this module loads)."""
    if family_of(cfg) == "resnet":
        from densegui.core import resnet_model

        return resnet_model.build_model(cfg, device)
    from densegui.core import model

    return model.build_model(cfg, device)
