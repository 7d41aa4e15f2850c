"""A training run around the torch loop, described and started without importing torch.

The GUI window imports this module to build a :class:`TrainRequest` and to
preview the configuration adapted to a dataset (:func:`dataset_shape`,
:func:`adapt_config`); :func:`run_training` does the whole run (dataset,
subset, adaptation, resume plan, device, model, training) and is what the
CLI calls in-process and the GUI calls in a background child process. It
imports torch only when called. The plain types live in
:mod:`densegui.core.train_types` and are re-exported here; all of them pickle.

``cancel()`` is polled before and after loading the dataset, after building
the model, after building the optimizer and before every batch; a cancelled
run raises :class:`TrainCancelled` and leaves only complete checkpoints
(they are written atomically after each finished epoch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from densegui.core.config import DenseNetConfig
from densegui.core.errors import DenseguiError, is_out_of_memory
from densegui.core.train_types import (  # noqa: F401 - re-exported: the GUI and CLI import them from here
    DATA_FIELDS,
    MILESTONES,
    Progress,
    ResumePlan,
    TrainCancelled,
    TrainError,
    TrainOptions,
    TrainResult,
    adapt_config,
    dataset_shape,
    default_config,
)


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
    from densegui.core.train import read_resume_plan, train

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
