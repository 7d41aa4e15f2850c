"""What a training run needs before and around the torch loop, without importing torch.

The GUI window imports this module to build a :class:`TrainRequest` and to
preview the configuration adapted to a dataset (:func:`dataset_shape`,
:func:`adapt_config`); :func:`run_training` does the whole run (dataset,
subset, adaptation, resume plan, device, model, training) and is what the
CLI calls in-process and the GUI calls in a background child process. It
imports torch only when called. Every type here pickles.

``cancel()`` is polled before and after loading the dataset, after building
the model, after building the optimizer and before every batch; a cancelled
run raises :class:`TrainCancelled` and leaves only complete checkpoints
(they are written atomically after each finished epoch).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from densegui.core.config import DenseNetConfig
from densegui.core.errors import ConfigError, DenseguiError, is_out_of_memory

MILESTONES = (0.5, 0.75)
DATA_FIELDS = ("in_channels", "num_classes", "input_size")

# (channels, classes, image side) of the datasets whose shape is fixed by their kind.
_KNOWN_SHAPES = {"digits": (1, 10, 8), "cifar10": (3, 10, 32), "cifar100": (3, 100, 32), "mnist": (1, 10, 28),
                 "fashion-mnist": (1, 10, 28)}


class TrainError(DenseguiError):
    """A training run that cannot start or continue."""


class TrainCancelled(DenseguiError):
    """Raised when ``cancel()`` returned True; only complete checkpoints stay on disk."""


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

    @property
    def epochs_done(self) -> int:
        return len(self.history)


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
        if self.config != config:
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


def read_resume_plan(path: str | Path) -> ResumePlan:
    """The :class:`ResumePlan` of the checkpoint at ``path`` (loads it with torch, weights only)."""
    from densegui.core.train import read_train_checkpoint

    return ResumePlan.from_checkpoint(read_train_checkpoint(path), path)


# -------------------------------------------------------------------- request
@dataclass(frozen=True)
class TrainRequest:
    """One training run, as plain data (pickles to a child process).

    ``None`` means: the default (:func:`default_config`, digits, :class:`TrainOptions`,
    ``densenet-<dataset>.pt``) or, when resuming, what the checkpoint recorded. ``resume``
    is True (continue the run saved at ``out``) or the checkpoint to continue (written
    again at ``out``, by default the same file). ``keep``: fields of ``config`` among
    in_channels / num_classes / input_size the user set, which must then match the data
    (with input_size kept, image folders are resized to it)."""

    config: DenseNetConfig | None = None
    dataset: str | None = None
    options: TrainOptions | None = None
    out: str | None = None
    device: str = "auto"
    limit_train: int = 0  # train on a seeded subset of this many images (0: all)
    resume: bool | str = False
    threads: int | None = None  # torch intra-op threads (None: PyTorch's choice)
    keep: tuple[str, ...] = ()

    def validate(self) -> TrainRequest:
        if self.threads is not None and not (isinstance(self.threads, int) and 1 <= self.threads <= 1024):
            raise TrainError(f"threads must be from 1 to 1024, got {self.threads!r}.")
        if not isinstance(self.limit_train, int) or self.limit_train < 0:
            raise TrainError(f"the training-image limit must be a whole number ≥ 0, got {self.limit_train!r}.")
        if self.resume is True and not self.out:
            raise TrainError("resuming needs the checkpoint to continue.")
        if unknown := set(self.keep) - set(DATA_FIELDS):
            raise TrainError(f"keep names unknown fields: {', '.join(sorted(unknown))}.")
        if self.options is not None:
            self.options.validate()
        return self

    @property
    def resume_path(self) -> str | None:
        if self.resume is True:
            return str(self.out)
        return str(self.resume) if self.resume else None


def _cancelled(stage: str) -> TrainCancelled:
    return TrainCancelled(f"training cancelled {stage}.")


def run_training(request: TrainRequest, progress: Callable[[Progress], None] | None = None,
                 cancel: Callable[[], bool] | None = None, log: Callable[[str], None] | None = None) -> TrainResult:
    """Do the whole run ``request`` describes and return its result.

    ``progress`` gets every :class:`Progress`, ``log`` one-line notes (adaptation, resume),
    ``cancel`` is polled at every stage (see the module docstring). Errors meant for the
    user are :class:`DenseguiError`; running out of memory becomes a :class:`TrainError`."""
    stop = cancel or (lambda: False)
    say = log or (lambda _line: None)
    request = request.validate()
    if stop():
        raise _cancelled("before it started")

    import torch

    from densegui.core.data import load_dataset
    from densegui.core.devices import resolve_device
    from densegui.core.train import train

    if request.threads is not None:
        torch.set_num_threads(request.threads)
    device = resolve_device(request.device)
    plan = None
    resume_path = request.resume_path
    if resume_path is not None:
        plan = read_resume_plan(resume_path)
        spec = request.dataset or plan.dataset
        if spec != plan.dataset:
            raise TrainError(f"{plan.name!r} was trained on {plan.dataset!r}, not {spec!r}.")
        options = request.options or plan.options
        if options != plan.options:
            raise TrainError(f"{plan.name!r} was trained with a different recipe ({plan.options}).")
        plan.check()
        say(f"resuming {resume_path} after epoch {plan.epoch}/{plan.options.epochs}")
        load_kwargs = dict(plan.load)
    else:
        spec = request.dataset or "digits"
        options = (request.options or TrainOptions()).validate()
        base = request.config or default_config()
        load_kwargs = {"size": base.input_size if "input_size" in request.keep else None}
    if stop():
        raise _cancelled("before loading the dataset")
    data = load_dataset(spec, **load_kwargs)
    if stop():
        raise _cancelled("after loading the dataset")

    notes: list[str] = []
    if plan is not None:
        if plan.subset is not None and request.limit_train in (0, plan.subset[0]):
            data = data.subset(*plan.subset)
        elif request.limit_train and request.limit_train < len(data.train):
            data = data.subset(request.limit_train, None, seed=options.seed)
        cfg = plan.config if request.config is None else adapt_config(request.config, data, request.keep)[0]
    else:
        if request.limit_train and request.limit_train < len(data.train):
            data = data.subset(request.limit_train, None, seed=options.seed)
        cfg, notes = adapt_config(request.config or default_config(), data, keep=request.keep)
        if notes:
            say(f"adapted the configuration to {data.name}: {', '.join(notes)}")

    out = Path(request.out or resume_path or f"densenet-{data.name}.pt")
    if out.is_dir():
        raise TrainError(f"the output {str(out)!r} is a folder; give a file name.")
    try:
        result = train(cfg, data, options, out, device=device, resume=plan, progress=progress, cancel=cancel)
    except DenseguiError:
        raise
    except Exception as exc:
        if is_out_of_memory(exc):
            raise TrainError(f"out of memory on {device}; use a smaller batch size or model.") from None
        raise
    result.adapted = notes
    return result
