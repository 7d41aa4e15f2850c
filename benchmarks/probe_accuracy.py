"""Does the probe's median agree with an independent measurement? (issue #6 target: within 5%)

For each case, the probe (``run_probe``, breakdown off) and
``torch.utils.benchmark.Timer.blocked_autorange`` time *the same callable*
(``densegui.core.probe.run.build_step``: one forward pass, or one training step).
The two alternate ``--rounds`` times so that drifting machine load hits both
alike; the table shows the median of each side's medians and their ratio.

    python benchmarks/probe_accuracy.py               # CPU (or --device cuda)
    python benchmarks/probe_accuracy.py --json

torch.utils.benchmark synchronises CUDA itself; on the CPU both use wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics

import torch
import torch.utils.benchmark as tb

from densegui.core.arch.registry import get_preset
from densegui.core.devices import device_info, resolve_device
from densegui.core.probe.run import build_step, run_probe
from densegui.core.probe.types import ProbeSettings

CPU_CASES = [
    ("densenet-bc-100-k12", "inference", 16),
    ("densenet-bc-100-k12", "training", 16),
    ("densenet121", "inference", 1),
]
GPU_CASES = [
    ("densenet-bc-100-k12", "inference", 64),
    ("densenet-bc-100-k12", "training", 64),
    ("densenet121", "inference", 1),
    ("densenet121", "inference", 64),
    ("densenet121", "training", 64),
]


def measure(preset: str, mode: str, batch: int, device: str, rounds: int) -> dict:
    cfg = get_preset(preset)
    settings = ProbeSettings(device=device, mode=mode, batch_size=batch, breakdown=False, repeats=30,
                             max_time_s=5.0)
    probe_ms, bench_ms = [], []
    step = build_step(cfg, settings)
    try:
        for _ in range(rounds):
            probe_ms.append(run_probe(cfg, settings).median_ms)
            for _ in range(2):  # warm-up, as the probe does
                step()
            m = tb.Timer(stmt="step()", globals={"step": step}, num_threads=torch.get_num_threads()
                         ).blocked_autorange(min_run_time=2.0)
            bench_ms.append(m.median * 1e3)
    finally:
        step.release()
    p, b = statistics.median(probe_ms), statistics.median(bench_ms)
    # each round's two measurements run back to back, so their ratio cancels slow drifts of the
    # machine's load; the median over rounds is the figure, the range shows the noise
    ratios = sorted(a / c for a, c in zip(probe_ms, bench_ms))
    ratio = statistics.median(ratios)
    return {"preset": preset, "mode": mode, "batch_size": batch, "probe_median_ms": p,
            "benchmark_median_ms": b, "ratio": ratio, "ratio_of_medians": p / b, "ratio_min": ratios[0], "ratio_max": ratios[-1],
            "within_5_percent": abs(ratio - 1) <= 0.05 and abs(p / b - 1) <= 0.05, "rounds": rounds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice; 1 is steadier "
                    "on a shared machine, where a busy core stalls every OpenMP barrier)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cases = GPU_CASES if device.type == "cuda" else CPU_CASES
    rows = [measure(*c, device=str(device), rounds=args.rounds) for c in cases]
    info = device_info(device)
    meta = {"device": str(device), "device_name": info.name, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "python": platform.python_version(),
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None}
    if args.json:
        print(json.dumps({"machine": meta, "rows": rows}, indent=2))
        return
    print(f"# {info.name} ({device}), torch {torch.__version__}, {meta['threads']} threads, "
          f"load average {meta['load_average']}")
    print(f"# {args.rounds} rounds; probe/benchmark ms = median over rounds; 'medians' = their ratio; "
          f"'per round' = median of the rounds' ratios (range in brackets); within 5% = both")
    print(f"{'preset':<20} {'mode':<10} {'batch':>5} {'probe ms':>10} {'benchmark ms':>13} {'medians':>8} "
          f"{'per round':>10} {'(range)':>13}  within 5%")
    for r in rows:
        print(f"{r['preset']:<20} {r['mode']:<10} {r['batch_size']:>5} {r['probe_median_ms']:>10.3f} "
              f"{r['benchmark_median_ms']:>13.3f} {r['ratio_of_medians']:>8.3f} {r['ratio']:>10.3f} "
              f"({r['ratio_min']:.2f}–{r['ratio_max']:.2f})  "
              f"{'yes' if r['within_5_percent'] else 'NO'}")


if __name__ == "__main__":
    main()
