"""Where a probe iteration's time goes: a per-kind breakdown from torch.profiler.

Every module call of the model is wrapped in a ``densegui::<kind>`` profiler range, the kind given
by its family's ``profile`` rules on the module's path (:meth:`Family.profile_kind`; the kinds in
display order: :func:`densegui.core.probe.types.kinds_of`); each profiled op's self time goes to
the innermost range around it, backward ops to the kind of their forward op. :func:`breakdown`
profiles a few iterations of a probe step.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

import torch

from densegui.core.devices import synchronize
from densegui.core.probe.types import kinds_of

if TYPE_CHECKING:  # pragma: no cover
    from densegui.core.arch.family import Family


class Step(Protocol):
    """What :func:`breakdown` profiles: one iteration per call of a model (of ``family``; None: of
    no registered family) on a device."""

    model: torch.nn.Module
    family: Family | None
    device: torch.device

    def __call__(self) -> None: ...


def module_kinds(model: torch.nn.Module, family: Family | None) -> dict[str, str]:
    """Path → kind of every module of ``model`` that a ``profile`` rule of ``family`` matches; the
    others run inside their parent's range. Empty for a model of no family."""
    if family is None:
        return {}
    return {path: kind for path, _ in model.named_modules() if (kind := family.profile_kind(path)) is not None}


def label_modules(model: torch.nn.Module, family: Family | None) -> list[Any]:
    """Wrap every call of a module of :func:`module_kinds` in a ``densegui::<kind>`` profiler range.
    Returns the hooks to remove."""
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

    for path, kind in module_kinds(model, family).items():
        labelled(model.get_submodule(path), kind)
    return hooks


def is_device_event(evt: Any) -> bool:
    dtype = getattr(evt, "device_type", None)
    return dtype is not None and getattr(dtype, "name", str(dtype)).upper().endswith(("CUDA", "PRIVATEUSEONE", "MPS",
                                                                                     "XPU"))


# Kineto's status lines, and its benign complaint when the profiler runs on a thread other than the
# one that first used it (the GUI's worker threads); the profile is complete either way.
_KINETO_NOISE = (b"USDT:", b"STAGE:", b"ERROR: External init callback must run in same thread as registerClient")


@contextlib.contextmanager
def quiet_kineto() -> Iterator[None]:
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


def breakdown(step: Step, iters: int) -> tuple[dict[str, dict[str, float]], dict[str, int], float]:
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
    kinds = kinds_of(step.family)
    hooks = label_modules(step.model, step.family)
    try:
        with quiet_kineto(), profile(activities=activities) as prof:
            synchronize(step.device)
            t0 = time.perf_counter()
            for _ in range(iters):
                step()
            synchronize(step.device)
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
            if p.name == "aten::cat" and "concatenation" in kinds:  # also the recomputed concatenations
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

    totals = {k: 0.0 for k in kinds}
    cats = {k: 0 for k in kinds}
    for evt in events:
        if is_device_event(evt):
            continue  # a kernel itself: its time is already its launching op's self device time
        if use_device and evt.name.startswith("densegui::"):
            continue  # a range's own CPU time is Python hook overhead (counted with its kind on the CPU)
        kind = label_of(evt)
        if kind is None:
            p = evt
            while p is not None and kind is None:
                if p.name.startswith("autograd::engine::evaluate_function"):
                    kind = seq_kind.get(getattr(p, "sequence_nr", -1))
                p = p.cpu_parent
        kind = kind or "other"
        totals[kind] += own(evt)
        if evt.name == "aten::cat":
            cats[kind] += 1
    total = sum(totals.values()) or 1.0
    out = {k: {"ms": v / 1000.0 / iters, "fraction": v / total} for k, v in totals.items() if v > 0}
    return out, cats, wall_ms
