"""DenseNet configuration: one frozen, validated, JSON-serialisable object.

Every part of densegui (CLI flags, GUI controls, checkpoints, ``--json``
output) reads and writes the same field names, the ones of
:class:`DenseNetConfig`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from densegui.core.errors import ConfigError, first_line
from densegui.core.published import PUBLISHED, Published

STEMS = ("imagenet", "cifar")

# Allowed ranges (inclusive). The GUI builds its sliders from these too.
LIMITS: dict[str, tuple[float, float]] = {
    "growth_rate": (1, 256),
    "num_blocks": (1, 8),
    "block_depth": (1, 128),
    "bn_size": (1, 16),
    "init_features": (1, 2048),
    "in_channels": (1, 64),
    "num_classes": (1, 100_000),
    "input_size": (1, 2048),
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _show(value: Any) -> str:
    """``repr(value)``, shortened so that an error message stays one short line."""
    try:
        text = repr(value)
    except ValueError:  # an integer too long for str()
        return "a very large integer"
    return text if len(text) <= 60 else text[:57] + "..."


def _check_int(name: str, value: Any, label: str | None = None) -> None:
    lo, hi = LIMITS[label or name]
    if not _is_int(value):
        raise ConfigError(f"{name} must be an integer from {lo} to {hi}, got {_show(value)}.")
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be from {lo} to {hi}, got {_show(value)}.")


def read_config_text(path: str | Path) -> tuple[Path, str]:
    """The path and text of a configuration file, with one-line :class:`ConfigError` messages."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"configuration file {str(p)!r} does not exist.")
    if p.is_dir():
        raise ConfigError(f"configuration file {str(p)!r} is a directory.")
    try:
        return p, p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file {str(p)!r}: {exc.__class__.__name__}.") from None


def parse_config_json(text: str) -> Any:
    """``json.loads`` with one-line :class:`ConfigError` messages."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"configuration is not valid JSON ({exc.msg} at line {exc.lineno}).") from None
    except (ValueError, RecursionError) as exc:  # integers over 4300 digits, absurdly deep nesting
        raise ConfigError(f"configuration is not usable JSON ({exc.__class__.__name__}: {first_line(exc, 80)}).") from None


def unwrap_summary_json(data: Any, fields: set[str] | frozenset[str]) -> Any:
    """``data``, or its "config" object when ``data`` is a whole ``densegui summary/reuse --json``
    output (a "config" object and none of ``fields`` at the top level), so that
    ``summary --json > net.json; summary --config net.json`` works."""
    if isinstance(data, dict) and isinstance(data.get("config"), dict) and not set(data) & fields:
        return data["config"]
    return data


def config_from_file_with(from_json, path: str | Path):
    """``from_json`` applied to the file at ``path``; errors name the file (one line)."""
    p, text = read_config_text(path)
    try:
        return from_json(text)
    except ConfigError as exc:
        raise ConfigError(f"{p.name}: {exc}") from None


def _spatial_sizes(input_size: int, stem: str, num_blocks: int) -> list[int]:
    size = input_size
    if stem == "imagenet":
        size = (size - 1) // 2 + 1  # 7×7 conv, stride 2, padding 3
        size = (size - 1) // 2 + 1  # 3×3 max pool, stride 2, padding 1
    sizes = [size]
    for _ in range(num_blocks - 1):
        size //= 2  # 2×2 average pool, stride 2
        sizes.append(size)
    return sizes


@dataclass(frozen=True)
class DenseNetConfig:
    """Hyperparameters of a DenseNet.

    ``init_features=None`` means "2·k", the paper's choice for the ImageNet
    nets and DenseNet-BC; the basic CIFAR nets set 16 explicitly.
    """

    family: ClassVar[str] = "densenet"  # see densegui.core.arch (not a field: to_dict() is unchanged)

    growth_rate: int = 32
    block_depths: tuple[int, ...] = (6, 12, 24, 16)
    compression: float = 0.5
    bottleneck: bool = True
    bn_size: int = 4
    init_features: int | None = None
    stem: str = "imagenet"
    in_channels: int = 3
    num_classes: int = 1000
    drop_rate: float = 0.0
    input_size: int = 224
    memory_efficient: bool = False

    def __post_init__(self) -> None:
        # Accept lists (from JSON) but store an immutable tuple.
        if isinstance(self.block_depths, list):
            object.__setattr__(self, "block_depths", tuple(self.block_depths))
        # Accept ints for the float fields (JSON "1" for θ = 1).
        for name in ("compression", "drop_rate"):
            value = getattr(self, name)
            if _is_int(value):
                try:
                    object.__setattr__(self, name, float(value))
                except OverflowError:  # a huge JSON integer: left as is, validate() rejects it
                    pass

    # ------------------------------------------------------------------ derived
    @property
    def num_init_features(self) -> int:
        """Channels out of the stem: ``init_features`` or 2·k."""
        return self.init_features if self.init_features is not None else 2 * self.growth_rate

    @property
    def num_blocks(self) -> int:
        return len(self.block_depths)

    def transition_out(self, channels: int) -> int:
        """Channels after a transition that receives ``channels``: ⌊θ·m⌋.

        A tiny epsilon keeps ⌊0.5·m⌋-style products exact despite binary
        floating point (θ = 0.1, m = 30 must give 3, not 2).
        """
        return int(math.floor(self.compression * channels + 1e-9))

    def block_channels(self) -> list[tuple[int, int]]:
        """(input channels, output channels) of every dense block."""
        out: list[tuple[int, int]] = []
        channels = self.num_init_features
        for i, depth in enumerate(self.block_depths):
            end = channels + depth * self.growth_rate
            out.append((channels, end))
            channels = self.transition_out(end) if i < self.num_blocks - 1 else end
        return out

    @property
    def final_channels(self) -> int:
        """Channels entering the classifier."""
        return self.block_channels()[-1][1]

    def spatial_sizes(self) -> list[int]:
        """Spatial side of the feature maps inside each dense block."""
        return _spatial_sizes(self.input_size, self.stem, self.num_blocks)

    def min_input_size(self) -> int:
        """Smallest input side that leaves at least 1×1 in the last block."""
        n = 1
        while _spatial_sizes(n, self.stem, self.num_blocks)[-1] < 1:
            n += 1
        return n

    # --------------------------------------------------------------- validation
    def validate(self) -> DenseNetConfig:
        """Raise :class:`ConfigError` (one sentence, naming the field) if this
        configuration cannot be built or run; return ``self`` otherwise."""
        _check_int("growth_rate", self.growth_rate)
        if not isinstance(self.block_depths, tuple) or not self.block_depths:
            lo, hi = LIMITS["num_blocks"]
            raise ConfigError(f"block_depths must list {lo} to {hi} block depths, got {_show(self.block_depths)}.")
        lo, hi = LIMITS["num_blocks"]
        if not lo <= len(self.block_depths) <= hi:
            raise ConfigError(f"block_depths must list {lo} to {hi} blocks, got {len(self.block_depths)}.")
        for i, depth in enumerate(self.block_depths, 1):
            _check_int(f"block_depths (block {i})", depth, "block_depth")
        if not isinstance(self.compression, float) or not 0.0 < self.compression <= 1.0 or math.isnan(self.compression):
            raise ConfigError(f"compression must be a number in (0, 1], got {_show(self.compression)}.")
        if not isinstance(self.bottleneck, bool):
            raise ConfigError(f"bottleneck must be true or false, got {_show(self.bottleneck)}.")
        _check_int("bn_size", self.bn_size)
        if self.init_features is not None:
            _check_int("init_features", self.init_features)
        if self.stem not in STEMS:
            raise ConfigError(f"stem must be one of {', '.join(STEMS)}, got {_show(self.stem)}.")
        _check_int("in_channels", self.in_channels)
        _check_int("num_classes", self.num_classes)
        if not isinstance(self.drop_rate, float) or not 0.0 <= self.drop_rate < 1.0:
            raise ConfigError(f"drop_rate must be a number in [0, 1), got {_show(self.drop_rate)}.")
        _check_int("input_size", self.input_size)
        if not isinstance(self.memory_efficient, bool):
            raise ConfigError(f"memory_efficient must be true or false, got {_show(self.memory_efficient)}.")
        # Combinations.
        channels = self.num_init_features
        for i, depth in enumerate(self.block_depths[:-1], 1):
            m = channels + depth * self.growth_rate
            channels = self.transition_out(m)
            if channels < 1:
                # 1/m rounded *up* to 3 significant digits, so that the value
                # the message suggests really is enough (⌊0.333·3⌋ would be 0).
                step = 10.0 ** (math.floor(math.log10(1.0 / m)) - 2)
                need = math.ceil(1.0 / m / step - 1e-6) * step
                raise ConfigError(
                    f"compression {self.compression:g} leaves 0 channels after transition {i} "
                    f"({m} channels in); compression must be at least {need:.3g} here."
                )
        if self.spatial_sizes()[-1] < 1:
            raise ConfigError(
                f"input_size {self.input_size} is too small for the {self.stem} stem and "
                f"{self.num_blocks - 1} transitions; input_size must be at least {self.min_input_size()}."
            )
        return self

    # ------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["block_depths"] = list(self.block_depths)
        return d

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Any) -> DenseNetConfig:
        """Build and validate a config from a mapping with the field names.

        Unknown fields are an error (a typo must not silently fall back to
        a default); missing fields take the defaults.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"a configuration must be a JSON object, got {type(data).__name__}.")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown configuration field {_show(unknown[0])}; valid fields: {', '.join(sorted(names))}.")
        values = dict(data)
        if "block_depths" in values:
            depths = values["block_depths"]
            if not isinstance(depths, (list, tuple)):
                raise ConfigError(f"block_depths must be a list of integers, got {_show(depths)}.")
            values["block_depths"] = tuple(depths)
        return cls(**values).validate()

    @classmethod
    def from_json(cls, text: str) -> DenseNetConfig:
        return cls.from_dict(unwrap_summary_json(parse_config_json(text), {"growth_rate"}))

    @classmethod
    def from_file(cls, path: str | Path) -> DenseNetConfig:
        return config_from_file_with(cls.from_json, path)

    def replace(self, **changes: Any) -> DenseNetConfig:
        """A copy with ``changes`` applied (not validated; call ``validate``)."""
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------- describing
    @property
    def variant(self) -> str:
        """The paper's name for this kind of network: DenseNet-BC, -B, -C or basic DenseNet."""
        if self.bottleneck:
            return "DenseNet-BC" if self.compression < 1 else "DenseNet-B"
        return "DenseNet-C" if self.compression < 1 else "basic DenseNet"

    def label(self) -> str:
        """A short name: the preset's (run settings such as input size and memory-efficient
        ignored), otherwise variant, k and blocks."""
        name = preset_of(self, ignore_run_settings=True)
        if name is not None:
            return name
        return f"{self.variant} k={self.growth_rate} blocks {','.join(map(str, self.block_depths))} {self.stem}"

    def describe(self) -> str:
        """One line with every architectural choice."""
        return (f"{self.variant}, k={self.growth_rate}, blocks {','.join(map(str, self.block_depths))}, "
                f"θ={self.compression:g}, {self.stem} stem, {self.in_channels}×{self.input_size}×{self.input_size} "
                f"in, {self.num_classes} classes")

    def python_snippet(self) -> str:
        """Python code that rebuilds this model with densegui."""
        args = ",\n    ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "block_depths")
        return (
            "from densegui.core.config import DenseNetConfig\n"
            "from densegui.core.model import build_model\n\n"
            "cfg = DenseNetConfig(\n"
            f"    block_depths={tuple(self.block_depths)!r},\n    {args},\n).validate()\n"
            "model = build_model(cfg)\n"
        )


@dataclass(frozen=True)
class Preset:
    name: str
    config: Any  # a DenseNetConfig here; densegui.core.arch.PRESETS holds every family's
    description: str
    params: int  # published parameter count: exact for torchvision, else rounded as published
    exact: bool = False
    source: str = field(default="")
    family: str = "densenet"
    # Published results (densegui.core.published); None: looked up by name there.
    published: tuple[Published, ...] | None = None

    def __post_init__(self) -> None:
        if self.published is None:
            object.__setattr__(self, "published", PUBLISHED.get(self.name, ()))


def _imagenet(k: int, blocks: tuple[int, ...]) -> DenseNetConfig:
    return DenseNetConfig(growth_rate=k, block_depths=blocks)


def _cifar(k: int, depth: int, bc: bool) -> DenseNetConfig:
    per_block = (depth - 4) // 6 if bc else (depth - 4) // 3
    return DenseNetConfig(
        growth_rate=k,
        block_depths=(per_block,) * 3,
        compression=0.5 if bc else 1.0,
        bottleneck=bc,
        init_features=None if bc else 16,
        stem="cifar",
        num_classes=10,
        input_size=32,
    )


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset("densenet121", _imagenet(32, (6, 12, 24, 16)), "ImageNet DenseNet-121 (torchvision)", 7_978_856, True, "torchvision"),
        Preset("densenet161", _imagenet(48, (6, 12, 36, 24)), "ImageNet DenseNet-161, k=48 (torchvision)", 28_681_000, True, "torchvision"),
        Preset("densenet169", _imagenet(32, (6, 12, 32, 32)), "ImageNet DenseNet-169 (torchvision)", 14_149_480, True, "torchvision"),
        Preset("densenet201", _imagenet(32, (6, 12, 48, 32)), "ImageNet DenseNet-201 (torchvision)", 20_013_928, True, "torchvision"),
        Preset("densenet264", _imagenet(32, (6, 12, 64, 48)), "ImageNet DenseNet-264 (paper Table 1)", 33_300_000, False, "paper Table 1 (≈33.3M)"),
        Preset("densenet-40-k12", _cifar(12, 40, False), "CIFAR DenseNet L=40, k=12 (paper Table 2)", 1_000_000, False, "paper Table 2 (1.0M)"),
        Preset("densenet-100-k12", _cifar(12, 100, False), "CIFAR DenseNet L=100, k=12 (paper Table 2)", 7_000_000, False, "paper Table 2 (7.0M)"),
        Preset("densenet-100-k24", _cifar(24, 100, False), "CIFAR DenseNet L=100, k=24 (paper Table 2)", 27_200_000, False, "paper Table 2 (27.2M)"),
        Preset("densenet-bc-100-k12", _cifar(12, 100, True), "CIFAR DenseNet-BC L=100, k=12 (paper Table 2)", 800_000, False, "paper Table 2 (0.8M)"),
        Preset("densenet-bc-250-k24", _cifar(24, 250, True), "CIFAR DenseNet-BC L=250, k=24 (paper Table 2)", 15_300_000, False, "paper Table 2 (15.3M)"),
        Preset("densenet-bc-190-k40", _cifar(40, 190, True), "CIFAR DenseNet-BC L=190, k=40 (paper Table 2)", 25_600_000, False, "paper Table 2 (25.6M)"),
    ]
}

DEFAULT_PRESET = "densenet121"


def preset_names() -> list[str]:
    return list(PRESETS)


RUN_SETTINGS = ("input_size", "memory_efficient")  # settings of a run, not of the architecture
_ARCH_FIELDS = tuple(f.name for f in dataclasses.fields(DenseNetConfig) if f.name not in RUN_SETTINGS)


def _arch_key(cfg: DenseNetConfig) -> tuple:
    return tuple(getattr(cfg, name) for name in _ARCH_FIELDS)


# (looked up on every slider change and every sweep point: a dict, not a loop over presets)
_PRESET_BY_CONFIG = {p.config: name for name, p in reversed(PRESETS.items())}
_PRESET_BY_ARCH = {_arch_key(p.config): name for name, p in reversed(PRESETS.items())}


def preset_of(cfg: DenseNetConfig, ignore_run_settings: bool = False) -> str | None:
    """The name of the preset ``cfg`` is, or None. With ``ignore_run_settings``, input size and
    memory-efficient mode (settings of a run, not of the architecture) may differ."""
    if not isinstance(cfg, DenseNetConfig):
        return None
    if ignore_run_settings:
        return _PRESET_BY_ARCH.get(_arch_key(cfg))
    return _PRESET_BY_CONFIG.get(cfg)


def get_preset(name: str) -> DenseNetConfig:
    """The configuration of preset ``name`` (ConfigError listing the valid
    names if there is no such preset)."""
    try:
        return PRESETS[name].config
    except KeyError:
        raise ConfigError(f"unknown preset {_show(name)}; valid presets: {', '.join(PRESETS)}.") from None
