"""``densegui presets``: the built-in configurations and their sizes."""

from __future__ import annotations

import json

from densegui.core.config import PRESETS
from densegui.core.stats import layer_table


def register(sub) -> None:
    p = sub.add_parser("presets", help="list the built-in presets")
    p.add_argument("--json", action="store_true", help="print one JSON object: name → config")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.json:
        print(json.dumps({name: p.config.to_dict() for name, p in PRESETS.items()}, indent=2))
        return 0
    print(f"{'preset':<22}{'k':>4}  {'blocks':<14}{'θ':>5}  {'B':<3}{'stem':<10}{'params':>13}{'GMACs':>8}  description")
    for name, p in PRESETS.items():
        c = p.config
        t = layer_table(c)
        print(f"{name:<22}{c.growth_rate:>4}  {','.join(map(str, c.block_depths)):<14}{c.compression:>5g}  "
              f"{'y' if c.bottleneck else 'n':<3}{c.stem:<10}{t.params:>13,}{t.macs / 1e9:>8.2f}  {p.description}")
    print("GMACs: conv + linear multiply-accumulates, batch 1, at the preset's input size (FLOPs ≈ 2 × MACs).")
    return 0
