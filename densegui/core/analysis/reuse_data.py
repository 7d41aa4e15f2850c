"""The reuse measures that need images: activation and ablation.

* ``activation``: the mean |contribution| of a source to its target's first conv output, on
  data: mean over images, output channels and positions of |conv(a[:, slice], W[:, slice])|,
  where a = ReLU(BN(input)) is what the conv receives (the classifier: the pooled features
  times W's slice, without the bias). The conv is *computed* as the sum of those pieces, so the
  measure is one forward pass with each target's conv split by source (the same multiply-adds,
  in narrower convs).
* ``ablation``: Δ mean held-out cross-entropy (eval mode) when the source's slice of the
  target's first weight is zeroed, and Δ accuracy; each with its standard error over images
  (paired differences). A cut re-runs the network from its target onwards only; what comes
  before is kept from the clean pass of the same batch.

Noise floors: both are measured on a sample of images, so their noise is the standard error over
images. An activation cell is within noise when it differs from its column's median cell by at most
2 standard errors of that difference; an ablation cell when |Δ loss| ≤ 2 standard errors. (The
untrained spread the weight measures use is no floor here: an untrained net's activations are not
exchangeable between sources, the block input's are several times larger by construction.)

The network runs as a :class:`~densegui.core.analysis.reuse_walk.Walk`; the images are an
:class:`~densegui.core.analysis.reuse_images.EvalData`; the pruning curve is in
:mod:`densegui.core.analysis.reuse_prune`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from densegui.core.analysis.reuse import BlockReuse
from densegui.core.analysis.reuse_walk import (
    Cancel,
    Progress,
    Target,
    Walk,
    after_mixer,
    check,
    losses,
    network,
)

if TYPE_CHECKING:
    from densegui.core.analysis.reuse_images import EvalData

SE_WITHIN = 2.0  # |Δ| ≤ this many standard errors: within noise


def _blocks_from(walk: Walk, values: Mapping[Target, np.ndarray], measure: str) -> list[BlockReuse]:
    """Block matrices from per-target values, one per source the target reads (in its read order)."""
    out = []
    for layout in walk.layouts:
        sources, targets = layout.sources, layout.targets
        m = np.full((len(sources), len(targets)), np.nan)
        for t in range(len(targets)):
            v = values.get((layout.block, t))
            if v is not None:
                m[walk.rows((layout.block, t)), t] = v
        out.append(BlockReuse(layout.block, list(sources), list(targets), m, list(layout.ranges), measure=measure,
                              reads=list(layout.reads)))
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
        # One conv per source, summed in place into the target's output (a grouped conv over the
        # sources, or one matmul over unfolded patches, was slower: narrow convs are what oneDNN runs slowest).
        linear = isinstance(module, nn.Linear)
        n = a.shape[0]
        out, per_image = None, []
        for _, s, e in walk.sources(target):
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
        check(cancel)
        walk.forward(x, split_first)
        done += x.shape[0]
        if progress is not None:
            progress(done / n, f"activation: {done}/{n} images")
    means = {t: (sums[t] / n).numpy() for t in sums}
    errors = {t: np.array([_stderr(float(a), float(b), n) for a, b in zip(sums[t], squares[t])]) for t in sums}
    return means, errors


def activation_blocks(config: Any, state_dict: Mapping[str, Tensor], data: EvalData,
                      cancel: Cancel = None, progress: Progress = None, *, walk: Walk | None = None) -> list[BlockReuse]:
    """The activation measure of every block, with its standard error as the noise floor."""
    walk = walk or network(config, state_dict, cancel)
    means, errors = activation_values(walk, data, cancel, progress)
    blocks = _blocks_from(walk, means, "activation")
    for b, se in zip(blocks, _blocks_from(walk, errors, "activation")):
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
def _bn_relu(norm: nn.BatchNorm2d, x: Tensor, start: int, end: int) -> Tensor:
    """ReLU(BN(x)) for the channels [start, end) of ``norm``'s input (BatchNorm and ReLU act per channel)."""
    return F.relu(F.batch_norm(x, norm.running_mean[start:end], norm.running_var[start:end],
                               norm.weight[start:end], norm.bias[start:end], False, 0.0, norm.eps))


class _Cutter:
    """Logits with one connection cut, computed from a clean pass of the same batch.

    Exact and incremental: BatchNorm and ReLU act per channel and a first conv is linear in its
    input channels, so inside the cut's block each later target's first conv changes only by the
    conv of its *changed* input channels (the cut target's output and the later layers that read a
    changed feature map; densely all later layers, under ``log`` or ``window:W`` perhaps fewer):
    ``first' = first + conv(ReLU(BN(x'))[changed] − ReLU(BN(x))[changed], W[:, changed])``.
    After the block everything changes and is run again."""

    def __init__(self, walk: Walk, x: Tensor) -> None:
        self.walk = walk
        self.firsts: dict[Target, Tensor] = {}

        def record(target: Target, module: nn.Module, a: Tensor) -> Tensor:
            out = module(a)
            self.firsts[target] = out
            return out

        keep: list = []
        self.logits = walk.forward(x, record, keep)
        self.feats, self.pooled = keep[:-1], keep[-1]

    def logits_without(self, target: Target, source: int) -> Tensor:
        """The logits with the connection from source row ``source`` to ``target`` cut."""
        walk, (b, t) = self.walk, target
        depth = walk.depth(b)
        start, end = walk.channels(target, source)
        last_block = b == len(walk.layouts)
        if last_block and t == depth:  # the classifier: its input stays
            return self.logits - walk.piece(target, self.pooled[:, start:end], start, end)
        feats = self.feats[b - 1]
        if t == depth:  # a transition
            cut = self.firsts[target] - walk.piece(target, _bn_relu(walk.norm(target), feats[source], start, end),
                                                   start, end)
            return walk.after_transition(b, cut)
        layers = walk.layers[b - 1]
        first = self.firsts[target] - walk.piece(target, _bn_relu(walk.norm(target), feats[source], start, end),
                                                 start, end)
        new = {t + 1: after_mixer(layers[t], first)}  # the rows that changed: t+1, and those that read a changed one
        for j in range(t + 1, depth if last_block else depth + 1):  # (the classifier's input is pooled below)
            runs = _changed_runs(walk.sources((b, j)), new)
            if not runs:
                continue  # (sparse connectivity: layer j+1 reads no changed row, its output stays)
            norm = walk.norm((b, j))
            first = self.firsts[(b, j)]
            for rows, lo, hi in runs:
                changed = (_bn_relu(norm, torch.cat([new[r] for r in rows], 1), lo, hi)
                           - _bn_relu(norm, torch.cat([feats[r] for r in rows], 1), lo, hi))
                first = first + walk.piece((b, j), changed, lo, hi)
            if j < depth:
                new[j + 1] = after_mixer(layers[j], first)
        if not last_block:
            return walk.after_transition(b, first)
        pooled = self.pooled.clone()
        norm5 = walk.norm5
        for rows, lo, hi in _changed_runs(walk.sources(walk.head), new):
            pooled[:, lo:hi] = torch.flatten(F.adaptive_avg_pool2d(_bn_relu(norm5, torch.cat([new[r] for r in rows], 1),
                                                                            lo, hi), 1), 1)
        return walk.module(walk.head)(pooled)


def _changed_runs(reads: tuple[tuple[int, int, int], ...],
                  new: Mapping[int, Tensor]) -> list[tuple[list[int], int, int]]:
    """The changed rows among a target's ``reads``, grouped into runs of adjacent channels (rows, lo, hi):
    one narrow conv per run (densely the changed rows are one run, a single conv)."""
    runs: list[tuple[list[int], int, int]] = []
    for row, start, end in reads:
        if row not in new:
            continue
        if runs and runs[-1][2] == start:
            rows, lo, _ = runs[-1]
            runs[-1] = (rows + [row], lo, end)
        else:
            runs.append(([row], start, end))
    return runs


@torch.no_grad()
def ablation_blocks(config: Any, state_dict: Mapping[str, Tensor], data: EvalData,
                    cancel: Cancel = None, progress: Progress = None,
                    *, walk: Walk | None = None) -> tuple[list[BlockReuse], dict[str, Any]]:
    """Δ loss / Δ accuracy of cutting each connection, with standard errors; and the clean baseline."""
    walk = walk or network(config, state_dict, cancel)
    cuts = walk.connections()
    stats = {c: np.zeros(4) for c in cuts}  # Σd, Σd², Σdacc, Σdacc²
    base = np.zeros(2)  # Σ loss, Σ correct
    n = len(data)
    total, done = n * len(cuts), 0
    for x, y in data.batches():
        cutter = _Cutter(walk, x)
        clean_loss, clean_acc = losses(cutter.logits, y)
        base += (float(clean_loss.sum()), float(clean_acc.sum()))
        for number, (target, s) in enumerate(cuts, 1):
            check(cancel)
            loss, acc = losses(cutter.logits_without(target, s), y)
            d, da = loss - clean_loss, acc - clean_acc
            stats[(target, s)] += (float(d.sum()), float((d * d).sum()), float(da.sum()), float((da * da).sum()))
            done += x.shape[0]
            if progress is not None:
                progress(done / total, f"ablation: cut {number} of {len(cuts)}")
    matrices = {name: {} for name in ("delta_loss", "delta_accuracy", "stderr", "stderr_accuracy")}
    for (target, s), (sd, sd2, sa, sa2) in stats.items():
        for name, value in (("delta_loss", sd / n), ("delta_accuracy", sa / n),
                            ("stderr", _stderr(sd, sd2, n)), ("stderr_accuracy", _stderr(sa, sa2, n))):
            column = matrices[name].setdefault(target, np.full(len(walk.sources(target)), np.nan))
            column[walk.rows(target).index(s)] = value  # (in the target's read order, as _blocks_from takes it)
    blocks = _blocks_from(walk, matrices["delta_loss"], "ablation")
    for name in ("delta_accuracy", "stderr", "stderr_accuracy"):
        for b, other in zip(blocks, _blocks_from(walk, matrices[name], "ablation")):
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
