"""The pruning curve: held-out accuracy as connections are removed weakest-first by each measure.

CondenseNet's and network slimming's idea: removing a connection zeroes the source's slice of the
target's first weight. Accuracy at 0, 10, … 90 % removed, by each measure's order (ratio measures
within each target column, ablation by Δ loss) and by seeded random orders, with the parameters
and MACs the removed slices would save (from the plan's tensors).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from densegui.core.analysis.reuse import BlockReuse, pruning_score
from densegui.core.analysis.reuse_walk import (
    Cancel,
    Progress,
    Target,
    Walk,
    check,
    losses,
    network,
)
from densegui.core.arch import registry

if TYPE_CHECKING:
    from densegui.core.analysis.reuse_images import EvalData
    from densegui.core.arch.plan import Unit

PRUNE_FRACTIONS = tuple(i / 10 for i in range(10))
RANDOM_ORDERS = 3  # seeded random pruning orders averaged for the baseline curve


def _apply_first(module: nn.Module, a: Tensor, weight: Tensor) -> Tensor:
    if isinstance(module, nn.Linear):
        return F.linear(a, weight, module.bias)
    return F.conv2d(a, weight, None, module.stride, module.padding, module.dilation, module.groups)


def slice_cost(unit: Unit, channels: int) -> tuple[int, int]:
    """(parameters, MACs) of ``channels`` input channels of the plan unit's mixing weight, plus that
    unit's BatchNorm γ and β for those channels (the parameters), per image (the MACs)."""
    weight = next(t for t in unit.tensors if t.key == f"{unit.mixer}.weight")
    out = weight.shape[0]
    kernel = math.prod(weight.shape[2:]) if len(weight.shape) > 2 else 1
    return out * channels * kernel + 2 * channels, weight.macs // weight.shape[1] * channels


@torch.no_grad()
def evaluate_removed(walk: Walk, data: EvalData, removed: Mapping[Target, Sequence[int]],
                     cancel: Cancel = None) -> tuple[float, float]:
    """(accuracy, mean loss) with the given source rows' slices of each target's first weight zeroed."""
    weights = {}
    for target, sources in removed.items():
        w = walk.weight(target).detach().clone()
        for s in sources:
            start, end = walk.channels(target, s)
            w[:, start:end] = 0
        weights[target] = w

    def first(target: Target, module: nn.Module, a: Tensor) -> Tensor:
        w = weights.get(target)
        return module(a) if w is None else _apply_first(module, a, w)

    loss = correct = 0.0
    for x, y in data.batches():
        check(cancel)
        l, c = losses(walk.forward(x, first), y)
        loss, correct = loss + float(l.sum()), correct + float(c.sum())
    return correct / len(data), loss / len(data)


def prune_curve(config: Any, state_dict: Mapping[str, Tensor], data: EvalData,
                measures: Mapping[str, list[BlockReuse]], fractions: Sequence[float] = PRUNE_FRACTIONS,
                random_orders: int = RANDOM_ORDERS, cancel: Cancel = None,
                progress: Progress = None, *, walk: Walk | None = None) -> dict[str, Any]:
    """Held-out accuracy after removing the weakest connections by each measure (and at random)."""
    walk = walk or network(config, state_dict, cancel)
    cells = walk.connections()
    cost = {}
    for target, s in cells:  # (the real connections only: a sparse net's missing ones are not orderable)
        start, end = walk.channels(target, s)
        cost[(target, s)] = slice_cost(walk.layouts[target[0] - 1].units[target[1]], end - start)
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
    table = registry.layer_table(config)
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
