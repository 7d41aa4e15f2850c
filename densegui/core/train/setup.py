"""A training run around the torch loop, described and started without importing torch.

The GUI window imports this module to build a :class:`TrainRequest` and to
preview the configuration adapted to a dataset (:func:`dataset_shape`,
:func:`adapt_config`); :func:`run_training` does the whole run (dataset,
subset, adaptation, resume plan, device, model, training) and is what the
CLI calls in-process and the GUI calls in a background child process. It
imports torch only when called. The plain types live in :mod:`densegui.core.train.options`,
:mod:`densegui.core.train.records` and :mod:`densegui.core.train.types` and are re-exported
here; all of them pickle.

``cancel()`` is polled before and after loading the dataset, after building
the model, after building the optimizer and before every batch; a cancelled
run raises :class:`TrainCancelled` and leaves only complete checkpoints
(they are written atomically after each finished epoch).

Several processes: under ``torchrun`` (RANK / WORLD_SIZE set) every process
calls :func:`run_training` and joins the process group
(:mod:`densegui.core.train.group`). A request with ``nproc`` > 1 (or several
machines) is instead launched: :func:`run_training` starts
``torch.distributed.run`` with that many processes of
``densegui train --worker-request FILE`` (:func:`run_worker`), passes rank 0's
progress and log lines on as they come, polls ``cancel()`` every 0.1 s and
stops the whole group when it turns true.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.errors import DenseguiError, is_out_of_memory, user_message
from densegui.core.train import distributed
from densegui.core.train import group as process_group
from densegui.core.train.options import (  # noqa: F401 - re-exported: the GUI and CLI import them from here
    MILESTONES,
    TRAIN_PRECISIONS,
    Progress,
    RunSettings,
    TrainCancelled,
    TrainError,
    TrainOptions,
)
from densegui.core.train.records import ResumePlan, TrainResult, read_resume_plan  # noqa: F401 - re-exported
from densegui.core.train.types import (  # noqa: F401
    DATA_FIELDS,
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
    (with input_size kept, image folders are resized to it). ``settings``: precision,
    channels-last, compile, sync-BN, DataLoader workers, process-group timeout.
    ``nproc`` > 1, or ``nnodes`` other than "1" with ``rdzv_endpoint``: launch the run through
    ``torch.distributed.run`` with ``nproc`` processes on this machine (``batch_size`` stays
    the global batch)."""

    config: DenseNetConfig | None = None
    dataset: str | None = None
    options: TrainOptions | None = None
    out: str | None = None
    device: str = "auto"
    limit_train: int = 0  # train on a seeded subset of this many images (0: all)
    resume: bool | str = False
    threads: int | None = None  # torch intra-op threads (None: PyTorch's choice)
    keep: tuple[str, ...] = ()
    settings: RunSettings = field(default_factory=RunSettings)
    nproc: int = 1  # processes on this machine (torch.distributed.run)
    nnodes: str = "1"  # machines, "N" or "MIN:MAX" (torchrun's --nnodes)
    rdzv_endpoint: str = ""  # HOST:PORT of the rendezvous, the same on every machine

    @property
    def launches(self) -> bool:
        """True when :func:`run_training` starts a process group instead of training here."""
        return self.nproc != 1 or self.nnodes != "1" or bool(self.rdzv_endpoint)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly (how a launched process group receives it)."""
        return {"config": self.config.to_dict() if self.config is not None else None, "dataset": self.dataset,
                "options": self.options.to_dict() if self.options is not None else None, "out": self.out,
                "device": self.device, "limit_train": self.limit_train, "resume": self.resume,
                "threads": self.threads, "keep": list(self.keep), "settings": self.settings.to_dict(),
                "nproc": self.nproc, "nnodes": self.nnodes, "rdzv_endpoint": self.rdzv_endpoint}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainRequest:
        d = {k: v for k, v in data.items() if k in {f.name for f in dataclasses.fields(cls)}}
        d["config"] = DenseNetConfig.from_dict(dict(d["config"])) if d.get("config") else None
        d["options"] = TrainOptions.from_dict(d["options"]) if d.get("options") else None
        d["settings"] = RunSettings.from_dict(d.get("settings") or {})
        d["keep"] = tuple(d.get("keep") or ())
        return cls(**d)

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
        self.settings.validate()
        if self.launches:
            distributed.torchrun_command([], self.nproc, self.nnodes, self.rdzv_endpoint)  # checks the three
            if self.options is not None and str(self.nnodes).isdigit():
                distributed.per_rank_batch(self.options.batch_size, self.nproc * int(self.nnodes))
            if self.device not in ("auto", "cpu", "cuda"):
                raise TrainError(f"with several processes the device is auto, cpu or cuda (each process takes "
                                 f"cuda:LOCAL_RANK), not {self.device!r}.")
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
    env = distributed.DistEnv.from_environ()
    if request.launches:
        if env.distributed:
            raise TrainError("this process already runs under torchrun; leave out --nproc / --nnodes.")
        done = distributed.launch(request.to_dict(), nproc=request.nproc, nnodes=request.nnodes,
                                  rdzv_endpoint=request.rdzv_endpoint, threads=request.threads,
                                  progress=progress, cancel=cancel, log=log)
        return TrainResult.from_dict(done)
    if not env.distributed:
        return _run_here(request, progress, cancel, say, None)
    group = process_group.open_group(env, request.device, request.settings.dist_timeout)
    try:
        result = _run_here(request, progress if env.rank == 0 else None, cancel,
                           say if env.rank == 0 else (lambda _line: None), group)
        # All ranks tear down together: none closes its connections while another still uses them.
        group.barrier()
        return result
    except DenseguiError:
        raise
    except Exception as exc:
        if process_group.is_comm_error(exc):
            raise process_group.lost_contact(env.rank, exc) from None
        raise
    finally:
        group.close()


def _run_here(request: TrainRequest, progress: Callable[[Progress], None] | None, cancel: Callable[[], bool] | None,
              say: Callable[[str], None], group: process_group.Group | None) -> TrainResult:
    """The run in this process (alone, or as one rank of ``group``)."""
    stop = cancel or (lambda: False)
    import torch

    from densegui.core.devices import resolve_device
    from densegui.core.train.data import load_dataset
    from densegui.core.train.loop import train

    if request.threads is not None:
        torch.set_num_threads(request.threads)
    device = group.device if group is not None else resolve_device(request.device)
    plan = None
    resume_path = request.resume_path
    if resume_path is not None:
        # under torchrun rank 0 reads the file and every rank starts from what it read
        plan = group.share(lambda: read_resume_plan(resume_path)) if group else read_resume_plan(resume_path)
        spec = request.dataset or plan.dataset
        if spec != plan.dataset:
            raise TrainError(f"{plan.name!r} was trained on {plan.dataset!r}, not {spec!r}.")
        options = request.options or plan.options
        if options != plan.options:
            raise TrainError(f"{plan.name!r} was trained with a different recipe ({plan.options}).")
        plan.check()
        say(f"resuming {resume_path} after epoch {plan.epoch}/{plan.options.epochs}")
        was = int((plan.checkpoint.get("metadata") or {}).get("world_size", 1))
        if was != (group.world_size if group else 1):
            say(f"{plan.name} was trained by {was} process(es), now {group.world_size if group else 1}: "
                "the run continues, but not bit for bit as the uninterrupted one would have")
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
        result = train(cfg, data, options, out, device=device, resume=plan, progress=progress, cancel=cancel,
                       settings=request.settings, group=group)
    except DenseguiError:
        raise
    except Exception as exc:
        if is_out_of_memory(exc):
            raise TrainError(f"out of memory on {device}; use a smaller batch size or model.") from None
        raise
    result.adapted = notes
    return result


def run_worker(request_file: str | Path) -> int:
    """One process of a group :func:`run_training` launched (``densegui train --worker-request FILE``).

    Rank 0 writes its progress and log lines, every rank its error, and each machine's local
    rank 0 the result, as JSON lines on stdout (:func:`distributed.emit`). Returns the exit code."""
    distributed.die_with_parent()  # the launcher's agent went away: do not train on as an orphan
    rank = 0
    try:
        env = distributed.DistEnv.from_environ()
        rank = env.rank
        try:
            request = TrainRequest.from_dict(json.loads(Path(request_file).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise TrainError(f"cannot read the launcher's request {str(request_file)!r} ({type(exc).__name__}).") \
                from None
        request = dataclasses.replace(request, nproc=1, nnodes="1", rdzv_endpoint="")
        last = [0.0]

        def send(p: Progress) -> None:  # batch lines at most every 0.1 s: a small model makes thousands
            if p.kind == "batch" and p.batch != p.batches:
                if time.monotonic() - last[0] < 0.1:
                    return
                last[0] = time.monotonic()
            distributed.emit("progress", **p.to_dict())

        result = run_training(request, progress=send, log=lambda text: distributed.emit("log", text=text))
    except DenseguiError as exc:
        distributed.emit("error", rank=rank, message=user_message(exc),
                         kind="lost" if isinstance(exc, process_group.GroupLost) else "user")
        return 2
    except Exception as exc:  # noqa: BLE001 - one line for the launcher, which prints it
        distributed.emit("error", rank=rank, message=user_message(exc, "internal error"), kind="internal")
        return 1
    if env.local_rank == 0:
        distributed.emit("result", **result.to_dict())
    return 0
