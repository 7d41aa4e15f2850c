"""Memory-efficient versus naive training step: peak memory ratio and time ratio.

Issue #6 target on a CUDA GPU: ≤ 0.6× memory at ≤ 1.3× time, batch 64
(the Pleiss et al. report: DenseNet-BC-100, batch 64, Titan-X: 2.86 GB at
0.165 s/step naive, 1.61 GB at 0.207 s/step efficient).

Each measurement runs ``densegui probe --mode training --json`` in a fresh
process, so that one run's allocator leftovers cannot hide the next run's
peak (this matters for the CPU's resident-memory peak). Peak memory is the
probe's: CUDA allocator peak, or on the CPU the increase of the process's
peak RSS. The analytic column is ``LayerTable.activation_bytes`` (float32
bytes autograd saves), efficient / naive.

    python benchmarks/memory_efficient.py                    # auto device
    python benchmarks/memory_efficient.py --device cpu --batch densenet121=16
    python benchmarks/memory_efficient.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import torch

from densegui.core.arch.registry import get_preset
from densegui.core.devices import device_info, resolve_device
from densegui.core.arch.densenet.table import layer_table
from densegui.core.units import human_bytes

PRESETS = ("densenet-bc-100-k12", "densenet121")
CPU_BATCH = {"densenet-bc-100-k12": 64, "densenet121": 8}  # densenet121 at batch 64 takes minutes per step on 2 cores


def probe(preset: str, batch: int, device: str, efficient: bool, repeats: int, precision: str) -> dict:
    cmd = [sys.executable, "-m", "densegui", "probe", "--preset", preset, "--device", device, "--mode", "training",
           "--batch-size", str(batch), "--repeats", str(repeats), "--no-breakdown", "--json", "--precision", precision,
           "--memory-efficient" if efficient else "--no-memory-efficient"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"probe failed: {' '.join(cmd)}\n{out.stderr.strip().splitlines()[-1]}")
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", action="append", default=[], metavar="PRESET=N",
                    help="batch per preset (default 64 on GPU; on CPU bc-100: 64, densenet121: 8)")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    device = resolve_device(args.device)
    batches = {p: (64 if device.type == "cuda" else CPU_BATCH[p]) for p in PRESETS}
    for item in args.batch:
        name, _, n = item.partition("=")
        batches[name] = int(n)
    rows = []
    for preset in batches:
        b = batches[preset]
        naive = probe(preset, b, str(device), False, args.repeats, args.precision)
        eff = probe(preset, b, str(device), True, args.repeats, args.precision)
        table = layer_table(get_preset(preset))
        mem_ratio = (eff["peak_memory_bytes"] / naive["peak_memory_bytes"]
                     if eff["peak_memory_bytes"] and naive["peak_memory_bytes"] else None)
        rows.append({
            "preset": preset, "batch_size": b,
            "naive_ms": naive["median_ms"], "efficient_ms": eff["median_ms"],
            "time_ratio": eff["median_ms"] / naive["median_ms"],
            "naive_peak_bytes": naive["peak_memory_bytes"], "efficient_peak_bytes": eff["peak_memory_bytes"],
            "memory_ratio": mem_ratio,
            "analytic_activation_ratio": table.activation_bytes(b, True) / table.activation_bytes(b, False),
            "memory_convention": naive["peak_memory_convention"],
        })
    info = device_info(device)
    meta = {"device": str(device), "device_name": info.name, "torch": torch.__version__,
            "precision": args.precision, "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None}
    if args.json:
        print(json.dumps({"machine": meta, "rows": rows}, indent=2))
        return
    print(f"# {info.name} ({device}), torch {torch.__version__}, {args.precision}, load average {meta['load_average']}")
    print(f"# memory: {rows[0]['memory_convention']}")
    print(f"{'preset':<20} {'batch':>5} {'naive ms':>10} {'eff. ms':>10} {'time×':>6} "
          f"{'naive peak':>11} {'eff. peak':>10} {'memory×':>8} {'analytic×':>9}")
    for r in rows:
        nm = human_bytes(r["naive_peak_bytes"]) if r["naive_peak_bytes"] else "n/a"
        em = human_bytes(r["efficient_peak_bytes"]) if r["efficient_peak_bytes"] else "n/a"
        mr = f"{r['memory_ratio']:.2f}" if r["memory_ratio"] else "n/a"
        print(f"{r['preset']:<20} {r['batch_size']:>5} {r['naive_ms']:>10.1f} {r['efficient_ms']:>10.1f} "
              f"{r['time_ratio']:>6.2f} {nm:>11} {em:>10} {mr:>8} {r['analytic_activation_ratio']:>9.2f}")


if __name__ == "__main__":
    main()
