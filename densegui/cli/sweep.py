"""``densegui sweep``: vary one field of a configuration and tabulate what it costs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from densegui.cli.common import add_model_args, config_from_args
from densegui.cli.measure import add_measure_args, measured, settings_from_args
from densegui.core.analysis.design import ALIASES, FIELDS, field_names, format_value, parse_vary, sweep_rows
from densegui.core.errors import DenseguiError
from densegui.core.units import human_bytes


def register(sub) -> None:
    p = sub.add_parser("sweep", help="vary one field (k, θ, a block's depth, width, input size, …) and "
                                     "tabulate params, MACs and activation memory per value")
    add_model_args(p)
    spec = ", ".join(name for name, f in FIELDS.items() if f.spec is not None)
    p.add_argument("--vary", required=True, metavar="FIELD=START:STOP:STEP",
                   help=f"or FIELD=v1,v2,…; fields: {field_names()} (aliases {', '.join(ALIASES)})"
                        + (f"; {spec} takes a list only (e.g. {_example(spec.split(', ')[0])})" if spec else ""))
    add_measure_args(p)
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help='print {"field", "rows": [...]}')
    out.add_argument("--csv", metavar="DIR", help="write DIR/sweep.csv")
    out.add_argument("--png", metavar="FILE", help="plot params, MACs and memory against the field (PNG)")
    p.set_defaults(func=run)


CSV_COLUMNS = ("value", "params", "macs", "naive_bytes", "efficient_bytes", "fraction_kept", "backprop_distance",
               "latency_ms", "throughput", "peak_memory_bytes", "error", "config")


def _example(name: str) -> str:
    from densegui.core.analysis.design import default_values

    return f"{name}={','.join(default_values(FIELDS[name], 2))}"


def _flat(row) -> dict:
    m = row.get("measured") or {}
    mem = row.get("memory") or {}
    return {"value": row["value"], "params": row.get("params"), "macs": row.get("macs"),
            "naive_bytes": mem.get("naive_bytes"), "efficient_bytes": mem.get("efficient_bytes"),
            "fraction_kept": row.get("fraction_kept"), "backprop_distance": row.get("backprop_distance"),
            "latency_ms": m.get("latency_ms"), "throughput": m.get("throughput"),
            "peak_memory_bytes": m.get("peak_memory_bytes"), "error": row.get("error", ""),
            "config": json.dumps(row["config"]) if row.get("config") else ""}


def _bytes(n) -> str:
    return "—" if n is None else human_bytes(n)


def run(args) -> int:
    cfg = config_from_args(args)
    vary = parse_vary(args.vary)
    rows = sweep_rows(cfg, vary)
    if args.measure:
        from densegui.core.arch import registry as arch

        valid = [r for r in rows if r.get("config")]
        configs = [arch.config_from_dict(r["config"]) for r in valid]
        for r, m in zip(valid, measured(configs, settings_from_args(args), args.rounds), strict=True):
            r["measured"] = m
    if args.json:
        print(json.dumps({"field": vary.field, "base": cfg.to_dict(), "rows": rows}, indent=2))
        return 0
    if args.csv:
        folder = Path(args.csv)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / "sweep.csv", "w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
                writer.writeheader()
                for r in rows:
                    writer.writerow(_flat(r))
        except OSError as exc:
            raise DenseguiError(f"cannot write {folder / 'sweep.csv'}: {exc.strerror or exc}.") from None
        print(f"wrote {folder / 'sweep.csv'} ({len(rows)} rows)")
        return 0
    if args.png:
        from densegui.gui.design_plots import render_sweep_png

        render_sweep_png(rows, vary.field, cfg, args.png)
        print(f"wrote {args.png}")
        return 0
    print(f"{cfg.label()}: {vary.field} ({FIELDS[vary.field].description})")
    spec = FIELDS[vary.field].spec is not None  # (the connections it keeps are what such a sweep is about)
    width = max([12, *(len(format_value(r["value"])) + 2 for r in rows)])
    print(f"{vary.field:>{width}}{'params':>14}{'GMACs':>9}{'naive act.':>12}{'efficient':>11}"
          + (f"{'kept':>8}{'backprop':>9}" if spec else "")
          + (f"{'latency':>12}{'img/s':>9}" if args.measure else ""))
    for r in rows:
        value = format_value(r["value"])
        if r.get("error"):
            print(f"{value:>{width}}  invalid: {r['error']}")
            continue
        line = (f"{value:>{width}}{r['params']:>14,}{r['macs'] / 1e9:>9.3f}"
                f"{human_bytes(r['memory']['naive_bytes']):>12}"
                f"{_bytes(r['memory']['efficient_bytes']):>11}")
        if spec:
            kept, distance = r.get("fraction_kept"), r.get("backprop_distance")
            line += f"{'—' if kept is None else f'{kept:.1%}':>8}{'—' if distance is None else distance:>9}"
        if args.measure:
            line += f"{r['measured']['latency_ms']:>10.2f}ms{r['measured']['throughput']:>9.1f}"
        print(line)
    return 0
