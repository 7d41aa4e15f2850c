"""The vocabulary of a training run that needs no network configuration and no torch: the recipe,
how the run executes, its progress events and its errors.

Everything here pickles (it crosses from a background training process to the GUI) and is
imported by the launcher, the process group and the loop alike; :mod:`densegui.core.train.types`
adds what ties a run to a configuration (results, resume plans, adapting to the data).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from densegui.core.errors import DenseguiError

MILESTONES = (0.5, 0.75)


class TrainError(DenseguiError):
    """A training run that cannot start or continue."""


class TrainCancelled(DenseguiError):
    """Raised when ``cancel()`` returned True; only complete checkpoints stay on disk."""


TRAIN_PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class RunSettings:
    """How a run executes, not what it learns: resuming may change any of these.

    ``precision``: autocast dtype (fp16 adds a gradient scaler); ``workers``: DataLoader
    processes per rank for datasets read from disk (None: up to 8, CPUs shared by the
    ranks); ``dist_timeout``: seconds a rank waits for the others in a collective (a
    checkpoint write or a stuck peer) before the job fails."""

    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    sync_bn: bool = False
    workers: int | None = None
    dist_timeout: float = 300.0

    def validate(self) -> RunSettings:
        if self.precision not in TRAIN_PRECISIONS:
            raise TrainError(f"precision must be one of {', '.join(TRAIN_PRECISIONS)}, got {self.precision!r}.")
        if self.workers is not None and not (isinstance(self.workers, int) and 0 <= self.workers <= 256):
            raise TrainError(f"workers must be from 0 to 256, got {self.workers!r}.")
        if not (isinstance(self.dist_timeout, (int, float)) and 1 <= self.dist_timeout <= 86_400):
            raise TrainError(f"the process-group timeout must be 1 to 86400 s, got {self.dist_timeout!r}.")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSettings:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class TrainOptions:
    """The recipe of one run. Defaults: the paper's, scaled to a short run."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = True
    seed: int = 0
    augment: bool = True

    def validate(self) -> TrainOptions:
        if not isinstance(self.epochs, int) or not 1 <= self.epochs <= 100_000:
            raise TrainError(f"epochs must be an integer from 1 to 100000, got {self.epochs!r}.")
        if not isinstance(self.batch_size, int) or not 1 <= self.batch_size <= 65_536:
            raise TrainError(f"batch size must be an integer from 1 to 65536, got {self.batch_size!r}.")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and 0 < self.lr <= 10):
            raise TrainError(f"learning rate must be a number in (0, 10], got {self.lr!r}.")
        if not (isinstance(self.momentum, (int, float)) and 0 <= self.momentum < 1):
            raise TrainError(f"momentum must be in [0, 1), got {self.momentum!r}.")
        if not (isinstance(self.weight_decay, (int, float)) and 0 <= self.weight_decay < 1):
            raise TrainError(f"weight decay must be in [0, 1), got {self.weight_decay!r}.")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise TrainError(f"seed must be a non-negative integer, got {self.seed!r}.")
        return self

    def lr_at(self, epoch: int, batch: int = 0, batches: int = 1) -> float:
        """Learning rate of the step at 0-based ``batch`` of ``batches`` in 0-based ``epoch``: ÷10 for
        each milestone that fraction of training, (epoch + batch / batches) / epochs, has reached.

        By step, so a drop never comes early and even a 1-epoch run sees all three rates; without
        ``batch``/``batches`` it is the rate of the epoch's first step."""
        done = Fraction(epoch * batches + batch, self.epochs * batches)  # exact: no drop a rounding early
        drops = sum(done >= Fraction(m) for m in MILESTONES)
        return self.lr * (0.1 ** drops)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainOptions:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Progress:
    """What ``progress`` receives: ``kind`` is "start", "batch" or "epoch"."""

    kind: str
    epoch: int  # 1-based
    epochs: int
    batch: int = 0  # 1-based, within the epoch
    batches: int = 0
    loss: float = math.nan  # running mean training loss of the epoch
    accuracy: float = math.nan  # running training accuracy of the epoch, 0..1
    images_per_s: float = math.nan
    lr: float = math.nan
    val_loss: float = math.nan  # "epoch" only
    val_accuracy: float = math.nan  # "epoch" only
    seconds: float = 0.0  # "epoch": wall time of the epoch
    checkpoint: str = ""  # "start", "epoch": where checkpoints go
    message: str = ""  # "start": what is being trained

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Progress:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
