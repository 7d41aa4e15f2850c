"""Core engine speed, for every preset: validate + analytic layer table, model
build (CPU with real weights, and on the meta device), torchinfo summary (meta
device, depth 3), with the preset's parameter count and MACs.

    python benchmarks/core_speed.py            # full run (~2 min on 2 cores)
    python benchmarks/core_speed.py --quick    # fewer repetitions

Times are medians over repetitions, after one untimed warm-up per preset.
The first line reports the one-off cold start (the first meta-device
summary in a fresh process pays for torch's lazy imports).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

T0 = time.perf_counter()
import torch  # noqa: E402

from densegui.core.arch.densenet.config import PRESETS  # noqa: E402
from densegui.core.arch.densenet.model import build_model  # noqa: E402
from densegui.core.arch.densenet.table import compute_layer_table  # noqa: E402
from densegui.core.analysis.summary import summarize  # noqa: E402

IMPORT_S = time.perf_counter() - T0


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def fmt_ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--presets", nargs="*", default=list(PRESETS), help="subset of presets")
    args = ap.parse_args()
    n_table, n_build, n_meta, n_sum = (50, 1, 3, 1) if args.quick else (300, 3, 7, 3)

    print(f"machine: {cpu_model_name()}, {os.cpu_count()} logical cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} intra-op threads, load average {os.getloadavg()[0]:.1f} at start")
    t = time.perf_counter()
    summarize(PRESETS["densenet121"].config, depth=3)
    print(f"cold start: import densegui.core + torch {IMPORT_S:.2f} s; first meta summary (densenet121) "
          f"{time.perf_counter() - t:.2f} s (torch imports its meta-device decompositions lazily)")
    print(f"repetitions: table {n_table}, CPU build {n_build}, meta build {n_meta}, summary {n_sum} (median)\n")

    head = (f"{'preset':<21}{'params':>12}{'GMACs':>7}{'table ms':>10}{'CPU build ms':>14}"
            f"{'meta build ms':>15}{'(init skipped)':>16}{'summary ms':>12}")
    print(head)
    print("-" * len(head))
    for name in args.presets:
        cfg = PRESETS[name].config

        def table():
            return compute_layer_table(cfg.replace(input_size=cfg.input_size))  # validated; uncached

        tab = table()
        t_table = median_time(table, n_table)
        build_model(cfg, "meta")
        t_meta = median_time(lambda: build_model(cfg, "meta"), n_meta)
        meta_model = build_model(cfg, "meta")
        t_init = median_time(meta_model.reset_parameters, n_meta)  # what build_model no longer spends on meta
        t_cpu = median_time(lambda: build_model(cfg, "cpu"), n_build)
        summarize(cfg, depth=3)
        t_sum = median_time(lambda: summarize(cfg, depth=3), n_sum)
        print(f"{name:<21}{tab.params:>12,}{tab.macs / 1e9:>7.2f}{fmt_ms(t_table):>10}{fmt_ms(t_cpu):>14}"
              f"{fmt_ms(t_meta):>15}{fmt_ms(t_init):>16}{fmt_ms(t_sum):>12}")
    print("\ntable = validate() + compute_layer_table() (analytic, no model, uncached); CPU build = DenseNet with torchvision's "
          "initialisation;\nmeta build = no memory, weight init skipped ('init skipped' = what reset_parameters() "
          "would add on meta);\nsummary = torchinfo, meta device, depth 3, batch 1, preset's input size. "
          "MACs: conv + linear, batch 1.")


if __name__ == "__main__":
    main()
