"""The window's torch jobs, registered by name; they run in background processes (no Qt here).

Each job is ``fn(*args, cancel, progress)`` taking and returning plain data
(dicts, core dataclasses, NumPy arrays), so that the window process can
unpickle every result without importing torch. ``LANES`` says which background
process runs a job: long runs (probe, train) have their own, so a summary
never waits behind them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from densegui.gui.background import ProcessPool

JOBS: dict[str, Callable[..., Any]] = {}

EXPLORE, PROBE, TRAIN = "explore", "probe", "train"  # lanes: one background process each
REUSE = "reuse"  # the data reuse measures and downloads (seconds to minutes): not in front of summaries
TRAIN_PROGRESS_INTERVAL = 0.1  # seconds between two batch updates sent to the window


def job(name: str):
    def register(fn):
        JOBS[name] = fn
        return fn
    return register


@job("warm_up")
def warm_up(*, cancel, progress) -> dict:
    """Pay a fresh process's import costs (torch's above all) before its first job arrives.
    The explore lane runs it as soon as its process starts, while the window is being built. No
    summary is run here: the window's first request arrives during the imports, and a warm-up
    summary would only delay it (a meta summary's first call is slower than later ones).
    The imported objects are then exempted from the cyclic garbage collector, whose first full
    collection would otherwise walk all of torch during that first summary."""
    import gc
    import os

    import torch
    import torchinfo  # noqa: F401

    import densegui.core.analysis.summary  # noqa: F401
    from densegui.core.arch import registry as arch

    for family in arch.families().values():
        family.build  # noqa: B018 - imports the family's model module
    gc.freeze()
    return {"pid": os.getpid(), "torch": torch.__version__}


PRELOAD = {EXPLORE: "warm_up"}  # lane → job its process runs when it starts

_pool: ProcessPool | None = None
_pool_lock = threading.Lock()


def shared_pool() -> ProcessPool:
    """The app's background processes (one per lane), created on first use. Importing this
    module loads no Qt and no torch: the app starts the explore lane before it imports Qt."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ProcessPool(JOBS, PRELOAD)
        return _pool


def close_shared_pool() -> None:
    """Stop every background process (the app calls this once its window is gone)."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.close()


@job("summary")
def summary(config: dict, depth: int, *, cancel, progress):
    """The torchinfo SummaryResult of a configuration of any family; stopped at the next module's forward on cancel."""
    import torch

    from densegui.core.arch.registry import config_from_dict
    from densegui.core.analysis.summary import summarize
    from densegui.gui.background import raise_if_cancelled

    def check(_module, _inputs) -> None:
        raise_if_cancelled(cancel)  # (torchinfo wraps it; the child reports "cancelled" all the same)

    handle = torch.nn.modules.module.register_module_forward_pre_hook(check)
    try:
        return summarize(config_from_dict(config), depth=depth)
    finally:
        handle.remove()


_loaded_cache: dict[tuple, object] = {}  # the last checkpoint this process loaded (weights stay here)


def _load_cached(path: str, candidate: str | None):
    """load_checkpoint, remembered while the file is unchanged: switching measures re-reads nothing."""
    import os

    from densegui.core.weights.checkpoint import load_checkpoint

    try:
        st = os.stat(path)
    except OSError:  # the loader says what is wrong with the path, in its own words
        return load_checkpoint(path, candidate)
    key = (os.path.realpath(path), st.st_mtime_ns, st.st_size, candidate)
    if key not in _loaded_cache:
        _loaded_cache.clear()
        _loaded_cache[key] = load_checkpoint(path, candidate)
    return _loaded_cache[key]


@job("load_reuse")
def load_reuse(path: str, candidate: str | None = None, measure: str = "weights", options: dict | None = None,
               *, cancel, progress) -> tuple:
    """``(LoadedCheckpoint without its weights, ReuseAnalysis)`` of a checkpoint file for ``measure``;
    ``options``: ``data``, ``max_images``, ``noise_seeds``, ``prune`` (core.reuse_run.analyse).
    Progress is a fraction, or ``(fraction, text)`` for the data measures.

    The file is read only by the safe loader, here; the weights stay in this process."""
    import dataclasses
    from pathlib import Path

    from densegui.core.errors import DenseguiError, user_message
    from densegui.core.analysis.reuse_walk import ReuseCancelled
    from densegui.core.analysis.reuse_run import analyse
    from densegui.gui.background import JobCancelled, raise_if_cancelled

    name = Path(path).name
    try:
        loaded = _load_cached(path, candidate)
        raise_if_cancelled(cancel)
        progress(0.1)
        analysis = analyse(loaded, [measure], cancel=cancel, progress=lambda f, text: progress((f, text)),
                           **(options or {}))
    except ReuseCancelled:
        raise JobCancelled("cancelled.") from None
    except (DenseguiError, JobCancelled):
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the file holds, one line
        raise DenseguiError(user_message(exc, f"could not load {name!r}")) from None
    return dataclasses.replace(loaded, state_dict={}), analysis


@job("devices")
def devices(*, cancel, progress) -> list:
    """The devices torch can use here (DeviceInfo records)."""
    from densegui.core.devices import list_devices

    return list_devices()


@job("probe")
def probe(config: dict, settings, *, cancel, progress):
    """One timing-probe measurement (ProbeResult) of any family's config dict; progress is ``(fraction, text)``."""
    from densegui.core.arch.registry import config_from_dict
    from densegui.core.probe.run import run_probe

    return run_probe(config_from_dict(config), settings, cancel=cancel,
                     progress=lambda fraction, text: progress((fraction, text)))


@job("sweep")
def sweep(config: dict, settings, max_batch: int, *, cancel, progress):
    """A batch-size sweep (SweepResult) of any family's config dict; progress is ``(fraction, text)``."""
    from densegui.core.arch.registry import config_from_dict
    from densegui.core.probe.run import sweep as run_sweep

    return run_sweep(config_from_dict(config), settings, max_batch=max_batch, cancel=cancel,
                     progress=lambda fraction, text: progress((fraction, text)))


@job("train")
def train(request, *, cancel, progress):
    """A training run (TrainResult). Progress: ``("log", text)`` or ``("progress", Progress)``,
    batch updates at most every TRAIN_PROGRESS_INTERVAL seconds."""
    from densegui.core.train.setup import run_training

    last = [0.0]

    def on_progress(p) -> None:
        if p.kind == "batch":
            now = time.perf_counter()
            if now - last[0] < TRAIN_PROGRESS_INTERVAL and p.batch != p.batches:
                return
            last[0] = now
        progress(("progress", p))

    return run_training(request, progress=on_progress, cancel=cancel, log=lambda text: progress(("log", text)))


@job("measure")
def measure(configs: list[dict], settings, rounds: int, *, cancel, progress) -> list[dict]:
    """Latency, throughput and peak memory of several configurations, probed round-robin
    (core.design.measure); progress is ``(fraction, text)``."""
    from densegui.core.arch import registry as arch
    from densegui.core.analysis.design import measure as measure_round_robin

    return measure_round_robin([arch.config_from_dict(c) for c in configs], settings, rounds, cancel=cancel,
                               progress=lambda fraction, text: progress((fraction, text)))


@job("download_pretrained")
def download_pretrained(name: str, *, cancel, progress) -> str:
    """The path of torchvision's published ImageNet weights of ``name`` ("densenet121", …) in torch's
    hub cache, downloaded and hash-checked the first time (core.pretrained.pretrained_path); progress
    is ``(fraction, text)``."""
    from densegui.core.weights.pretrained import DownloadCancelled, pretrained_path
    from densegui.core.units import human_bytes
    from densegui.gui.background import JobCancelled

    def on_progress(fraction: float, received: int) -> None:
        progress((fraction, f"downloading {name}: {human_bytes(received)} ({fraction:.0%})"))

    try:
        return str(pretrained_path(name, progress=on_progress, cancel=cancel))
    except DownloadCancelled as exc:
        raise JobCancelled(str(exc)) from None
