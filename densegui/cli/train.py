"""``densegui train``: train a DenseNet with the paper's recipe and write a densegui checkpoint.

Without model flags it trains the shipped digits architecture (basic
DenseNet, k=12, θ=1, three blocks, CIFAR stem). ``in_channels``,
``num_classes`` and ``input_size`` follow the dataset unless given
explicitly. The checkpoint is rewritten atomically after every epoch;
``--resume PATH`` continues an interrupted run exactly.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from densegui.cli.common import _OVERRIDES, add_model_args, config_from_args
from densegui.core.errors import DenseguiError

_DATA_FIELDS = ("in_channels", "num_classes", "input_size")
_RECIPE = ("epochs", "batch_size", "lr", "seed")


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="train a DenseNet (SGD + Nesterov, paper's step schedule) and write a checkpoint",
        description="Train a DenseNet and write a densegui checkpoint after every epoch. Without model flags: "
                    "the shipped digits architecture (basic, k=12, θ=1, blocks 5,5,5, CIFAR stem).")
    add_model_args(p)
    g = p.add_argument_group("training")
    g.add_argument("--dataset", metavar="SPEC",
                   help="digits (bundled with scikit-learn, default), or KIND:FOLDER with KIND one of cifar10, "
                        "cifar100, mnist, fashion-mnist, folder; a bare FOLDER is detected")
    g.add_argument("--epochs", type=int, help="epochs (default 30)")
    g.add_argument("--batch-size", type=int, help="mini-batch size (default 64, the paper's)")
    g.add_argument("--lr", type=float, help="initial learning rate, ÷10 at 50%% and 75%% of the epochs (default 0.1)")
    g.add_argument("--seed", type=int, help="seed of the initial weights and every epoch's shuffling (default 0)")
    g.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    g.add_argument("--threads", type=int, metavar="N", help="CPU threads for PyTorch (default: PyTorch's choice)")
    g.add_argument("--no-augment", action="store_true", help="no random shifts/flips")
    g.add_argument("--out", metavar="PATH", help="checkpoint to write (default densenet-<dataset>.pt; with "
                                                   "--resume, the resumed file)")
    g.add_argument("--resume", metavar="PATH", help="continue the interrupted run saved in PATH")
    g.add_argument("--json", action="store_true", help="print a JSON summary on stdout at the end")
    p.set_defaults(func=run)


class _Bar:
    """One carriage-return progress line per epoch on stderr (full lines only when not a terminal)."""

    def __init__(self, stream=None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.last = 0.0

    def __call__(self, p) -> None:
        if p.kind == "start":
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


def run(args: argparse.Namespace) -> int:
    import torch

    from densegui.core.data import load_dataset
    from densegui.core.devices import resolve_device
    from densegui.core.train import (TrainCancelled, TrainError, TrainOptions, adapt_config, default_config,
                                     read_train_checkpoint, train)

    if args.threads is not None:
        if not 1 <= args.threads <= 1024:
            raise TrainError(f"--threads must be from 1 to 1024, got {args.threads}.")
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    model_flags = _given(args, ["preset", "config", *_OVERRIDES])

    if args.resume:
        if model_flags:
            flag = model_flags[0].replace("_", "-")
            raise TrainError(f"--{flag} cannot be combined with --resume: the run continues with the "
                             "configuration stored in the checkpoint.")
        from densegui.core.config import DenseNetConfig

        ck = read_train_checkpoint(args.resume)
        ts = ck.get("train_state") or {}
        if "options" not in ts:
            raise TrainError(f"{Path(args.resume).name!r} has no training state to resume from.")
        options = TrainOptions.from_dict(dict(ts["options"]))
        for name in _RECIPE:
            given = getattr(args, name)
            if given is not None and given != getattr(options, name):
                raise TrainError(f"--{name.replace('_', '-')} {given} differs from the resumed run's "
                                 f"{getattr(options, name)}; leave it out to resume exactly.")
        if args.no_augment and options.augment:
            raise TrainError("--no-augment differs from the resumed run (which augments); leave it out.")
        spec = ts.get("dataset", "digits")
        if args.dataset and args.dataset != spec:
            raise TrainError(f"--dataset {args.dataset} differs from the resumed run's {spec}; leave it out.")
        stored_ds = (ck.get("metadata") or {}).get("dataset") or {}
        split = stored_ds.get("split") or {}
        data = load_dataset(spec, size=stored_ds.get("size"), fraction=float(split.get("fraction", 0.2)),
                            seed=int(split.get("seed", 0)))
        cfg = DenseNetConfig.from_dict(dict(ck["config"]))
        out = Path(args.out or args.resume)
        if int(ts.get("epoch", 0)) >= options.epochs:
            raise TrainError(f"{Path(args.resume).name!r} has already finished all {options.epochs} epochs; "
                             "nothing to resume.")
        print(f"resuming {args.resume} after epoch {ts.get('epoch')}/{options.epochs}", file=sys.stderr)
    else:
        data = load_dataset(args.dataset or "digits", size=args.input_size)
        base = config_from_args(args) if (args.preset or args.config) else _override(default_config(), args)
        cfg, notes = adapt_config(base, data, keep=tuple(_given(args, _DATA_FIELDS)))
        if notes:
            print(f"adapted the configuration to {data.name}: {', '.join(notes)}", file=sys.stderr)
        defaults = TrainOptions()
        options = TrainOptions(
            epochs=args.epochs if args.epochs is not None else defaults.epochs,
            batch_size=args.batch_size if args.batch_size is not None else defaults.batch_size,
            lr=args.lr if args.lr is not None else defaults.lr,
            seed=args.seed if args.seed is not None else defaults.seed,
            augment=not args.no_augment,
        ).validate()
        out = Path(args.out or f"densenet-{data.name}.pt")
    if out.is_dir():
        raise TrainError(f"--out {str(out)!r} is a folder; give a file name.")

    try:
        result = train(cfg, data, options, out, device=device, resume=args.resume, progress=_Bar())
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with: densegui train --resume {out}", file=sys.stderr)
        return 130
    except TrainCancelled as exc:  # pragma: no cover - the CLI never cancels
        raise DenseguiError(str(exc)) from None
    except (RuntimeError, MemoryError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, MemoryError) or "out of memory" in text.lower():
            raise TrainError(f"out of memory on {device}; use a smaller --batch-size or model.") from None
        raise
    acc = result.val_accuracy
    print(f"done: {result.epochs_done} epochs in {result.seconds:.1f} s, held-out accuracy "
          f"{100 * acc:.2f}% on {len(data.test)} images → {out}", file=sys.stderr)
    if args.json:
        print(json.dumps({"checkpoint": str(out), "config": cfg.to_dict(), "dataset": data.to_metadata(),
                          "options": options.to_dict(), "device": str(device), "seconds": round(result.seconds, 3),
                          "heldout_accuracy": None if math.isnan(acc) else acc, "history": result.history}))
    return 0


def _override(base, args: argparse.Namespace):
    changes = {field: getattr(args, flag) for flag, field in _OVERRIDES.items() if getattr(args, flag, None) is not None}
    return base.replace(**changes).validate()
