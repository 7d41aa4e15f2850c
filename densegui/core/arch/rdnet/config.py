"""RDNet configuration and presets ("DenseNets Reloaded", Kim et al., ECCV 2024), torch-free.

Layout: timm's ``models/rdnet.py`` (timm 1.0.31), whose state-dict keys the model keeps.

* **Stem**: a ``patch_size``×``patch_size`` conv with stride ``patch_size`` (bias), then LayerNorm.
* **Stage s** (1-based): a transition before every stage but the first (LayerNorm, then a conv to
  ⌊θ·C/8⌋·8 channels: 2×2 stride 2 where ``downsample`` has a 1, else 1×1), then ``stage_depths[s]``
  dense blocks. Each block reads the concatenation of the stage input and every earlier block's
  output (C channels) and runs a 7×7 depthwise conv (bias), LayerNorm, a 1×1 conv to
  ⌊C·``width_ratio``/8⌋·8 channels, GELU, a 1×1 conv to the stage's growth rate, an effective
  squeeze-excitation in stages from ``ese_from`` on, and layer scale γ.
* **Head**: global average pool, LayerNorm, linear classifier.

No memory-efficient mode: ``memory_efficient`` exists for the shared protocol and must be false.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from densegui.core.arch import config_io
from densegui.core.arch.config_io import SHARED_LIMITS, ConfigIO
from densegui.core.arch.config_io import show as _show
from densegui.core.arch.published import Preset
from densegui.core.errors import ConfigError

STEMS = ("patch",)
LIMITS: dict[str, tuple[float, float]] = {
    "num_stages": (1, 16),
    "stage_depth": (1, 64),
    "growth_rate": (8, 1024),
    "init_features": (8, 2048),
    "patch_size": (1, 16),
    **SHARED_LIMITS,
}


def _check_int(name: str, value: Any, limit: str) -> None:
    config_io.check_int(name, value, *LIMITS[limit])


def _check_list(name: str, value: Any, count: int | None, limit: str) -> None:
    lo, hi = LIMITS["num_stages"]
    if not isinstance(value, tuple) or not value:
        raise ConfigError(f"{name} must list {lo} to {hi} integers, one per stage, got {_show(value)}.")
    if count is None and not lo <= len(value) <= hi:
        raise ConfigError(f"{name} must list {lo} to {hi} stages, got {len(value)}.")
    if count is not None and len(value) != count:
        raise ConfigError(f"{name} must list one value per stage ({count} stages), got {len(value)}.")
    for i, v in enumerate(value, 1):
        if limit == "flag":
            if v not in (0, 1) or isinstance(v, bool):
                raise ConfigError(f"{name} (stage {i}) must be 0 or 1, got {_show(v)}.")
        else:
            _check_int(f"{name} (stage {i})", v, limit)


def multiple_of_8(x: float) -> int:
    """timm's ``int(x / 8) * 8`` (channels rounded down to a multiple of 8)."""
    return int(x / 8) * 8


@dataclass(frozen=True)
class RDNetConfig(ConfigIO):
    """Hyperparameters of an RDNet; the defaults are timm's rdnet_tiny."""

    family: ClassVar[str] = "rdnet"
    title: ClassVar[str] = "RDNet"
    tuple_fields: ClassVar[tuple[str, ...]] = ("stage_depths", "growth_rates", "downsample")
    unwrap_key: ClassVar[str] = "growth_rates"

    stage_depths: tuple[int, ...] = (3,) * 7
    growth_rates: tuple[int, ...] = (64, 104, 128, 128, 128, 128, 224)
    downsample: tuple[int, ...] = (0, 1, 1, 0, 0, 0, 1)  # 1: the transition into that stage halves the size
    ese_from: int = 3  # the first stage (1-based) whose blocks end in effective squeeze-excitation
    width_ratio: float = 4.0  # a block's 1×1 expansion: ⌊C·ratio/8⌋·8 channels
    compression: float = 0.5  # transitions: ⌊θ·C/8⌋·8 channels
    init_features: int = 64
    patch_size: int = 4
    stem: str = "patch"
    in_channels: int = 3
    num_classes: int = 1000
    input_size: int = 224
    memory_efficient: bool = False

    def __post_init__(self) -> None:
        for name in self.tuple_fields:
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        for name in ("width_ratio", "compression"):
            value = getattr(self, name)
            if config_io.is_int(value):
                object.__setattr__(self, name, float(value))

    # ------------------------------------------------------------------ derived
    @property
    def num_stages(self) -> int:
        return len(self.stage_depths)

    def spatial_sizes(self) -> list[int]:
        """Spatial side inside each stage."""
        size = (self.input_size - self.patch_size) // self.patch_size + 1
        out = []
        for s in range(self.num_stages):
            if s > 0 and self.downsample[s]:
                size = (size - 2) // 2 + 1
            out.append(size)
        return out

    def stage_channels(self) -> list[tuple[int, int]]:
        """(input channels, output channels) of every stage (after its transition)."""
        out, c = [], self.init_features
        for s, (depth, k) in enumerate(zip(self.stage_depths, self.growth_rates, strict=True)):
            if s > 0:
                c = multiple_of_8(c * self.compression)
            out.append((c, c + depth * k))
            c += depth * k
        return out

    @property
    def final_channels(self) -> int:
        return self.stage_channels()[-1][1]

    @property
    def depth(self) -> int:
        """Blocks in all (the papers name RDNets by size, not depth)."""
        return sum(self.stage_depths)

    # --------------------------------------------------------------- validation
    def validate(self) -> RDNetConfig:
        _check_list("stage_depths", self.stage_depths, None, "stage_depth")
        n = len(self.stage_depths)
        _check_list("growth_rates", self.growth_rates, n, "growth_rate")
        _check_list("downsample", self.downsample, n, "flag")
        config_io.check_int("ese_from", self.ese_from, 1, n + 1)
        for name in ("width_ratio", "compression"):
            v = getattr(self, name)
            if not isinstance(v, float) or not (0 < v <= (16 if name == "width_ratio" else 1)):
                raise ConfigError(f"{name} must be a number in (0, {16 if name == 'width_ratio' else 1}], got {_show(v)}.")
        _check_int("init_features", self.init_features, "init_features")
        _check_int("patch_size", self.patch_size, "patch_size")
        if self.stem not in STEMS:
            raise ConfigError(f"stem must be patch (an RDNet's patchify stem), got {_show(self.stem)}.")
        for name in ("in_channels", "num_classes", "input_size"):
            _check_int(name, getattr(self, name), name)
        if self.memory_efficient is not False:
            raise ConfigError("memory_efficient must be false for an RDNet (densegui's memory-efficient mode is "
                              f"the DenseNets'), got {_show(self.memory_efficient)}.")
        c = self.init_features
        for s, (depth, k) in enumerate(zip(self.stage_depths, self.growth_rates), 1):
            if s > 1:
                c = multiple_of_8(c * self.compression)
                if c < 8:
                    raise ConfigError(f"compression {self.compression:g} leaves fewer than 8 channels after the "
                                      f"transition into stage {s}; raise compression or init_features.")
            if multiple_of_8(c * self.width_ratio) < 8:
                raise ConfigError(f"width_ratio {self.width_ratio:g} leaves stage {s}'s first block fewer than 8 "
                                  "channels in its 1×1 expansion; raise width_ratio.")
            c += depth * k
        if self.input_size < self.patch_size or self.spatial_sizes()[-1] < 1:
            need = self.patch_size * 2 ** sum(self.downsample[1:])
            raise ConfigError(f"input_size {self.input_size} is too small for a {self.patch_size}×{self.patch_size} "
                              f"patch stem and {sum(self.downsample[1:])} downsampling transitions; input_size must "
                              f"be at least {need}.")
        return self

    # ------------------------------------------------------------- describing
    @property
    def variant(self) -> str:
        return "RDNet"

    def label(self) -> str:
        name = preset_of(self, ignore_run_settings=True)
        if name is not None:
            return name
        return f"RDNet {len(self.stage_depths)} stages k={','.join(map(str, self.growth_rates))}"

    def brief(self) -> str:
        return f"k={self.growth_rates[0]}…{self.growth_rates[-1]} ×{self.width_ratio:g} ESE≥{self.ese_from}"

    def describe(self) -> str:
        return (f"RDNet, stages {','.join(map(str, self.stage_depths))}, growth {','.join(map(str, self.growth_rates))}, "
                f"downsample {''.join(map(str, self.downsample))}, ESE from stage {self.ese_from}, width ×{self.width_ratio:g}, "
                f"θ={self.compression:g}, {self.patch_size}×{self.patch_size} patch stem ({self.init_features}), "
                f"{self.in_channels}×{self.input_size}×{self.input_size} in, {self.num_classes} classes")

    def python_snippet(self) -> str:
        args = ",\n    ".join(f"{k}={v!r}" for k, v in dataclasses.asdict(self).items() if k != "memory_efficient")
        return ("from densegui.core.arch.rdnet.config import RDNetConfig\n"
                "from densegui.core.arch.rdnet.model import build_model\n\n"
                f"cfg = RDNetConfig(\n    {args},\n).validate()\nmodel = build_model(cfg)\n")


# ----------------------------------------------------------------------------- presets (timm 1.0.31)
def _rdnet(init: int, growth: list[int], down: tuple[int, ...]) -> RDNetConfig:
    return RDNetConfig(stage_depths=(3,) * len(growth), growth_rates=tuple(growth), downsample=down, ese_from=3,
                       init_features=init)


_D11 = (0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0)
PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset("rdnet-tiny", _rdnet(64, [64, 104] + [128] * 4 + [224], (0, 1, 1, 0, 0, 0, 1)),
               "ImageNet RDNet-T (timm rdnet_tiny; 5.0 G MACs)", 23_863_008, True, "timm", "rdnet"),
        Preset("rdnet-small", _rdnet(72, [64, 128] + [128] * 7 + [240] * 2, _D11),
               "ImageNet RDNet-S (timm rdnet_small; 8.7 G MACs)", 50_436_448, True, "timm", "rdnet"),
        Preset("rdnet-base", _rdnet(120, [96, 128] + [168] * 7 + [336] * 2, _D11),
               "ImageNet RDNet-B (timm rdnet_base; 15.4 G MACs)", 87_451_096, True, "timm", "rdnet"),
        Preset("rdnet-large", _rdnet(144, [128, 192] + [256] * 8 + [360] * 2, (0, 1, 1) + (0,) * 7 + (1, 0)),
               "ImageNet RDNet-L (timm rdnet_large; 34.7 G MACs)", 186_269_632, True, "timm", "rdnet"),
    ]
}
DEFAULT_PRESET = "rdnet-tiny"


def preset_of(cfg: RDNetConfig, ignore_run_settings: bool = False) -> str | None:
    for name, preset in PRESETS.items():
        ref = preset.config.replace(input_size=cfg.input_size) if ignore_run_settings else preset.config
        if ref == cfg:
            return name
    return None
