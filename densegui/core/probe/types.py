"""The timing probe's plain data: settings, results, errors and limits.

Nothing here imports torch: the GUI process builds :class:`ProbeSettings`,
receives :class:`ProbeResult` / :class:`SweepResult` pickled back from the
process that ran :func:`densegui.core.probe.run.run_probe`, and catches the
errors below, all without loading torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from densegui.core.arch.registry import Config
from densegui.core.devices import PRECISIONS, DeviceError
from densegui.core.errors import ConfigError, DenseguiError
from densegui.core.arch.table import FLOPS_CONVENTION

MODES = ("inference", "training")
MAX_BATCH = 65536
# The per-kind breakdown's kinds (keys of ProbeResult.breakdown) per model family, in display order.
KINDS_BY_FAMILY: dict[str, tuple[str, ...]] = {
    "densenet": ("stem", "dense convs", "dense BN/ReLU", "concatenation", "transitions", "head", "optimizer",
                 "other"),
    # "shortcuts": the downsample projection (B) or slice-and-pad (A), and the residual add.
    "resnet": ("stem", "residual convs", "residual BN/ReLU", "shortcuts", "head", "optimizer", "other"),
}
KINDS = KINDS_BY_FAMILY["densenet"]  # kept for existing importers

Progress = Callable[[float, str], None]  # (fraction done, what is happening)
Cancel = Callable[[], bool]  # True: stop as soon as possible


class ProbeCancelled(DenseguiError):
    """The run was cancelled by the user."""


class ProbeOutOfMemory(DenseguiError):
    """The device ran out of memory (already cleaned up when raised)."""


class MemoryGuardError(DenseguiError):
    """The CPU run would need more memory than is available."""


@dataclass(frozen=True)
class ProbeSettings:
    device: str = "auto"
    mode: str = "inference"
    batch_size: int = 1
    precision: str = "fp32"
    channels_last: bool = False
    memory_efficient: bool | None = None  # None: the config's own setting
    input_size: int | None = None  # None: the config's own input_size
    repeats: int = 30  # timed iterations (fewer if max_time_s runs out first, at least min_repeats)
    min_repeats: int = 5
    max_time_s: float = 10.0  # time budget of the timed phase
    min_warmup: int = 3
    max_warmup: int = 50
    max_warmup_s: float = 10.0
    breakdown: bool = True  # profile a few extra iterations for the per-kind breakdown
    breakdown_iters: int = 3

    def validate(self) -> ProbeSettings:
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}.")
        if self.precision not in PRECISIONS:
            raise DeviceError(f"unsupported precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}.")
        b = self.batch_size
        if not isinstance(b, int) or isinstance(b, bool) or not 1 <= b <= MAX_BATCH:
            raise ConfigError(f"batch size must be an integer from 1 to {MAX_BATCH}, got {b!r}.")
        if not 1 <= self.repeats <= 100_000 or not 1 <= self.min_repeats <= self.repeats:
            raise ConfigError(f"repeats must be from 1 to 100000 (min_repeats ≤ repeats), got {self.repeats}.")
        if self.min_warmup < 0 or self.max_warmup < self.min_warmup:
            raise ConfigError("warm-up iterations: need 0 ≤ min_warmup ≤ max_warmup.")
        return self


def effective_config(cfg: Config, settings: ProbeSettings) -> Config:
    """``cfg`` (any family) with the settings' memory-efficient and input-size overrides, validated
    (a ResNet refuses memory-efficient mode: ConfigError)."""
    changes: dict[str, Any] = {}
    if settings.memory_efficient is not None:
        changes["memory_efficient"] = bool(settings.memory_efficient)
    if settings.input_size is not None:
        changes["input_size"] = settings.input_size
    return cfg.replace(**changes).validate() if changes else cfg.validate()


def breakdown_convention(device_type: str) -> str:
    """What ProbeResult.breakdown's numbers are, on a device of ``device_type``."""
    return ("self time per iteration from torch.profiler ("
            + ("CUDA kernel time" if device_type == "cuda" else "CPU time")
            + "; backward ops go to the kind of their forward op; profiled separately)")


@dataclass
class ProbeResult:
    device: str
    device_name: str
    mode: str
    batch_size: int
    input_size: int
    precision: str
    channels_last: bool
    memory_efficient: bool
    median_ms: float
    p10_ms: float
    p90_ms: float
    mean_ms: float
    repeats: int
    warmup_iterations: int
    warmup_settled: bool
    throughput: float  # images per second at the median
    peak_memory_bytes: int | None
    peak_memory_convention: str
    flops_per_iteration: int
    achieved_tflops: float
    peak_tflops: float | None
    peak_basis: str | None
    fraction_of_peak: float | None
    estimated_memory_bytes: int
    threads: int | None
    times_ms: list[float] = field(default_factory=list)
    breakdown: dict[str, dict[str, float]] | None = None  # kind → {"ms": per iteration, "fraction": share}
    breakdown_convention: str | None = None
    breakdown_iteration_ms: float | None = None  # wall time of a profiled iteration (hooks and profiler included)
    config: dict[str, Any] = field(default_factory=dict)
    flops_convention: str = FLOPS_CONVENTION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SweepPoint:
    batch_size: int
    median_ms: float
    throughput: float
    peak_memory_bytes: int | None
    estimated_memory_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SweepResult:
    device: str
    device_name: str
    mode: str
    points: list[SweepPoint]
    limit_batch: int | None  # the largest batch that ran (None if none did)
    stop_reason: str  # "max_batch" | "budget" | "out_of_memory" | "memory_guard" | "cancelled"
    message: str
    budget_bytes: int | None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["points"] = [p.to_dict() for p in self.points]
        return d
