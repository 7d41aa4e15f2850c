"""The family protocol: everything densegui needs to know about one kind of network (torch-free).

A family is a :class:`Family` value. densegui's own (DenseNet, ResNet) live in
``densegui/core/arch/<name>/``; anyone's package can add one through the ``densegui.families``
entry-point group (:mod:`densegui.core.arch.registry`). Consumers ask the family, never test its
name: words ("block"/"stage"), fields (controls, CLI flags, sweeps), presets, the torch-free plan and
layer table, the ``nn.Module`` builder, the profiler's kinds and the capabilities.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from densegui.core.arch.published import Preset  # re-exported: a family's presets are these

# Capabilities a family may have; consumers branch on these, never on the family's name.
MEMORY_EFFICIENT = "memory_efficient"  # recomputes concatenations in backward (the config has the flag)
REUSE = "reuse"  # the feature-reuse measures apply (dense blocks with a source-slice mixer)
TRAIN = "train"  # densegui's trainer and checkpoints accept it
WEIGHTS = "weights"  # its checkpoints are loaded, their configuration read or inferred
EXPLORE = "explore"  # the live explorer can edit it (fields with limits)
CAPABILITIES = (MEMORY_EFFICIENT, REUSE, TRAIN, WEIGHTS, EXPLORE)


@dataclass(frozen=True)
class Field:
    """One editable configuration field: a control in the explorer, a CLI flag, a sweep axis."""

    name: str  # the configuration attribute
    label: str  # short words for a control ("growth rate k")
    # "int" | "float" | "bool" | "choice" | "depths" (one int per block) | "ints" (per block) |
    # "spec": a string, one of ``choices``, where a choice ending in ":W" takes a whole number in lo … hi
    kind: str
    help: str = ""  # one line for --help and tooltips
    lo: float | None = None  # inclusive range (per item for "depths"/"ints")
    hi: float | None = None
    choices: tuple[str, ...] = ()
    flag: str | None = None  # the CLI flag's dest when it is not ``name`` ("blocks" for block_depths)
    short: str | None = None  # a short CLI flag ("-k")
    metavar: str | None = None
    optional: bool = False  # None is allowed (a derived default, e.g. init_features = 2k)
    log: bool = False  # a slider and a sweep step geometrically (growth rate, widths)
    run_setting: bool = False  # a setting of a run, not of the architecture (input size)
    sweep: bool = True  # a design sweep may vary it

    @property
    def dest(self) -> str:
        return self.flag or self.name

    @property
    def option(self) -> str:
        return "--" + self.dest.replace("_", "-")


@dataclass(frozen=True)
class Family:
    """One kind of network. Only ``model`` may import torch (it is imported on first use)."""

    name: str  # the "family" of its configurations' JSON and their ``family`` class attribute
    title: str  # "DenseNet"
    config: type  # frozen dataclass: validate(), from_dict(), to_dict(), replace(), label(), describe(), python_snippet()
    presets: Mapping[str, Preset]
    default_preset: str
    fields: tuple[Field, ...]
    plan: Callable[[Any], Any]  # config → densegui.core.arch.plan.Plan (validated, torch-free)
    table: Callable[[Any], Any]  # config → densegui.core.arch.table.LayerTable (cached)
    model: str  # "package.module:function": config, device → nn.Module
    preset_of: Callable[..., str | None]  # (config, ignore_run_settings=False) → preset name or None
    unit: str = "block"  # what a group of layers is called: "block" (dense block), "stage"
    layer: str = "layer"  # what a row inside it is called: "layer", "block"
    depths: str = "block_depths"  # the field holding one depth per unit
    kinds: tuple[str, ...] = ()  # the profiler's kinds in display order (plus "optimizer", "other")
    # (regex on a module path, kind): the first match labels the module; modules inside it too,
    # unless a later rule matches them.
    profile: tuple[tuple[str, str], ...] = ()
    capabilities: frozenset[str] = frozenset()
    color: str = "#7f7f7f"  # its points in the design plots
    # Sweeps beyond its fields, whole numbers: name → (description, log-spaced,
    # function(config, value) → config[, function(config) → its own value or None])
    sweeps: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    # The design sweeps' axes (densegui.core.analysis.design) to list first, in this order, each with
    # its words where the field's help does not fit ("": the help); a one-depth axis is keyed
    # f"{unit}{{i}}" ("block{i}") and "{i}" in its words is the unit's number.
    sweep_axes: tuple[tuple[str, str], ...] = ()
    sweep_aliases: Mapping[str, str] = field(default_factory=dict)  # other names of sweep axes ("k")
    # "package.module:function": model → (module, attribute, op) for the family's own ops that a
    # meta-device summary makes shape-only (densegui.core.analysis.summary); None: only torch's.
    shape_only: str | None = None

    def __repr__(self) -> str:
        return f"Family({self.name!r})"

    def can(self, capability: str) -> bool:
        return capability in self.capabilities

    @cached_property
    def build(self) -> Callable[..., Any]:
        """The ``nn.Module`` builder (imports torch and the family's model module)."""
        module, _, function = self.model.partition(":")
        return getattr(importlib.import_module(module), function)

    @cached_property
    def field_names(self) -> frozenset[str]:
        return frozenset(f.name for f in self.fields)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name or f.dest == name:
                return f
        raise KeyError(name)

    @cached_property
    def _profile_rules(self) -> tuple[tuple[re.Pattern[str], str], ...]:
        return tuple((re.compile(rx), kind) for rx, kind in self.profile)

    def profile_kind(self, path: str) -> str | None:
        """The profiler kind of the module at ``path`` (None: it takes its parent's)."""
        for rx, kind in self._profile_rules:
            if rx.fullmatch(path):
                return kind
        return None

    def words(self, plural: bool = False) -> str:
        return self.unit + ("s" if plural else "")
