"""ResNet configuration, presets and analytic layer table: the comparison family (torch-free).

:class:`ResNetConfig` follows :class:`~densegui.core.config.DenseNetConfig`'s protocol (frozen,
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

The layer table's conventions are the DenseNet ones (:mod:`densegui.core.stats`): MACs are conv +
linear multiply-accumulates at batch 1; saved-activation bytes are the float32 tensors autograd
keeps for backward in a training step: every conv's input, every BatchNorm's input and its
mean/inv-std vectors, every ReLU's output (in place: the BN output), the max pool's int64
indices and the classifier's pooled input. The residual add and option A's subsample-and-pad
keep nothing. ``tests/core/test_resnet.py`` checks the bytes against autograd's saved tensors.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

from densegui.core.config import (
    LIMITS,
    STEMS,
    Preset,
    config_from_file_with,
    parse_config_json,
    unwrap_summary_json,
)
from densegui.core.errors import ConfigError
from densegui.core.table import F32, I64, LayerRow, LayerTable

BLOCKS = ("basic", "bottleneck")
SHORTCUTS = ("A", "B")
EXPANSION = {"basic": 1, "bottleneck": 4}

# Allowed ranges (inclusive); in_channels, num_classes and input_size share DenseNet's LIMITS.
RESNET_LIMITS: dict[str, tuple[int, int]] = {
    "num_stages": (1, 8),
    "stage_depth": (1, 256),  # He et al.'s 1202-layer CIFAR net has 200 blocks per stage
    "width": (1, 4096),
    "stem_width": (1, 2048),
    "in_channels": LIMITS["in_channels"],
    "num_classes": LIMITS["num_classes"],
    "input_size": LIMITS["input_size"],
}


def _show(value: Any) -> str:
    """``repr(value)``, short enough for a one-line message."""
    try:
        text = repr(value)
    except ValueError:  # an integer too long for str()
        return "a very large integer"
    return text if len(text) <= 60 else text[:57] + "..."


def _check_int(name: str, value: Any, limit: str) -> None:
    lo, hi = RESNET_LIMITS[limit]
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{name} must be an integer from {lo} to {hi}, got {_show(value)}.")
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be from {lo} to {hi}, got {_show(value)}.")


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


# ------------------------------------------------ JSON reading shared by every family (arch uses them)
@dataclass(frozen=True)
class ResNetConfig:
    """Hyperparameters of a ResNet; the defaults are torchvision's resnet50."""

    family: ClassVar[str] = "resnet"

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
            size = (size - 1) // 2 + 1  # 7×7 conv, stride 2, padding 3
            size = (size - 1) // 2 + 1  # 3×3 max pool, stride 2, padding 1
        return size

    def spatial_sizes(self) -> list[int]:
        """Spatial side of each stage's output (stride 2 from the second stage on)."""
        sizes, size = [], self.stem_size()
        for s in range(self.num_stages):
            if s > 0:
                size = (size - 1) // 2 + 1
            sizes.append(size)
        return sizes

    def stage_channels(self) -> list[tuple[int, int]]:
        """(input channels, output channels) of every stage."""
        out, channels = [], self.stem_width
        for w in self.widths:
            out.append((channels, w * self.expansion))
            channels = w * self.expansion
        return out

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

    # ------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        d = {"family": self.family, **dataclasses.asdict(self)}
        d["stage_depths"], d["widths"] = list(self.stage_depths), list(self.widths)
        return d

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Any) -> ResNetConfig:
        """Build and validate a config from a mapping with the field names ("family" may be given
        and must then be "resnet"). Unknown fields are an error; missing fields take the defaults."""
        if not isinstance(data, dict):
            raise ConfigError(f"a configuration must be a JSON object, got {type(data).__name__}.")
        values = dict(data)
        family = values.pop("family", cls.family)
        if family != cls.family:
            raise ConfigError(f"family must be 'resnet' for a ResNet configuration, got {_show(family)}.")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown ResNet configuration field {_show(unknown[0])}; "
                              f"valid fields: family, {', '.join(sorted(names))}.")
        for name in ("stage_depths", "widths"):
            if name in values:
                if not isinstance(values[name], (list, tuple)):
                    raise ConfigError(f"{name} must be a list of integers, got {_show(values[name])}.")
                values[name] = tuple(values[name])
        return cls(**values).validate()

    @classmethod
    def from_json(cls, text: str) -> ResNetConfig:
        return cls.from_dict(unwrap_summary_json(parse_config_json(text), {"stage_depths"}))

    @classmethod
    def from_file(cls, path: str | Path) -> ResNetConfig:
        return config_from_file_with(cls.from_json, path)

    def replace(self, **changes: Any) -> ResNetConfig:
        """A copy with ``changes`` applied (not validated; call ``validate``)."""
        return dataclasses.replace(self, **changes)

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
            "from densegui.core.resnet import ResNetConfig\n"
            "from densegui.core.resnet_model import build_model\n\n"
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
OPTION_B_EXTRA = 2_752

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


# ----------------------------------------------------------------------------- the layer table
def _bn(channels: int) -> int:
    return 2 * channels * F32  # save_mean + save_invstd


def compute_resnet_layer_table(config: ResNetConfig) -> LayerTable:
    """:func:`resnet_layer_table` without the cache."""
    cfg = config.validate()
    rows: list[LayerRow] = []
    s, sw, cin0 = cfg.input_size, cfg.stem_width, cfg.in_channels
    x_bytes = cin0 * s * s * F32  # the input, saved by conv1

    # ---- stem: conv1 keeps x, bn1 its output, relu (in place) the BN output
    if cfg.stem == "imagenet":
        s1, s2 = (s - 1) // 2 + 1, cfg.stem_size()
        params, macs = cin0 * sw * 49 + 2 * sw, sw * s1 * s1 * cin0 * 49
        # + the max pool's int64 indices and its output (kept by the first block's convs)
        saved = x_bytes + 2 * sw * s1 * s1 * F32 + sw * s2 * s2 * (I64 + F32)
        live = 2 * sw * s1 * s1
    else:
        s2 = s
        params, macs = cin0 * sw * 9 + 2 * sw, sw * s * s * cin0 * 9
        saved = x_bytes + 2 * sw * s * s * F32
        live = 2 * sw * s * s
    rows.append(LayerRow("conv1", "stem", None, None, cin0, sw, s2, params, macs, sw * s2 * s2,
                         saved, saved, _bn(sw), _bn(sw)))

    # ---- residual blocks
    size = s2
    for st, ((c_stage, c_out), depth, w, so) in enumerate(
            zip(cfg.stage_channels(), cfg.stage_depths, cfg.widths, cfg.spatial_sizes()), 1):
        for i in range(1, depth + 1):
            si, cin = (size, c_stage) if i == 1 else (so, c_out)
            reshape = cin != c_out or (st > 1 and i == 1)  # torchvision's test: stride ≠ 1 or channels change
            project = reshape and cfg.shortcut == "B"
            if cfg.block == "basic":
                params = 9 * cin * w + 9 * w * w + 4 * w
                macs = so * so * 9 * w * (cin + w)
                # conv1 out, bn1 out (relu1 in place, kept by conv2), conv2 out, bn2 out = the block's output
                # (the add and relu run in place on it; relu keeps it)
                saved_el = 4 * w * so * so
                fixed = 2 * _bn(w)
                mid = w * so * so
            else:
                params = cin * w + 9 * w * w + 4 * w * w + 12 * w
                macs = si * si * w * cin + so * so * (9 * w * w + 4 * w * w)
                # conv1/bn1 outputs at the input side, conv2/bn2 at the output side, conv3/bn3 (the output)
                saved_el = 2 * w * si * si + 2 * w * so * so + 2 * c_out * so * so
                fixed = 2 * _bn(w) + _bn(c_out)
                mid = max(w * si * si, c_out * so * so)
            if project:
                params += cin * c_out + 2 * c_out
                macs += so * so * c_out * cin
                saved_el += c_out * so * so  # the projection conv's output, kept by its BN
                fixed += _bn(c_out)
            saved = saved_el * F32
            live = max(live, cin * si * si + 3 * mid + (c_out * so * so if reshape else 0))
            rows.append(LayerRow(f"layer{st}.{i - 1}", "residual", st, i, cin, c_out, so, params, macs,
                                 c_out * so * so, saved, saved, fixed, fixed, 2 if cfg.block == "basic" else 3))
        size = so

    # ---- head: global average pool (keeps its input, already counted) → fc (keeps the pooled vector)
    c = cfg.final_channels
    rows.append(LayerRow("fc", "head", None, None, c, cfg.num_classes, 1, c * cfg.num_classes + cfg.num_classes,
                         c * cfg.num_classes, cfg.num_classes, c * F32, c * F32, 0, 0))
    return LayerTable(cfg, tuple(rows), live)


_cached = lru_cache(maxsize=64)(compute_resnet_layer_table)


def resnet_layer_table(cfg: ResNetConfig) -> LayerTable:
    """The per-block table of a ResNet config (validated first); cached per configuration."""
    return _cached(cfg)
