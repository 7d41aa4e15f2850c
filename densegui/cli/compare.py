"""``densegui compare``: presets or configurations of either family side by side."""

from __future__ import annotations

import json

from densegui.cli.measure import add_measure_args, measured, settings_from_args
from densegui.core.analysis.design import compare_rows
from densegui.core.units import human_bytes


def register(sub) -> None:
    p = sub.add_parser("compare", help="presets or configs of any family side by side (params, MACs, "
                                       "memory, published accuracy; --measure adds latency)")
    p.add_argument("items", nargs="+", metavar="PRESET_OR_JSON",
                   help="preset names (`densegui presets`) or configuration files (.json)")
    add_measure_args(p)
    p.add_argument("--json", action="store_true", help='print {"rows": [...]}')
    p.set_defaults(func=run)


def _eff(row) -> str:
    eff = row["memory"]["efficient_bytes"]
    return "—" if eff is None else human_bytes(eff)


def _published(row) -> str:
    # (an accuracy also as the error the other rows give: 100 − accuracy, as the frontier plots it)
    shown = [f"{p['dataset']} {p['metric']} {p['value']:g}%"
             + (f" (error {100 - p['value']:.4g}%)" if p["metric"] == "top-1 accuracy" else "")
             for p in row["published"][:2]]
    return "; ".join(shown) if shown else "—"


def run(args) -> int:
    rows = compare_rows(args.items)
    if args.measure:
        from densegui.core.arch import registry as arch

        configs = [arch.config_from_dict(r["config"]) for r in rows]
        for r, m in zip(rows, measured(configs, settings_from_args(args), args.rounds), strict=True):
            r["measured"] = m
    if args.json:
        print(json.dumps({"rows": rows}, indent=2))
        return 0
    head = f"{'name':<22}{'family':<10}{'params':>13}{'GMACs':>8}{'naive act.':>12}{'efficient':>11}"
    if args.measure:
        head += f"{'latency':>11}{'img/s':>9}{'peak mem':>11}"
    print(head + "  published")
    for r in rows:
        line = (f"{r['name']:<22}{r['family']:<10}{r['params']:>13,}{r['macs'] / 1e9:>8.2f}"
                f"{human_bytes(r['memory']['naive_bytes']):>12}{_eff(r):>11}")
        if args.measure:
            m = r["measured"]
            peak = human_bytes(m["peak_memory_bytes"]) if m["peak_memory_bytes"] is not None else "n/a"
            line += f"{m['latency_ms']:>9.2f}ms{m['throughput']:>9.1f}{peak:>11}"
        print(line + "  " + _published(r))
    print("GMACs: conv + linear multiply-accumulates, batch 1; activations: float32 bytes autograd saves "
          "for backward per image (naive / memory-efficient).")
    if args.measure:
        m = rows[0]["measured"]
        print(f"Measured on {m['device']}, {m['mode']}, batch {m['batch_size']}, {m['precision']}: median of "
              f"{m['rounds']} round-robin rounds (each a probe median).")
    return 0
