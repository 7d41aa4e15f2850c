"""The data-free reuse measures, the noise floor of every measure, and rank agreement.

* ``weights``: the paper's mean |w| (:func:`block_reuse`, :func:`reuse_matrices`) over the blocks
  the family's plan states (:func:`densegui.core.analysis.reuse.block_layouts`).
* ``bn-weights``: for each input channel c of a target, |γ_c|/√(var_c+ε) of the BatchNorm that
  normalises the target's input (the plan unit's last BatchNorm before its mixer: a dense
  layer's ``norm1``, the transition's ``norm``, ``norm5`` before the classifier) times mean
  over output channels and kernel positions of |W[:, c]|; the cell is the mean over the source's
  channels. This is the weight the conv gives a unit change of the *normalised-away* input: a
  BatchNorm that shrinks a source's channels makes that source matter less, whatever |w| says.
  ε is PyTorch's default, 1e-5 (files do not store it).

**Noise floor of the weight measures.** An untrained net already shows differences between
sources: each is a mean of finitely many random weights. The floor of a target column is the
largest max/min ratio that column shows on untrained weights of the same architecture (the
trainer's initialisation: He-normal convolutions, PyTorch's default for the classifier,
BatchNorm γ = 1 and running variance 1), over several seeds. A trained cell is *within noise*
when it differs from its column's median by no more than that ratio (|log(m / median)| ≤
log(ratio)). A column with a single source has nothing to differ from: within noise. With no
seeds no floor is measured, and no cell is said to be within it.

The untrained target weights are drawn directly, not by building the module (the draws are a
small part of a build's cost); ``tests/core/analysis/test_reuse_measures.py`` checks their
distributions against ``build_model``'s.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from densegui.core.analysis.reuse import (
    DEFAULT_MEASURE,
    BlockLayout,
    BlockReuse,
    block_layouts,
    not_reusable,
    pruning_score,
    unavailable,
    vector_json,
)
from densegui.core.arch import registry
from densegui.core.arch.family import REUSE
from densegui.core.errors import DenseguiError
from densegui.core.weights.statedict import as_numpy

if TYPE_CHECKING:
    import numpy as np
    import torch

BN_EPS = 1e-5
NOISE_SEEDS = 3  # untrained nets per noise floor


PerChannel = Callable[[Mapping[str, Any], str, str], "np.ndarray | None"]


def layouts(config: Any) -> list[BlockLayout]:
    """The dense blocks of ``config`` (one line for a family without the reuse measures)."""
    family = registry.family_of(config)
    if not family.can(REUSE):
        raise not_reusable(family)
    return block_layouts(registry.plan(config))


def require_measure(config: Any, measure: str) -> None:
    """One line when ``measure`` does not carry over to ``config``'s family (:func:`reuse.unavailable`)."""
    why = unavailable(layouts(config), registry.family_of(config), measure)
    if why is not None:
        raise DenseguiError(why)


def _channel_means(weight: torch.Tensor) -> np.ndarray:
    """mean |w| per input channel (dimension 1), float64.

    NumPy rather than PyTorch: single-threaded, so it does not stall when the cores are busy
    (see :func:`densegui.core.weights.statedict.as_numpy`); float64 accumulation.
    """
    import numpy as np

    w = as_numpy(weight)
    if w.ndim == 2:
        w = w[:, :, None, None]
    count = w.shape[0] * w.shape[2] * w.shape[3]
    return np.abs(w).sum(axis=(0, 2, 3), dtype=np.float64) / count


def _weight_channels(state_dict: Mapping[str, Any], key: str, _norm: str) -> np.ndarray:
    return _channel_means(state_dict[key])


def block_reuse(state_dict: Mapping[str, torch.Tensor], layout: BlockLayout, per_channel: PerChannel | None = None,
                measure: str = DEFAULT_MEASURE) -> BlockReuse:
    """The reuse matrix of one dense block.

    ``per_channel(state_dict, key, norm)`` gives one value per input channel of the target whose
    mixing weight is ``key`` and whose input BatchNorm is ``norm`` (default: mean |w|, the paper's
    metric); ``None`` leaves the column empty."""
    import numpy as np

    per_channel = per_channel or _weight_channels
    sources, targets, ranges = layout.sources, layout.targets, layout.ranges
    matrix = np.full((len(sources), len(targets)), np.nan, dtype=np.float64)
    for t, (unit, key, norm) in enumerate(zip(layout.units, layout.keys, layout.norms)):
        if unit.kind == "head" and key not in state_dict:
            continue  # a file without a (recognised) classifier: that column stays empty
        if key not in state_dict:
            raise DenseguiError(f"tensor {key!r} is missing; cannot compute block {layout.block}'s reuse.")
        values = per_channel(state_dict, key, norm)
        if values is None:
            continue
        # target t (layer t+1, or the transition/classifier at t = depth) sees the sources its plan unit reads
        reads = layout.reads[t]
        expected = reads[-1][2]
        if values.size != expected:
            raise DenseguiError(f"tensor {key!r} takes {values.size} input channels, expected {expected}.")
        for row, start, end in reads:
            matrix[row, t] = values[start:end].mean()
    return BlockReuse(layout.block, list(sources), list(targets), matrix, list(ranges), measure=measure,
                      reads=list(layout.reads))


def reuse_matrices(state_dict: Mapping[str, torch.Tensor], config: Any) -> list[BlockReuse]:
    """Figure 5's matrices for every dense block."""
    return [block_reuse(state_dict, layout) for layout in layouts(config)]


def bn_scale(state_dict: Mapping[str, Any], prefix: str) -> np.ndarray | None:
    """|γ|/√(var+ε) per channel of BatchNorm ``prefix`` (None when the file lacks it)."""
    import numpy as np

    weight, var = state_dict.get(f"{prefix}.weight"), state_dict.get(f"{prefix}.running_var")
    if weight is None or var is None:
        return None
    gamma = np.abs(as_numpy(weight).astype(np.float64))
    return gamma / np.sqrt(as_numpy(var).astype(np.float64) + BN_EPS)


def _bn_weight_channels(state_dict: Mapping[str, Any], key: str, norm: str) -> np.ndarray | None:
    scale = bn_scale(state_dict, norm)
    if scale is None:
        return None  # (a head without its BatchNorm: that column stays empty)
    w = _channel_means(state_dict[key])
    if scale.size != w.size:
        raise DenseguiError(f"BatchNorm {norm!r} has {scale.size} channels, its conv {key!r} takes {w.size}.")
    return scale * w


def weight_measure(state_dict: Mapping[str, Any], config: Any, measure: str) -> list[BlockReuse]:
    """``weights`` or ``bn-weights`` matrices of every block, without noise floors."""
    if measure == "weights":
        fn = None
    elif measure == "bn-weights":
        require_measure(config, measure)
        fn = _bn_weight_channels
    else:
        raise DenseguiError(f"{measure!r} is not a weight measure.")
    return [block_reuse(state_dict, layout, fn, measure) for layout in layouts(config)]


# ------------------------------------------------------------------ untrained weights
def untrained_targets(config: Any, seed: int) -> dict[str, torch.Tensor]:
    """The mixing weights of every target (and their BatchNorms) as the trainer initialises them.

    He-normal (fan-in, gain √2) convolutions, as ``DenseNet.reset_parameters``; the classifier
    keeps ``nn.Linear``'s default (kaiming-uniform with a = √5: U(±1/√fan_in)); BatchNorm γ = 1
    and running variance 1 (where the target has a BatchNorm)."""
    import torch

    shapes = registry.expected_shapes(config)
    g = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for layout in layouts(config):
        for key, norm in zip(layout.keys, layout.norms):
            shape = tuple(shapes[key])
            fan_in = math.prod(shape[1:])
            if len(shape) == 2:  # a linear layer
                bound = 1.0 / math.sqrt(fan_in)
                out[key] = torch.empty(shape).uniform_(-bound, bound, generator=g)
            else:
                out[key] = torch.empty(shape).normal_(0.0, math.sqrt(2.0 / fan_in), generator=g)
            if norm is not None:
                out[f"{norm}.weight"] = torch.ones(shape[1])
                out[f"{norm}.running_var"] = torch.ones(shape[1])
    return out


def column_ratios(matrix: np.ndarray) -> np.ndarray:
    """max/min of each column's connected cells (NaN for a column with fewer than two)."""
    import numpy as np

    out = np.full(matrix.shape[1], np.nan)
    for t in range(matrix.shape[1]):
        col = matrix[:, t]
        col = col[~np.isnan(col)]
        if col.size >= 2 and col.min() > 0:
            out[t] = col.max() / col.min()
        elif col.size >= 2:
            out[t] = math.inf
    return out


def within_ratio(matrix: np.ndarray, ratios: np.ndarray) -> np.ndarray:
    """True where a cell's value is within ``ratios[t]`` of its column's median (see module doc)."""
    import numpy as np

    flags = np.zeros(matrix.shape, dtype=bool)
    for t in range(matrix.shape[1]):
        col = matrix[:, t]
        ok = ~np.isnan(col)
        if ok.sum() < 2:
            flags[ok, t] = True  # a single source: no difference to judge
            continue
        if math.isnan(ratios[t]):
            continue  # no floor was measured: nothing is claimed to be within it
        median = float(np.median(col[ok]))
        if median <= 0:
            continue
        with np.errstate(divide="ignore"):
            flags[ok, t] = np.abs(np.log(col[ok] / median)) <= math.log(ratios[t]) + 1e-12
    return flags


def ratio_noise(blocks: list[BlockReuse], untrained: Sequence[list[BlockReuse]], seeds: Sequence[int]) -> None:
    """Attach the untrained-spread noise floor to ``blocks`` (in place)."""
    import numpy as np

    for i, b in enumerate(blocks):
        per_seed = np.array([column_ratios(u[i].matrix) for u in untrained])
        floor = np.full(b.matrix.shape[1], np.nan)
        if per_seed.size:
            defined = ~np.isnan(per_seed).all(axis=0)
            floor[defined] = np.nanmax(per_seed[:, defined], axis=0)
        # (no seeds, no floor: nothing is said to be within it, not even a single-source column)
        b.within_noise = within_ratio(b.matrix, floor) if len(seeds) else np.zeros(b.matrix.shape, dtype=bool)
        trained = column_ratios(b.matrix)
        connected = ~np.isnan(b.matrix)
        b.noise = {
            "kind": "untrained-spread",
            "description": (f"largest max/min ratio of each target column on untrained weights of the same "
                            f"architecture ({len(seeds)} seeds of the trainer's initialisation); a cell is "
                            "within noise when it is within that ratio of its column's median"),
            "seeds": list(seeds),
            "column_ratio": vector_json(floor),
            "ratio": _nanmax(floor),
            "trained_column_ratio": vector_json(trained),
            "trained_ratio": _nanmax(trained),
            "cells_within_noise": int((b.within_noise & connected).sum()),
            "cells": int(connected.sum()),
        }


def _nanmax(values: np.ndarray) -> float | None:
    import numpy as np

    finite = values[~np.isnan(values)]
    return float(finite.max()) if finite.size else None


@functools.lru_cache(maxsize=32)
def _untrained_weight_blocks(config_json: str, seed: int) -> dict[str, list[BlockReuse]]:
    # Both weight measures from one draw: the draw is most of the cost, and switching measure is common.
    config = registry.config_from_dict(json.loads(config_json))
    state = untrained_targets(config, seed)
    blocks, family = layouts(config), registry.family_of(config)
    measures = [m for m in ("weights", "bn-weights") if unavailable(blocks, family, m) is None]
    return {m: weight_measure(state, config, m) for m in measures}


def untrained_weight_blocks(config: Any, measure: str, seed: int) -> list[BlockReuse]:
    """A weight measure of an untrained net (cached per architecture: the floor depends on it alone)."""
    arch = config.replace(**run_free(config))
    return _untrained_weight_blocks(json.dumps(arch.to_dict(), sort_keys=True), seed)[measure]


def run_free(config: Any) -> dict[str, Any]:
    """The settings of a run the architecture's weights do not depend on, as ``config`` has them."""
    return {k: v for k, v in (("drop_rate", 0.0), ("memory_efficient", False)) if hasattr(config, k)}


def weight_measure_with_noise(state_dict: Mapping[str, Any], config: Any, measure: str,
                              seeds: Sequence[int] = tuple(range(NOISE_SEEDS))) -> list[BlockReuse]:
    """A weight measure of every block with its untrained-spread noise floor attached."""
    blocks = weight_measure(state_dict, config, measure)
    untrained = [untrained_weight_blocks(config, measure, s) for s in seeds]
    ratio_noise(blocks, untrained, seeds)
    return blocks


# ------------------------------------------------------------------ rank agreement
def rank(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (as Spearman's ρ needs)."""
    import numpy as np

    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(values.size, dtype=np.float64)
    sorted_values = values[order]
    i = 0
    while i < values.size:
        j = i
        while j + 1 < values.size and sorted_values[j + 1] == sorted_values[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's ρ over the cells where both are defined (None with fewer than 3, or a constant side)."""
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    ok = ~(np.isnan(a) | np.isnan(b))
    if ok.sum() < 3:
        return None
    ra, rb = rank(a[ok]), rank(b[ok])
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
    return None if denom == 0 else float((ra * rb).sum() / denom)


def agreement(measures: Mapping[str, list[BlockReuse]], reference: list[BlockReuse]) -> list[dict[str, Any]]:
    """Per block: Spearman's ρ between each measure's pruning score and the reference's (ablation)."""
    out = []
    for i, ref in enumerate(reference):
        score = pruning_score(ref)
        out.append({"block": ref.block,
                     "spearman": {name: spearman(pruning_score(blocks[i]), score)
                                  for name, blocks in measures.items() if name != ref.measure}})
    return out
