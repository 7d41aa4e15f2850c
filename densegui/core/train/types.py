"""The plain data of training, without torch: recipe, progress, result, errors, resume plan.

:mod:`densegui.core.train.loop` (the torch loop) and :mod:`densegui.core.train.setup`
(the run around it) both build on these; everything here pickles, so it
crosses from a background training process to the GUI.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.errors import ConfigError, DenseguiError

MILESTONES = (0.5, 0.75)
DATA_FIELDS = ("in_channels", "num_classes", "input_size")

# (channels, classes, image side) of the datasets whose shape is fixed by their kind.
_KNOWN_SHAPES = {"digits": (1, 10, 8), "cifar10": (3, 10, 32), "cifar100": (3, 100, 32), "mnist": (1, 10, 28),
                 "fashion-mnist": (1, 10, 28)}


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

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 0-based ``epoch``: ÷10 from 50 % and again from 75 % of the epochs."""
        drops = sum(epoch >= int(m * self.epochs) for m in MILESTONES)
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


@dataclass
class TrainResult:
    config: DenseNetConfig
    checkpoint: str
    history: list[dict[str, float]] = field(default_factory=list)
    val_accuracy: float = math.nan
    seconds: float = 0.0
    adapted: list[str] = field(default_factory=list)  # what adapt_config changed
    dataset: dict[str, Any] = field(default_factory=dict)  # Dataset.to_metadata()
    options: TrainOptions | None = None
    device: str = ""
    world_size: int = 1  # processes that trained together
    rank: int = 0  # this process's rank (the CLI prints on rank 0 only)

    @property
    def epochs_done(self) -> int:
        return len(self.history)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly (how a launched process group hands its result back)."""
        d = dataclasses.asdict(self)
        d["config"] = self.config.to_dict()
        d["options"] = self.options.to_dict() if self.options is not None else None
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainResult:
        names = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in data.items() if k in names}
        d["config"] = DenseNetConfig.from_dict(dict(data["config"]))
        d["options"] = TrainOptions.from_dict(data["options"]) if data.get("options") else None
        return cls(**d)


def default_config() -> DenseNetConfig:
    """The shipped digits architecture: basic DenseNet, k=12, θ=1, 3 blocks of 5, CIFAR stem, 8×8×1 input."""
    return DenseNetConfig(growth_rate=12, block_depths=(5, 5, 5), compression=1.0, bottleneck=False,
                          init_features=16, stem="cifar", in_channels=1, num_classes=10, input_size=8)


def dataset_shape(spec: str) -> tuple[int, int, int] | None:
    """(channels, classes, image side) of the dataset ``spec`` names, when its kind fixes them
    (digits, cifar10, cifar100, mnist, fashion-mnist); None for folders, whose shape needs reading."""
    text = (spec or "").strip().lower()
    if text == "digits":
        return _KNOWN_SHAPES["digits"]
    kind, sep, rest = text.partition(":")
    if sep and rest and kind != "digits":
        return _KNOWN_SHAPES.get(kind)
    return None


def adapt_config(cfg: DenseNetConfig, shape_or_data: Any,
                 keep: tuple[str, ...] = ()) -> tuple[DenseNetConfig, list[str]]:
    """``cfg`` with in_channels / num_classes / input_size set from a Dataset or a
    ``(channels, classes, size)`` tuple. Fields in ``keep`` stay as the user set them and must
    then match. Returns the validated config and what was changed ("num_classes 100 → 10")."""
    if isinstance(shape_or_data, tuple):
        channels, classes, size = shape_or_data
        where = "the dataset"
    else:
        data = shape_or_data
        channels, classes, size = data.channels, data.num_classes, data.size
        where = f"the dataset {data.name}"
    want = {"in_channels": channels, "num_classes": classes, "input_size": size}
    changes, notes = {}, []
    for name, value in want.items():
        have = getattr(cfg, name)
        if have == value:
            continue
        if name in keep:
            raise ConfigError(f"{name} is {have} but {where} has {value}; "
                              f"drop --{name.replace('_', '-')} to adapt it automatically.")
        changes[name] = value
        notes.append(f"{name} {have} → {value}")
    return (cfg.replace(**changes).validate() if changes else cfg.validate()), notes


# --------------------------------------------------------------------- resume
@dataclass(frozen=True)
class ResumePlan:
    """What a checkpoint written by ``train`` says about continuing its run."""

    path: str
    config: DenseNetConfig
    options: TrainOptions
    dataset: str  # the spec it was trained on
    num_train: int
    epoch: int  # epochs done
    load: dict[str, Any]  # load_dataset keywords that rebuild its split: size, fraction, seed
    subset: tuple[int | None, int | None, int] | None  # Dataset.subset arguments, if it used one
    history: list[dict[str, float]]
    seconds: float
    checkpoint: dict[str, Any] = field(repr=False, compare=False)  # the raw checkpoint (weights, optimizer)

    @property
    def name(self) -> str:
        return Path(self.path).name

    @classmethod
    def from_checkpoint(cls, ck: Mapping[str, Any], path: str | Path) -> ResumePlan:
        name = Path(path).name
        ts = ck.get("train_state") or {}
        if "epoch" not in ts or "options" not in ts:
            raise TrainError(f"{name!r} has no training state to resume from.")
        ds = (ck.get("metadata") or {}).get("dataset") or {}
        split = ds.get("split") or {}
        subset = split.get("subset")
        return cls(str(path), DenseNetConfig.from_dict(dict(ck["config"])), TrainOptions.from_dict(dict(ts["options"])),
                   str(ts.get("dataset", "digits")), int(ts.get("num_train", -1)), int(ts["epoch"]),
                   {"size": ds.get("size"), "fraction": float(split.get("fraction", 0.2)),
                    "seed": int(split.get("seed", 0))},
                   tuple(subset) if subset else None, [dict(h) for h in ts.get("history", [])],
                   float(ts.get("seconds", 0.0)), dict(ck))

    def check(self) -> ResumePlan:
        """TrainError unless the run is unfinished and carries its optimizer state."""
        if self.epoch >= self.options.epochs:
            raise TrainError(f"{self.name!r} has already finished all {self.options.epochs} epochs; "
                             "nothing to resume.")
        if "optimizer" not in self.checkpoint["train_state"]:
            raise TrainError(f"{self.name!r} lacks the optimizer state needed to resume.")
        return self

    def verify(self, config: DenseNetConfig, options: TrainOptions, spec: str, num_train: int) -> ResumePlan:
        """TrainError unless the run to continue is this one (configuration, recipe, data), then :meth:`check`."""
        if self.config.replace(memory_efficient=False) != config.replace(memory_efficient=False):
            raise TrainError(f"{self.name!r} was trained with a different configuration.")
        if self.options != options:
            raise TrainError(f"{self.name!r} was trained with a different recipe ({self.options}).")
        if self.dataset != spec or self.num_train != num_train:
            raise TrainError(f"{self.name!r} was trained on {self.dataset!r} ({self.num_train} images), "
                             f"not {spec!r} ({num_train}).")
        return self.check()

    @property
    def optimizer_state(self) -> Any:
        return self.checkpoint["train_state"]["optimizer"]
