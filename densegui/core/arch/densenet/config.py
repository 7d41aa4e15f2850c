"""DenseNet configuration: one frozen, validated, JSON-serialisable object.

Every part of densegui (CLI flags, GUI controls, checkpoints, ``--json``
output) reads and writes the same field names, the ones of
:class:`DenseNetConfig`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from densegui.core.arch.config_io import SHARED_LIMITS, ConfigIO, check_int, is_int
from densegui.core.arch.densenet import connectivity as conn
from densegui.core.arch.config_io import show as _show
from densegui.core.arch.plan import stride2
from densegui.core.arch.published import Preset
from densegui.core.errors import ConfigError

# imagenet: 7×7/2 conv, BN, ReLU, 3×3/2 max pool; cifar: one 3×3 conv; deep: timm's stem_type="deep"
# (densenet264d, densenetblur121d): 3×3/2 conv to k channels, 3×3 to k, 3×3 to the stem's output,
# each with BN and ReLU, then the 3×3/2 max pool.
STEMS = ("imagenet", "cifar", "deep")

# Allowed ranges (inclusive). The GUI builds its sliders from these too.
LIMITS: dict[str, tuple[float, float]] = {
    "growth_rate": (1, 256),
    "num_blocks": (1, 8),
    "block_depth": (1, 128),
    "bn_size": (1, 16),
    "init_features": (1, 2048),
    **SHARED_LIMITS,
}


def _check_int(name: str, value: Any, label: str | None = None) -> None:
    check_int(name, value, *LIMITS[label or name])


def _spatial_sizes(input_size: int, stem: str, num_blocks: int) -> list[int]:
    size = input_size
    if stem in ("imagenet", "deep"):
        size = stride2(stride2(size, 7, 3))  # 7×7/2 conv (deep: 3×3/2, the same size), then 3×3/2 max pool
    sizes = [size]
    for _ in range(num_blocks - 1):
        size //= 2  # 2×2 average pool, stride 2
        sizes.append(size)
    return sizes


@dataclass(frozen=True)
class DenseNetConfig(ConfigIO):
    """Hyperparameters of a DenseNet.

    ``init_features=None`` means "2·k", the paper's choice for the ImageNet
    nets and DenseNet-BC; the basic CIFAR nets set 16 explicitly.
    """

    family: ClassVar[str] = "densenet"  # not a field: to_dict() has no "family" key
    tuple_fields: ClassVar[tuple[str, ...]] = ("block_depths",)
    json_family: ClassVar[bool] = False
    unwrap_key: ClassVar[str] = "growth_rate"

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
    connectivity: str = "dense"  # which earlier feature maps a dense layer reads (densenet/connectivity.py)
    input_size: int = 224
    memory_efficient: bool = False

    def __post_init__(self) -> None:
        # Accept lists (from JSON) but store an immutable tuple.
        if isinstance(self.block_depths, list):
            object.__setattr__(self, "block_depths", tuple(self.block_depths))
        try:  # one spelling per connectivity ("Window:04" → "window:4"); validate() rejects the rest
            object.__setattr__(self, "connectivity", conn.normal(self.connectivity))
        except ConfigError:
            pass
        # Accept ints for the float fields (JSON "1" for θ = 1).
        for name in ("compression", "drop_rate"):
            value = getattr(self, name)
            if is_int(value):
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

    def layer_sources(self, i: int) -> tuple[int, ...]:
        """The sources layer ``i`` (1-based) of a block concatenates (0: the block input, j: layer j)."""
        return conn.sources(self.connectivity, i)

    def backprop_distance(self) -> int:
        """The most layers a gradient crosses between two feature maps of one block (1 when dense)."""
        return max(conn.longest_path(self.connectivity, d) for d in self.block_depths)

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
        conn.parse(self.connectivity)
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
        base = self.replace(connectivity=conn.DENSE)
        if self.connectivity != conn.DENSE and preset_of(base, ignore_run_settings=True) is not None:
            return f"{preset_of(base, ignore_run_settings=True)} ({self.connectivity})"
        return (f"{self.variant} k={self.growth_rate} blocks {','.join(map(str, self.block_depths))} {self.stem}"
                f"{'' if self.connectivity == conn.DENSE else f' {self.connectivity}'}")

    def brief(self) -> str:
        """The choices besides the depths, in a few characters (``densegui presets``)."""
        return (f"k={self.growth_rate} θ={self.compression:g}{' B' if self.bottleneck else ''}"
                f"{'' if self.connectivity == conn.DENSE else f' {self.connectivity}'}")

    def describe(self) -> str:
        """One line with every architectural choice."""
        return (f"{self.variant}, k={self.growth_rate}, blocks {','.join(map(str, self.block_depths))}, "
                f"θ={self.compression:g}, {self.stem} stem, {self.in_channels}×{self.input_size}×{self.input_size} "
                f"in, {self.num_classes} classes"
                f"{'' if self.connectivity == conn.DENSE else f', {self.connectivity} connectivity'}")

    def python_snippet(self) -> str:
        """Python code that rebuilds this model with densegui."""
        args = ",\n    ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "block_depths")
        return (
            "from densegui.core.arch.densenet.config import DenseNetConfig\n"
            "from densegui.core.arch.densenet.model import build_model\n\n"
            "cfg = DenseNetConfig(\n"
            f"    block_depths={tuple(self.block_depths)!r},\n    {args},\n).validate()\n"
            "model = build_model(cfg)\n"
        )


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
