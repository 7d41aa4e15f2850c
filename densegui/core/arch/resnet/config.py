"""ResNet configuration, presets and analytic layer table: the comparison family (torch-free).

:class:`ResNetConfig` follows :class:`~densegui.core.arch.densenet.config.DenseNetConfig`'s protocol (frozen,
validated, JSON with the field names, ``replace``, ``label``/``describe``/``python_snippet``).
Layout: torchvision's ``models/resnet.py`` ("v1.5": a bottleneck's stride is on its 3×3 conv).

* ``block``: "basic" (3×3 → 3×3) or "bottleneck" (1×1 → 3×3 → 1×1, expansion 4); a stage of
  width w outputs w (basic) or 4w (bottleneck) channels.
* ``stem``: "imagenet" (7×7/2 conv + BN + ReLU + 3×3/2 max pool) or "cifar" (3×3 conv + BN + ReLU).
* ``shortcut`` where the shape changes: "B" is torchvision's 1×1 conv + BN projection; "A" is
  He et al.'s CIFAR option A, a parameter-free identity that subsamples with stride 2 and pads
  the extra channels with zeros (so it cannot reduce channels).

Every stage after the first halves the spatial size. ResNets have no memory-efficient mode:
``memory_efficient`` exists for the shared protocol and must be false.

The layer table's conventions are the DenseNet ones (:mod:`densegui.core.arch.densenet.table`): MACs are conv +
linear multiply-accumulates at batch 1; saved-activation bytes are the float32 tensors autograd
keeps for backward in a training step: every conv's input, every BatchNorm's input and its
mean/inv-std vectors, every ReLU's output (in place: the BN output), the max pool's int64
indices and the classifier's pooled input. The residual add and option A's subsample-and-pad
keep nothing. ``tests/core/arch/test_resnet.py`` checks the bytes against autograd's saved tensors.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from densegui.core.arch import config_io
from densegui.core.arch.config_io import SHARED_LIMITS, ConfigIO
from densegui.core.arch.config_io import show as _show
from densegui.core.arch.published import Preset
from densegui.core.arch.plan import stride2
from densegui.core.errors import ConfigError

BLOCKS = ("basic", "bottleneck")
SHORTCUTS = ("A", "B")
EXPANSION = {"basic": 1, "bottleneck": 4}

STEMS = ("imagenet", "cifar")
# Allowed ranges (inclusive); in_channels, num_classes and input_size are every family's.
RESNET_LIMITS: dict[str, tuple[int, int]] = {
    "num_stages": (1, 8),
    "stage_depth": (1, 256),  # He et al.'s 1202-layer CIFAR net has 200 blocks per stage
    "width": (1, 4096),
    "stem_width": (1, 2048),
    **SHARED_LIMITS,
}


def _check_int(name: str, value: Any, limit: str) -> None:
    config_io.check_int(name, value, *RESNET_LIMITS[limit])


def _check_list(name: str, value: Any, count: int | None, item: str, limit: str) -> None:
    lo, hi = RESNET_LIMITS["num_stages"]
    if not isinstance(value, tuple) or not value:
        raise ConfigError(f"{name} must list {lo} to {hi} integers, one per stage, got {_show(value)}.")
    if count is None and not lo <= len(value) <= hi:
        raise ConfigError(f"{name} must list {lo} to {hi} stages, got {len(value)}.")
    if count is not None and len(value) != count:
        raise ConfigError(f"{name} must list one {item} per stage ({count} stages), got {len(value)}.")
    for i, v in enumerate(value, 1):
        _check_int(f"{name} (stage {i})", v, limit)


@dataclass(frozen=True)
class ResNetConfig(ConfigIO):
    """Hyperparameters of a ResNet; the defaults are torchvision's resnet50."""

    family: ClassVar[str] = "resnet"
    title: ClassVar[str] = "ResNet"
    tuple_fields: ClassVar[tuple[str, ...]] = ("stage_depths", "widths")
    unwrap_key: ClassVar[str] = "stage_depths"

    stage_depths: tuple[int, ...] = (3, 4, 6, 3)  # residual blocks per stage
    widths: tuple[int, ...] = (64, 128, 256, 512)  # base width per stage (× 4 out of a bottleneck)
    block: str = "bottleneck"
    stem: str = "imagenet"
    stem_width: int = 64
    shortcut: str = "B"
    in_channels: int = 3
    num_classes: int = 1000
    input_size: int = 224
    memory_efficient: bool = False  # always false: ResNets have no memory-efficient mode

    def __post_init__(self) -> None:
        for name in ("stage_depths", "widths"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))

    # ------------------------------------------------------------------ derived
    @property
    def num_stages(self) -> int:
        return len(self.stage_depths)

    @property
    def expansion(self) -> int:
        return EXPANSION[self.block]

    @property
    def depth(self) -> int:
        """Weighted layers on the main path, the L of "ResNet-L" (projections not counted)."""
        return 2 + sum(self.stage_depths) * (2 if self.block == "basic" else 3)

    def stem_size(self) -> int:
        """Spatial side out of the stem."""
        size = self.input_size
        if self.stem == "imagenet":
            size = stride2(stride2(size, 7, 3))  # 7×7/2 conv, then 3×3/2 max pool
        return size

    def spatial_sizes(self) -> list[int]:
        """Spatial side of each stage's output (stride 2 from the second stage on)."""
        sizes, size = [], self.stem_size()
        for s in range(self.num_stages):
            if s > 0:
                size = stride2(size)
            sizes.append(size)
        return sizes

    def stage_channels(self) -> list[tuple[int, int]]:
        """(input channels, output channels) of every stage."""
        out, channels = [], self.stem_width
        for w in self.widths:
            out.append((channels, w * self.expansion))
            channels = w * self.expansion
        return out

    def reshapes(self, stage: int, index: int) -> bool:
        """Whether residual block ``index`` of ``stage`` (both 1-based) changes its input's shape, so
        that its shortcut projects (B) or subsamples and pads (A): torchvision's stride ≠ 1 or
        channels ≠ out."""
        c_in, c_out = self.stage_channels()[stage - 1]
        return index == 1 and (stage > 1 or c_in != c_out)

    @property
    def final_channels(self) -> int:
        return self.widths[-1] * self.expansion

    # --------------------------------------------------------------- validation
    def validate(self) -> ResNetConfig:
        """Raise :class:`ConfigError` (one sentence, naming the field) if this configuration cannot
        be built or run; return ``self`` otherwise."""
        _check_list("stage_depths", self.stage_depths, None, "depth", "stage_depth")
        _check_list("widths", self.widths, len(self.stage_depths), "width", "width")
        if self.block not in BLOCKS:
            raise ConfigError(f"block must be one of {', '.join(BLOCKS)}, got {_show(self.block)}.")
        if self.stem not in STEMS:
            raise ConfigError(f"stem must be one of {', '.join(STEMS)}, got {_show(self.stem)}.")
        _check_int("stem_width", self.stem_width, "stem_width")
        if self.shortcut not in SHORTCUTS:
            raise ConfigError(f"shortcut must be A (zero-padded identity) or B (1×1 conv projection), "
                              f"got {_show(self.shortcut)}.")
        for name in ("in_channels", "num_classes", "input_size"):
            _check_int(name, getattr(self, name), name)
        if self.memory_efficient is not False:
            raise ConfigError(f"memory_efficient must be false for a ResNet (the memory-efficient mode recomputes "
                              f"DenseNet concatenations; ResNets have none), got {_show(self.memory_efficient)}.")
        if self.shortcut == "A":
            for s, (c_in, c_out) in enumerate(self.stage_channels(), 1):
                if c_out < c_in:
                    raise ConfigError(f"shortcut A cannot reduce channels, but stage {s} maps {c_in} to {c_out}; "
                                      f"use shortcut B or widen stage {s}.")
        return self

    # ------------------------------------------------------------- describing
    @property
    def variant(self) -> str:
        return f"ResNet ({self.block})"

    def label(self) -> str:
        """The preset's name (input size ignored), otherwise depth, block kind and stages."""
        name = preset_of(self, ignore_run_settings=True)
        if name is not None:
            return name
        return f"ResNet-{self.depth} {self.block} stages {','.join(map(str, self.stage_depths))} {self.stem}"

    def brief(self) -> str:
        """The choices besides the depths, in a few characters (``densegui presets``)."""
        return f"{self.block} w={self.widths[0]}.. sc={self.shortcut}"

    def describe(self) -> str:
        """One line with every architectural choice."""
        shortcut = "B (1×1 conv projection)" if self.shortcut == "B" else "A (zero-padded identity)"
        return (f"ResNet-{self.depth}, {self.block} blocks, stages {','.join(map(str, self.stage_depths))}, "
                f"widths {','.join(map(str, self.widths))}, {self.stem} stem ({self.stem_width}), shortcut {shortcut}, "
                f"{self.in_channels}×{self.input_size}×{self.input_size} in, {self.num_classes} classes")

    def python_snippet(self) -> str:
        """Python code that rebuilds this model with densegui."""
        args = ",\n    ".join(f"{k}={v!r}" for k, v in dataclasses.asdict(self).items()
                               if k not in ("stage_depths", "widths", "memory_efficient"))
        return (
            "from densegui.core.arch.resnet.config import ResNetConfig\n"
            "from densegui.core.arch.resnet.model import build_model\n\n"
            "cfg = ResNetConfig(\n"
            f"    stage_depths={tuple(self.stage_depths)!r},\n    widths={tuple(self.widths)!r},\n    {args},\n"
            ").validate()\n"
            "model = build_model(cfg)\n"
        )


# ----------------------------------------------------------------------------- presets
def _imagenet(depths: tuple[int, ...], block: str) -> ResNetConfig:
    return ResNetConfig(stage_depths=depths, block=block)


def _cifar(depth: int) -> ResNetConfig:
    n = (depth - 2) // 6  # 6n + 2 layers: three stages of n basic blocks
    return ResNetConfig(stage_depths=(n, n, n), widths=(16, 32, 64), block="basic", stem="cifar", stem_width=16,
                        shortcut="A", num_classes=10, input_size=32)


# Option B's two 1×1 conv + BN projections (16→32, 32→64) add 512 + 64 + 2048 + 128 parameters.
OPTION_B_EXTRA = sum(a * b + 2 * b for a, b in zip((16, 32, 64), (32, 64)))  # 1×1 conv + BN per widening

_CIFAR_NOTE = f"option A shortcuts; option B would add {OPTION_B_EXTRA:,} params"

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset("resnet18", _imagenet((2, 2, 2, 2), "basic"), "ImageNet ResNet-18 (torchvision)", 11_689_512, True,
               "torchvision", "resnet"),
        Preset("resnet34", _imagenet((3, 4, 6, 3), "basic"), "ImageNet ResNet-34 (torchvision)", 21_797_672, True,
               "torchvision", "resnet"),
        Preset("resnet50", _imagenet((3, 4, 6, 3), "bottleneck"), "ImageNet ResNet-50 (torchvision)", 25_557_032, True,
               "torchvision", "resnet"),
        Preset("resnet101", _imagenet((3, 4, 23, 3), "bottleneck"), "ImageNet ResNet-101 (torchvision)", 44_549_160,
               True, "torchvision", "resnet"),
        Preset("resnet152", _imagenet((3, 8, 36, 3), "bottleneck"), "ImageNet ResNet-152 (torchvision)", 60_192_808,
               True, "torchvision", "resnet"),
        Preset("resnet20", _cifar(20), f"CIFAR ResNet-20 (He et al. Table 6; {_CIFAR_NOTE})", 270_000, False,
               "He et al. 2016 Table 6 (0.27M)", "resnet"),
        Preset("resnet32", _cifar(32), f"CIFAR ResNet-32 (He et al. Table 6; {_CIFAR_NOTE})", 460_000, False,
               "He et al. 2016 Table 6 (0.46M)", "resnet"),
        Preset("resnet44", _cifar(44), f"CIFAR ResNet-44 (He et al. Table 6; {_CIFAR_NOTE})", 660_000, False,
               "He et al. 2016 Table 6 (0.66M)", "resnet"),
        Preset("resnet56", _cifar(56), f"CIFAR ResNet-56 (He et al. Table 6; {_CIFAR_NOTE})", 850_000, False,
               "He et al. 2016 Table 6 (0.85M)", "resnet"),
        Preset("resnet110", _cifar(110), f"CIFAR ResNet-110 (He et al. Table 6; {_CIFAR_NOTE})", 1_700_000, False,
               "He et al. 2016 Table 6 (1.7M)", "resnet"),
    ]
}


def preset_of(cfg: ResNetConfig, ignore_run_settings: bool = False) -> str | None:
    """The name of the ResNet preset ``cfg`` is, or None; with ``ignore_run_settings`` the input
    size may differ."""
    for name, preset in PRESETS.items():
        ref = preset.config.replace(input_size=cfg.input_size) if ignore_run_settings else preset.config
        if ref == cfg:
            return name
    return None
