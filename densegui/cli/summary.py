"""``densegui summary``: torchinfo table + analytic totals, or ``--json``."""

from __future__ import annotations

import json

from densegui.cli.common import add_model_args, config_from_args, join_words
from densegui.core.analysis.summary import summarize
from densegui.core.arch.family import MEMORY_EFFICIENT
from densegui.core.arch.graph import backprop_distance, connections
from densegui.core.arch.registry import families, family_of, layer_table, plan
from densegui.core.errors import ConfigError
from densegui.core.units import human_bytes


def register(sub) -> None:
    p = sub.add_parser("summary", help="layer table, parameters, MACs and activation memory of a "
                                         f"{join_words([f.title for f in families().values()])}")
    add_model_args(p, checkpoint=True)
    p.add_argument("--depth", type=int, default=3, help="torchinfo nesting depth to show (default 3)")
    p.add_argument("--batch-size", type=int, default=1, help="batch size for the activation-memory figures (default 1)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.set_defaults(func=run)


def summary_json(cfg, batch: int = 1) -> dict:
    """The ``summary --json`` object (also used by the GUI's share menu), the same fields for every
    family; one without a memory-efficient mode has a null ``memory.efficient_bytes``."""
    table = layer_table(cfg)
    efficient = family_of(cfg).can(MEMORY_EFFICIENT)
    return {
        "config": cfg.to_dict(),
        "family": cfg.family,
        "depth": table.depth,
        "params": table.params,
        "macs": table.macs,
        "macs_convention": "conv + linear multiply-accumulates, batch 1 (FLOPs ≈ 2 × MACs)",
        "final_channels": plan(cfg).units[-1].in_channels,  # into the classifier
        "connections": connections(plan(cfg)),  # feature maps concatenated, over the whole network
        "backprop_distance": backprop_distance(plan(cfg)),  # in layers, within a block (None: no concatenation)
        "layers": [r.to_dict() for r in table.rows],
        "memory": {
            "batch_size": batch,
            "naive_bytes": table.activation_bytes(batch, efficient=False),
            "efficient_bytes": table.activation_bytes(batch, efficient=True) if efficient else None,
            "convention": "float32 bytes autograd saves for backward in one training step",
        },
    }


def run(args) -> int:
    if args.depth < 0 or args.depth > 10:
        raise ConfigError(f"--depth must be from 0 to 10, got {args.depth}.")
    if not 1 <= args.batch_size <= 1_000_000:
        raise ConfigError(f"--batch-size must be from 1 to 1000000, got {args.batch_size}.")
    cfg = config_from_args(args)
    if args.json:
        print(json.dumps(summary_json(cfg, args.batch_size), indent=2))
        return 0
    table = layer_table(cfg)
    result = summarize(cfg, depth=args.depth)
    print(result.text)
    naive = table.activation_bytes(args.batch_size, efficient=False)
    print(f"Parameters:            {table.params:,}")
    print(f"MACs:                  {table.macs:,} ({table.macs / 1e9:.3f} G; conv + linear multiply-accumulates, "
          f"batch 1, {cfg.input_size}×{cfg.input_size}; FLOPs ≈ 2 × MACs; torchinfo's Mult-Adds above also "
          f"count BatchNorm scale/shift and the classifier bias)")
    print(f"Final channels:        {plan(cfg).units[-1].in_channels}")
    distance = backprop_distance(plan(cfg))
    if distance is not None:
        print(f"Connections:           {connections(plan(cfg)):,} concatenated feature maps; backprop distance "
              f"{distance} layer{'s' if distance != 1 else ''} (the most any gradient crosses inside a block)")
    family = family_of(cfg)
    if not family.can(MEMORY_EFFICIENT):
        print(f"Activation memory:     {human_bytes(naive)} (float32 tensors saved for backward, batch "
              f"{args.batch_size}; {family.title}s have no memory-efficient mode)")
        return 0
    eff = table.activation_bytes(args.batch_size, efficient=True)
    print(f"Activation memory:     naive {human_bytes(naive)} vs memory-efficient {human_bytes(eff)} "
          f"({eff / naive:.2f}×; float32 tensors saved for backward, batch {args.batch_size})")
    return 0
