"""What a training run records: its checkpoint after every epoch, its result, and the checkpoint
read back to resume (torch-free at import; everything here pickles).

:func:`epoch_metadata` is the checkpoint's ``metadata`` (what the run was: data, recipe, machine,
results so far), :func:`epoch_train_state` its ``train_state`` (what resuming needs: the epoch,
history, optimizer state). :class:`TrainResult` is what a run returns; :func:`read_resume_plan`
reads a checkpoint back (with the checkpoint files' safe loader) as a :class:`ResumePlan`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from densegui.core.arch.registry import config_from_dict
from densegui.core.train.options import (
    MILESTONES,
    RunSettings,
    TrainError,
    TrainOptions,
)

if TYPE_CHECKING:
    import torch

    from densegui.core.train.data import Dataset


def _versions() -> dict[str, str]:
    import torch

    from densegui import __version__

    return {"densegui_version": str(__version__), "torch_version": str(torch.__version__)}


def _machine(device: torch.device) -> str:
    from densegui.core.devices import device_info

    return f"{device_info(device).name}; {platform.system()} {platform.machine()}"


def epoch_metadata(data: Dataset, options: TrainOptions, settings: RunSettings, device: torch.device, *,
                   normalize: dict[str, Any], history: list[dict[str, float]], train_accuracy: float,
                   world: int, backend: str, per_rank_batch: int, seconds: float) -> dict[str, Any]:
    """The ``metadata`` of the checkpoint after the epoch ``history[-1]`` describes."""
    done = history[-1]["epoch"]
    return {
        **_versions(),
        "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "dataset": data.to_metadata(),
        "normalize": normalize,
        "epochs": options.epochs,
        "epochs_done": done,
        "complete": done == options.epochs,
        "heldout_accuracy": history[-1]["val_accuracy"],
        "heldout_loss": history[-1]["val_loss"],
        "train_accuracy": train_accuracy,
        "seed": options.seed,
        "recipe": {**options.to_dict(), "optimizer": "SGD", "lr_drops_at": list(MILESTONES), "lr_drops_by": "step",
                   "augmentation": data.to_metadata()["augment"] if options.augment else "none"},
        "device": str(device),
        "machine": _machine(device),
        "world_size": world,
        "backend": backend,
        "per_rank_batch": per_rank_batch,
        **{k: v for k, v in settings.to_dict().items() if k not in ("workers", "dist_timeout")},
        "train_seconds": round(seconds, 2),
        "history": [dict(h) for h in history],
    }


def epoch_train_state(data: Dataset, options: TrainOptions, *, history: list[dict[str, float]], seconds: float,
                      world: int, optimizer: dict[str, Any] | None, scaler: dict[str, Any] | None) -> dict[str, Any]:
    """The ``train_state`` of the checkpoint after the epoch ``history[-1]`` describes; ``optimizer``
    (and ``scaler``) state only where the run may continue from it."""
    state: dict[str, Any] = {
        "epoch": history[-1]["epoch"],
        "options": options.to_dict(),
        "dataset": data.spec,
        "num_train": len(data.train),
        "history": [dict(h) for h in history],
        "seconds": seconds,
        "world_size": world,
        "rng": "per-epoch generators seeded from (seed, epoch) and, with several processes, the rank",
    }
    if optimizer is not None:
        state["optimizer"] = optimizer
        if scaler is not None:
            state["scaler"] = scaler
    return state


def read_train_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw dict of a densegui checkpoint written by ``train``, read by the checkpoint
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


def read_resume_plan(path: str | Path) -> ResumePlan:
    """The :class:`ResumePlan` of the checkpoint at ``path`` (see :func:`read_train_checkpoint`)."""
    return ResumePlan.from_checkpoint(read_train_checkpoint(path), path)


@dataclass
class TrainResult:
    config: Any  # the configuration trained
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
        d["config"] = config_from_dict(dict(data["config"]))
        d["options"] = TrainOptions.from_dict(data["options"]) if data.get("options") else None
        return cls(**d)


# --------------------------------------------------------------------- resume
@dataclass(frozen=True)
class ResumePlan:
    """What a checkpoint written by ``train`` says about continuing its run."""

    path: str
    config: Any
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
        return cls(str(path), config_from_dict(dict(ck["config"])), TrainOptions.from_dict(dict(ts["options"])),
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

    def verify(self, config: Any, options: TrainOptions, spec: str, num_train: int) -> ResumePlan:
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
