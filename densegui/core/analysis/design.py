"""The design space, analytically: sweeps of one field and side-by-side comparisons (no torch).

A sweep takes a configuration of either family and one field to vary
(:func:`parse_vary`: ``FIELD=START:STOP:STEP`` or ``FIELD=v1,v2,…``) and gives
one row per value with the full configuration it used, its parameters, MACs
and training-activation memory (naive and memory-efficient), all from the
analytic layer table. A value that makes the configuration invalid keeps its
row, with the reason instead of the figures. A comparison gives the same row
for named presets or configurations, with their published results.

Measured figures (latency, throughput, peak memory) come from the timing
probe: :func:`measure` runs it round-robin over the configurations, so that a
slow spell of a shared machine hits every configuration alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from densegui.core.arch import registry as arch
from densegui.core.errors import ConfigError, DenseguiError

MAX_POINTS = 500


@dataclass(frozen=True)
class Field:
    name: str
    family: str  # "densenet", "resnet" or "any"
    description: str
    integer: bool
    apply: Callable[[Any, float], Any]  # (config, value) -> config (not validated)
    index: int | None = None  # 1-based block/stage of a one-depth field


def _set(attr: str) -> Callable[[Any, float], Any]:
    return lambda cfg, v: cfg.replace(**{attr: v})


def _one_depth(attr: str, index: int) -> Callable[[Any, float], Any]:
    def apply(cfg, v):
        depths = list(getattr(cfg, attr))
        if index >= len(depths):
            raise ConfigError(f"the configuration has {len(depths)} {'blocks' if attr == 'block_depths' else 'stages'}, "
                              f"not {index + 1}.")
        depths[index] = v
        return cfg.replace(**{attr: tuple(depths)})
    return apply


def _all_depths(attr: str) -> Callable[[Any, float], Any]:
    return lambda cfg, v: cfg.replace(**{attr: (v,) * len(getattr(cfg, attr))})


def _width(cfg, v):
    # Every stage keeps its ratio to the first (torchvision: 64, 128, 256, 512); the stem follows.
    scale = v / cfg.widths[0]
    return cfg.replace(widths=tuple(int(round(w * scale)) for w in cfg.widths),
                       stem_width=int(round(cfg.stem_width * scale)))


def _fields() -> dict[str, Field]:
    f: list[Field] = [
        Field("growth_rate", "densenet", "growth rate k", True, _set("growth_rate")),
        Field("compression", "densenet", "compression θ at transitions", False, _set("compression")),
        Field("bn_size", "densenet", "bottleneck width factor", True, _set("bn_size")),
        Field("blocks", "densenet", "every dense block's depth", True, _all_depths("block_depths")),
        Field("drop_rate", "densenet", "dropout rate", False, _set("drop_rate")),
        Field("width", "resnet", "first stage's width (the others keep their ratio)", True, _width),
        Field("stages", "resnet", "every stage's depth", True, _all_depths("stage_depths")),
        Field("input_size", "any", "input image side (pixels)", True, _set("input_size")),
        Field("num_classes", "any", "classifier outputs", True, _set("num_classes")),
    ]
    f += [Field(f"block{i}", "densenet", f"dense block {i}'s depth", True, _one_depth("block_depths", i - 1), i)
          for i in range(1, 9)]
    f += [Field(f"stage{i}", "resnet", f"stage {i}'s depth", True, _one_depth("stage_depths", i - 1), i)
          for i in range(1, 9)]
    return {x.name: x for x in f}


FIELDS = _fields()
ALIASES = {"k": "growth_rate", "theta": "compression", "θ": "compression", "depth": "blocks"}


def fields_for(cfg) -> list[Field]:
    """The fields a sweep can vary for ``cfg``: its family's, and one-depth fields of the blocks
    or stages it has."""
    count = len(cfg.block_depths if cfg.family == "densenet" else cfg.stage_depths)
    return [f for f in FIELDS.values() if f.family in (cfg.family, "any") and (f.index is None or f.index <= count)]


@dataclass(frozen=True)
class Vary:
    field: str
    values: tuple[float, ...]


def _number(text: str, integer: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{text!r} is not a number.") from None
    if not math.isfinite(value):
        raise ConfigError(f"{text!r} is not a finite number.")
    if integer:
        if value != int(value):
            raise ConfigError(f"{text!r} must be a whole number for this field.")
        return int(value)
    return value


def parse_vary(text: str) -> Vary:
    """``FIELD=START:STOP:STEP`` (STOP included when the steps land on it) or ``FIELD=v1,v2,…``."""
    name, sep, spec = text.partition("=")
    name = ALIASES.get(name.strip(), name.strip())
    if not sep or not spec.strip():
        raise ConfigError(f"--vary needs FIELD=START:STOP:STEP or FIELD=v1,v2,…, got {text!r}.")
    if name not in FIELDS:
        raise ConfigError(f"unknown field {name!r}; choose one of {', '.join(FIELDS)} "
                          f"(aliases: {', '.join(ALIASES)}).")
    field = FIELDS[name]
    if ":" in spec:
        parts = spec.split(":")
        if len(parts) != 3:
            raise ConfigError(f"a range is START:STOP:STEP, got {spec!r}.")
        start, stop, step = (_number(p, field.integer) for p in parts)
        if step <= 0 or stop < start:
            raise ConfigError(f"a range needs START ≤ STOP and STEP > 0, got {spec!r}.")
        count = int(math.floor((stop - start) / step + 1e-9)) + 1
        if count > MAX_POINTS:
            raise ConfigError(f"{count} points; at most {MAX_POINTS} per sweep.")
        values = tuple(start + i * step if field.integer else round(start + i * step, 10) for i in range(count))
    else:
        values = tuple(_number(p.strip(), field.integer) for p in spec.split(",") if p.strip())
        if not values or len(values) > MAX_POINTS:
            raise ConfigError(f"give 1 to {MAX_POINTS} values, got {len(values)}.")
    return Vary(name, values)


def row(cfg, name: str | None = None) -> dict[str, Any]:
    """The analytic figures of one validated configuration (the ``summary --json`` fields)."""
    table = arch.layer_table(cfg)
    preset = name if name is not None else arch.preset_of(cfg)
    published = arch.PRESETS[preset].published if preset in arch.PRESETS else ()
    return {
        "name": preset or cfg.label(),
        "family": cfg.family,
        "config": cfg.to_dict(),
        "params": table.params,
        "macs": table.macs,
        # (efficient_bytes is null for a family without a memory-efficient mode, as in summary --json)
        "memory": {"naive_bytes": table.naive_bytes,
                   "efficient_bytes": table.efficient_bytes if cfg.family == "densenet" else None,
                   "convention": "float32 bytes autograd saves for backward, per image"},
        "published": [{"dataset": p.dataset, "metric": p.metric, "value": p.value, "source": p.source}
                      for p in published],
    }


def sweep_rows(cfg, vary: Vary) -> list[dict[str, Any]]:
    """One row per value of ``vary`` applied to ``cfg``: ``value``, ``config`` and the figures of
    :func:`row`, or ``error`` (one line) where the value makes the configuration invalid."""
    field = FIELDS[vary.field]
    if field.family not in (cfg.family, "any"):
        raise ConfigError(f"{vary.field} is a {field.family} field; this configuration is a {cfg.family}.")
    rows = []
    for value in vary.values:
        try:  # (row() validates, through the layer table)
            rows.append({"value": value, **row(field.apply(cfg, value))})
        except (DenseguiError, TypeError, ValueError) as exc:
            rows.append({"value": value, "config": None, "error": str(exc)})
    return rows


def compare_rows(items: Sequence[str]) -> list[dict[str, Any]]:
    """A row per preset name or configuration file (a ``.json`` path)."""
    rows = []
    for item in items:
        if item.endswith(".json"):
            rows.append(row(arch.config_from_file(item).validate()))
        else:
            rows.append(row(arch.get_preset(item), item))
    return rows


def measure(configs: Sequence[Any], settings, rounds: int = 3, *, cancel=None,
            progress: Callable[[float, str], None] | None = None) -> list[dict[str, Any]]:
    """Probe every configuration ``rounds`` times, round-robin, and return per configuration the
    median over rounds of: median latency (ms), throughput (images/s), peak memory (bytes).

    Round-robin (A B C A B C …) rather than A A A B B B: on a shared machine a slow spell then
    hits every configuration alike, so their ratios stay fair."""
    from dataclasses import replace
    from statistics import median

    from densegui.core.probe.run import run_probe
    from densegui.core.probe.types import ProbeCancelled

    if rounds < 1:
        raise ConfigError(f"rounds must be at least 1, got {rounds}.")
    settings = replace(settings, breakdown=False)
    results: list[list] = [[] for _ in configs]
    total = rounds * len(configs)
    for r in range(rounds):
        for i, cfg in enumerate(configs):
            if cancel is not None and cancel():
                raise ProbeCancelled("measurement cancelled.")
            if progress is not None:
                progress((r * len(configs) + i) / total, f"round {r + 1}/{rounds}: {cfg.label()}")
            results[i].append(run_probe(cfg, settings, cancel=cancel))
    if progress is not None:
        progress(1.0, "done")
    out = []
    for res in results:
        peaks = [x.peak_memory_bytes for x in res if x.peak_memory_bytes is not None]
        out.append({"device": res[0].device, "mode": res[0].mode, "batch_size": res[0].batch_size,
                    "precision": res[0].precision, "rounds": rounds,
                    "latency_ms": median(x.median_ms for x in res),
                    "throughput": median(x.throughput for x in res),
                    "peak_memory_bytes": int(median(peaks)) if peaks else None})
    return out
