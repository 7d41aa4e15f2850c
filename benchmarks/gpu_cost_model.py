"""DenseNet versus its cost model: achieved TFLOP/s and fraction of the device's peak, per preset.

FLOPs per iteration = 2 × analytic conv+linear MACs × batch (×3 for a
training step); achieved TFLOP/s = that / the probe's median time; the
fraction is against the datasheet peak in ``densegui.core.devices`` (dense
tensor-core peak for bf16/fp16; TF32 for fp32 when cuDNN's TF32 is on, as by
default). DenseNets are memory-bound (many thin convolutions, concatenation
copies, BN/ReLU on wide inputs), so expect a small fraction.

Where torchvision is importable, its densenet121 is timed against densegui's
densenet121 in the same process on the same device (same batch, mode,
precision; torch.utils.benchmark on both).

    python benchmarks/gpu_cost_model.py                       # auto device; all presets on GPU
    python benchmarks/gpu_cost_model.py --precision bf16 --mode training
    python benchmarks/gpu_cost_model.py --device cpu          # works on CPU too (two presets, no fraction)
"""

from __future__ import annotations

import argparse
import json
import os

import torch
import torch.utils.benchmark as tb

from densegui.core.arch.densenet.config import PRESETS

from densegui.core.arch.registry import get_preset
from densegui.core.devices import device_info, resolve_device
from densegui.core.probe.run import build_step, run_probe
from densegui.core.probe.types import ProbeSettings
from densegui.core.arch.registry import flops_per_iteration

CPU_PRESETS = ("densenet-bc-100-k12", "densenet121")


def bench_step(step) -> float:
    for _ in range(3):
        step()
    return tb.Timer(stmt="step()", globals={"step": step}).blocked_autorange(min_run_time=2.0).median * 1e3


def torchvision_comparison(settings: ProbeSettings) -> dict | None:
    try:
        import torchvision
    except ImportError:
        return None
    cfg = get_preset("densenet121")
    ours = build_step(cfg, settings)
    ours_ms = bench_step(ours)
    theirs = build_step(cfg, settings)  # the same step machinery (input, loss, optimizer) around torchvision's model
    fmt = torch.channels_last if settings.channels_last else torch.contiguous_format
    model = torchvision.models.densenet121(weights=None).to(theirs.device, memory_format=fmt)
    model.train(settings.mode == "training")
    theirs.model = model
    if settings.mode == "training":
        theirs.opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    theirs_ms = bench_step(theirs)
    ours.release()
    theirs.release()
    return {"densegui_ms": ours_ms, "torchvision_ms": theirs_ms, "ratio": ours_ms / theirs_ms,
            "torchvision": torchvision.__version__}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--mode", default="inference", choices=("inference", "training"))
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--batch", type=int, help="default: 64 on GPU, 8 on CPU")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--presets", help="comma-separated (default: all on GPU, two on CPU)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    device = resolve_device(args.device)
    batch = args.batch or (64 if device.type == "cuda" else 8)
    names = args.presets.split(",") if args.presets else (list(PRESETS) if device.type == "cuda" else CPU_PRESETS)
    settings = ProbeSettings(device=str(device), mode=args.mode, batch_size=batch, precision=args.precision,
                             channels_last=args.channels_last, breakdown=False, repeats=20, max_time_s=5.0)
    rows = []
    for name in names:
        r = run_probe(get_preset(name), settings)
        rows.append({"preset": name, "batch_size": batch, "input_size": r.input_size, "median_ms": r.median_ms,
                     "throughput": r.throughput, "gflops_per_iteration": r.flops_per_iteration / 1e9,
                     "achieved_tflops": r.achieved_tflops, "peak_tflops": r.peak_tflops,
                     "fraction_of_peak": r.fraction_of_peak, "peak_basis": r.peak_basis,
                     "peak_memory_bytes": r.peak_memory_bytes})
        assert r.flops_per_iteration == flops_per_iteration(get_preset(name), batch, args.mode)
    tv = torchvision_comparison(settings)
    info = device_info(device)
    meta = {"device": str(device), "device_name": info.name, "torch": torch.__version__, "mode": args.mode,
            "precision": args.precision, "channels_last": args.channels_last,
            "cudnn_tf32": bool(torch.backends.cudnn.allow_tf32) if device.type == "cuda" else None,
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None}
    if args.json:
        print(json.dumps({"machine": meta, "rows": rows, "torchvision_densenet121": tv}, indent=2))
        return
    print(f"# {info.name} ({device}), torch {torch.__version__}, {args.mode}, {args.precision}"
          f"{', channels-last' if args.channels_last else ''}, batch {batch}; FLOPs = 2×MACs×batch"
          f"{' ×3' if args.mode == 'training' else ''}")
    print(f"{'preset':<20} {'input':>5} {'median ms':>10} {'images/s':>10} {'GFLOP/it':>9} {'TFLOP/s':>8} "
          f"{'% peak':>7}")
    for r in rows:
        frac = f"{100 * r['fraction_of_peak']:.1f}" if r["fraction_of_peak"] is not None else "n/a"
        print(f"{r['preset']:<20} {r['input_size']:>5} {r['median_ms']:>10.2f} {r['throughput']:>10.1f} "
              f"{r['gflops_per_iteration']:>9.1f} {r['achieved_tflops']:>8.3f} {frac:>7}")
    if rows and rows[0]["peak_basis"]:
        print(f"# peak: {rows[0]['peak_tflops']} TFLOP/s ({rows[0]['peak_basis']})")
    if tv is None:
        print("# torchvision not importable: no torchvision densenet121 comparison")
    else:
        print(f"# densenet121, same run: densegui {tv['densegui_ms']:.2f} ms vs torchvision {tv['torchvision']} "
              f"{tv['torchvision_ms']:.2f} ms (ratio {tv['ratio']:.3f})")


if __name__ == "__main__":
    main()
