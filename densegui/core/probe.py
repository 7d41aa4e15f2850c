"""Timing probe: what a DenseNet costs on real hardware.

``run_probe(cfg, settings)`` builds the model on a device and measures either
an inference forward pass (``torch.inference_mode``) or a full training step
(forward + cross-entropy + backward + SGD step). It warms up until the
iteration times settle, then times ``repeats`` iterations, synchronising the
device properly (CUDA events on CUDA, ``torch.mps.synchronize`` on MPS,
``time.perf_counter`` on the CPU), and reports median / p10 / p90, throughput,
peak memory, achieved TFLOP/s from the analytic MACs, the fraction of the
device's datasheet peak where known, and a per-layer-kind breakdown from
``torch.profiler``.

Conventions (repeated in every result's ``*_convention`` fields):

* **FLOPs per iteration** = 2 × MACs × batch (inference) and 3 × that for a
  training step (backward ≈ 2 × forward). MACs are the analytic conv + linear
  multiply-accumulates of :func:`densegui.core.stats.layer_table`. The
  memory-efficient mode's recomputation is *not* counted: achieved TFLOP/s is
  useful model work per second.
* **Peak memory**: CUDA: ``torch.cuda.max_memory_allocated`` during the timed
  iterations (weights, gradients, optimizer state, input and activations; the
  caching allocator's reserve is not counted). CPU (Linux): the increase of
  the process's peak resident set size (VmHWM, reset through
  ``/proc/self/clear_refs``) over the resident size just before the model was
  built — memory the allocator already held and reused is not counted. MPS
  and non-Linux CPUs: ``None`` (not measurable), with the reason.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F

from densegui.core.config import DenseNetConfig
from densegui.core.devices import (
    AUTOCAST_DTYPES,
    PRECISIONS,
    DeviceError,
    check_precision,
    cpu_available_memory,
    device_info,
    peak_tflops,
    proc_kb,
    resolve_device,
)
from densegui.core.errors import ConfigError, DenseguiError
from densegui.core.model import DenseBlock, DenseLayer, Transition, build_model
from densegui.core.stats import layer_table
from densegui.core.units import human_bytes

MODES = ("inference", "training")
MAX_BATCH = 65536
FLOPS_CONVENTION = "2 × analytic conv+linear MACs × batch; ×3 for a training step (backward ≈ 2 × forward)"
KINDS = ("stem", "dense convs", "dense BN/ReLU", "concatenation", "transitions", "head", "optimizer", "other")


class ProbeCancelled(DenseguiError):
    """The run was cancelled by the user."""


class ProbeOutOfMemory(DenseguiError):
    """The device ran out of memory (already cleaned up when raised)."""


class MemoryGuardError(DenseguiError):
    """The CPU run would need more memory than is available."""


Progress = Callable[[float, str], None]
Cancel = Callable[[], bool]


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
    settle_tolerance: float = 0.05  # warm-up ends when two successive 3-iteration medians agree within 5%
    breakdown: bool = True  # profile a few extra iterations for the per-kind breakdown
    breakdown_iters: int = 3
    memory_guard: bool = True  # CPU: refuse runs estimated above available memory

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


# ------------------------------------------------------------------ helpers
def _percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), q in [0, 100]."""
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def effective_config(cfg: DenseNetConfig, settings: ProbeSettings) -> DenseNetConfig:
    changes: dict[str, Any] = {}
    if settings.memory_efficient is not None:
        changes["memory_efficient"] = bool(settings.memory_efficient)
    if settings.input_size is not None:
        changes["input_size"] = settings.input_size
    return cfg.replace(**changes).validate() if changes else cfg.validate()


def flops_per_iteration(cfg: DenseNetConfig, batch: int, mode: str) -> int:
    flops = 2 * layer_table(cfg).macs * batch
    return 3 * flops if mode == "training" else flops


def estimate_memory(cfg: DenseNetConfig, batch: int, mode: str) -> int:
    """Estimated bytes a run needs beyond what the process already holds.

    Weights (fp32), plus in training their gradients and SGD momentum and the
    analytic bytes autograd saves (``LayerTable.activation_bytes``, exact for
    fp32); in inference the largest dense block's live feature maps (its
    concatenation, the features list it is built from, one layer's BN output
    and the next layer's input: 4 × the block output). 25% + 64 MiB margin
    covers workspaces, the allocator and gradients in flight.
    """
    table = layer_table(cfg)
    weights = 4 * table.params
    x = 4 * batch * cfg.in_channels * cfg.input_size ** 2
    if mode == "training":
        acts = table.activation_bytes(batch, efficient=cfg.memory_efficient)
        base = 3 * weights + acts + x
    else:
        sizes = cfg.spatial_sizes()
        block_out = max(c_end * sizes[i] ** 2 for i, (_, c_end) in enumerate(cfg.block_channels()))
        s1 = (cfg.input_size + 1) // 2
        stem = 2 * cfg.num_init_features * s1 * s1 if cfg.stem == "imagenet" else 0  # conv0 + norm0 outputs
        base = weights + x + 4 * batch * max(4 * block_out, stem)
    return int(base * 1.25) + 64 * 2**20


# CPU peak resident memory (Linux): VmHWM reset by writing "5" to clear_refs.
def _read_status_kb(key: str) -> int | None:
    return proc_kb("/proc/self/status", key)


def _malloc_trim() -> None:
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass


def cpu_peak_reset() -> int | None:
    """Reset the process's peak RSS; return the current RSS (baseline), or
    None where the peak cannot be reset (non-Linux, restricted /proc)."""
    gc.collect()
    _malloc_trim()
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        return None
    rss, hwm = _read_status_kb("VmRSS"), _read_status_kb("VmHWM")
    if rss is None or hwm is None or hwm > rss + 16 * 2**20:  # the reset did not take
        return None
    return rss


def cpu_peak_since(baseline: int | None) -> int | None:
    if baseline is None:
        return None
    hwm = _read_status_kb("VmHWM")
    return None if hwm is None else max(0, hwm - baseline)


CPU_MEMORY_CONVENTION = ("CPU: increase of the process's peak resident set size (VmHWM, reset via "
                         "/proc/self/clear_refs) over its resident size before the model was built; "
                         "includes weights, activations, allocator overhead and, in training, gradients and optimizer state")
CUDA_MEMORY_CONVENTION = ("CUDA: torch.cuda.max_memory_allocated during the timed iterations (weights, input, "
                          "activations and, in training, gradients and optimizer state; the caching allocator's "
                          "reserve not counted)")


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text.lower()
                                              or "Cannot allocate memory" in text)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _empty_cache(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()
    _malloc_trim()


# --------------------------------------------------------- the step callable
class _Step:
    """One iteration (forward, or a full training step) on prepared tensors."""

    def __init__(self, cfg: DenseNetConfig, settings: ProbeSettings, device: torch.device) -> None:
        self.device = device
        self.mode = settings.mode
        fmt = torch.channels_last if settings.channels_last else torch.contiguous_format
        self.model = build_model(cfg, device=device).to(memory_format=fmt)
        b = settings.batch_size
        self.x = torch.randn(b, cfg.in_channels, cfg.input_size, cfg.input_size, device=device)
        self.x = self.x.contiguous(memory_format=fmt)
        self.target = torch.randint(0, cfg.num_classes, (b,), device=device)
        self.dtype = AUTOCAST_DTYPES.get(settings.precision)
        self.opt = None
        self.scaler = None
        if self.mode == "training":
            self.model.train()
            # The paper's optimizer: SGD, Nesterov momentum 0.9, weight decay 1e-4.
            self.opt = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
            if settings.precision == "fp16":
                self.scaler = torch.amp.GradScaler(device.type)
        else:
            self.model.eval()
        self._hooks: list[Any] = []

    def _autocast(self):
        if self.dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.dtype)

    def __call__(self) -> None:
        if self.mode == "inference":
            with torch.inference_mode(), self._autocast():
                self.model(self.x)
            return
        with self._autocast():
            loss = F.cross_entropy(self.model(self.x), self.target)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            loss.backward()
            self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def install_cancel_hooks(self, cancel: Cancel) -> None:
        """Check ``cancel`` before every dense layer / transition forward and
        whenever a dense layer's first conv weight gets its gradient, so a
        cancel lands mid-iteration (a few µs per layer)."""

        def check(*_: Any) -> None:
            if cancel():
                raise ProbeCancelled("probe cancelled.")

        for m in self.model.modules():
            if isinstance(m, (DenseLayer, Transition)):
                self._hooks.append(m.register_forward_pre_hook(check))
                if self.mode == "training":
                    self._hooks.append(m.conv1.weight.register_post_accumulate_grad_hook(check)
                                       if isinstance(m, DenseLayer) else m.conv.weight.register_post_accumulate_grad_hook(check))

    def remove_hooks(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks.clear()

    def release(self) -> None:
        self.remove_hooks()
        self.model = self.x = self.target = self.opt = self.scaler = None  # type: ignore[assignment]


class _Timer:
    """Per-iteration device times.

    CUDA: a start and an end event around every iteration, recorded back to
    back with no host synchronisation inside a block (the host keeps queueing
    as a training loop does), one ``synchronize`` per block; each iteration's
    time is the GPU time between its two events. Elsewhere: synchronise
    (MPS) and ``time.perf_counter`` around each iteration.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.block = 10 if device.type == "cuda" else 1

    def time(self, fn: Callable[[], None], n: int, before: Callable[[], None]) -> list[float]:
        """Seconds each of ``n`` calls takes; ``before()`` runs before each (cancel check)."""
        if self.device.type == "cuda":
            pairs = []
            for _ in range(n):
                before()
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                pairs.append((start, end))
            pairs[-1][1].synchronize()
            return [a.elapsed_time(b) / 1000.0 for a, b in pairs]
        out = []
        for _ in range(n):
            before()
            _sync(self.device)
            t0 = time.perf_counter()
            fn()
            _sync(self.device)
            out.append(time.perf_counter() - t0)
        return out


# ------------------------------------------------------------ the breakdown
def _label_modules(model: torch.nn.Module) -> list[Any]:
    """Wrap every module call in a ``densegui::<kind>`` profiler range."""
    from torch.autograd.profiler import record_function

    hooks: list[Any] = []

    def labelled(module: torch.nn.Module, kind: str) -> None:
        stack: list[Any] = []

        def pre(*_: Any) -> None:
            rf = record_function(f"densegui::{kind}")
            rf.__enter__()
            stack.append(rf)

        def post(*_: Any) -> None:
            if stack:
                stack.pop().__exit__(None, None, None)

        hooks.append(module.register_forward_pre_hook(pre))
        hooks.append(module.register_forward_hook(post, always_call=True))

    f = model.features
    for name, m in f.named_children():
        if name in ("conv0", "norm0", "relu0", "pool0"):
            labelled(m, "stem")
        elif isinstance(m, DenseBlock):
            labelled(m, "concatenation")  # the block's final torch.cat
            for layer in m.values():
                labelled(layer, "concatenation")  # torch.cat of the layer's inputs (and dropout)
                for cname, c in layer.named_children():
                    labelled(c, "dense convs" if cname.startswith("conv") else "dense BN/ReLU")
        elif isinstance(m, Transition):
            labelled(m, "transitions")
        elif name == "norm5":
            labelled(m, "head")
    labelled(model.classifier, "head")
    return hooks


def _is_device_event(evt: Any) -> bool:
    dtype = getattr(evt, "device_type", None)
    return dtype is not None and getattr(dtype, "name", str(dtype)).upper().endswith(("CUDA", "PRIVATEUSEONE", "MPS",
                                                                                     "XPU"))


# Kineto's status lines, and its benign complaint when the profiler runs on a thread other than the
# one that first used it (the GUI's worker threads); the profile is complete either way.
_KINETO_NOISE = (b"USDT:", b"STAGE:", b"ERROR: External init callback must run in same thread as registerClient")


@contextlib.contextmanager
def _quiet_kineto() -> Iterator[None]:
    """Drop Kineto's unconditional ``USDT:``/``STAGE:`` lines from stderr while profiling.

    torch 2.13's profiler writes ``profiler_start``/``profiler_stop`` lines straight to file
    descriptor 2 (no environment variable turns them off). stderr is captured at the
    descriptor level for the duration and every other line is written back afterwards.
    """
    fd = 2  # Kineto writes to the descriptor, whatever sys.stderr is
    try:
        sys.stderr.flush()
        saved = os.dup(fd)
    except (AttributeError, OSError, ValueError):  # no descriptor 2 (a windowed app)
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            kept = [ln for ln in tmp.read().splitlines(keepends=True) if not ln.startswith(_KINETO_NOISE)]
            if kept:
                os.write(fd, b"".join(kept))


def _breakdown(step: _Step, iters: int) -> tuple[dict[str, dict[str, float]], dict[str, int], float]:
    """Per-kind time per iteration from torch.profiler.

    Each profiled op's *self* time (device time on CUDA, CPU time elsewhere)
    goes to the innermost ``densegui::`` range around it; backward ops go to
    the kind of the forward op that created their autograd node (matched by
    sequence number); the optimizer step and anything unmatched (the head's
    functional ReLU/pool, the loss) are their own kinds.
    Returns (kind → {"ms", "fraction"}, kind → number of aten::cat calls,
    wall-clock ms per profiled iteration, profiler overhead included).
    """
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    use_device = step.device.type == "cuda"
    if use_device:
        activities.append(ProfilerActivity.CUDA)
    hooks = _label_modules(step.model)
    try:
        with _quiet_kineto(), profile(activities=activities) as prof:
            _sync(step.device)
            t0 = time.perf_counter()
            for _ in range(iters):
                step()
            _sync(step.device)
            wall_ms = (time.perf_counter() - t0) * 1e3 / iters
    finally:
        for h in hooks:
            h.remove()
    events = prof.events()

    def own(evt: Any) -> float:
        if use_device:
            return float(getattr(evt, "self_device_time_total", 0.0) or 0.0)
        return float(evt.self_cpu_time_total)

    def label_of(evt: Any) -> str | None:
        p = evt
        while p is not None:
            if p.name.startswith("densegui::"):
                return p.name[len("densegui::"):]
            if p.name == "aten::cat":  # also the memory-efficient mode's recomputed concatenations
                return "concatenation"
            if p.name.startswith("Optimizer.") or p.name.startswith("Optimizer#"):
                return "optimizer"
            p = p.cpu_parent
        return None

    seq_kind: dict[int, str] = {}
    for evt in events:
        seq = getattr(evt, "sequence_nr", -1)
        if seq is not None and seq >= 0 and not getattr(evt, "is_async", False):
            kind = label_of(evt)
            if kind is not None and not evt.name.startswith("autograd::"):
                seq_kind.setdefault(seq, kind)

    totals = {k: 0.0 for k in KINDS}
    cats = {k: 0 for k in KINDS}
    for evt in events:
        if _is_device_event(evt):
            continue  # a kernel itself: its time is already its launching op's self device time
        kind = label_of(evt)
        if kind is None:
            p = evt
            while p is not None and kind is None:
                if p.name.startswith("autograd::engine::evaluate_function"):
                    kind = seq_kind.get(getattr(p, "sequence_nr", -1))
                p = p.cpu_parent
        kind = kind or "other"
        if evt.name.startswith("densegui::") or evt.name.startswith("ProfilerStep"):
            # a range's own CPU time is Python hook overhead: count it with the kind on CPU
            if use_device:
                continue
        totals[kind] += own(evt)
        if evt.name == "aten::cat":
            cats[kind] += 1
    total = sum(totals.values()) or 1.0
    out = {k: {"ms": v / 1000.0 / iters, "fraction": v / total} for k, v in totals.items() if v > 0}
    return out, cats, wall_ms


# ------------------------------------------------------------------ the run
def run_probe(cfg: DenseNetConfig, settings: ProbeSettings | None = None, *, cancel: Cancel | None = None,
              progress: Progress | None = None) -> ProbeResult:
    """Measure ``cfg`` with ``settings``; see the module docstring.

    Raises :class:`DeviceError` (absent device, unsupported precision),
    :class:`ConfigError` (bad settings), :class:`MemoryGuardError` (CPU run
    estimated above available memory), :class:`ProbeOutOfMemory` (the device
    ran out; memory already released) or :class:`ProbeCancelled`.
    """
    settings = (settings or ProbeSettings()).validate()
    cfg = effective_config(cfg, settings)
    device = resolve_device(settings.device)
    check_precision(device, settings.precision)
    info = device_info(device)
    b = settings.batch_size
    estimate = estimate_memory(cfg, b, settings.mode)
    if device.type == "cpu" and settings.memory_guard:
        avail = cpu_available_memory()
        if avail is not None and estimate > avail:
            raise MemoryGuardError(
                f"refusing to run: {settings.mode} at batch {b} needs an estimated {human_bytes(estimate)} "
                f"but only {human_bytes(avail)} of memory is available; lower the batch size or input size.")
    user_cancel = cancel
    cancel = cancel or (lambda: False)
    report = progress or (lambda fraction, message: None)

    def check_cancel() -> None:
        if cancel():
            raise ProbeCancelled("probe cancelled.")

    report(0.0, f"building the model on {device}")
    baseline = cpu_peak_reset() if device.type == "cpu" else None
    step: _Step | None = None
    oom_message: str | None = None
    try:
        step = _Step(cfg, settings, device)
        if user_cancel is not None:  # mid-iteration checks only when someone can cancel
            step.install_cancel_hooks(user_cancel)
        timer = _Timer(device)
        # ---- warm-up until the times settle
        warm: list[float] = []
        settled = False
        t_start = time.perf_counter()
        while len(warm) < settings.max_warmup:
            warm += timer.time(step, min(3 if device.type == "cuda" else 1, settings.max_warmup - len(warm)),
                               check_cancel)
            report(min(0.3, 0.3 * len(warm) / max(settings.min_warmup, 6)), f"warming up ({len(warm)})")
            if len(warm) >= max(settings.min_warmup, 6):
                a, c = statistics.median(warm[-6:-3]), statistics.median(warm[-3:])
                if abs(c - a) <= settings.settle_tolerance * c:
                    settled = True
                    break
            if len(warm) >= settings.min_warmup and time.perf_counter() - t_start > settings.max_warmup_s:
                break
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        # ---- timed iterations
        times: list[float] = []
        t_start = time.perf_counter()
        while len(times) < settings.repeats:
            times += timer.time(step, min(timer.block, settings.repeats - len(times)), check_cancel)
            report(0.3 + 0.6 * len(times) / settings.repeats, f"timing ({len(times)}/{settings.repeats})")
            if len(times) >= settings.min_repeats and time.perf_counter() - t_start > settings.max_time_s:
                break
        if device.type == "cuda":
            peak_mem: int | None = int(torch.cuda.max_memory_allocated(device))
            mem_conv = CUDA_MEMORY_CONVENTION
        elif device.type == "cpu":
            peak_mem = cpu_peak_since(baseline)
            mem_conv = CPU_MEMORY_CONVENTION if peak_mem is not None else (
                "not measurable: this system does not let the process reset its peak resident size")
        else:
            peak_mem, mem_conv = None, f"not measurable on {device.type}: its allocator keeps no peak"
        # ---- breakdown
        breakdown, breakdown_wall = None, None
        if settings.breakdown:
            check_cancel()
            report(0.92, "profiling the per-kind breakdown")
            breakdown, _, breakdown_wall = _breakdown(step, settings.breakdown_iters)
        report(1.0, "done")
    except (RuntimeError, torch.OutOfMemoryError) as exc:
        if not _is_oom(exc):
            raise
        oom_message = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else "out of memory"
    finally:
        if step is not None:
            step.release()
        step = None
    if oom_message is not None:  # outside the except block: the traceback no longer pins the tensors
        _empty_cache(device)
        raise ProbeOutOfMemory(f"out of memory on {device} ({info.name}) at batch {b}, {settings.mode}: "
                               f"{oom_message}")
    if device.type == "cuda":
        torch.cuda.empty_cache()

    median_s = statistics.median(times)
    flops = flops_per_iteration(cfg, b, settings.mode)
    achieved = flops / median_s / 1e12
    tf32 = device.type == "cuda" and torch.backends.cudnn.allow_tf32
    peak = peak_tflops(info.name, settings.precision, tf32=tf32) if device.type == "cuda" else None
    return ProbeResult(
        device=str(device), device_name=info.name, mode=settings.mode, batch_size=b, input_size=cfg.input_size,
        precision=settings.precision, channels_last=settings.channels_last, memory_efficient=cfg.memory_efficient,
        median_ms=median_s * 1e3, p10_ms=_percentile(times, 10) * 1e3, p90_ms=_percentile(times, 90) * 1e3,
        mean_ms=statistics.fmean(times) * 1e3, repeats=len(times), warmup_iterations=len(warm),
        warmup_settled=settled, throughput=b / median_s, peak_memory_bytes=peak_mem, peak_memory_convention=mem_conv,
        flops_per_iteration=flops, achieved_tflops=achieved, peak_tflops=peak[0] if peak else None,
        peak_basis=peak[1] if peak else None, fraction_of_peak=achieved / peak[0] if peak else None,
        estimated_memory_bytes=estimate, threads=torch.get_num_threads() if device.type == "cpu" else None,
        times_ms=[t * 1e3 for t in times], breakdown=breakdown, breakdown_iteration_ms=breakdown_wall,
        breakdown_convention=("self time per iteration from torch.profiler ("
                              + ("CUDA kernel time" if device.type == "cuda" else "CPU time")
                              + "; backward ops go to the kind of their forward op; profiled separately)")
        if breakdown else None,
        config=cfg.to_dict(),
    )


def build_step(cfg: DenseNetConfig, settings: ProbeSettings | None = None) -> _Step:
    """The exact callable the probe times (one forward, or one training step),
    for independent measurements (``benchmarks/probe_accuracy.py``). Call
    ``.release()`` when done."""
    settings = (settings or ProbeSettings()).validate()
    cfg = effective_config(cfg, settings)
    device = resolve_device(settings.device)
    check_precision(device, settings.precision)
    return _Step(cfg, settings, device)


# ---------------------------------------------------------------- the sweep
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


def sweep(cfg: DenseNetConfig, settings: ProbeSettings | None = None, *, max_batch: int = 1024,
          budget_bytes: int | None = None, cancel: Cancel | None = None,
          progress: Progress | None = None) -> SweepResult:
    """Throughput and peak memory at batch 1, 2, 4, … up to ``max_batch``,
    stopping at the memory budget (default: the device's total memory on CUDA,
    available memory on the CPU), the memory guard, or the first
    out-of-memory, which is caught, cleaned up and reported as the limit."""
    base = replace((settings or ProbeSettings()), breakdown=False, repeats=min((settings or ProbeSettings()).repeats, 10),
                   max_time_s=min((settings or ProbeSettings()).max_time_s, 3.0), max_warmup_s=2.0).validate()
    if not 1 <= max_batch <= MAX_BATCH:
        raise ConfigError(f"sweep max batch must be from 1 to {MAX_BATCH}, got {max_batch}.")
    device = resolve_device(base.device)
    check_precision(device, base.precision)
    info = device_info(device)
    if budget_bytes is None:
        budget_bytes = info.total_memory if device.type == "cuda" else cpu_available_memory()
    batches = [1 << i for i in range(int(math.log2(max_batch)) + 1)]
    if batches[-1] != max_batch:
        batches.append(max_batch)
    points: list[SweepPoint] = []
    reason, message = "max_batch", f"reached the largest batch asked for ({max_batch})"
    report = progress or (lambda f, m: None)
    for i, b in enumerate(batches):
        report(i / len(batches), f"batch {b}")
        s = replace(base, batch_size=b, device=str(device))
        try:
            r = run_probe(cfg, s, cancel=cancel)
        except MemoryGuardError as exc:
            reason, message = "memory_guard", str(exc)
            break
        except ProbeOutOfMemory as exc:
            reason, message = "out_of_memory", str(exc)
            break
        except ProbeCancelled:
            reason, message = "cancelled", "sweep cancelled"
            break
        points.append(SweepPoint(b, r.median_ms, r.throughput, r.peak_memory_bytes, r.estimated_memory_bytes))
        used = r.peak_memory_bytes if r.peak_memory_bytes is not None else r.estimated_memory_bytes
        if budget_bytes is not None and b < batches[-1] and used * 2 > budget_bytes:
            reason = "budget"
            message = (f"batch {b * 2} would exceed the memory budget of {human_bytes(budget_bytes)} "
                       f"(batch {b} used {human_bytes(used)})")
            break
    report(1.0, "done")
    limit = points[-1].batch_size if points else None
    return SweepResult(str(device), info.name, base.mode, points, limit, reason, message, budget_bytes)
