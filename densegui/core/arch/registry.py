"""The family registry: every network family densegui knows, and the functions that take "a
configuration" of any of them (torch-free at module level).

Families come from two places, loaded on first use: densegui's own (:data:`BUILTIN`) and the
``densegui.families`` entry-point group, whose entries name a :class:`~densegui.core.arch.family.Family`
value (``"mypackage.mynet:FAMILY"``), so a user's package adds a family without editing densegui.
A family that fails to load is left out with a warning; it never breaks the others. Both are
loaded by name (:mod:`importlib`), so this module depends on the protocol, not on any family.
"""

from __future__ import annotations

import dataclasses
import importlib
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from densegui.core.arch.config_io import config_from_file_with, parse_config_json, show, unwrap_summary_json
from densegui.core.arch.table import LayerTable, estimate_from_table
from densegui.core.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from densegui.core.arch.family import Family, Preset

    from densegui.core.arch.plan import Plan

Config = Any  # a configuration of any registered family (its Family.config class)

GROUP = "densegui.families"
BUILTIN = ("densegui.core.arch.densenet:FAMILY", "densegui.core.arch.resnet:FAMILY", "densegui.core.arch.rdnet:FAMILY")

_families: dict[str, Family] | None = None
_by_class: dict[type, Family] = {}
_presets: dict[str, Preset] = {}


def _load(spec: str) -> Family:
    module, _, attr = spec.partition(":")
    value = getattr(importlib.import_module(module), attr or "FAMILY")
    if callable(value):  # a function that returns the family
        value = value()
    missing = [a for a in _PROTOCOL if not hasattr(value, a)]
    if missing:
        raise TypeError(f"{spec} is a {type(value).__name__}, not a densegui Family (no {', '.join(missing)})")
    return value


# What the registry itself reads of a family (densegui.core.arch.family.Family has it all).
_PROTOCOL = ("name", "title", "config", "presets", "default_preset", "fields", "plan", "table", "model", "preset_of")


def _entry_point_specs() -> list[tuple[str, str]]:
    """(name, "module:attr") of every ``densegui.families`` entry point of the distributions on
    ``sys.path``, the first of each distribution name winning, as :mod:`importlib.metadata` finds
    them. Read here from the ``entry_points.txt`` files directly: importing importlib.metadata (and
    the email package under it) would cost every CLI command ~50 ms."""
    import configparser
    import os
    import sys

    seen: set[str] = set()
    specs: list[tuple[str, str]] = []
    for base in sys.path:
        try:
            names = sorted(os.listdir(base or "."))
        except OSError:  # not a directory (a zip), or gone
            continue
        for name in names:
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            dist = name.rpartition(".")[0].split("-")[0].lower().replace(".", "_")
            if dist in seen:
                continue
            seen.add(dist)
            path = os.path.join(base or ".", name, "entry_points.txt")
            if not os.path.isfile(path):
                continue
            parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
            parser.optionxform = str  # entry-point names are case-sensitive
            try:
                parser.read(path, encoding="utf-8")
            except (configparser.Error, UnicodeDecodeError, OSError):
                continue
            if parser.has_section(GROUP):
                specs += [(ep, value.partition("[")[0].strip()) for ep, value in parser.items(GROUP)]
    return specs


def families() -> dict[str, Family]:
    """Every family by name: the built-in ones first, then the entry points' in their order."""
    global _families
    if _families is None:
        found: dict[str, Family] = {}
        for spec in BUILTIN:
            fam = _load(spec)
            found[fam.name] = fam
        for name, spec in _entry_point_specs():
            try:
                fam = _load(spec)
                if fam.name in found:
                    raise ValueError(f"a family named {fam.name!r} exists already")
            except Exception as exc:  # a third party's broken family must not break densegui
                warnings.warn(f"densegui: family entry point {name!r} ({spec}) not loaded: {exc}", stacklevel=2)
                continue
            found[fam.name] = fam
        _families = {}
        for fam in found.values():
            _add(fam)
    return _families


def _add(fam: Family) -> None:
    assert _families is not None
    _families[fam.name] = fam
    _by_class[fam.config] = fam
    for name, preset in fam.presets.items():
        _presets.setdefault(name, preset)


def register(fam: Family) -> Family:
    """Add ``fam`` (or replace the family of its name) in this process: for programs and tests
    that define a family without an installed package."""
    families()
    old = _families.pop(fam.name, None)  # type: ignore[union-attr]
    if old is not None:
        _by_class.pop(old.config, None)
        for name in old.presets:
            _presets.pop(name, None)
    _add(fam)
    return fam


def unregister(name: str) -> None:
    """Remove the family ``name`` added by :func:`register` (tests)."""
    fam = families().pop(name)
    _by_class.pop(fam.config, None)
    for preset in fam.presets:
        _presets.pop(preset, None)


def reload() -> dict[str, Family]:
    """Forget every family and load them again (after ``sys.path`` or the installed packages changed)."""
    global _families
    _families = None
    _by_class.clear()
    _presets.clear()
    return families()


def get_family(name: str) -> Family:
    try:
        return families()[name]
    except KeyError:
        raise ConfigError(f"unknown family {show(name)}; valid families: {', '.join(families())}.") from None


def family_of(cfg: Any) -> Family:
    """``cfg``'s family (ConfigError for anything that is not a configuration of a registered family)."""
    families()
    fam = _by_class.get(type(cfg))
    if fam is None:
        raise ConfigError(f"not a network configuration: {type(cfg).__name__}.")
    return fam


def is_config(value: Any) -> bool:
    families()
    return type(value) in _by_class


# ----------------------------------------------------------------------------- presets
def presets() -> dict[str, Preset]:
    """Every family's presets by name (the built-in DenseNets first)."""
    families()
    return _presets


def __getattr__(name: str) -> Any:
    if name == "PRESETS":  # the live union (families load on first use)
        return presets()
    raise AttributeError(name)


def get_preset(name: str) -> Config:
    """The configuration of preset ``name``, of any family (ConfigError listing the valid names)."""
    try:
        return presets()[name].config
    except (KeyError, TypeError):
        raise ConfigError(f"unknown preset {show(name)}; valid presets: {', '.join(presets())}.") from None


def preset_names(family: str | None = None) -> list[str]:
    """Every preset's name, or only ``family``'s."""
    if family is not None:
        return list(get_family(family).presets)
    return list(presets())


def preset_of(cfg: Config, ignore_run_settings: bool = False) -> str | None:
    """The name of the preset ``cfg`` is, or None (run settings: input size, memory-efficient)."""
    if not is_config(cfg):
        return None
    return family_of(cfg).preset_of(cfg, ignore_run_settings)


def default_family() -> Family:
    """The first built-in family (DenseNet): a config object without "family" and without another
    family's fields is one of its, and so is the window's start."""
    return next(iter(families().values()))


def default_config() -> Config:
    return get_preset(default_family().default_preset)


# ----------------------------------------------------------------------------- configurations
def _family_of_fields(data: dict) -> Family:
    """The family whose own fields (those no other family has) ``data`` uses; the default family
    when it uses none. A hand-written ResNet JSON without ``"family"`` is then still read as one."""
    named = {name: {f.name for f in dataclasses.fields(fam.config)} for name, fam in families().items()}
    users = {}
    for name, fields in named.items():
        own = fields - set().union(*(f for other, f in named.items() if other != name))
        if own & data.keys():
            users[name] = sorted(own & data.keys())
    if len(users) > 1:
        mixed = "; ".join(f"{name}: {', '.join(fields)}" for name, fields in users.items())
        raise ConfigError(f"the configuration mixes fields of different families ({mixed}); "
                          f"say which with \"family\": one of {', '.join(families())}.")
    return families()[next(iter(users))] if users else default_family()


def config_from_dict(data: Any) -> Config:
    """A validated configuration of the family ``data["family"]`` names; when absent, of the family
    whose own fields it uses (DenseNet by default)."""
    if not isinstance(data, dict):
        raise ConfigError(f"a configuration must be a JSON object, got {type(data).__name__}.")
    if "family" in data:
        if not isinstance(data["family"], str) or data["family"] not in families():
            raise ConfigError(f"unknown family {show(data['family'])}; valid families: {', '.join(families())}.")
        fam = families()[data["family"]]
    else:
        fam = _family_of_fields(data)
    return fam.config.from_dict(data)


def _all_fields() -> set[str]:
    return {f.name for fam in families().values() for f in dataclasses.fields(fam.config)}


def config_from_json(text: str) -> Config:
    """A configuration from JSON text: a config object, or the whole ``summary --json`` output
    (its "config" object is used when the top level holds no configuration field)."""
    return config_from_dict(unwrap_summary_json(parse_config_json(text), _all_fields()))


def config_from_file(path: str | Path) -> Config:
    """:func:`config_from_json` of a file; errors are one line starting with the file's name."""
    return config_from_file_with(config_from_json, path)


# ----------------------------------------------------------------------------- analytic numbers
def plan(cfg: Config) -> Plan:
    """The torch-free plan of any family's configuration (validated first)."""
    return family_of(cfg).plan(cfg)


def layer_table(cfg: Config) -> LayerTable:
    """The analytic layer table of any family (validated first; cached per configuration)."""
    return family_of(cfg).table(cfg)


def expected_shapes(cfg: Config) -> dict[str, tuple[int, ...]]:
    """Every state-dict key of ``build_model(cfg)`` with its shape, from the plan."""
    return plan(cfg).state_shapes()


def estimate_memory(cfg: Config, batch_size: int, mode: str) -> int:
    """The probe's memory estimate (:func:`densegui.core.arch.table.estimate_from_table`) for any family."""
    return estimate_from_table(layer_table(cfg), batch_size, mode, efficient=getattr(cfg, "memory_efficient", False))


def flops_per_iteration(cfg: Config, batch_size: int, mode: str) -> int:
    """FLOPs of one probe iteration, by :data:`densegui.core.arch.table.FLOPS_CONVENTION`."""
    flops = 2 * layer_table(cfg).macs * batch_size
    return 3 * flops if mode == "training" else flops


# ----------------------------------------------------------------------------- models
def build_model(cfg: Config, device: torch.device | str | None = None) -> torch.nn.Module:
    """The ``nn.Module`` of any family (torch is imported here, not when this module loads)."""
    return family_of(cfg).build(cfg, device)
