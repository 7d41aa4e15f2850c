"""``densegui train``: train a DenseNet with the paper's recipe and write a densegui checkpoint.

Without model flags it trains the shipped digits architecture (basic
DenseNet, k=12, θ=1, three blocks, CIFAR stem). ``in_channels``,
``num_classes`` and ``input_size`` follow the dataset unless given
explicitly. The checkpoint is rewritten atomically after every epoch;
``--resume PATH`` continues an interrupted run exactly. Under ``torchrun``
every process runs this command and rank 0 alone prints; ``--nproc N``
starts that through ``torch.distributed.run`` itself (docs/train.md).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

from densegui.cli.common import add_model_args, config_from_args, field_flags
from densegui.core.arch.family import TRAIN
from densegui.core.errors import DenseguiError
from densegui.core.train.setup import (DATA_FIELDS, TRAIN_PRECISIONS, RunSettings, TrainError, TrainOptions,
                                       TrainRequest, default_config, run_training, run_worker)

_RECIPE = ("epochs", "batch_size", "lr", "seed")


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="train a DenseNet (SGD + Nesterov, paper's step schedule) and write a checkpoint",
        description="Train a DenseNet and write a densegui checkpoint after every epoch. Without --preset or "
                    "--config: the shipped digits architecture (basic layers, k=12, θ=1, blocks 5,5,5, CIFAR stem "
                    "with 16 features), with any field flag applied on top.")
    add_model_args(p)
    for action in p._actions:  # the shared help names summary's default preset, which train does not use
        if action.dest == "preset":
            action.help = "a preset (see `densegui presets`; default: none, the digits architecture above)"
    g = p.add_argument_group("training")
    g.add_argument("--dataset", metavar="SPEC",
                   help="digits (shipped with densegui, default), or KIND:FOLDER with KIND one of cifar10, "
                        "cifar100, mnist, fashion-mnist, folder; a bare FOLDER is detected")
    g.add_argument("--epochs", type=int, help="epochs (default 30)")
    g.add_argument("--batch-size", type=int, help="mini-batch size (default 64, the paper's)")
    g.add_argument("--lr", type=float, help="initial learning rate, ÷10 at 50%% and 75%% of the training steps (default 0.1)")
    g.add_argument("--seed", type=int, help="seed of the initial weights and every epoch's shuffling (default 0)")
    g.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    g.add_argument("--threads", type=int, metavar="N", help="CPU threads for PyTorch (default: PyTorch's choice)")
    g.add_argument("--no-augment", action="store_true", help="no random shifts/flips")
    g.add_argument("--out", metavar="PATH", help="checkpoint to write (default densenet-<dataset>.pt; with "
                                                   "--resume, the resumed file)")
    g.add_argument("--resume", metavar="PATH", help="continue the interrupted run saved in PATH")
    g.add_argument("--json", action="store_true", help="print a JSON summary on stdout at the end")
    s = p.add_argument_group("speed and processes")
    s.add_argument("--precision", choices=TRAIN_PRECISIONS, help="autocast precision (fp16 adds a gradient "
                                                                 "scaler; default fp32)")
    s.add_argument("--channels-last", action="store_true", help="NHWC memory layout (faster convs on recent GPUs)")
    s.add_argument("--compile", action="store_true", help="torch.compile the model (slow first epoch)")
    s.add_argument("--workers", type=int, metavar="N", help="DataLoader processes per rank for imagenet:DIR "
                                                           "(default: up to 8)")
    s.add_argument("--nproc", type=int, metavar="N", help="train in N processes on this machine through "
                                                         "torch.distributed.run (one per GPU; gloo on CPUs)")
    s.add_argument("--nnodes", metavar="N|MIN:MAX", help="machines taking part (with --rdzv-endpoint)")
    s.add_argument("--rdzv-endpoint", metavar="HOST:PORT", help="rendezvous of a run on several machines")
    s.add_argument("--sync-bn", action="store_true", help="BatchNorm statistics over all processes (CUDA)")
    s.add_argument("--dist-timeout", type=float, metavar="S", help="seconds a process waits for the others "
                                                                  "before the job fails (default 300)")
    p.add_argument("--worker-request", help=argparse.SUPPRESS)  # one process of a group --nproc launched
    p.set_defaults(func=run)


class _Bar:
    """One carriage-return progress line per epoch on stderr (full lines only when not a terminal)."""

    def __init__(self, stream=None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.last = 0.0
        self.checkpoint = ""  # where the run writes, once it has started

    def __call__(self, p) -> None:
        if p.kind == "start":
            self.checkpoint = p.checkpoint
            print(f"training on {p.message}; {p.batches} batches per epoch", file=self.stream, flush=True)
        elif p.kind == "batch" and self.tty:
            now = time.perf_counter()
            if now - self.last < 0.1 and p.batch != p.batches:
                return
            self.last = now
            width = 20
            fill = int(width * p.batch / max(p.batches, 1))
            print(f"\repoch {p.epoch}/{p.epochs} [{'#' * fill}{'.' * (width - fill)}] {p.batch}/{p.batches} "
                  f"loss {p.loss:.4f} acc {100 * p.accuracy:5.1f}% {p.images_per_s:7.0f} img/s",
                  end="", file=self.stream, flush=True)
        elif p.kind == "epoch":
            print(f"{chr(13) if self.tty else ''}epoch {p.epoch}/{p.epochs} lr {p.lr:g} loss {p.loss:.4f} "
                  f"acc {100 * p.accuracy:5.1f}% | held-out loss {p.val_loss:.4f} acc {100 * p.val_accuracy:5.2f}% "
                  f"| {p.images_per_s:.0f} img/s {p.seconds:.1f} s → {p.checkpoint}"
                  + " " * 8, file=self.stream, flush=True)


def _given(args: argparse.Namespace, names) -> list[str]:
    return [n for n in names if getattr(args, n, None) not in (None, False)]


def _check_resume_flags(args: argparse.Namespace):
    """One line naming the first flag that would change the resumed run; else its ResumePlan."""
    from densegui.core.train.records import read_resume_plan

    model_flags = _given(args, ["preset", "config", *[k for k in field_flags() if k != "memory_efficient"]])
    if model_flags:
        flag = model_flags[0].replace("_", "-")
        raise TrainError(f"--{flag} cannot be combined with --resume: the run continues with the "
                         "configuration stored in the checkpoint.")
    plan = read_resume_plan(args.resume)
    for name in _RECIPE:
        given = getattr(args, name)
        if given is not None and given != getattr(plan.options, name):
            raise TrainError(f"--{name.replace('_', '-')} {given} differs from the resumed run's "
                             f"{getattr(plan.options, name)}; leave it out to resume exactly.")
    if args.no_augment and plan.options.augment:
        raise TrainError("--no-augment differs from the resumed run (which augments); leave it out.")
    if args.dataset and args.dataset != plan.dataset:
        raise TrainError(f"--dataset {args.dataset} differs from the resumed run's {plan.dataset}; leave it out.")
    return plan


def _settings(args: argparse.Namespace) -> RunSettings:
    given = {"precision": args.precision, "workers": args.workers, "dist_timeout": args.dist_timeout}
    return RunSettings(channels_last=args.channels_last, compile=args.compile, sync_bn=args.sync_bn,
                       **{k: v for k, v in given.items() if v is not None}).validate()


def run(args: argparse.Namespace) -> int:
    if args.worker_request:
        return run_worker(args.worker_request)
    try:
        return _run(args)
    except DenseguiError as exc:
        rank = os.environ.get("RANK", "0")
        if rank not in ("", "0"):  # under torchrun every process may refuse: say which one this is
            raise DenseguiError(f"rank {rank}: {exc}") from None
        raise


def _run(args: argparse.Namespace) -> int:
    if args.threads is not None and not 1 <= args.threads <= 1024:
        raise TrainError(f"--threads must be from 1 to 1024, got {args.threads}.")
    if args.out and Path(args.out).is_dir():
        raise TrainError(f"--out {str(Path(args.out))!r} is a folder; give a file name.")
    settings = _settings(args)
    launch = {"nproc": args.nproc if args.nproc is not None else 1, "nnodes": args.nnodes or "1",
              "rdzv_endpoint": args.rdzv_endpoint or ""}
    if args.resume:
        plan = _check_resume_flags(args)
        # --memory-efficient changes how the same network is computed, so a resumed run may switch it
        config = plan.config.replace(memory_efficient=args.memory_efficient) if args.memory_efficient is not None \
            else None
        request = TrainRequest(config=config, out=args.out, device=args.device, resume=args.resume,
                               threads=args.threads, settings=settings, **launch)
    else:
        defaults = TrainOptions()
        options = TrainOptions(
            epochs=args.epochs if args.epochs is not None else defaults.epochs,
            batch_size=args.batch_size if args.batch_size is not None else defaults.batch_size,
            lr=args.lr if args.lr is not None else defaults.lr,
            seed=args.seed if args.seed is not None else defaults.seed,
            augment=not args.no_augment,
        )
        request = TrainRequest(config=config_from_args(args, default=default_config(), need=TRAIN),
                               dataset=args.dataset or "digits", options=options, out=args.out,
                               device=args.device, threads=args.threads, keep=tuple(_given(args, DATA_FIELDS)),
                               settings=settings, **launch)
    bar = _Bar()
    try:
        result = run_training(request, progress=bar, log=lambda line: print(line, file=sys.stderr))
    except KeyboardInterrupt:
        if not bar.checkpoint:  # interrupted before training began: nothing to resume
            raise
        print(f"\ninterrupted; continue with: densegui train --resume {bar.checkpoint}", file=sys.stderr)
        return 130
    if result.rank != 0:  # under torchrun rank 0 alone reports
        return 0
    acc = result.val_accuracy
    print(f"done: {result.epochs_done} epochs in {result.seconds:.1f} s, held-out accuracy "
          f"{100 * acc:.2f}% on {result.dataset['num_test']} images → {result.checkpoint}", file=sys.stderr)
    if args.json:
        print(json.dumps({"checkpoint": result.checkpoint, "config": result.config.to_dict(),
                          "dataset": result.dataset, "options": result.options.to_dict(), "device": result.device,
                          "seconds": round(result.seconds, 3), "heldout_accuracy": None if math.isnan(acc) else acc,
                          "world_size": result.world_size, "history": result.history}))
    return 0
