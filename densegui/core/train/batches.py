"""The images a network sees, and the held-out evaluation.

Normalisation statistics of a training split (:func:`channel_stats` in memory, :func:`file_stats`
for images read from disk), uint8 images → network input (:func:`to_input`), batches of a split
in memory or from DataLoader worker processes (:func:`eval_batches`, :class:`Batches`,
:func:`loader`), and the eval-mode loss and accuracy of a model (:func:`eval_sums`,
:func:`evaluate`). The training loop and the data reuse measures both build on these.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from densegui.core.train.dataset import DataError, FileSplit, Split
from densegui.core.train.options import RunSettings

STATS_SAMPLE = 512  # images whose mean and std normalise a dataset read from disk


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


class Batches:
    """A DataLoader's batch sampler whose batches change every epoch while its workers stay up."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, int]]] = []

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def loader(split: FileSplit, sampler: Batches, workers: int, pin: bool) -> Any:
    from torch.utils.data import DataLoader

    return DataLoader(split, batch_sampler=sampler, num_workers=workers, pin_memory=pin,
                      persistent_workers=workers > 0)


def from_workers(batches: Iterator[Any]) -> Iterator[Any]:
    """The loader's batches; a reader's DataError from a worker process comes back as one line."""
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
    iterator's shutdown can wait seconds for a worker, at whatever moment the collection comes."""
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


def eval_batches(split: Split | FileSplit, indices: Sequence[int] | None, batch_size: int,
                  workers: int = 0, pin: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    n = len(split) if indices is None else len(indices)
    if isinstance(split, FileSplit):
        idx = list(range(len(split))) if indices is None else [int(i) for i in indices]
        sampler = Batches()
        sampler.batches = [[(i, 0) for i in idx[k:k + batch_size]] for k in range(0, n, batch_size)]
        yield from from_workers(iter(loader(split, sampler, workers, pin)))
        return
    for k in range(0, n, batch_size):
        sel = slice(k, k + batch_size) if indices is None else indices[k:k + batch_size]
        yield split.images[sel], split.labels[sel]


def autocast(dev: torch.device, precision: str) -> Any:
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
        for images, labels in eval_batches(split, indices, batch_size, workers, dev.type == "cuda"):
            x = to_input(images, scale, mean, std, dev)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = labels.to(dev)
            with autocast(dev, precision):
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
    for images, _ in eval_batches(dataclasses.replace(split, train=False), pick, 64, workers):
        x = images.to(torch.float64) / 255.0
        s1, s2 = s1 + x.sum(dim=(0, 2, 3)), s2 + (x * x).sum(dim=(0, 2, 3))
        count += x.shape[0] * x.shape[2] * x.shape[3]
    mean = s1 / max(count, 1)
    std = (s2 / max(count, 1) - mean * mean).clamp_min(0).sqrt().clamp_min(1e-3)
    return [float(v) for v in mean], [float(v) for v in std]
