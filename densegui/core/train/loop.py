"""Training a DenseNet: the paper's recipe, exact resume, progress and cancel hooks.

:func:`train` runs SGD with Nesterov momentum 0.9, weight decay 1e-4 and a
learning rate divided by 10 at 50 % and 75 % of the epochs (Huang et al.,
§4.2), evaluates the held-out split after every epoch and writes a densegui
checkpoint atomically after every epoch (``save_checkpoint``: temporary file
+ rename), so an interrupted run loses at most the epoch in progress.

Exact resume: all randomness of epoch ``e`` (shuffling, augmentation,
dropout) comes from generators seeded with ``(seed, e)`` (and the rank, in a
process group), and the optimizer's momentum buffers travel in the
checkpoint's ``train_state``; a run resumed from its epoch-N checkpoint
therefore ends with bit-identical weights to the uninterrupted run on the
same device, thread count and number of processes.

In a process group (``group``, see :mod:`densegui.core.train.distributed`) the model
is wrapped in DistributedDataParallel, each rank trains on its disjoint share
of every epoch's order with batch = global batch / world size (the ranks'
batch b together is the single-process run's batch b), the held-out
evaluation is split across the ranks and summed, and rank 0 alone reports
progress and writes the checkpoint.

The plain types (options, settings, progress, result, errors, resume plan)
live in :mod:`densegui.core.train.types`, which does not import torch;
:func:`densegui.core.train.setup.run_training` loads the data, adapts the
configuration and calls :func:`train` with ``progress`` (a :class:`Progress`
after every batch and every epoch) and ``cancel`` (polled after building the
model and the optimizer, and before every batch).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from densegui.core.weights.files import save_checkpoint
from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.train.data import Dataset, FileSplit, Split
from densegui.core.train.distributed import Group, per_rank_batch, shard
from densegui.core.errors import ConfigError
from densegui.core.train.types import (
    MILESTONES,
    Progress,
    ResumePlan,
    RunSettings,
    TrainCancelled,
    TrainError,
    TrainOptions,
    TrainResult,
)

_RANK_MIX = 0xD1B54A32D192ED03  # gives each rank its own augmentation and dropout stream
STATS_SAMPLE = 512  # images whose mean and std normalise a dataset read from disk


# -------------------------------------------------------------------- helpers
def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of all randomness of 0-based ``epoch`` (a fixed mix of seed and epoch)."""
    x = (seed * 0x9E3779B97F4A7C15 + (epoch + 1) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    x ^= x >> 31
    x = (x * 0x94D049BB133111EB) & (2**64 - 1)
    x ^= x >> 29
    return x & (2**63 - 1)


def channel_stats(split: Split, scale: float) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the training images (pixel/scale), for normalisation."""
    x = split.images.to(torch.float64) / scale
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return [float(v) for v in mean], [float(v) for v in std]


def to_input(images: torch.Tensor, scale: float, mean: list[float], std: list[float],
             device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 images → normalised float32 network input on ``device``."""
    x = images.to(device).float() / scale
    m = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def augment_batch(x: torch.Tensor, kind: str, shift: int, g: torch.Generator) -> torch.Tensor:
    """Random translations by up to ``shift`` pixels (zero fill) and, for "crop-flip", horizontal flips.

    ``x`` is [B, C, H, W] in [0, 1] (before normalisation); the randomness comes from ``g`` (CPU)."""
    b, c, h, w = x.shape
    if shift > 0:
        dy = torch.randint(0, 2 * shift + 1, (b,), generator=g).to(x.device)
        dx = torch.randint(0, 2 * shift + 1, (b,), generator=g).to(x.device)
        padded = F.pad(x, (shift, shift, shift, shift))
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        x = padded[torch.arange(b, device=x.device)[:, None, None, None],
                   torch.arange(c, device=x.device)[None, :, None, None], rows, cols]
    if kind == "crop-flip":
        flip = (torch.rand(b, generator=g) < 0.5).to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


class _Batches:
    """A DataLoader's batch sampler whose batches change every epoch while its workers stay up."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, int]]] = []

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def _loader(split: FileSplit, sampler: _Batches, workers: int, pin: bool) -> Any:
    from torch.utils.data import DataLoader

    return DataLoader(split, batch_sampler=sampler, num_workers=workers, pin_memory=pin,
                      persistent_workers=workers > 0)


def _from_workers(batches: Iterator[Any]) -> Iterator[Any]:
    """The loader's batches; a reader's DataError from a worker process comes back as one line."""
    from densegui.core.train.data import DataError

    while True:
        try:
            item = next(batches)
        except StopIteration:
            return
        except DataError as exc:  # re-raised by the DataLoader with the worker's traceback in its text
            _stop_workers(batches)
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            raise DataError(lines[-1].split("DataError: ", 1)[-1] if lines else "unreadable image.") from None
        yield item


def _stop_workers(batches: Iterator[Any]) -> None:
    """Stop a failed loader's worker processes now. Left to the garbage collector, the (persistent)
    iterator's shutdown waited 5 s for a worker, at whatever moment the collection came (seen here)."""
    stop = getattr(batches, "_shutdown_workers", None)  # (torch's DataLoader iterator; private, guarded)
    if callable(stop):
        try:
            stop()
        except Exception:  # noqa: BLE001 - best effort: the DataError is what the user must see
            pass


def default_workers(settings: RunSettings, processes_here: int = 1) -> int:
    """DataLoader worker processes per rank: as asked, else up to 8 of the CPUs left to each rank."""
    if settings.workers is not None:
        return settings.workers
    return min(8, max(0, (os.cpu_count() or 1) // max(processes_here, 1) - 1))


def _eval_batches(split: Split | FileSplit, indices: Sequence[int] | None, batch_size: int,
                  workers: int = 0, pin: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    n = len(split) if indices is None else len(indices)
    if isinstance(split, FileSplit):
        idx = list(range(len(split))) if indices is None else [int(i) for i in indices]
        sampler = _Batches()
        sampler.batches = [[(i, 0) for i in idx[k:k + batch_size]] for k in range(0, n, batch_size)]
        yield from _from_workers(iter(_loader(split, sampler, workers, pin)))
        return
    for k in range(0, n, batch_size):
        sel = slice(k, k + batch_size) if indices is None else indices[k:k + batch_size]
        yield split.images[sel], split.labels[sel]


def _autocast(dev: torch.device, precision: str) -> Any:
    from densegui.core.devices import autocast_dtype

    dtype = autocast_dtype(precision)
    return torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None)


@torch.no_grad()
def eval_sums(model: torch.nn.Module, split: Split | FileSplit, scale: float, mean: list[float], std: list[float],
              device: torch.device | str = "cpu", batch_size: int = 512, indices: Sequence[int] | None = None,
              precision: str = "fp32", channels_last: bool = False, workers: int = 0) -> tuple[float, int, int]:
    """(summed cross-entropy, correct, images) of ``model`` on ``split`` (or its ``indices``), in eval mode."""
    dev = torch.device(device)
    was_training = model.training
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    try:
        for images, labels in _eval_batches(split, indices, batch_size, workers, dev.type == "cuda"):
            x = to_input(images, scale, mean, std, dev)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = labels.to(dev)
            with _autocast(dev, precision):
                out = model(x)
            out = out.float()
            total_loss += float(F.cross_entropy(out, y, reduction="sum"))
            correct += int((out.argmax(1) == y).sum())
            count += int(y.shape[0])
    finally:
        model.train(was_training)
    return total_loss, correct, count


def evaluate(model: torch.nn.Module, split: Split | FileSplit, scale: float, mean: list[float], std: list[float],
             device: torch.device | str = "cpu", batch_size: int = 512, **kwargs: Any) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` on ``split``, in eval mode (see :func:`eval_sums`)."""
    loss, correct, n = eval_sums(model, split, scale, mean, std, device, batch_size, **kwargs)
    return loss / max(n, 1), correct / max(n, 1)


def file_stats(split: FileSplit, workers: int = 0) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (pixel/255) of a seeded sample of a disk-read split's centre crops."""
    pick = torch.randperm(len(split), generator=torch.Generator().manual_seed(0))[:STATS_SAMPLE].tolist()
    s1 = s2 = torch.zeros(3, dtype=torch.float64)
    count = 0
    for images, _ in _eval_batches(dataclasses.replace(split, train=False), pick, 64, workers):
        x = images.to(torch.float64) / 255.0
        s1, s2 = s1 + x.sum(dim=(0, 2, 3)), s2 + (x * x).sum(dim=(0, 2, 3))
        count += x.shape[0] * x.shape[2] * x.shape[3]
    mean = s1 / max(count, 1)
    std = (s2 / max(count, 1) - mean * mean).clamp_min(0).sqrt().clamp_min(1e-3)
    return [float(v) for v in mean], [float(v) for v in std]


def read_resume_plan(path: str | Path) -> ResumePlan:
    """The :class:`ResumePlan` of the checkpoint at ``path`` (see :func:`read_train_checkpoint`)."""
    return ResumePlan.from_checkpoint(read_train_checkpoint(path), path)


def _versions() -> dict[str, str]:
    from densegui import __version__

    return {"densegui_version": str(__version__), "torch_version": str(torch.__version__)}


def _machine(device: torch.device) -> str:
    from densegui.core.devices import device_info

    return f"{device_info(device).name}; {platform.system()} {platform.machine()}"


def read_train_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw dict of a densegui checkpoint written by :func:`train`, read by the checkpoint
    module's safe loader (tensors, plain containers and NumPy data only)."""
    from densegui.core.weights.files import FORMAT, CheckpointError, read_torch_file

    p = Path(path)
    if not p.is_file():
        raise TrainError(f"checkpoint {str(p)!r} does not exist." if not p.exists() else f"{str(p)!r} is not a file.")
    try:
        with p.open("rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise TrainError(f"cannot read {str(p)!r}: {exc.strerror or type(exc).__name__}.") from None
    if head != b"PK\x03\x04":  # torch.save's zip format, which densegui train always writes
        raise TrainError(f"{p.name!r} is not a checkpoint written by densegui train "
                         f"({'empty file' if not head else 'not a PyTorch zip checkpoint'}).")
    try:
        obj = read_torch_file(p)  # not mmapped: the run replaces this file while its tensors live
    except CheckpointError as exc:
        raise TrainError(str(exc)) from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise TrainError(f"{p.name!r} is not a densegui checkpoint.")
    return obj


# ---------------------------------------------------------------------- train
def train(
    config: DenseNetConfig,
    data: Dataset,
    options: TrainOptions,
    out: str | Path,
    *,
    device: str | torch.device = "cpu",
    resume: str | Path | ResumePlan | None = None,
    progress: Callable[[Progress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    keep_optimizer_at_end: bool = False,
    settings: RunSettings | None = None,
    group: Group | None = None,
) -> TrainResult:
    """Train ``config`` on ``data`` with ``options``, writing ``out`` after every epoch.

    ``config`` must already match the data (see :func:`adapt_config`). With
    ``resume`` (a checkpoint path or its :class:`ResumePlan`), the weights,
    optimizer state and history come from that checkpoint and training
    continues at the next epoch (``config``, ``options`` and the data must
    then equal the stored ones). When ``cancel()`` turns True the epoch in
    progress is abandoned and :class:`TrainCancelled` is raised; the last
    completed epoch's checkpoint stays on disk. The final epoch's
    checkpoint leaves out the optimizer state (nothing is left to resume)
    unless ``keep_optimizer_at_end``. ``settings``: precision, channels-last,
    compile, DataLoader workers. ``group``: train as one rank of a process
    group on ``group.device`` (``device`` is then unused); every rank calls
    this with the same arguments, and ``progress`` is called on rank 0 only.
    """
    from densegui.core.devices import resolve_device
    from densegui.core.arch.densenet.model import build_model

    settings = (settings or RunSettings()).validate()
    if group is not None:
        dev = group.device
    else:
        dev = device if isinstance(device, torch.device) else resolve_device(str(device))
    world, rank = (group.world_size, group.rank) if group is not None else (1, 0)
    report = progress if rank == 0 else None
    options = options.validate()
    config = config.validate()
    if (config.in_channels, config.num_classes, config.input_size) != (data.channels, data.num_classes, data.size):
        raise ConfigError(f"the configuration ({config.in_channels} channels, {config.num_classes} classes, "
                          f"{config.input_size}px) does not match the dataset {data.describe()}.")
    if len(data.train) == 0 or len(data.test) == 0:
        raise TrainError("the dataset has an empty training or held-out split.")
    bp = per_rank_batch(options.batch_size, world)
    if settings.sync_bn and dev.type != "cuda":
        raise TrainError("--sync-bn needs CUDA GPUs: PyTorch's SyncBatchNorm does not run on the CPU.")
    out = Path(out)
    from densegui.core.weights.files import remove_stale_temporaries

    if rank == 0:
        remove_stale_temporaries(out)  # what a killed run's checkpoint writes left behind
    files = isinstance(data.train, FileSplit)
    workers = default_workers(settings, group.env.local_world_size if group is not None else 1)
    if files:
        mean, std = group.share(lambda: file_stats(data.train, workers)) if group else file_stats(data.train, workers)
        train_images = train_labels = None
    else:
        mean, std = channel_stats(data.train, data.scale)
        # on a GPU the (uint8) training images live there: batches are gathered without copies
        train_images, train_labels = ((data.train.images.to(dev), data.train.labels.to(dev)) if dev.type == "cuda"
                                      else (data.train.images, data.train.labels))
    history: list[dict[str, float]] = []
    start_epoch, elapsed_before = 0, 0.0
    plan: ResumePlan | None = None

    with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
        torch.manual_seed(options.seed)
        model = build_model(config)
        if resume is not None:
            if isinstance(resume, ResumePlan):
                plan = resume
            else:  # rank 0 reads the file; every rank starts from what it read
                plan = group.share(lambda: read_resume_plan(resume)) if group else read_resume_plan(resume)
            plan.verify(config, options, data.spec, len(data.train))
            model.load_state_dict(plan.checkpoint["state_dict"])
            history = [dict(h) for h in plan.history]
            start_epoch, elapsed_before = plan.epoch, plan.seconds
        model.to(dev)
        if settings.channels_last:
            model.to(memory_format=torch.channels_last)
        net = group.wrap(model, settings.sync_bn) if group is not None else model
        raw = net.module if group is not None else net  # what the checkpoint and the evaluation use
        step = torch.compile(net) if settings.compile else net
        if cancel is not None and cancel():
            raise TrainCancelled(f"training cancelled before epoch {start_epoch + 1}.")
        opt = torch.optim.SGD(raw.parameters(), lr=options.lr, momentum=options.momentum,
                              weight_decay=options.weight_decay, nesterov=options.nesterov and options.momentum > 0)
        scaler = torch.amp.GradScaler(dev.type, enabled=settings.precision == "fp16")
        if plan is not None:
            try:
                opt.load_state_dict(plan.optimizer_state)
            except (ValueError, KeyError, RuntimeError) as exc:
                raise TrainError(f"the optimizer state in {plan.name!r} does not fit this model "
                                 f"({type(exc).__name__}).") from None
            if scaler.is_enabled() and plan.checkpoint["train_state"].get("scaler"):
                scaler.load_state_dict(plan.checkpoint["train_state"]["scaler"])
        if cancel is not None and cancel():  # the first SGD imports torch._dynamo (seconds)
            raise TrainCancelled(f"training cancelled before epoch {start_epoch + 1}.")

        n = len(data.train)
        batches = math.ceil(len(shard(range(n), world, rank)) / bp)
        sampler = _Batches()
        loader = _loader(data.train, sampler, workers, dev.type == "cuda") if files else None
        if files:
            data.train.augment = options.augment
        mean_t = torch.tensor(mean, device=dev).view(1, -1, 1, 1)
        std_t = torch.tensor(std, device=dev).view(1, -1, 1, 1)
        eval_idx = torch.arange(rank, len(data.test), world) if group is not None else None
        where = f"{dev} × {world} processes ({group.backend})" if group is not None else str(dev)
        if report:
            report(Progress("start", start_epoch + 1, options.epochs, 0, batches, checkpoint=str(out),
                            message=f"{data.describe()} on {where}"))
        t_run = time.perf_counter()
        val_loss = val_acc = math.nan
        for epoch in range(start_epoch, options.epochs):
            key = epoch_seed(options.seed, epoch)
            g = torch.Generator().manual_seed(key)
            order = torch.randperm(n, generator=g)
            dropout_seed = key ^ 0x5DEECE66D
            if group is not None:  # the shared order's share of this rank; its own augmentation and dropout
                order = shard(order, world, rank)
                own = epoch_seed(options.seed ^ ((_RANK_MIX * (rank + 1)) & (2**63 - 1)), epoch)
                g = torch.Generator().manual_seed(own)
                dropout_seed = own ^ 0x5DEECE66D
            torch.manual_seed(dropout_seed)
            lr = options.lr_at(epoch)
            for group_ in opt.param_groups:
                group_["lr"] = lr
            net.train()
            if loader is not None:
                sampler.batches = [[(int(i), key) for i in order[b * bp:(b + 1) * bp]] for b in range(batches)]
                source = _from_workers(iter(loader))
            t0 = time.perf_counter()
            seen = correct = 0
            loss_sum = 0.0
            for b in range(batches):
                if cancel is not None and cancel():
                    raise TrainCancelled(f"training cancelled during epoch {epoch + 1}; the checkpoint of epoch "
                                         f"{epoch} is kept." if epoch else "training cancelled in epoch 1.")
                if loader is not None:
                    images, labels = next(source)
                else:
                    idx = order[b * bp:(b + 1) * bp]
                    images, labels = train_images[idx], train_labels[idx]
                x = images.to(dev, non_blocking=True).float() / data.scale
                if options.augment and loader is None:
                    x = augment_batch(x, data.augment, data.shift, g)
                x = (x - mean_t) / std_t
                if settings.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                y = labels.to(dev, non_blocking=True)
                with _autocast(dev, settings.precision):
                    logits = step(x)
                loss = F.cross_entropy(logits.float(), y)
                if not torch.isfinite(loss):
                    raise TrainError(f"the loss became {float(loss)} in epoch {epoch + 1}; "
                                     f"lower the learning rate (now {lr:g}).")
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                seen += int(y.shape[0])
                loss_sum += float(loss.detach()) * int(y.shape[0])
                correct += int((logits.argmax(1) == y).sum())
                if report:
                    dt = time.perf_counter() - t0
                    report(Progress("batch", epoch + 1, options.epochs, b + 1, batches, loss_sum / seen,
                                    correct / seen, seen * world / dt if dt > 0 else math.nan, lr))
            train_seconds = time.perf_counter() - t0
            if group is not None:
                loss_sum, correct, seen = group.all_sum([loss_sum, correct, seen])
                group.sync_buffers(raw)  # every rank evaluates rank 0's model, the one in the checkpoint
            sums = eval_sums(raw, data.test, data.scale, mean, std, dev, 2 * bp if files else 512, eval_idx,
                             settings.precision, settings.channels_last, workers)
            val_sum, val_correct, val_n = group.all_sum(sums) if group is not None else sums
            val_loss, val_acc = val_sum / max(val_n, 1), val_correct / max(val_n, 1)
            seconds = time.perf_counter() - t0
            history.append({"epoch": epoch + 1, "lr": lr, "loss": loss_sum / seen, "accuracy": correct / seen,
                            "val_loss": val_loss, "val_accuracy": val_acc, "seconds": seconds,
                            "images_per_s": seen / train_seconds if train_seconds > 0 else 0.0})
            done = epoch + 1
            final = done == options.epochs
            total_seconds = elapsed_before + time.perf_counter() - t_run
            if rank == 0:
                metadata = {
                    **_versions(),
                    "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
                    "dataset": data.to_metadata(),
                    "normalize": {"mean": mean, "std": std, "scale": float(data.scale)},
                    "epochs": options.epochs,
                    "epochs_done": done,
                    "complete": final,
                    "heldout_accuracy": val_acc,
                    "heldout_loss": val_loss,
                    "train_accuracy": correct / seen,
                    "seed": options.seed,
                    "recipe": {**options.to_dict(), "optimizer": "SGD", "lr_drops_at": list(MILESTONES),
                               "augmentation": data.to_metadata()["augment"] if options.augment else "none"},
                    "device": str(dev),
                    "machine": _machine(dev),
                    "world_size": world,
                    "backend": group.backend if group is not None else "none",
                    "per_rank_batch": bp,
                    **{k: v for k, v in settings.to_dict().items() if k not in ("workers", "dist_timeout")},
                    "train_seconds": round(total_seconds, 2),
                    "history": [dict(h) for h in history],
                }
                train_state: dict[str, Any] = {
                    "epoch": done,
                    "options": options.to_dict(),
                    "dataset": data.spec,
                    "num_train": len(data.train),
                    "history": [dict(h) for h in history],
                    "seconds": total_seconds,
                    "world_size": world,
                    "rng": "per-epoch generators seeded from (seed, epoch) and, with several processes, the rank",
                }
                if not final or keep_optimizer_at_end:
                    train_state["optimizer"] = opt.state_dict()
                    if scaler.is_enabled():
                        train_state["scaler"] = scaler.state_dict()

            def write() -> None:
                save_checkpoint(out, raw.state_dict(), config, metadata, train_state)

            # the others wait (bounded by the group's timeout) and fail with rank 0 if its write fails
            group.share(write) if group is not None else write()
            if report:
                report(Progress("epoch", done, options.epochs, batches, batches, loss_sum / seen, correct / seen,
                                history[-1]["images_per_s"], lr, val_loss, val_acc, seconds, str(out)))
    return TrainResult(config, str(out), history, val_acc, elapsed_before + time.perf_counter() - t_run,
                       dataset=data.to_metadata(), options=options, device=str(dev), world_size=world, rank=rank)
