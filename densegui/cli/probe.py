"""``densegui probe``: measure latency, throughput and peak memory on a device."""

from __future__ import annotations

import json

from densegui.cli.common import add_model_args, config_from_args, join_words
from densegui.core.arch.registry import families
from densegui.core.devices import PRECISIONS, list_devices
from densegui.core.errors import ConfigError
from densegui.core.probe.types import MAX_BATCH, MODES, ProbeSettings
from densegui.core.units import human_bytes


def register(sub) -> None:
    p = sub.add_parser("probe", help=f"time a {join_words([f.title for f in families().values()])} on a real device: "
                                        "latency, throughput, peak memory, TFLOP/s")
    add_model_args(p, checkpoint=True)
    g = p.add_argument_group("probe")
    g.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    g.add_argument("--list-devices", action="store_true", help="list the devices present and exit")
    g.add_argument("--mode", choices=MODES, default="inference",
                   help="inference (forward, no autograd) or training (forward + backward + SGD step)")
    g.add_argument("--batch-size", type=int, default=1, help=f"images per iteration, 1 to {MAX_BATCH} (default 1)")
    g.add_argument("--precision", default="fp32", help=f"{' | '.join(PRECISIONS)} (bf16/fp16 via autocast)")
    g.add_argument("--channels-last", action="store_true", help="NHWC memory format for model and input")
    g.add_argument("--repeats", type=int, default=30, help="timed iterations (default 30; fewer after 10 s)")
    g.add_argument("--no-breakdown", action="store_true", help="skip the profiler's per-kind breakdown")
    g.add_argument("--sweep", action="store_true",
                   help="throughput and peak memory for batch 1, 2, 4, … up to --max-batch or the memory limit")
    g.add_argument("--max-batch", type=int, default=1024, help="largest batch of --sweep (default 1024)")
    g.add_argument("--budget", type=float, metavar="GIB", help="memory budget of --sweep in GiB "
                   "(default: device memory on CUDA, available memory on the CPU)")
    g.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _ms(v: float) -> str:
    return f"{v:.3f} ms" if v < 100 else f"{v:.1f} ms"


def _print_result(r) -> None:
    print(f"Device:        {r.device} — {r.device_name}")
    print(f"Run:           {r.mode}, batch {r.batch_size}, {r.input_size}×{r.input_size}, {r.precision}"
          f"{', channels-last' if r.channels_last else ''}, memory-efficient {'on' if r.memory_efficient else 'off'}")
    print(f"Latency:       median {_ms(r.median_ms)}  (p10 {_ms(r.p10_ms)}, p90 {_ms(r.p90_ms)}; "
          f"{r.repeats} timed iterations after {r.warmup_iterations} warm-up"
          f"{'' if r.warmup_settled else ', warm-up did not settle'})")
    print(f"Throughput:    {r.throughput:,.1f} images/s")
    if r.peak_memory_bytes is None:
        print(f"Peak memory:   n/a ({r.peak_memory_convention})")
    else:
        print(f"Peak memory:   {human_bytes(r.peak_memory_bytes)}  ({r.peak_memory_convention})")
    print(f"Estimate:      {human_bytes(r.estimated_memory_bytes)} (the memory guard's analytic estimate)")
    frac = f", {100 * r.fraction_of_peak:.1f}% of the {r.peak_tflops:g} TFLOP/s peak ({r.peak_basis})" \
        if r.fraction_of_peak is not None else ", device peak unknown"
    print(f"Compute:       {r.achieved_tflops:.4g} TFLOP/s achieved{frac}")
    print(f"               FLOPs/iteration {r.flops_per_iteration:,} = {r.flops_convention}")
    if r.breakdown:
        print(f"Breakdown:     {r.breakdown_convention}")
        for kind, v in sorted(r.breakdown.items(), key=lambda kv: -kv[1]["ms"]):
            print(f"  {kind:<15} {v['ms']:10.3f} ms  {100 * v['fraction']:5.1f}%")


def _print_sweep(s) -> None:
    print(f"Sweep on {s.device} — {s.device_name}, {s.mode}")
    print(f"{'batch':>6} {'median ms':>11} {'images/s':>11} {'peak memory':>12} {'estimate':>10}")
    for p in s.points:
        mem = human_bytes(p.peak_memory_bytes) if p.peak_memory_bytes is not None else "n/a"
        print(f"{p.batch_size:>6} {p.median_ms:>11.3f} {p.throughput:>11.1f} {mem:>12} "
              f"{human_bytes(p.estimated_memory_bytes):>10}")
    print(f"Limit: {s.limit_batch if s.limit_batch is not None else 'none'} ({s.stop_reason}: {s.message})")


def run(args) -> int:
    if args.list_devices:
        devices = list_devices()
        if args.json:
            print(json.dumps([{"id": d.id, "name": d.name, "total_memory_bytes": d.total_memory} for d in devices],
                             indent=2))
        else:
            for d in devices:
                mem = f", {human_bytes(d.total_memory)}" if d.total_memory else ""
                print(f"{d.id:<8} {d.name}{mem}")
        return 0
    if not 1 <= args.batch_size <= MAX_BATCH:
        raise ConfigError(f"--batch-size must be from 1 to {MAX_BATCH}, got {args.batch_size}.")
    if not 1 <= args.repeats <= 100_000:
        raise ConfigError(f"--repeats must be from 1 to 100000, got {args.repeats}.")
    if args.budget is not None and not args.budget > 0:
        raise ConfigError(f"--budget must be a positive number of GiB, got {args.budget}.")
    from densegui.core.probe.run import run_probe, sweep  # loads torch: only when a probe runs

    cfg = config_from_args(args)
    settings = ProbeSettings(device=args.device, mode=args.mode, batch_size=args.batch_size,
                             precision=args.precision.lower(), channels_last=args.channels_last,
                             repeats=args.repeats, min_repeats=min(5, args.repeats), breakdown=not args.no_breakdown)
    if args.sweep:
        budget = int(args.budget * 2**30) if args.budget is not None else None
        result = sweep(cfg, settings, max_batch=args.max_batch, budget_bytes=budget)
        if args.json:
            print(json.dumps(result.to_dict(), indent=2))
        else:
            _print_sweep(result)
        return 0
    result = run_probe(cfg, settings)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        _print_result(result)
    return 0
