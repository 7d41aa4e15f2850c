"""The reuse measures that need images: activation and ablation, and the pruning curve.

* ``activation``: the mean |contribution| of a source to its target's first conv output, on
  data: mean over images, output channels and positions of |conv(a[:, slice], W[:, slice])|,
  where a = ReLU(BN(input)) is what the conv receives (the classifier: the pooled features
  times W's slice, without the bias). The conv is *computed* as the sum of those pieces, so the
  measure is one forward pass with each target's conv split by source (the same multiply-adds; on
  this CPU the narrow convs make it 2.3–3.2× a plain pass).
* ``ablation``: Δ mean held-out cross-entropy (eval mode) when the source's slice of the
  target's first weight is zeroed, and Δ accuracy; each with its standard error over images
  (paired differences). A cut re-runs the network from its target onwards only; what comes
  before is kept from the clean pass of the same batch.
* :func:`prune_curve`: remove connections weakest-first by each measure (CondenseNet's and
  network slimming's idea: zero the source's slice of the target's first weight), held-out
  accuracy at 0, 10, … 90 % removed, with the parameters and MACs the removed slices would save.

Noise floors: both are measured on a sample of images, so their noise is the standard error over
images. An activation cell is within noise when it differs from its column's median cell by at most
2 standard errors of that difference; an ablation cell when |Δ loss| ≤ 2 standard errors. (The
untrained spread the weight measures use is no floor here: an untrained net's activations are not
exchangeable between sources, the block input's are several times larger by construction.)

The data: ``spec`` as ``densegui train --dataset`` takes it; by default the dataset the
checkpoint records when it ships with densegui (digits), with the held-out split it records.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.train.data import DataError, Dataset, load_dataset
from densegui.core.errors import DenseguiError
from densegui.core.analysis.reuse import BlockReuse, block_layout
from densegui.core.analysis.reuse_measures import RANDOM_ORDERS, pruning_score

IMAGENET_MEAN = [0.485, 0.456, 0.406]  # torchvision's ImageNet weights expect these
IMAGENET_STD = [0.229, 0.224, 0.225]
BATCH = 512
PRUNE_FRACTIONS = tuple(i / 10 for i in range(10))
SE_WITHIN = 2.0  # |Δ| ≤ this many standard errors: within noise

Cancel = Callable[[], bool] | None
Progress = Callable[[float, str], None] | None


class ReuseCancelled(DenseguiError):
    """``cancel()`` returned True during a data measure."""


@dataclass
class EvalData:
    """Held-out images, normalised as the checkpoint's network expects."""

    spec: str
    description: str
    split: Any  # data.Split or data.FileSplit
    scale: float
    mean: list[float]
    std: list[float]

    def __len__(self) -> int:
        return len(self.split)

    def batches(self, batch_size: int = BATCH):
        """(normalised images in channels-last layout, labels): the layout the measures' nets use, 1.4×
        faster than NCHW for the shipped L = 40 net on this CPU (oneDNN's convolutions)."""
        from densegui.core.train.loop import _eval_batches, to_input

        for images, labels in _eval_batches(self.split, None, batch_size):
            x = to_input(images, self.scale, self.mean, self.std)
            yield x.contiguous(memory_format=torch.channels_last), labels

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec, "description": self.description, "images": len(self),
                "normalize": {"mean": self.mean, "std": self.std, "scale": self.scale}}


def resolve_data(config: DenseNetConfig, metadata: Mapping[str, Any] | None, spec: str | None = None,
                 max_images: int | None = None) -> EvalData:
    """The held-out images the data measures run on (DataError, one line, if there are none)."""
    meta = metadata or {}
    recorded = meta.get("dataset") if isinstance(meta.get("dataset"), Mapping) else {}
    recorded_spec = recorded.get("spec") if isinstance(recorded.get("spec"), str) else None
    if spec is None:
        if recorded_spec != "digits":
            trained = f" (it was trained on {recorded_spec})" if recorded_spec else ""
            raise DataError(f"this measure needs images and the checkpoint records no bundled dataset{trained}; "
                            "give images with --data (in the window: the Data field): digits, KIND:FOLDER or imagenet:FOLDER.")
        spec = recorded_spec
    same = recorded_spec == spec
    split = recorded.get("split") if same and isinstance(recorded.get("split"), Mapping) else {}
    kwargs: dict[str, Any] = {}
    if isinstance(split.get("fraction"), float):
        kwargs["fraction"] = split["fraction"]
    if isinstance(split.get("seed"), int):
        kwargs["seed"] = split["seed"]
    data = load_dataset(spec, size=config.input_size, **kwargs)
    if data.channels != config.in_channels:
        raise DataError(f"the data has {data.channels} channel{'s' * (data.channels != 1)} per image, "
                        f"the checkpoint's network takes {config.in_channels}.")
    if data.num_classes != config.num_classes:
        raise DataError(f"the data has {data.num_classes} classes, the checkpoint's classifier "
                        f"{config.num_classes}.")
    if data.size < config.min_input_size():
        raise DataError(f"the data's {data.size}×{data.size} images are smaller than the network's minimum "
                        f"input ({config.min_input_size()}).")
    if max_images is not None and max_images < len(data.test):
        data = data.subset(n_test=max_images)
    scale, mean, std = _normalisation(data, meta if same else {}, config)
    return EvalData(data.spec, f"{data.describe()}, held-out split: {len(data.test)} images",
                    data.test, scale, mean, std)


def _normalisation(data: Dataset, meta: Mapping[str, Any], config: DenseNetConfig) -> tuple[float, list, list]:
    norm = meta.get("normalize")
    if isinstance(norm, Mapping) and isinstance(norm.get("mean"), list) and isinstance(norm.get("std"), list):
        return float(norm.get("scale", data.scale)), [float(v) for v in norm["mean"]], [float(v) for v in norm["std"]]
    if data.name == "imagenet" and config.in_channels == 3:
        return data.scale, list(IMAGENET_MEAN), list(IMAGENET_STD)
    from densegui.core.train.data import Split
    from densegui.core.train.loop import channel_stats, file_stats

    if isinstance(data.train, Split):
        return (data.scale, *channel_stats(data.train, data.scale))
    return (data.scale, *file_stats(data.train))


# ------------------------------------------------------------------ the walk
Target = tuple[int, int]  # (1-based block, 0-based target: layers 0..L-1, then L = transition/classifier)
FirstOp = Callable[[Target, nn.Module, Tensor], Tensor]


def _plain(_target: Target, module: nn.Module, a: Tensor) -> Tensor:
    return module(a)


class Walk:
    """A DenseNet's eval forward pass in pieces, with each target's first op replaceable."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.config: DenseNetConfig = model.config
        feats = model.features
        self.stem = [m for name, m in feats.named_children() if not name.startswith(("denseblock", "transition"))
                     and name != "norm5"]
        self.blocks = [getattr(feats, f"denseblock{b}") for b in range(1, self.config.num_blocks + 1)]
        self.transitions = [getattr(feats, f"transition{b}") for b in range(1, self.config.num_blocks)]
        self.norm5 = feats.norm5
        self.ranges = [block_layout(self.config, b)[2] for b in range(1, self.config.num_blocks + 1)]
        self.cancel: Cancel = None  # checked before every dense layer: a cancel lands within one layer

    def weight(self, target: Target) -> Tensor:
        return self.module(target).weight

    def module(self, target: Target) -> nn.Module:
        b, t = target
        layers = list(self.blocks[b - 1].values())
        if t < len(layers):
            return layers[t].conv1
        return self.transitions[b - 1].conv if b < self.config.num_blocks else self.model.classifier

    def norm(self, target: Target) -> nn.BatchNorm2d:
        """The BatchNorm that normalises ``target``'s input."""
        b, t = target
        layers = list(self.blocks[b - 1].values())
        if t < len(layers):
            return layers[t].norm1
        return self.transitions[b - 1].norm if b < self.config.num_blocks else self.norm5

    def piece(self, target: Target, a: Tensor, start: int, end: int) -> Tensor:
        """The contribution of input channels [start, end) (``a`` holds just those) to ``target``'s
        first op, without its bias: that op is the sum of its sources' pieces (and the bias)."""
        module = self.module(target)
        w = module.weight[:, start:end]
        if isinstance(module, nn.Linear):
            return a @ w.T
        return F.conv2d(a, w, None, module.stride, module.padding, module.dilation, module.groups)

    def sources(self, target: Target) -> list[tuple[int, int]]:
        b, t = target
        return self.ranges[b - 1][:t + 1]

    def targets(self) -> list[Target]:
        return [(b, t) for b in range(1, self.config.num_blocks + 1)
                for t in range(self.config.block_depths[b - 1] + 1)]

    def run_stem(self, x: Tensor) -> Tensor:
        for m in self.stem:
            x = m(x)
        return x

    def run_block(self, b: int, feats: list[Tensor], first: FirstOp = _plain) -> Tensor:
        """Layers ``len(feats)``.. of block ``b`` on the features so far (``feats`` grows); the block output."""
        layers = list(self.blocks[b - 1].values())
        for t in range(len(feats) - 1, len(layers)):
            _check(self.cancel)
            layer = layers[t]
            out = first((b, t), layer.conv1, layer.relu1(layer.norm1(torch.cat(feats, 1))))
            if layer.bottleneck:
                out = layer.conv2(layer.relu2(layer.norm2(out)))
            feats.append(out)
        return torch.cat(feats, 1)

    def after_block(self, b: int, h: Tensor, first: FirstOp = _plain, keep: list | None = None) -> Tensor:
        """From block ``b``'s output to the logits (``keep`` collects each later block's features)."""
        depth = self.config.block_depths
        for nb in range(b, self.config.num_blocks):
            tr = self.transitions[nb - 1]
            h = tr.pool(first((nb, depth[nb - 1]), tr.conv, tr.relu(tr.norm(h))))
            feats = [h]
            h = self.run_block(nb + 1, feats, first)
            if keep is not None:
                keep.append(feats)
        pooled = self.pooled(h)
        if keep is not None:
            keep.append(pooled)
        return first((self.config.num_blocks, depth[-1]), self.model.classifier, pooled)

    def after_transition(self, b: int, first_out: Tensor) -> Tensor:
        """From transition ``b``'s conv output (before its pool) to the logits."""
        feats = [self.transitions[b - 1].pool(first_out)]
        return self.after_block(b + 1, self.run_block(b + 1, feats))

    def pooled(self, h: Tensor) -> Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(F.relu(self.norm5(h)), 1), 1)

    def forward(self, x: Tensor, first: FirstOp = _plain, keep: list | None = None) -> Tensor:
        feats = [self.run_stem(x)]
        h = self.run_block(1, feats, first)
        if keep is not None:
            keep.append(feats)
        return self.after_block(1, h, first, keep)


def require_whole_network(config: DenseNetConfig, state_dict: Mapping[str, Tensor]) -> None:
    """One line if ``state_dict`` lacks a part of the network (a made-up part would be measured)."""
    from densegui.core.arch.registry import expected_shapes

    missing = [k for k in expected_shapes(config) if k not in state_dict and not k.endswith("num_batches_tracked")]
    if missing:
        part = "classifier" if missing[0].startswith("classifier") else \
            "final BatchNorm" if missing[0].startswith("features.norm5") else "stem"
        raise DenseguiError(f"the data measures run the whole network, and this file's {part} was not "
                            f"recognised ({missing[0]!r} and {len(missing) - 1} more are missing); "
                            "the weight measures still work.")


def _build(config: DenseNetConfig, state_dict: Mapping[str, Tensor]) -> nn.Module:
    """The eval-mode network of ``state_dict`` (all of it)."""
    from densegui.core.arch.densenet.model import build_model

    require_whole_network(config, state_dict)
    model = build_model(config.replace(drop_rate=0.0, memory_efficient=False))
    model.load_state_dict(state_dict, strict=False)
    return model.to(memory_format=torch.channels_last).eval()


def network(config: DenseNetConfig, state_dict: Mapping[str, Tensor], cancel: Cancel = None) -> Walk:
    """The :class:`Walk` of ``state_dict``'s network, checking ``cancel`` before every dense layer.
    The data measures take one (``walk=``) so that a run of several builds the network once."""
    walk = Walk(_build(config, state_dict))
    walk.cancel = cancel
    return walk


def _check(cancel: Cancel) -> None:
    if cancel is not None and cancel():
        raise ReuseCancelled("cancelled.")


def _apply_first(module: nn.Module, a: Tensor, weight: Tensor) -> Tensor:
    if isinstance(module, nn.Linear):
        return F.linear(a, weight, module.bias)
    return F.conv2d(a, weight, None, module.stride, module.padding, module.dilation, module.groups)


def _blocks_from(config: DenseNetConfig, values: Mapping[Target, np.ndarray], measure: str) -> list[BlockReuse]:
    out = []
    for b in range(1, config.num_blocks + 1):
        sources, targets, ranges = block_layout(config, b)
        m = np.full((len(sources), len(targets)), np.nan)
        for t in range(len(targets)):
            v = values.get((b, t))
            if v is not None:
                m[:v.size, t] = v
        out.append(BlockReuse(b, sources, targets, m, ranges, measure=measure))
    return out


# ------------------------------------------------------------------ activation
@torch.no_grad()
def activation_values(walk: Walk, data: EvalData, cancel: Cancel = None,
                      progress: Progress = None) -> tuple[dict[Target, np.ndarray], dict[Target, np.ndarray]]:
    """Mean |contribution| of each source of each target, and its standard error over images
    (one split forward pass over ``data``)."""
    sums: dict[Target, Tensor] = {}
    squares: dict[Target, Tensor] = {}

    def split_first(target: Target, module: nn.Module, a: Tensor) -> Tensor:
        # One conv per source, summed in place into the target's output. (Measured here: 2.3–3.2× a
        # plain forward pass. A grouped conv over the layers' sources was 3.7–5.6×, one batched matmul
        # over unfolded patches 5–15×: narrow convs are what oneDNN runs slowest.)
        linear = isinstance(module, nn.Linear)
        n = a.shape[0]
        out, per_image = None, []
        for s, e in walk.sources(target):
            piece = walk.piece(target, a[:, s:e], s, e)
            per_image.append(piece.abs().reshape(n, -1).mean(1).double())  # (float32 sums of ≤ 10⁴ terms)
            out = piece if out is None else out.add_(piece)
        stacked = torch.stack(per_image)  # [sources, images]
        total, square = stacked.sum(1), (stacked * stacked).sum(1)
        if target in sums:
            sums[target] += total
            squares[target] += square
        else:
            sums[target], squares[target] = total, square
        return out + module.bias if linear and module.bias is not None else out

    n, done = len(data), 0
    for x, _ in data.batches():
        _check(cancel)
        walk.forward(x, split_first)
        done += x.shape[0]
        if progress is not None:
            progress(done / n, f"activation: {done}/{n} images")
    means = {t: (sums[t] / n).numpy() for t in sums}
    errors = {t: np.array([_stderr(float(a), float(b), n) for a, b in zip(sums[t], squares[t])]) for t in sums}
    return means, errors


def activation_blocks(config: DenseNetConfig, state_dict: Mapping[str, Tensor], data: EvalData,
                      cancel: Cancel = None, progress: Progress = None, *, walk: Walk | None = None) -> list[BlockReuse]:
    """The activation measure of every block, with its standard error as the noise floor."""
    walk = walk or network(config, state_dict, cancel)
    means, errors = activation_values(walk, data, cancel, progress)
    blocks = _blocks_from(config, means, "activation")
    for b, se in zip(blocks, _blocks_from(config, errors, "activation")):
        b.extra["stderr"] = se.matrix
        _stderr_floor(b, within_stderr(b.matrix, se.matrix), len(data),
                      f"standard error of each cell over the {len(data)} images; a cell is within noise when it "
                      f"differs from its column's median cell by at most {SE_WITHIN:g} standard errors of the difference")
    return blocks


def _stderr_floor(b: BlockReuse, within: np.ndarray, images: int, description: str) -> None:
    """Attach a standard-error noise floor (``b.extra["stderr"]``) and its within-noise cells to ``b``."""
    connected = ~np.isnan(b.matrix)
    b.within_noise = within & connected
    b.noise = {
        "kind": "standard-error",
        "description": description,
        "images": images,
        "median_stderr": float(np.nanmedian(b.extra["stderr"])) if connected.any() else None,
        "cells_within_noise": int(b.within_noise.sum()),
        "cells": int(connected.sum()),
    }


def within_stderr(matrix: np.ndarray, stderr: np.ndarray) -> np.ndarray:
    """True where a cell differs from its column's median cell by ≤ SE_WITHIN standard errors of the difference."""
    flags = np.zeros(matrix.shape, dtype=bool)
    for t in range(matrix.shape[1]):
        rows = np.flatnonzero(~np.isnan(matrix[:, t]))
        if rows.size < 2:
            flags[rows, t] = True
            continue
        col = matrix[rows, t]
        ref = rows[np.argsort(col, kind="mergesort")[(rows.size - 1) // 2]]
        spread = np.sqrt(stderr[rows, t] ** 2 + stderr[ref, t] ** 2)
        flags[rows, t] = np.abs(col - matrix[ref, t]) <= SE_WITHIN * spread
    return flags


# ------------------------------------------------------------------ ablation
def _losses(logits: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    logits = logits.float()
    return F.cross_entropy(logits, y, reduction="none").double(), (logits.argmax(1) == y).double()


def connections(walk: Walk) -> list[tuple[Target, int]]:
    """Every (target, source index) pair, in block, target, source order."""
    return [(t, s) for t in walk.targets() for s in range(len(walk.sources(t)))]


def _bn_relu(norm: nn.BatchNorm2d, x: Tensor, start: int, end: int) -> Tensor:
    """ReLU(BN(x)) for the channels [start, end) of ``norm``'s input (BatchNorm and ReLU act per channel)."""
    return F.relu(F.batch_norm(x, norm.running_mean[start:end], norm.running_var[start:end],
                               norm.weight[start:end], norm.bias[start:end], False, 0.0, norm.eps))


class _Cutter:
    """Logits with one connection cut, computed from a clean pass of the same batch.

    Exact and incremental: BatchNorm and ReLU act per channel and a first conv is linear in its
    input channels, so inside the cut's block each later target's first conv changes only by the
    conv of its *changed* input channels (those of the cut target's output and later layers):
    ``first' = first + conv(ReLU(BN(x'))[changed] − ReLU(BN(x))[changed], W[:, changed])``.
    After the block everything changes and is run again."""

    def __init__(self, walk: Walk, x: Tensor) -> None:
        self.walk, self.config = walk, walk.config
        self.firsts: dict[Target, Tensor] = {}

        def record(target: Target, module: nn.Module, a: Tensor) -> Tensor:
            out = module(a)
            self.firsts[target] = out
            return out

        keep: list = []
        self.logits = walk.forward(x, record, keep)
        self.feats, self.pooled = keep[:-1], keep[-1]

    def logits_without(self, target: Target, source: int) -> Tensor:
        walk, (b, t) = self.walk, target
        depth = self.config.block_depths[b - 1]
        start, end = walk.sources(target)[source]
        last_block = b == self.config.num_blocks
        if last_block and t == depth:  # the classifier: its input stays
            return self.logits - walk.piece(target, self.pooled[:, start:end], start, end)
        feats = self.feats[b - 1]
        if t == depth:  # a transition
            cut = self.firsts[target] - walk.piece(target, _bn_relu(walk.norm(target), feats[source], start, end),
                                                   start, end)
            return walk.after_transition(b, cut)
        layers = list(walk.blocks[b - 1].values())
        ranges = walk.ranges[b - 1]

        def output(j: int, first: Tensor) -> Tensor:
            layer = layers[j]
            return layer.conv2(layer.relu2(layer.norm2(first))) if layer.bottleneck else first

        first = self.firsts[target] - walk.piece(target, _bn_relu(walk.norm(target), feats[source], start, end),
                                                 start, end)
        new = [output(t, first)]  # sources t+1 … : the ones that changed
        lo = ranges[t + 1][0]
        for j in range(t + 1, depth if last_block else depth + 1):  # (the classifier's input is pooled below)
            hi = ranges[j][1]
            norm = walk.norm((b, j))
            changed = _bn_relu(norm, torch.cat(new, 1), lo, hi) - _bn_relu(norm, torch.cat(feats[t + 1:j + 1], 1), lo, hi)
            first = self.firsts[(b, j)] + walk.piece((b, j), changed, lo, hi)
            if j < depth:
                new.append(output(j, first))
        if not last_block:
            return walk.after_transition(b, first)
        pooled = self.pooled.clone()
        norm5 = walk.norm5
        pooled[:, lo:] = torch.flatten(F.adaptive_avg_pool2d(_bn_relu(norm5, torch.cat(new, 1), lo, norm5.num_features),
                                                             1), 1)
        return walk.model.classifier(pooled)


@torch.no_grad()
def ablation_blocks(config: DenseNetConfig, state_dict: Mapping[str, Tensor], data: EvalData,
                    cancel: Cancel = None, progress: Progress = None,
                    *, walk: Walk | None = None) -> tuple[list[BlockReuse], dict[str, Any]]:
    """Δ loss / Δ accuracy of cutting each connection, with standard errors; and the clean baseline."""
    walk = walk or network(config, state_dict, cancel)
    cuts = connections(walk)
    stats = {c: np.zeros(4) for c in cuts}  # Σd, Σd², Σdacc, Σdacc²
    base = np.zeros(2)  # Σ loss, Σ correct
    n = len(data)
    total, done = n * len(cuts), 0
    for x, y in data.batches():
        cutter = _Cutter(walk, x)
        clean_loss, clean_acc = _losses(cutter.logits, y)
        base += (float(clean_loss.sum()), float(clean_acc.sum()))
        for number, (target, s) in enumerate(cuts, 1):
            _check(cancel)
            loss, acc = _losses(cutter.logits_without(target, s), y)
            d, da = loss - clean_loss, acc - clean_acc
            stats[(target, s)] += (float(d.sum()), float((d * d).sum()), float(da.sum()), float((da * da).sum()))
            done += x.shape[0]
            if progress is not None:
                progress(done / total, f"ablation: cut {number} of {len(cuts)}")
    matrices = {name: {} for name in ("delta_loss", "delta_accuracy", "stderr", "stderr_accuracy")}
    for (target, s), (sd, sd2, sa, sa2) in stats.items():
        for name, value in (("delta_loss", sd / n), ("delta_accuracy", sa / n),
                            ("stderr", _stderr(sd, sd2, n)), ("stderr_accuracy", _stderr(sa, sa2, n))):
            matrices[name].setdefault(target, np.full(len(walk.sources(target)), np.nan))[s] = value
    blocks = _blocks_from(config, matrices["delta_loss"], "ablation")
    for name in ("delta_accuracy", "stderr", "stderr_accuracy"):
        for b, other in zip(blocks, _blocks_from(config, matrices[name], "ablation")):
            b.extra[name] = other.matrix
    for b in blocks:
        with np.errstate(invalid="ignore"):
            within = np.abs(b.matrix) <= SE_WITHIN * b.extra["stderr"]
        _stderr_floor(b, within, n, f"standard error of each cell's Δ loss over the {n} held-out images (paired "
                                    f"differences); a cell is within noise when |Δ loss| ≤ {SE_WITHIN:g} standard errors")
    baseline = {"loss": base[0] / n, "accuracy": base[1] / n, "images": n}
    return blocks, baseline


def _stderr(s: float, s2: float, n: int) -> float:
    if n < 2:
        return math.nan
    var = max(s2 / n - (s / n) ** 2, 0.0) * n / (n - 1)
    return math.sqrt(var / n)


# ------------------------------------------------------------------ pruning
def slice_cost(config: DenseNetConfig, target: Target, weight_shape: Sequence[int], channels: int) -> tuple[int, int]:
    """(parameters, MACs) of one source's slice of a target's first weight, plus that target's
    BatchNorm γ and β for those channels (the parameters), per image (the MACs)."""
    b, t = target
    out = weight_shape[0]
    kernel = math.prod(weight_shape[2:]) if len(weight_shape) > 2 else 1
    params = out * channels * kernel + 2 * channels
    is_classifier = b == config.num_blocks and t == config.block_depths[b - 1]
    side = 1 if is_classifier else config.spatial_sizes()[b - 1]
    return params, out * channels * kernel * side * side


@torch.no_grad()
def evaluate_removed(walk: Walk, data: EvalData, removed: Mapping[Target, Sequence[int]],
                     cancel: Cancel = None) -> tuple[float, float]:
    """(accuracy, mean loss) with the given source slices of each target's first weight zeroed."""
    weights = {}
    for target, sources in removed.items():
        w = walk.weight(target).detach().clone()
        for s in sources:
            start, end = walk.sources(target)[s]
            w[:, start:end] = 0
        weights[target] = w

    def first(target: Target, module: nn.Module, a: Tensor) -> Tensor:
        w = weights.get(target)
        return module(a) if w is None else _apply_first(module, a, w)

    loss = correct = 0.0
    for x, y in data.batches():
        _check(cancel)
        l, c = _losses(walk.forward(x, first), y)
        loss, correct = loss + float(l.sum()), correct + float(c.sum())
    return correct / len(data), loss / len(data)


def prune_curve(config: DenseNetConfig, state_dict: Mapping[str, Tensor], data: EvalData,
                measures: Mapping[str, list[BlockReuse]], fractions: Sequence[float] = PRUNE_FRACTIONS,
                random_orders: int = RANDOM_ORDERS, cancel: Cancel = None,
                progress: Progress = None, *, walk: Walk | None = None) -> dict[str, Any]:
    """Held-out accuracy after removing the weakest connections by each measure (and at random)."""
    from densegui.core.arch.registry import layer_table

    walk = walk or network(config, state_dict, cancel)
    cells = connections(walk)
    cost = {}
    for target, s in cells:
        start, end = walk.sources(target)[s]
        cost[(target, s)] = slice_cost(config, target, tuple(walk.weight(target).shape), end - start)
    orders: dict[str, list[list[tuple[Target, int]]]] = {}
    for name, blocks in measures.items():
        score = {}
        for b in blocks:
            m = pruning_score(b)
            for target, s in cells:
                if target[0] == b.block:
                    score[(target, s)] = m[s, target[1]]
        if any(math.isnan(v) for v in score.values()):
            continue  # (a measure with empty columns cannot order every connection)
        orders[name] = [sorted(cells, key=lambda c: score[c])]
    rng = np.random.default_rng(0)
    orders["random"] = [[cells[i] for i in rng.permutation(len(cells))] for _ in range(random_orders)]
    table = layer_table(config)
    steps = sum(len(o) for o in orders.values()) * len(fractions)
    step = 0
    curves: dict[str, Any] = {}
    for name, runs in orders.items():
        accuracy = np.zeros((len(runs), len(fractions)))
        loss = np.zeros_like(accuracy)
        for r, order in enumerate(runs):
            for i, f in enumerate(fractions):
                n_cut = int(round(f * len(order)))
                removed: dict[Target, list[int]] = {}
                for target, s in order[:n_cut]:
                    removed.setdefault(target, []).append(s)
                accuracy[r, i], loss[r, i] = evaluate_removed(walk, data, removed, cancel)
                step += 1
                if progress is not None:
                    progress(step / steps, f"pruning by {name}: {f:.0%} removed")
        entry: dict[str, Any] = {"accuracy": accuracy.mean(0).tolist(), "loss": loss.mean(0).tolist()}
        if len(runs) > 1:
            entry["accuracy_min"], entry["accuracy_max"] = accuracy.min(0).tolist(), accuracy.max(0).tolist()
            entry["orders"] = len(runs)
        if name != "random":
            saved = [[sum(cost[c][k] for c in runs[0][:int(round(f * len(cells)))]) for f in fractions] for k in (0, 1)]
            entry["params_saved"], entry["macs_saved"] = saved
        curves[name] = entry
    return {"fractions": list(fractions), "connections": len(cells), "images": len(data),
            "network_params": table.params, "network_macs": table.macs, "curves": curves,
            "rule": ("connections removed weakest first by each measure (ratio measures within each target "
                     "column, ablation by Δ loss); removing a connection zeroes the source's slice of the "
                     "target's first weight; savings: those slices and the target BatchNorm's γ, β for them")}
