"""``densegui presets``: the built-in configurations of every family, their sizes and published results."""

from __future__ import annotations

import json

from densegui.cli.common import join_words
from densegui.core.arch.registry import families, family_of, layer_table, presets


def register(sub) -> None:
    p = sub.add_parser("presets", help=f"list the built-in {join_words([f.title for f in families().values()], 'and')} presets")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object: name → {family, description, params, config, published}")
    p.set_defaults(func=run)


def _structure(c) -> tuple[str, str]:
    """(the per-unit depths, the family's other choices) of a configuration."""
    depths = getattr(c, family_of(c).depths)
    brief = getattr(c, "brief", None)  # optional in the config protocol
    return _depths(depths), brief() if brief else ""


def _depths(depths, width: int = 13) -> str:
    """"6,12,24,16"; where that is wider than the column, runs of one depth as "3×11" (RDNet-S)."""
    plain = ",".join(map(str, depths))
    if len(plain) <= width:
        return plain
    runs: list[list[int]] = []
    for d in depths:
        if runs and runs[-1][0] == d:
            runs[-1][1] += 1
        else:
            runs.append([d, 1])
    return ",".join(f"{d}×{n}" if n > 1 else str(d) for d, n in runs)


def preset_json(name: str) -> dict:
    p = presets()[name]
    return {"family": p.family, "description": p.description, "params": layer_table(p.config).params,
            "published_params": p.params, "published_params_exact": p.exact, "config": p.config.to_dict(),
            "published": [r.to_dict() for r in p.published]}


def run(args) -> int:
    if args.json:
        print(json.dumps({name: preset_json(name) for name in presets()}, indent=2))
        return 0
    print(f"{'preset':<21}{'family':<10}{'L':>4}  {'blocks/stages':<14}{'details':<24}{'stem':<10}{'params':>12}"
          f"{'GMACs':>8}  description")
    for name, p in presets().items():
        c = p.config
        t = layer_table(c)
        blocks, details = _structure(c)
        print(f"{name:<21}{p.family:<10}{t.depth:>4}  {blocks:<14}{details:<24}{getattr(c, 'stem', '—'):<10}{t.params:>12,}"
              f"{t.macs / 1e9:>8.2f}  {p.description}")
    print("L: conv + linear layers on the main path. GMACs: conv + linear multiply-accumulates, batch 1, at the "
          "preset's input size (FLOPs ≈ 2 × MACs). Published results: `densegui presets --json`.")
    return 0
