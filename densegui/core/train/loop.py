"""Training a DenseNet: the paper's recipe, exact resume, progress and cancel hooks.

:func:`train` runs SGD with Nesterov momentum 0.9, weight decay 1e-4 and a learning rate
÷10 at 50 % and 75 % of the steps (Huang et al., §4.2; set per step by :meth:`TrainOptions.lr_at`),
evaluates the held-out split and writes a densegui checkpoint atomically after every epoch
(``save_checkpoint``: temporary file + rename): an interrupted run loses at most that epoch.

Exact resume: all randomness of epoch ``e`` (shuffling, augmentation,
dropout) comes from generators seeded with ``(seed, e)`` (and the rank, in a
process group), and the optimizer's momentum buffers travel in the
checkpoint's ``train_state``; a run resumed from its epoch-N checkpoint
therefore ends with bit-identical weights to the uninterrupted run on the
same device, thread count and number of processes.

In a process group (``group``, see :mod:`densegui.core.train.group`) the model
is wrapped in DistributedDataParallel, each rank trains on its disjoint share
of every epoch's order with batch = global batch / world size (the ranks'
batch b together is the single-process run's batch b), the held-out
evaluation is split across the ranks and summed, and rank 0 alone reports
progress and writes the checkpoint.

The steps of a run: :func:`_prepare` (checks, device, normalisation), :func:`_build` (model,
optimizer, resumed state), then per epoch :func:`_epoch_order`, :func:`_train_epoch`,
:func:`_heldout` and :func:`_save`. Images and evaluation: :mod:`densegui.core.train.batches`;
what a checkpoint records: :mod:`densegui.core.train.records`; options, progress and errors:
:mod:`densegui.core.train.options`. :func:`densegui.core.train.setup.run_training` loads the data,
adapts the configuration and calls :func:`train` with ``progress`` (a :class:`Progress` after every
batch and every epoch) and ``cancel`` (polled after building the model and the optimizer, and
before every batch).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from densegui.core.arch import registry
from densegui.core.errors import ConfigError
from densegui.core.train.batches import (
    Batches,
    autocast,
    channel_stats,
    default_workers,
    eval_sums,
    file_stats,
    from_workers,
    loader,
)
from densegui.core.train.dataset import Dataset, FileSplit
from densegui.core.train.distributed import per_rank_batch, shard
from densegui.core.train.options import (
    Progress,
    RunSettings,
    TrainCancelled,
    TrainError,
    TrainOptions,
)
from densegui.core.train.records import ResumePlan, TrainResult, epoch_metadata, epoch_train_state, read_resume_plan
from densegui.core.weights.files import remove_stale_temporaries, save_checkpoint

if TYPE_CHECKING:
    from densegui.core.train.group import Group

_RANK_MIX = 0xD1B54A32D192ED03  # gives each rank its own augmentation and dropout stream


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of all randomness of 0-based ``epoch`` (a fixed mix of seed and epoch)."""
    x = (seed * 0x9E3779B97F4A7C15 + (epoch + 1) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    x ^= x >> 31
    x = (x * 0x94D049BB133111EB) & (2**64 - 1)
    x ^= x >> 29
    return x & (2**63 - 1)


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


@dataclass
class _Run:
    """What every step of one run shares."""

    config: Any
    data: Dataset
    options: TrainOptions
    settings: RunSettings
    out: Path
    dev: torch.device
    group: Group | None
    world: int
    rank: int
    bp: int  # this rank's batch
    workers: int  # DataLoader processes for images read from disk
    report: Callable[[Progress], None] | None  # rank 0's progress
    cancel: Callable[[], bool] | None
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    images: torch.Tensor | None = None  # an in-memory training split, on the GPU when training there
    labels: torch.Tensor | None = None

    @property
    def files(self) -> bool:
        return isinstance(self.data.train, FileSplit)

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel()


@dataclass
class _Model:
    """The network, its optimizer and where the run starts."""

    net: torch.nn.Module  # what trains (DistributedDataParallel in a group)
    raw: torch.nn.Module  # what the checkpoint and the evaluation use
    step: Callable[[torch.Tensor], torch.Tensor]  # net, compiled if asked
    opt: torch.optim.Optimizer
    scaler: Any  # torch.amp.GradScaler
    history: list[dict[str, float]]
    start_epoch: int = 0
    elapsed_before: float = 0.0


def train(
    config: Any,
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
    run = _prepare(config, data, options, out, device, settings, group, progress, cancel)
    with torch.random.fork_rng(devices=[run.dev.index or 0] if run.dev.type == "cuda" else []):
        model = _build(run, resume)
        return _epochs(run, model, keep_optimizer_at_end)


def _prepare(config: Any, data: Dataset, options: TrainOptions, out: str | Path, device: str | torch.device,
             settings: RunSettings | None, group: Group | None, progress: Callable[[Progress], None] | None,
             cancel: Callable[[], bool] | None) -> _Run:
    """The checks before anything runs, the device, the normalisation and the training images."""
    from densegui.core.devices import resolve_device

    settings = (settings or RunSettings()).validate()
    if group is not None:
        dev = group.device
    else:
        dev = device if isinstance(device, torch.device) else resolve_device(str(device))
    world, rank = (group.world_size, group.rank) if group is not None else (1, 0)
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
    if rank == 0:
        remove_stale_temporaries(out)  # what a killed run's checkpoint writes left behind
    workers = default_workers(settings, group.env.local_world_size if group is not None else 1)
    run = _Run(config, data, options, settings, out, dev, group, world, rank, bp, workers,
               progress if rank == 0 else None, cancel)
    if run.files:
        run.mean, run.std = (group.share(lambda: file_stats(data.train, workers)) if group
                             else file_stats(data.train, workers))
    else:
        run.mean, run.std = channel_stats(data.train, data.scale)
        # on a GPU the (uint8) training images live there: batches are gathered without copies
        run.images, run.labels = ((data.train.images.to(dev), data.train.labels.to(dev)) if dev.type == "cuda"
                                  else (data.train.images, data.train.labels))
    return run


def _build(run: _Run, resume: str | Path | ResumePlan | None) -> _Model:
    """The seeded model (with the resumed weights), wrapped, compiled, and its optimizer."""
    torch.manual_seed(run.options.seed)
    model = registry.build_model(run.config)
    history: list[dict[str, float]] = []
    start_epoch, elapsed_before = 0, 0.0
    plan: ResumePlan | None = None
    if resume is not None:
        if isinstance(resume, ResumePlan):
            plan = resume
        else:  # rank 0 reads the file; every rank starts from what it read
            plan = run.group.share(lambda: read_resume_plan(resume)) if run.group else read_resume_plan(resume)
        plan.verify(run.config, run.options, run.data.spec, len(run.data.train))
        model.load_state_dict(plan.checkpoint["state_dict"])
        history = [dict(h) for h in plan.history]
        start_epoch, elapsed_before = plan.epoch, plan.seconds
    model.to(run.dev)
    if run.settings.channels_last:
        model.to(memory_format=torch.channels_last)
    net = run.group.wrap(model, run.settings.sync_bn) if run.group is not None else model
    raw = net.module if run.group is not None else net
    step = torch.compile(net) if run.settings.compile else net
    if run.cancelled():
        raise TrainCancelled(f"training cancelled before epoch {start_epoch + 1}.")
    options = run.options
    opt = torch.optim.SGD(raw.parameters(), lr=options.lr, momentum=options.momentum,
                          weight_decay=options.weight_decay, nesterov=options.nesterov and options.momentum > 0)
    scaler = torch.amp.GradScaler(run.dev.type, enabled=run.settings.precision == "fp16")
    if plan is not None:
        try:
            opt.load_state_dict(plan.optimizer_state)
        except (ValueError, KeyError, RuntimeError) as exc:
            raise TrainError(f"the optimizer state in {plan.name!r} does not fit this model "
                             f"({type(exc).__name__}).") from None
        if scaler.is_enabled() and plan.checkpoint["train_state"].get("scaler"):
            scaler.load_state_dict(plan.checkpoint["train_state"]["scaler"])
    if run.cancelled():  # the first SGD imports torch._dynamo (seconds)
        raise TrainCancelled(f"training cancelled before epoch {start_epoch + 1}.")
    return _Model(net, raw, step, opt, scaler, history, start_epoch, elapsed_before)


def _epochs(run: _Run, m: _Model, keep_optimizer_at_end: bool) -> TrainResult:
    """Every remaining epoch: train, evaluate, write the checkpoint, report."""
    data, options, dev = run.data, run.options, run.dev
    n = len(data.train)
    batches = math.ceil(len(shard(range(n), run.world, run.rank)) / run.bp)
    sampler = Batches()
    feed = loader(data.train, sampler, run.workers, dev.type == "cuda") if run.files else None
    if run.files:
        data.train.augment = options.augment
    eval_idx = torch.arange(run.rank, len(data.test), run.world) if run.group is not None else None
    where = f"{dev} × {run.world} processes ({run.group.backend})" if run.group is not None else str(dev)
    if run.report:
        run.report(Progress("start", m.start_epoch + 1, options.epochs, 0, batches, checkpoint=str(run.out),
                            message=f"{data.describe()} on {where}"))
    t_run = time.perf_counter()
    val_acc = math.nan
    for epoch in range(m.start_epoch, options.epochs):
        key, order, g = _epoch_order(run, epoch, n)
        m.net.train()
        source = None
        if feed is not None:
            sampler.batches = [[(int(i), key) for i in order[b * run.bp:(b + 1) * run.bp]] for b in range(batches)]
            source = from_workers(iter(feed))
        t0 = time.perf_counter()
        loss_sum, correct, seen = _train_epoch(run, m, epoch, order, g, batches, t0, source)
        lr = options.lr_at(epoch, batches - 1, batches)  # the epoch's last step's: what it ended at
        train_seconds = time.perf_counter() - t0
        if run.group is not None:
            loss_sum, correct, seen = run.group.all_sum([loss_sum, correct, seen])
            run.group.sync_buffers(m.raw)  # every rank evaluates rank 0's model, the one in the checkpoint
        val_loss, val_acc = _heldout(run, m.raw, eval_idx)
        seconds = time.perf_counter() - t0
        m.history.append({"epoch": epoch + 1, "lr": lr, "loss": loss_sum / seen, "accuracy": correct / seen,
                          "val_loss": val_loss, "val_accuracy": val_acc, "seconds": seconds,
                          "images_per_s": seen / train_seconds if train_seconds > 0 else 0.0})
        _save(run, m, correct / seen, m.elapsed_before + time.perf_counter() - t_run, keep_optimizer_at_end)
        if run.report:
            run.report(Progress("epoch", epoch + 1, options.epochs, batches, batches, loss_sum / seen, correct / seen,
                                m.history[-1]["images_per_s"], lr, val_loss, val_acc, seconds, str(run.out)))
    return TrainResult(run.config, str(run.out), m.history, val_acc, m.elapsed_before + time.perf_counter() - t_run,
                       dataset=data.to_metadata(), options=options, device=str(dev), world_size=run.world,
                       rank=run.rank)


def _epoch_order(run: _Run, epoch: int, n: int) -> tuple[int, torch.Tensor, torch.Generator]:
    """(the epoch's key, this rank's image order, its augmentation generator); seeds dropout."""
    key = epoch_seed(run.options.seed, epoch)
    g = torch.Generator().manual_seed(key)
    order = torch.randperm(n, generator=g)
    dropout_seed = key ^ 0x5DEECE66D
    if run.group is not None:  # the shared order's share of this rank; its own augmentation and dropout
        order = shard(order, run.world, run.rank)
        own = epoch_seed(run.options.seed ^ ((_RANK_MIX * (run.rank + 1)) & (2**63 - 1)), epoch)
        g = torch.Generator().manual_seed(own)
        dropout_seed = own ^ 0x5DEECE66D
    torch.manual_seed(dropout_seed)
    return key, order, g


def _train_epoch(run: _Run, m: _Model, epoch: int, order: torch.Tensor, g: torch.Generator, batches: int,
                 t0: float, source: Any) -> tuple[float, int, int]:
    """One epoch's SGD steps on this rank's ``order`` (``source``: the DataLoader's batches, for
    images read from disk), each at its own learning rate; (summed loss, correct, images).

    Every rank has as many batches (equal shards), so the ranks' rates agree step by step, and a
    resumed run's from its epoch on."""
    data, options, settings, dev, bp = run.data, run.options, run.settings, run.dev, run.bp
    mean_t = torch.tensor(run.mean, device=dev).view(1, -1, 1, 1)
    std_t = torch.tensor(run.std, device=dev).view(1, -1, 1, 1)
    seen = correct = 0
    loss_sum = 0.0
    for b in range(batches):
        if run.cancelled():
            raise TrainCancelled(f"training cancelled during epoch {epoch + 1}; the checkpoint of epoch "
                                 f"{epoch} is kept." if epoch else "training cancelled in epoch 1.")
        if source is not None:
            images, labels = next(source)
        else:
            idx = order[b * bp:(b + 1) * bp]
            images, labels = run.images[idx], run.labels[idx]
        lr = options.lr_at(epoch, b, batches)
        for group_ in m.opt.param_groups:
            group_["lr"] = lr
        x = images.to(dev, non_blocking=True).float() / data.scale
        if options.augment and source is None:
            x = augment_batch(x, data.augment, data.shift, g)
        x = (x - mean_t) / std_t
        if settings.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = labels.to(dev, non_blocking=True)
        with autocast(dev, settings.precision):
            logits = m.step(x)
        loss = F.cross_entropy(logits.float(), y)
        if not torch.isfinite(loss):
            raise TrainError(f"the loss became {float(loss)} in epoch {epoch + 1}; "
                             f"lower the learning rate (now {lr:g}).")
        m.opt.zero_grad(set_to_none=True)
        m.scaler.scale(loss).backward()
        m.scaler.step(m.opt)
        m.scaler.update()
        seen += int(y.shape[0])
        loss_sum += float(loss.detach()) * int(y.shape[0])
        correct += int((logits.argmax(1) == y).sum())
        if run.report:
            dt = time.perf_counter() - t0
            run.report(Progress("batch", epoch + 1, options.epochs, b + 1, batches, loss_sum / seen,
                                correct / seen, seen * run.world / dt if dt > 0 else math.nan, lr))
    return loss_sum, correct, seen


def _heldout(run: _Run, raw: torch.nn.Module, eval_idx: torch.Tensor | None) -> tuple[float, float]:
    """(loss, accuracy) on the whole held-out split (each rank evaluates its share; summed)."""
    data, settings = run.data, run.settings
    sums = eval_sums(raw, data.test, data.scale, run.mean, run.std, run.dev, 2 * run.bp if run.files else 512,
                     eval_idx, settings.precision, settings.channels_last, run.workers)
    val_sum, val_correct, val_n = run.group.all_sum(sums) if run.group is not None else sums
    return val_sum / max(val_n, 1), val_correct / max(val_n, 1)


def _save(run: _Run, m: _Model, train_accuracy: float, seconds: float, keep_optimizer_at_end: bool) -> None:
    """The checkpoint of the epoch just done, written by rank 0 (the others wait for it, bounded by
    the group's timeout, and fail with rank 0 if its write fails)."""
    metadata = train_state = None
    if run.rank == 0:
        final = m.history[-1]["epoch"] == run.options.epochs
        keep = not final or keep_optimizer_at_end
        metadata = epoch_metadata(run.data, run.options, run.settings, run.dev,
                                  normalize={"mean": run.mean, "std": run.std, "scale": float(run.data.scale)},
                                  history=m.history, train_accuracy=train_accuracy, world=run.world,
                                  backend=run.group.backend if run.group is not None else "none",
                                  per_rank_batch=run.bp, seconds=seconds)
        train_state = epoch_train_state(run.data, run.options, history=m.history, seconds=seconds, world=run.world,
                                        optimizer=m.opt.state_dict() if keep else None,
                                        scaler=m.scaler.state_dict() if keep and m.scaler.is_enabled() else None)

    def write() -> None:
        save_checkpoint(run.out, m.raw.state_dict(), run.config, metadata, train_state)

    run.group.share(write) if run.group is not None else write()
