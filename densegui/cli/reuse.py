"""``densegui reuse``: the feature-reuse matrices (paper Figure 5) of a checkpoint.

Without CHECKPOINT it uses the checkpoint shipped in ``resources/``. When the
file holds several DenseNets (a model and its EMA copy), ``--candidate NAME``
picks one other than the default.
``--json`` prints one object ``{"config", "candidate", "candidates", "notes",
"blocks": [{"block", "sources", "targets", "matrix"}]}`` (raw mean |w|,
``null`` where no connection);
``--png`` renders the heatmaps without a window; ``--csv DIR`` writes one
CSV per block.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

from densegui.core.errors import DenseguiError
from densegui.core.infer import CHOICE_RULE
from densegui.core.reuse import (
    DEFAULT_CHECKPOINT,
    DEFAULT_COLORMAP,
    DEFAULT_NORMALISATION,
    NORMALISATION_LABELS,
    NORMALISATIONS,
    default_checkpoint_path,
    reuse_matrices,
    write_csv,
)


def register(sub) -> None:
    p = sub.add_parser("reuse", help="feature-reuse heatmaps (paper Figure 5) of a trained checkpoint")
    p.add_argument("checkpoint", nargs="?", metavar="CHECKPOINT",
                   help=f"a densegui checkpoint, .safetensors, or any torch file holding a DenseNet state_dict "
                        f"(torchvision, timm, MONAI, Lightning .ckpt, training checkpoints; "
                        f"default: the shipped resources/{DEFAULT_CHECKPOINT})")
    p.add_argument("--candidate", metavar="NAME",
                   help=f"which DenseNet of a file that holds several (named in the output; default: {CHOICE_RULE})")
    p.add_argument("--json", action="store_true", help="print one JSON object (config + raw matrices)")
    p.add_argument("--png", metavar="OUT.png", help="render the heatmaps to a PNG file (no window needed)")
    p.add_argument("--csv", metavar="DIR", help="write one CSV per block (block1.csv, ...) into DIR")
    scales = "; ".join(f"{mode}: {NORMALISATION_LABELS[mode]}" for mode in NORMALISATIONS)
    p.add_argument("--normalise", choices=NORMALISATIONS, default=DEFAULT_NORMALISATION,
                   help=f"colour scale of --png ({scales}; default {DEFAULT_NORMALISATION})")
    p.add_argument("--cmap", default=DEFAULT_COLORMAP, help=f"colour map of --png (default {DEFAULT_COLORMAP})")
    p.set_defaults(func=run)


def default_checkpoint() -> Path:
    path = default_checkpoint_path()
    if not path.exists():
        raise DenseguiError(
            f"no CHECKPOINT given and the shipped default resources/{DEFAULT_CHECKPOINT} is not available; "
            "pass a checkpoint file.")
    return path


def analyse(path: str | Path, candidate: str | None = None):
    """(LoadedCheckpoint, list[BlockReuse]) for ``path``."""
    from densegui.core.checkpoint import load_checkpoint

    loaded = load_checkpoint(path, candidate)
    return loaded, reuse_matrices(loaded.state_dict, loaded.config)


def reuse_json(loaded, blocks) -> dict:
    return {
        "checkpoint": loaded.path,
        "source_format": loaded.source_format,
        "inferred": loaded.inferred,
        "candidate": loaded.candidate,
        "candidates": list(loaded.candidates),
        "choice_rule": CHOICE_RULE,
        "notes": list(loaded.notes),
        "config": loaded.config.to_dict(),
        "metadata": loaded.metadata,
        "metric": "mean |w| of each target's first conv over the input channels of each source",
        "blocks": [b.to_dict() for b in blocks],
    }


def _text(loaded, blocks) -> str:
    lines = [f"Checkpoint: {loaded.describe()}"]
    others = [c for c in loaded.candidates if c != loaded.candidate]
    if others:
        lines.append(f"Show another with --candidate NAME ({', '.join(others)}).")
    lines.append("Cell = mean |w| of the target's first conv over the source's input channels ('.' = no connection).")
    for b in blocks:
        lines.append("")
        lines.append(f"Block {b.block}: rows = sources (in, 1..{len(b.sources) - 1}), "
                     f"columns = targets (1..{len(b.targets) - 1}, {b.targets[-1]})")
        short = ["T" if t.startswith("transition") else "C" if t == "classifier" else t.split()[-1] for t in b.targets]
        lines.append("      " + "".join(f"{s:>9}" for s in short))
        for name, row in zip(b.sources, b.matrix.tolist()):
            label = "in" if name == "input" else name.split()[-1]
            lines.append(f"{label:>6}" + "".join(f"{'.':>9}" if math.isnan(v) else f"{v:9.4f}" for v in row))
    return "\n".join(lines)


def run(args) -> int:
    path = Path(args.checkpoint) if args.checkpoint else default_checkpoint()
    loaded, blocks = analyse(path, args.candidate)
    if args.csv:
        written = write_csv(blocks, args.csv)
        if not args.json:
            print(f"wrote {len(written)} CSV files to {args.csv}")
    if args.png:
        _render_png(loaded, blocks, args.png, args.normalise, args.cmap)
        if not args.json:
            print(f"wrote {args.png}")
    if args.json:
        print(json.dumps(reuse_json(loaded, blocks), indent=2))
    elif not (args.csv or args.png):
        print(_text(loaded, blocks))
    return 0


def _render_png(loaded, blocks, out: str, normalisation: str, cmap: str) -> None:
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY") and sys.platform.startswith("linux"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    try:
        from densegui.gui.heatmap import render_png
    except ImportError as exc:
        raise DenseguiError(f"--png needs the Qt libraries ({exc.name or exc}).") from None
    scale = NORMALISATION_LABELS[normalisation]
    title = f"{Path(loaded.path).name}: feature reuse, mean |w| of each target's first conv per source ({scale})"
    render_png(blocks, out, normalisation=normalisation, cmap=cmap, title=title)
