"""The timing probe's plain data: settings, results, errors and limits.

Nothing here imports torch: the GUI process builds :class:`ProbeSettings`,
receives :class:`ProbeResult` / :class:`SweepResult` pickled back from the
process that ran :func:`densegui.core.probe.run.run_probe`, and catches the
errors below, all without loading torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from densegui.core.arch.table import FLOPS_CONVENTION
from densegui.core.devices import PRECISIONS, DeviceError
from densegui.core.errors import ConfigError, DenseguiError

if TYPE_CHECKING:  # pragma: no cover
    from densegui.core.arch.family import Family
    from densegui.core.arch.registry import Config

MODES = ("inference", "training")
MAX_BATCH = 65536
# Kinds of the breakdown beyond a family's own: the optimizer step, and what no module range holds.
EXTRA_KINDS = ("optimizer", "other")


def kinds_of(family: Family | None) -> tuple[str, ...]:
    """The per-kind breakdown's kinds (keys of ProbeResult.breakdown) for a model of ``family``, in
    display order: the family's ``kinds``, then :data:`EXTRA_KINDS` (None: a model of no registered
    family, whose module time is all "other")."""
    return (*(family.kinds if family is not None else ()), *EXTRA_KINDS)


def kinds_by_family(families: Iterable[Family]) -> dict[str, tuple[str, ...]]:
    """:func:`kinds_of` of each family by name (pass ``registry.families().values()``)."""
    return {f.name: kinds_of(f) for f in families}

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
    (a family without the mode refuses it: ConfigError)."""
    changes: dict[str, Any] = {}
    if settings.memory_efficient is not None:
        if hasattr(cfg, "memory_efficient"):  # (a ResNet's must be false: its validate says so)
            changes["memory_efficient"] = bool(settings.memory_efficient)
        elif settings.memory_efficient:
            raise ConfigError(f"a {cfg.family} configuration has no memory-efficient mode.")
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
