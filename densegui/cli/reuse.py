"""``densegui reuse``: the feature-reuse matrices (paper Figure 5) of a checkpoint.

Without CHECKPOINT it uses the checkpoint shipped in ``resources/``; ``--pretrained NAME``
takes torchvision's published ImageNet weights (downloaded once into torch's hub cache). When
the file holds several DenseNets (a model and its EMA copy), ``--candidate NAME`` picks one
other than the default. ``--measure`` chooses what a cell is (weights, bn-weights, activation,
ablation; the last two need images: ``--data SPEC``, by default the bundled dataset the
checkpoint records).
``--json`` prints one object ``{"config", "candidate", "candidates", "notes", "measure",
"blocks": [{"block", "sources", "targets", "matrix", "noise_floor"}]}`` (raw values, ``null``
where no connection); ``--prune-curve`` adds every measure, their rank agreement with
ablation and the pruning curve.
``--png``, ``--svg`` and ``--pdf`` render the heatmaps without a window (SVG and PDF as vector
figures: a rectangle per cell, text as text); ``--csv DIR`` writes one CSV per block.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

from densegui.core.analysis.reuse import (
    DATA_MEASURES,
    DEFAULT_CHECKPOINT,
    DEFAULT_COLORMAP,
    DEFAULT_MEASURE,
    DEFAULT_NORMALISATIONS,
    MEASURE_LABELS,
    MEASURES,
    NORMALISATION_LABELS,
    NORMALISATIONS,
    default_checkpoint_path,
    write_csv,
)
from densegui.core.analysis.reuse_measures import NOISE_SEEDS
from densegui.core.errors import DenseguiError
from densegui.core.weights.checkpoint import CHOICE_RULE
from densegui.core.weights.pretrained import pretrained_names

PRETRAINED_NAMES = tuple(pretrained_names())
FIGURES = ("png", "svg", "pdf")  # --png, --svg, --pdf


def register(sub) -> None:
    p = sub.add_parser("reuse", help="feature-reuse heatmaps (paper Figure 5) of a trained checkpoint")
    p.add_argument("checkpoint", nargs="?", metavar="CHECKPOINT",
                   help=f"a densegui checkpoint, .safetensors, or any torch file holding a DenseNet state_dict "
                        f"(torchvision, timm, MONAI, Lightning .ckpt, training checkpoints) or a timm RDNet's (the "
                        f"weights measure only: it has no BatchNorm before its mixing convs; "
                        f"default: the shipped resources/{DEFAULT_CHECKPOINT})")
    p.add_argument("--pretrained", metavar="NAME", choices=PRETRAINED_NAMES,
                   help=f"torchvision's published ImageNet weights ({', '.join(PRETRAINED_NAMES)}), downloaded "
                        "once into torch's hub cache with its hash check (DENSEGUI_WEIGHTS_URL replaces the base URL)")
    measures = "; ".join(f"{m}: {MEASURE_LABELS[m]}" for m in MEASURES)
    p.add_argument("--measure", choices=MEASURES, default=DEFAULT_MEASURE,
                   help=f"what a cell is ({measures}; default {DEFAULT_MEASURE}); "
                        f"{' and '.join(DATA_MEASURES)} need images (--data)")
    p.add_argument("--data", metavar="SPEC",
                   help="images for activation and ablation, as `train --dataset` takes them (digits, KIND:FOLDER, "
                        "imagenet:FOLDER); default: the bundled dataset the checkpoint records, its held-out split")
    p.add_argument("--max-images", type=int, metavar="N", help="use at most N held-out images (a seeded subset)")
    p.add_argument("--noise-seeds", type=int, default=NOISE_SEEDS, metavar="N",
                   help=f"untrained nets whose spread is the noise floor of the weight measures (default {NOISE_SEEDS}; "
                        "the data measures' floor is their standard error over images)")
    p.add_argument("--prune-curve", action="store_true",
                   help="all four measures, each one's rank agreement with ablation (Spearman, per block) and "
                        "held-out accuracy with 0, 10, ... 90%% of connections removed weakest-first by each")
    p.add_argument("--candidate", metavar="NAME",
                   help=f"which DenseNet of a file that holds several (named in the output; default: {CHOICE_RULE})")
    p.add_argument("--json", action="store_true", help="print one JSON object (config + raw matrices)")
    p.add_argument("--png", metavar="OUT.png", help="render the heatmaps to a PNG file (no window needed)")
    p.add_argument("--svg", metavar="OUT.svg", help="render the heatmaps to an SVG file (vector, for papers)")
    p.add_argument("--pdf", metavar="OUT.pdf", help="render the heatmaps to a one-page PDF file (vector, for papers)")
    p.add_argument("--csv", metavar="DIR", help="write one CSV per block (block1.csv, ...) into DIR")
    scales = "; ".join(f"{mode}: {NORMALISATION_LABELS[mode]}" for mode in NORMALISATIONS)
    p.add_argument("--normalise", choices=NORMALISATIONS,
                   help=f"colour scale of the figures ({scales}; default: raw for ablation, column-max otherwise, "
                        "so that init-sized differences stay small colour steps)")
    p.add_argument("--cmap", default=DEFAULT_COLORMAP, help=f"colour map of the figures (default {DEFAULT_COLORMAP})")
    p.set_defaults(func=run)


def default_checkpoint() -> Path:
    path = default_checkpoint_path()
    if not path.exists():
        raise DenseguiError(
            f"no CHECKPOINT given and the shipped default resources/{DEFAULT_CHECKPOINT} is not available; "
            "pass a checkpoint file.")
    return path


def checkpoint_path(args) -> Path:
    """The file to analyse: CHECKPOINT, the --pretrained download, or the shipped default."""
    if args.pretrained:
        if args.checkpoint:
            raise DenseguiError("give a CHECKPOINT or --pretrained, not both.")
        from densegui.core.weights.pretrained import pretrained_path

        report = _Progress(f"downloading {args.pretrained}")
        path = pretrained_path(args.pretrained, progress=lambda f, _received: report(f, ""))
        report.finish()
        return path
    return Path(args.checkpoint) if args.checkpoint else default_checkpoint()


class _Progress:
    """Progress on stderr: one updating line on a terminal, a line per 10 % otherwise."""

    def __init__(self, what: str) -> None:
        self.what, self.shown, self.tty = what, -1, sys.stderr.isatty()

    def __call__(self, fraction: float, text: str) -> None:
        step = int(fraction * 10)
        if self.tty:
            print(f"\r{self.what}: {fraction:4.0%} {text[:60]:<60}", end="", file=sys.stderr, flush=True)
        elif step > self.shown:
            self.shown = step
            print(f"{self.what}: {fraction:.0%}", file=sys.stderr, flush=True)

    def finish(self) -> None:
        if self.tty:
            print(file=sys.stderr)


def reuse_json(loaded, analysis, measure: str) -> dict:
    out = {
        "checkpoint": loaded.path,
        "source_format": loaded.source_format,
        "inferred": loaded.inferred,
        "candidate": loaded.candidate,
        "candidates": list(loaded.candidates),
        "choice_rule": CHOICE_RULE,
        "notes": list(loaded.notes),
        "config": loaded.config.to_dict(),
        "metadata": loaded.metadata,
    }
    out.update(analysis.to_dict(measure))
    if analysis.prune is not None:
        out["measures"] = {name: [b.to_dict() for b in blocks] for name, blocks in analysis.measures.items()}
    return out


def _text(loaded, analysis, measure: str) -> str:
    from densegui.core.analysis.reuse_run import agreement_lines, context_lines, noise_summary

    blocks = analysis.measures[measure]
    lines = [f"Checkpoint: {loaded.describe()}"]
    others = [c for c in loaded.candidates if c != loaded.candidate]
    if others:
        lines.append(f"Show another with --candidate NAME ({', '.join(others)}).")
    lines.append(f"Cell = {MEASURE_LABELS[measure]} ('.' = no connection, '~' after a value = within the noise floor).")
    lines += context_lines(analysis)
    for b in blocks:
        lines.append("")
        lines.append(f"Block {b.block}: rows = sources (in, 1..{len(b.sources) - 1}), "
                     f"columns = targets (1..{len(b.targets) - 1}, {b.targets[-1]})")
        lines.append(noise_summary(b))
        short = ["T" if t.startswith("transition") else "C" if t == "classifier" else t.split()[-1] for t in b.targets]
        lines.append("      " + "".join(f"{s:>10}" for s in short))
        flags = b.within_noise
        for r, (name, row) in enumerate(zip(b.sources, b.matrix.tolist())):
            label = "in" if name == "input" else name.split()[-1]
            cells = []
            for t, v in enumerate(row):
                if math.isnan(v):
                    cells.append(f"{'.':>10}")
                else:
                    mark = "~" if flags is not None and flags[r, t] else " "
                    cells.append(f"{v:9.4f}{mark}" if measure != "ablation" else f"{v:+9.4f}{mark}")
            lines.append(f"{label:>6}" + "".join(cells))
    if analysis.agreement is not None:
        heading, *per_block = agreement_lines(analysis.agreement)
        lines += ["", heading] + [f"  {line}" for line in per_block]
    if analysis.prune is not None:
        curve = analysis.prune
        lines.append("")
        lines.append(f"Pruning curve: held-out accuracy with a fraction of the {curve['connections']} connections "
                     "removed weakest-first")
        lines.append(f"{'removed':>12}" + "".join(f"{f:>7.0%}" for f in curve["fractions"]))
        for name, c in curve["curves"].items():
            lines.append(f"{name:>12}" + "".join(f"{a:>7.1%}" for a in c["accuracy"]))
        last = {name: c for name, c in curve["curves"].items() if "params_saved" in c}
        if last:
            name, c = next(iter(last.items()))
            lines.append(f"(at 90 % removed by {name}: {c['params_saved'][-1]:,} parameters and "
                         f"{c['macs_saved'][-1]:,} MACs per image saved, of {curve['network_params']:,} and "
                         f"{curve['network_macs']:,})")
    return "\n".join(lines)


def run(args) -> int:
    from densegui.core.analysis.reuse_run import analyse
    from densegui.core.weights.checkpoint import load_checkpoint

    if args.max_images is not None and args.max_images < 2:
        raise DenseguiError("--max-images must be at least 2 (a standard error needs two images).")
    figures = [(fmt, getattr(args, fmt)) for fmt in FIGURES if getattr(args, fmt)]
    if figures:
        _check_figures(figures, args.cmap)  # before the analysis: a bad path or colour map fails at once
    path = checkpoint_path(args)
    loaded = load_checkpoint(path, args.candidate)
    needs_data = args.prune_curve or args.measure in DATA_MEASURES
    report = _Progress(args.measure if not args.prune_curve else "pruning curve") if needs_data else None
    analysis = analyse(loaded, [args.measure], data=args.data, max_images=args.max_images,
                       noise_seeds=args.noise_seeds, prune=args.prune_curve, progress=report)
    if report is not None:
        report.finish()
    blocks = analysis.measures[args.measure]
    if args.csv:
        written = write_csv(blocks, args.csv)
        if not args.json:
            print(f"wrote {len(written)} CSV files to {args.csv}")
    for fmt, out in figures:
        _render(loaded, blocks, fmt, out, args.normalise or DEFAULT_NORMALISATIONS[args.measure], args.cmap)
        if not args.json:
            print(f"wrote {out}")
    if args.json:
        print(json.dumps(reuse_json(loaded, analysis, args.measure), indent=2, default=_plain))
    elif not (args.csv or figures):
        print(_text(loaded, analysis, args.measure))
    return 0


def _plain(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _figure_modules():
    """gui.export and gui.heatmap, on Qt's offscreen platform when there is no display."""
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY") and sys.platform.startswith("linux"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    try:
        from densegui.gui import export, heatmap
    except ImportError as exc:
        raise DenseguiError(f"--png, --svg and --pdf need the Qt libraries ({exc.name or exc}).") from None
    return export, heatmap


def _check_figures(figures: list[tuple[str, str]], cmap: str) -> None:
    export, heatmap = _figure_modules()
    for _fmt, out in figures:
        export.check_writable(out)
    heatmap.colormap_of(cmap)


def _render(loaded, blocks, fmt: str, out: str, normalisation: str, cmap: str) -> None:
    _export, heatmap = _figure_modules()
    measure = blocks[0].measure if blocks else DEFAULT_MEASURE
    title = heatmap.figure_title(Path(loaded.path).name, measure, normalisation)
    heatmap.render(blocks, out, normalisation=normalisation, cmap=cmap, title=title, fmt=fmt)
