"""Training a DenseNet: the paper's recipe, exact resume, progress and cancel hooks.

:func:`train` runs SGD with Nesterov momentum 0.9, weight decay 1e-4 and a
learning rate divided by 10 at 50 % and 75 % of the epochs (Huang et al.,
§4.2), evaluates the held-out split after every epoch and writes a densegui
checkpoint atomically after every epoch (``save_checkpoint``: temporary file
+ rename), so an interrupted run loses at most the epoch in progress.

Exact resume: all randomness of epoch ``e`` (shuffling, augmentation,
dropout) comes from generators seeded with ``(seed, e)``, and the optimizer's
momentum buffers travel in the checkpoint's ``train_state``; a run resumed
from its epoch-N checkpoint therefore ends with bit-identical weights to the
uninterrupted run on the same device and thread count.

The plain types (options, progress, result, errors, resume plan) live in
:mod:`densegui.core.train_types`, which does not import torch;
:func:`densegui.core.train_setup.run_training` loads the data, adapts the configuration and calls
:func:`train` with ``progress`` (a :class:`Progress` after every batch and
every epoch) and ``cancel`` (polled after building the model and the
optimizer, and before every batch).
"""

from __future__ import annotations

import datetime as _dt
import math
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from densegui.core.checkpoint import save_checkpoint
from densegui.core.config import DenseNetConfig
from densegui.core.data import Dataset, Split
from densegui.core.errors import ConfigError
from densegui.core.train_types import (
    MILESTONES,
    Progress,
    ResumePlan,
    TrainCancelled,
    TrainError,
    TrainOptions,
    TrainResult,
)


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


@torch.no_grad()
def evaluate(model: torch.nn.Module, split: Split, scale: float, mean: list[float], std: list[float],
             device: torch.device | str = "cpu", batch_size: int = 512) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` on ``split``, in eval mode."""
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    for i in range(0, len(split), batch_size):
        x = to_input(split.images[i:i + batch_size], scale, mean, std, device)
        y = split.labels[i:i + batch_size].to(device)
        out = model(x)
        total_loss += float(F.cross_entropy(out, y, reduction="sum"))
        correct += int((out.argmax(1) == y).sum())
    model.train(was_training)
    n = max(len(split), 1)
    return total_loss / n, correct / n


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
    from densegui.core.checkpoint import FORMAT, CheckpointError, read_torch_file

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
    unless ``keep_optimizer_at_end``.
    """
    from densegui.core.devices import resolve_device
    from densegui.core.model import build_model

    dev = device if isinstance(device, torch.device) else resolve_device(str(device))
    options = options.validate()
    config = config.validate()
    if (config.in_channels, config.num_classes, config.input_size) != (data.channels, data.num_classes, data.size):
        raise ConfigError(f"the configuration ({config.in_channels} channels, {config.num_classes} classes, "
                          f"{config.input_size}px) does not match the dataset {data.describe()}.")
    if len(data.train) == 0 or len(data.test) == 0:
        raise TrainError("the dataset has an empty training or held-out split.")
    out = Path(out)
    from densegui.core.checkpoint import remove_stale_temporaries

    remove_stale_temporaries(out)  # what a killed run's checkpoint writes left behind
    mean, std = channel_stats(data.train, data.scale)
    history: list[dict[str, float]] = []
    start_epoch, elapsed_before = 0, 0.0
    plan: ResumePlan | None = None

    with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
        torch.manual_seed(options.seed)
        model = build_model(config)
        if resume is not None:
            plan = resume if isinstance(resume, ResumePlan) else read_resume_plan(resume)
            plan.verify(config, options, data.spec, len(data.train))
            model.load_state_dict(plan.checkpoint["state_dict"])
            history = [dict(h) for h in plan.history]
            start_epoch, elapsed_before = plan.epoch, plan.seconds
        model.to(dev)
        if cancel is not None and cancel():
            raise TrainCancelled(f"training cancelled before epoch {start_epoch + 1}.")
        opt = torch.optim.SGD(model.parameters(), lr=options.lr, momentum=options.momentum,
                              weight_decay=options.weight_decay, nesterov=options.nesterov and options.momentum > 0)
        if plan is not None:
            try:
                opt.load_state_dict(plan.optimizer_state)
            except (ValueError, KeyError, RuntimeError) as exc:
                raise TrainError(f"the optimizer state in {plan.name!r} does not fit this model "
                                 f"({type(exc).__name__}).") from None
        if cancel is not None and cancel():  # the first SGD imports torch._dynamo (seconds)
            raise TrainCancelled(f"training cancelled before epoch {start_epoch + 1}.")

        n = len(data.train)
        batches = math.ceil(n / options.batch_size)
        if progress:
            progress(Progress("start", start_epoch + 1, options.epochs, 0, batches, checkpoint=str(out),
                              message=f"{data.describe()} on {dev}"))
        t_run = time.perf_counter()
        val_loss = val_acc = math.nan
        for epoch in range(start_epoch, options.epochs):
            g = torch.Generator().manual_seed(epoch_seed(options.seed, epoch))
            torch.manual_seed(epoch_seed(options.seed, epoch) ^ 0x5DEECE66D)  # dropout
            lr = options.lr_at(epoch)
            for group in opt.param_groups:
                group["lr"] = lr
            model.train()
            order = torch.randperm(n, generator=g)
            t0 = time.perf_counter()
            seen = correct = 0
            loss_sum = 0.0
            for b in range(batches):
                if cancel is not None and cancel():
                    raise TrainCancelled(f"training cancelled during epoch {epoch + 1}; the checkpoint of epoch "
                                         f"{epoch} is kept." if epoch else "training cancelled in epoch 1.")
                idx = order[b * options.batch_size:(b + 1) * options.batch_size]
                x = data.train.images[idx].to(dev).float() / data.scale
                if options.augment:
                    x = augment_batch(x, data.augment, data.shift, g)
                x = (x - torch.tensor(mean, device=dev).view(1, -1, 1, 1)) / torch.tensor(std, device=dev).view(
                    1, -1, 1, 1)
                y = data.train.labels[idx].to(dev)
                logits = model(x)
                loss = F.cross_entropy(logits, y)
                if not torch.isfinite(loss):
                    raise TrainError(f"the loss became {float(loss)} in epoch {epoch + 1}; "
                                     f"lower the learning rate (now {lr:g}).")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                seen += len(idx)
                loss_sum += float(loss.detach()) * len(idx)
                correct += int((logits.argmax(1) == y).sum())
                if progress:
                    dt = time.perf_counter() - t0
                    progress(Progress("batch", epoch + 1, options.epochs, b + 1, batches, loss_sum / seen,
                                      correct / seen, seen / dt if dt > 0 else math.nan, lr))
            train_seconds = time.perf_counter() - t0
            val_loss, val_acc = evaluate(model, data.test, data.scale, mean, std, dev)
            seconds = time.perf_counter() - t0
            history.append({"epoch": epoch + 1, "lr": lr, "loss": loss_sum / seen, "accuracy": correct / seen,
                            "val_loss": val_loss, "val_accuracy": val_acc, "seconds": seconds,
                            "images_per_s": seen / train_seconds if train_seconds > 0 else 0.0})
            done = epoch + 1
            final = done == options.epochs
            total_seconds = elapsed_before + time.perf_counter() - t_run
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
                "rng": "per-epoch generators seeded from (seed, epoch)",
            }
            if not final or keep_optimizer_at_end:
                train_state["optimizer"] = opt.state_dict()
            save_checkpoint(out, model.state_dict(), config, metadata, train_state)
            if progress:
                progress(Progress("epoch", done, options.epochs, batches, batches, loss_sum / seen, correct / seen,
                                  history[-1]["images_per_s"], lr, val_loss, val_acc, seconds, str(out)))
    return TrainResult(config, str(out), history, val_acc, elapsed_before + time.perf_counter() - t_run,
                       dataset=data.to_metadata(), options=options, device=str(dev))
