"""One entry point for the reuse measures of a loaded checkpoint (the CLI and the window's job).

:func:`analyse` computes the asked measures with their noise floors and, on request, the rank
agreement of every measure with ablation and the pruning curve. The result holds NumPy arrays
and plain data only, so the torch-free window process can unpickle it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from densegui.core.analysis.reuse import (
    DATA_MEASURES,
    MEASURE_LABELS,
    MEASURES,
    BlockReuse,
    check_measure,
)
from densegui.core.analysis.reuse_measures import (
    NOISE_SEEDS,
    agreement,
    layouts,
    require_measure,
    weight_measure_with_noise,
)
from densegui.core.errors import DenseguiError

# Rough share of the time each step takes, to turn its own progress into the run's.
_COST = {"weights": 0.0, "bn-weights": 0.0, "activation": 1.0, "ablation": 6.0, "prune": 4.0}


@dataclass
class ReuseAnalysis:
    """Measures by name (each a list of :class:`BlockReuse`, noise floors attached), and what the data gave."""

    measures: dict[str, list[BlockReuse]]
    data: dict[str, Any] | None = None  # EvalData.to_dict() of the images used
    baseline: dict[str, Any] | None = None  # clean held-out loss and accuracy (ablation)
    agreement: list[dict[str, Any]] | None = None  # per block: Spearman ρ of each measure with ablation
    prune: dict[str, Any] | None = None  # reuse_prune.prune_curve()
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self, measure: str) -> dict[str, Any]:
        """The JSON fields of one measure (``blocks`` …) and of the data-driven extras."""
        out: dict[str, Any] = {"measure": measure, "metric": MEASURE_LABELS[measure],
                               "blocks": [b.to_dict() for b in self.measures[measure]]}
        if self.data is not None:
            out["data"] = self.data
        if self.baseline is not None:
            out["baseline"] = self.baseline
        if self.agreement is not None:
            out["agreement"] = self.agreement
        if self.prune is not None:
            out["prune_curve"] = self.prune
        out["seconds"] = dict(self.seconds)
        return out


def context_lines(analysis: ReuseAnalysis) -> list[str]:
    """What the data measures ran on, and the uncut network's result (for the CLI text and the panel)."""
    lines = []
    if analysis.data is not None:
        lines.append(f"Data: {analysis.data['description']}.")
    if analysis.baseline is not None:
        base = analysis.baseline
        lines.append(f"Uncut: held-out loss {base['loss']:.4f}, accuracy {base['accuracy']:.2%} "
                     f"({base['images']} images).")
    return lines


def noise_summary(block: BlockReuse) -> str:
    """One line: the block's spread against its noise floor, and how many cells are within it."""
    floor = block.noise or {}
    if floor.get("kind") == "standard-error":
        se = floor.get("median_stderr")
        if se is None:
            return "noise floor: none"
        what, where = ("Δ loss", "of 0") if block.measure == "ablation" else ("a cell", "of their column's median")
        return (f"noise floor: median standard error of {what} {se:.3g} over {floor['images']} images; "
                f"{floor['cells_within_noise']} of {floor['cells']} cells within 2 SE {where}")
    if not floor.get("seeds"):
        return "noise floor: not measured (no untrained nets: --noise-seeds 0)"
    ratio, trained = floor.get("ratio"), floor.get("trained_ratio")
    if ratio is None or trained is None:
        return "noise floor: none (no column with two sources)"
    verdict = "within noise" if trained <= ratio else "beyond noise"
    return (f"columns vary up to ×{trained:.3g} (max/min); untrained nets of this architecture ×{ratio:.3g} "
            f"({verdict}); {floor['cells_within_noise']} of {floor['cells']} cells within noise of their column's "
            "median")


def agreement_lines(agreement: list[dict[str, Any]]) -> list[str]:
    """Spearman's ρ of each measure with ablation, a heading and a line per block."""
    lines = ["Rank agreement with ablation (Spearman ρ over each block's connections):"]
    for a in agreement:
        rhos = ", ".join(f"{name} {'n/a' if rho is None else f'{rho:+.2f}'}" for name, rho in a["spearman"].items())
        lines.append(f"block {a['block']}: {rhos}")
    return lines


def analyse(loaded, measures: Sequence[str] = ("weights",), *, data: str | None = None,
            max_images: int | None = None, noise_seeds: int = NOISE_SEEDS, prune: bool = False,
            cancel: Callable[[], bool] | None = None,
            progress: Callable[[float, str], None] | None = None) -> ReuseAnalysis:
    """The measures of ``loaded`` (a LoadedCheckpoint). ``prune`` adds all four measures, their
    agreement with ablation and the pruning curve. Data measures without usable data, or a family
    without the reuse measures: one line."""
    names = list(dict.fromkeys(check_measure(m) for m in measures))
    if prune:
        names = list(MEASURES)
    if noise_seeds < 0:
        raise DenseguiError("the number of noise seeds cannot be negative.")
    seeds = tuple(range(noise_seeds))
    config, state = loaded.config, loaded.state_dict
    layouts(config)  # (a family without dense blocks: its one line before anything runs)
    for name in (["the pruning curve"] if prune else names):  # (a measure this family lacks: likewise)
        require_measure(config, name)
    result = ReuseAnalysis({})
    needs_data = prune or any(m in DATA_MEASURES for m in names)
    steps = names + (["prune"] if prune else [])
    total = sum(_COST[s] for s in steps) or 1.0
    done = 0.0

    def part(step: str):
        if progress is None:
            return None
        start = done
        return lambda f, text: progress((start + f * _COST[step]) / total, text)

    eval_data = walk = None
    if needs_data:
        from densegui.core.analysis import reuse_data as rd
        from densegui.core.analysis.reuse_images import resolve_data
        from densegui.core.analysis.reuse_walk import network, require_whole_network

        require_whole_network(config, state)  # (before the data: a headless file's first problem)
        eval_data = resolve_data(config, loaded.metadata, data, max_images)
        result.data = eval_data.to_dict()
        walk = network(config, state, cancel)  # built once for every data measure and the curve
    for name in names:
        t0 = time.perf_counter()
        if name in ("weights", "bn-weights"):
            result.measures[name] = weight_measure_with_noise(state, config, name, seeds)
        elif name == "activation":
            result.measures[name] = rd.activation_blocks(config, state, eval_data, cancel, part(name), walk=walk)
        else:
            result.measures[name], result.baseline = rd.ablation_blocks(config, state, eval_data, cancel, part(name),
                                                                        walk=walk)
        result.seconds[name] = time.perf_counter() - t0
        done += _COST[name]
    if "ablation" in result.measures and len(result.measures) > 1:
        result.agreement = agreement(result.measures, result.measures["ablation"])
    if prune:
        t0 = time.perf_counter()
        from densegui.core.analysis.reuse_prune import prune_curve

        result.prune = prune_curve(config, state, eval_data, result.measures, cancel=cancel,
                                   progress=part("prune"), walk=walk)
        result.seconds["prune"] = time.perf_counter() - t0
    if progress is not None:
        progress(1.0, "done")
    return result
