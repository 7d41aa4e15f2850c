"""Timing probe: what a network of any family costs on real hardware.

``run_probe(cfg, settings)`` builds the model on a device and measures either
an inference forward pass (``torch.inference_mode``) or a full training step
(forward + cross-entropy + backward + SGD step). It warms up until the
iteration times settle, then times ``repeats`` iterations, synchronising the
device properly (CUDA events on CUDA, ``torch.mps.synchronize`` on MPS,
``time.perf_counter`` on the CPU), and reports median / p10 / p90, throughput,
peak memory, achieved TFLOP/s from the analytic MACs, the fraction of the
device's datasheet peak where known, and a per-layer-kind breakdown with each
family's kinds (:mod:`densegui.core.probe.profiling`). ``sweep`` repeats that over batch sizes.

Settings, results and errors are plain data in :mod:`densegui.core.probe.types`
(importable without torch); the analytic FLOPs and memory estimate of any
family are in :mod:`densegui.core.arch.registry`; peak-memory measurement is in
:mod:`densegui.core.devices`.

Conventions (repeated in every result's ``*_convention`` fields):

* **FLOPs per iteration** = 2 × MACs × batch (inference) and 3 × that for a
  training step (backward ≈ 2 × forward). MACs are the analytic conv + linear
  multiply-accumulates of :func:`densegui.core.arch.registry.layer_table`. The
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

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from densegui.core.arch.registry import Config, build_model, estimate_memory, family_of, flops_per_iteration, plan
from densegui.core.devices import (
    autocast_dtype,
    check_precision,
    cpu_available_memory,
    cpu_peak_reset,
    device_info,
    peak_memory,
    peak_tflops,
    release_memory,
    reset_peak_memory,
    resolve_device,
    synchronize,
)
from densegui.core.errors import ConfigError, first_line, is_out_of_memory
from densegui.core.probe.profiling import breakdown as profile_breakdown
from densegui.core.probe.types import (
    MAX_BATCH,
    MODES,
    Cancel,
    MemoryGuardError,
    ProbeCancelled,
    ProbeOutOfMemory,
    ProbeResult,
    ProbeSettings,
    Progress,
    SweepPoint,
    SweepResult,
    breakdown_convention,
    effective_config,
)
from densegui.core.units import human_bytes

if TYPE_CHECKING:  # pragma: no cover
    from densegui.core.arch.family import Family

# Re-exported for importers that may load torch; torch-free code imports from probe.types, arch.registry, devices.
__all__ = [
    "MAX_BATCH", "MODES", "MemoryGuardError", "ProbeCancelled", "ProbeOutOfMemory", "ProbeResult", "ProbeSettings",
    "SweepPoint", "SweepResult", "build_step", "effective_config", "estimate_memory", "flops_per_iteration",
    "run_probe", "sweep",
]

SETTLE_TOLERANCE = 0.05  # warm-up ends when two successive 3-iteration medians agree within 5%


def _percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), q in [0, 100]."""
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


# --------------------------------------------------------- the step callable
class _Step:
    """One iteration (forward, or a full training step) on prepared tensors."""

    def __init__(self, cfg: Config, settings: ProbeSettings, device: torch.device) -> None:
        self.device = device
        self.mode = settings.mode
        self.config = cfg
        self.family: Family = family_of(cfg)  # its kinds label the breakdown (probe.profiling)
        fmt = torch.channels_last if settings.channels_last else torch.contiguous_format
        self.model = build_model(cfg, device=device).to(memory_format=fmt)
        b = settings.batch_size
        self.x = torch.randn(b, cfg.in_channels, cfg.input_size, cfg.input_size, device=device)
        self.x = self.x.contiguous(memory_format=fmt)
        self.target = torch.randint(0, cfg.num_classes, (b,), device=device)
        self.dtype = autocast_dtype(settings.precision)
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
        """Check ``cancel`` before the forward of every unit of the plan inside a block or stage
        (dense layers, transitions, residual blocks …) and, in training, whenever the unit's first
        conv or linear weight gets its gradient, so a cancel lands mid-iteration (a few µs per unit)."""
        def check(*_: Any) -> None:
            if cancel():
                raise ProbeCancelled("probe cancelled.")

        for unit in plan(self.config).units:
            if unit.block is None:  # the stem and the head
                continue
            self._hooks.append(self.model.get_submodule(unit.path).register_forward_pre_hook(check))
            weight = next((t.key for t in unit.tensors if t.macs), None)
            if self.mode == "training" and weight is not None:
                self._hooks.append(self.model.get_parameter(weight).register_post_accumulate_grad_hook(check))

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
            synchronize(self.device)
            t0 = time.perf_counter()
            fn()
            synchronize(self.device)
            out.append(time.perf_counter() - t0)
        return out



# ------------------------------------------------------------------ the run
def run_probe(cfg: Config, settings: ProbeSettings | None = None, *, cancel: Cancel | None = None,
              progress: Progress | None = None) -> ProbeResult:
    """Measure ``cfg`` with ``settings``; see the module docstring.

    ``cancel`` is checked before the model is built, right after, between
    iterations and inside them (per unit of a block or stage).

    Raises :class:`DeviceError` (absent device, unsupported precision),
    :class:`ConfigError` (bad settings), :class:`MemoryGuardError` (CPU run
    estimated above available memory), :class:`ProbeOutOfMemory` (the device
    ran out; memory already released) or :class:`ProbeCancelled`.
    """
    settings = (settings or ProbeSettings()).validate()
    user_cancel = cancel
    cancel = cancel or (lambda: False)
    report = progress or (lambda fraction, message: None)

    def check_cancel() -> None:
        if cancel():
            raise ProbeCancelled("probe cancelled.")

    check_cancel()
    cfg = effective_config(cfg, settings)
    device = resolve_device(settings.device)
    check_precision(device, settings.precision)
    info = device_info(device)
    b = settings.batch_size
    estimate = estimate_memory(cfg, b, settings.mode)
    if device.type == "cpu":
        avail = cpu_available_memory()
        if avail is not None and estimate > avail:
            raise MemoryGuardError(
                f"refusing to run: {settings.mode} at batch {b} needs an estimated {human_bytes(estimate)} "
                f"but only {human_bytes(avail)} of memory is available; lower the batch size or input size.")

    report(0.0, f"building the model on {device}")
    baseline = cpu_peak_reset() if device.type == "cpu" else None
    step: _Step | None = None
    oom_message: str | None = None
    try:
        step = _Step(cfg, settings, device)
        check_cancel()  # building a deep model takes seconds
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
                if abs(c - a) <= SETTLE_TOLERANCE * c:
                    settled = True
                    break
            if len(warm) >= settings.min_warmup and time.perf_counter() - t_start > settings.max_warmup_s:
                break
        reset_peak_memory(device)
        # ---- timed iterations
        times: list[float] = []
        t_start = time.perf_counter()
        while len(times) < settings.repeats:
            times += timer.time(step, min(timer.block, settings.repeats - len(times)), check_cancel)
            report(0.3 + 0.6 * len(times) / settings.repeats, f"timing ({len(times)}/{settings.repeats})")
            if len(times) >= settings.min_repeats and time.perf_counter() - t_start > settings.max_time_s:
                break
        peak_mem, mem_conv = peak_memory(device, baseline)
        # ---- breakdown
        breakdown, breakdown_wall = None, None
        if settings.breakdown:
            check_cancel()
            report(0.92, "profiling the per-kind breakdown")
            breakdown, _, breakdown_wall = profile_breakdown(step, settings.breakdown_iters)
        report(1.0, "done")
    except (RuntimeError, MemoryError) as exc:
        if not is_out_of_memory(exc):
            raise
        oom_message = first_line(exc) or "out of memory"
    finally:
        if step is not None:
            step.release()
        step = None
    if oom_message is not None:  # outside the except block: the traceback no longer pins the tensors
        release_memory(device)
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
        precision=settings.precision, channels_last=settings.channels_last,
        memory_efficient=getattr(cfg, "memory_efficient", False),
        median_ms=median_s * 1e3, p10_ms=_percentile(times, 10) * 1e3, p90_ms=_percentile(times, 90) * 1e3,
        mean_ms=statistics.fmean(times) * 1e3, repeats=len(times), warmup_iterations=len(warm),
        warmup_settled=settled, throughput=b / median_s, peak_memory_bytes=peak_mem, peak_memory_convention=mem_conv,
        flops_per_iteration=flops, achieved_tflops=achieved, peak_tflops=peak[0] if peak else None,
        peak_basis=peak[1] if peak else None, fraction_of_peak=achieved / peak[0] if peak else None,
        estimated_memory_bytes=estimate, threads=torch.get_num_threads() if device.type == "cpu" else None,
        times_ms=[t * 1e3 for t in times], breakdown=breakdown, breakdown_iteration_ms=breakdown_wall,
        breakdown_convention=breakdown_convention(device.type) if breakdown else None,
        config=cfg.to_dict(),
    )


def build_step(cfg: Config, settings: ProbeSettings | None = None) -> _Step:
    """The exact callable the probe times (one forward, or one training step),
    for independent measurements (``benchmarks/probe_accuracy.py``). Call
    ``.release()`` when done."""
    settings = (settings or ProbeSettings()).validate()
    cfg = effective_config(cfg, settings)
    device = resolve_device(settings.device)
    check_precision(device, settings.precision)
    return _Step(cfg, settings, device)


# ---------------------------------------------------------------- the sweep
def sweep(cfg: Config, settings: ProbeSettings | None = None, *, max_batch: int = 1024,
          budget_bytes: int | None = None, cancel: Cancel | None = None,
          progress: Progress | None = None) -> SweepResult:
    """Throughput and peak memory at batch 1, 2, 4, … up to ``max_batch``,
    stopping at the memory budget (default: the device's total memory on CUDA,
    available memory on the CPU), the memory guard, the first out-of-memory
    (caught, cleaned up and reported as the limit) or ``cancel``."""
    settings = settings or ProbeSettings()
    base = replace(settings, breakdown=False, repeats=min(settings.repeats, 10),
                   max_time_s=min(settings.max_time_s, 3.0), max_warmup_s=2.0).validate()
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
            r = run_probe(cfg, s, cancel=cancel)  # checks cancel before building each batch's model
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
