"""ToyNet: a plain CNN family that exists only in densegui's tests, registered through the
``densegui.families`` entry-point group (this directory holds its dist-info), to prove that a
family can be added without editing densegui.

Layout: a stem (3×3 conv, BN, ReLU), stages of conv units (3×3 conv, BN, ReLU; the first unit of
every stage after the first starts with a 2×2/2 max pool), then global average pooling and a linear head.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

from densegui.core.arch import family as F
from densegui.core.arch.config_io import ConfigIO, check_int, show
from densegui.core.arch.plan import Plan, Unit, bn, conv, linear
from densegui.core.arch.table import F32, I64, LayerTable, row_of
from densegui.core.errors import ConfigError


@dataclass(frozen=True)
class ToyConfig(ConfigIO):
    family: ClassVar[str] = "toynet"
    title: ClassVar[str] = "ToyNet"
    tuple_fields: ClassVar[tuple[str, ...]] = ("depths", "widths")
    unwrap_key: ClassVar[str] = "widths"

    depths: tuple[int, ...] = (1, 2)
    widths: tuple[int, ...] = (8, 16)
    stem_width: int = 8
    in_channels: int = 3
    num_classes: int = 10
    input_size: int = 32

    def __post_init__(self) -> None:
        for name in self.tuple_fields:
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))

    def validate(self) -> ToyConfig:
        for name in self.tuple_fields:
            value = getattr(self, name)
            if not isinstance(value, tuple) or not 1 <= len(value) <= 6:
                raise ConfigError(f"{name} must list 1 to 6 integers, got {show(value)}.")
        if len(self.widths) != len(self.depths):
            raise ConfigError(f"widths must list one width per stage ({len(self.depths)} stages), got {len(self.widths)}.")
        for i, (d, w) in enumerate(zip(self.depths, self.widths), 1):
            check_int(f"depths (stage {i})", d, 1, 16)
            check_int(f"widths (stage {i})", w, 1, 512)
        check_int("stem_width", self.stem_width, 1, 512)
        check_int("in_channels", self.in_channels, 1, 64)
        check_int("num_classes", self.num_classes, 1, 100_000)
        check_int("input_size", self.input_size, 1, 2048)
        if self.input_size >> (len(self.depths) - 1) < 1:
            raise ConfigError(f"input_size {self.input_size} is too small for {len(self.depths)} stages.")
        return self

    def sizes(self) -> list[int]:
        return [self.input_size >> s for s in range(len(self.depths))]

    def label(self) -> str:
        return preset_of(self, True) or f"ToyNet {','.join(map(str, self.depths))}"

    def describe(self) -> str:
        return f"ToyNet, stages {','.join(map(str, self.depths))}, widths {','.join(map(str, self.widths))}"

    def python_snippet(self) -> str:
        return f"from densegui_toy import ToyConfig\ncfg = {self!r}.validate()\n"


PRESETS = {p.name: p for p in [  # params: the plan's, set below
    F.Preset("toynet-s", ToyConfig(), "ToyNet small (test family)", 0, family="toynet", published=()),
    F.Preset("toynet-m", ToyConfig(depths=(2, 2, 2), widths=(8, 16, 32)), "ToyNet medium (test family)", 0,
             family="toynet", published=()),
]}


def preset_of(cfg: Any, ignore_run_settings: bool = False) -> str | None:
    for name, p in PRESETS.items():
        ref = p.config.replace(input_size=cfg.input_size) if ignore_run_settings else p.config
        if ref == cfg:
            return name
    return None


def plan(config: ToyConfig) -> Plan:
    return _plan(config.validate())


@lru_cache(maxsize=16)
def _plan(cfg: ToyConfig) -> Plan:
    s = cfg.input_size
    units = [Unit("stem", "stem", None, None, cfg.in_channels, cfg.stem_width, s, s,
                  conv("stem.conv", cfg.stem_width, cfg.in_channels, 3, s) + bn("stem.bn", cfg.stem_width))]
    c = cfg.stem_width
    for st, (depth, w, size) in enumerate(zip(cfg.depths, cfg.widths, cfg.sizes()), 1):
        for i in range(1, depth + 1):
            p = f"stages.{st - 1}.layers.{i - 1}"
            s_in = units[-1].out_size
            units.append(Unit(p, "conv", st, i, c, w, s_in, size, conv(f"{p}.conv", w, c, 3, size) + bn(f"{p}.bn", w)))
            c = w
    units.append(Unit("head", "head", None, None, c, cfg.num_classes, units[-1].out_size, 1,
                      linear("head.fc", c, cfg.num_classes)))
    return Plan(cfg, tuple(units))


def _table(config: ToyConfig) -> LayerTable:
    return _cached_table(config.validate())


@lru_cache(maxsize=16)
def _cached_table(cfg: ToyConfig) -> LayerTable:
    rows = []
    live = 0
    for u in plan(cfg).units:
        so, si = u.out_size, u.in_size
        if u.kind == "head":  # the pooled vector, kept by the linear layer
            saved, fixed = u.in_channels * F32, 0
        else:
            # conv output (kept by BN), BN output (ReLU in place keeps it, the next conv reads it)
            saved, fixed = 2 * u.out_channels * so * so * F32, 2 * u.out_channels * F32  # + BN mean, inv-std
            if u.kind == "stem":
                saved += u.in_channels * si * si * F32  # the input, kept by the stem conv
            elif si != so:  # the stage's max pool: int64 indices and its output (kept by the conv)
                saved += u.in_channels * so * so * (I64 + F32)
            live = max(live, u.in_channels * si * si + 2 * u.out_channels * so * so)
        rows.append(row_of(u, u.out_channels * so * so, saved, saved, fixed, fixed))
    return LayerTable(cfg, tuple(rows), live)


PRESETS = {n: dataclasses.replace(p, params=plan(p.config).params, exact=True) for n, p in PRESETS.items()}

FAMILY = F.Family(
    name="toynet", title="ToyNet", config=ToyConfig, presets=PRESETS, default_preset="toynet-s",
    fields=(
        F.Field("depths", "stage depths", "depths", "conv units per stage", 1, 16, metavar="D1,D2,.."),
        F.Field("widths", "widths", "ints", "channels per stage", 1, 512, metavar="W1,W2,..", log=True, sweep=False),
        F.Field("stem_width", "stem width", "int", "channels out of the stem", 1, 512, log=True),
        F.Field("in_channels", "input channels", "int", "input image channels", 1, 64),
        F.Field("num_classes", "classes", "int", "classifier outputs", 1, 100_000, log=True),
        F.Field("input_size", "input size", "int", "input image side in pixels", 1, 2048, run_setting=True, log=True),
    ),
    plan=plan, table=_table, model="densegui_toy.model:build_model", preset_of=preset_of,
    unit="stage", layer="conv", depths="depths",
    kinds=("stem", "convs", "BN/ReLU", "pooling", "head"),
    profile=(
        (r"stem", "stem"),
        (r"stages\.\d+\.layers\.\d+\.pool", "pooling"),
        (r"stages\.\d+\.layers\.\d+\.conv", "convs"),
        (r"stages\.\d+\.layers\.\d+\.(bn|relu)", "BN/ReLU"),
        (r"head", "head"),
    ),
    capabilities=frozenset({F.EXPLORE}),
    color="#9467bd",
)
