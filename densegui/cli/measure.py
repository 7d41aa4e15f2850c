"""The ``--measure`` options shared by ``compare`` and ``sweep`` (the timing probe, round-robin)."""

from __future__ import annotations

from densegui.core.devices import PRECISIONS
from densegui.core.probe.types import MODES, ProbeSettings


def add_measure_args(p) -> None:
    g = p.add_argument_group("measure")
    g.add_argument("--measure", action="store_true",
                   help="also time each configuration with the probe (round-robin over configurations)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    g.add_argument("--mode", choices=MODES, default="inference", help="inference or training step")
    g.add_argument("--batch-size", type=int, default=1, help="images per iteration (default 1)")
    g.add_argument("--precision", default="fp32", help=" | ".join(PRECISIONS))
    g.add_argument("--rounds", type=int, default=3, help="round-robin rounds (default 3)")
    g.add_argument("--repeats", type=int, default=10, help="timed iterations per probe (default 10)")


def settings_from_args(args) -> ProbeSettings:
    return ProbeSettings(device=args.device, mode=args.mode, batch_size=args.batch_size, precision=args.precision,
                         repeats=args.repeats, min_repeats=min(3, args.repeats), max_time_s=5.0,
                         breakdown=False).validate()


def measured(configs, settings: ProbeSettings, rounds: int) -> list[dict]:
    import sys

    from densegui.core.analysis.design import measure

    def progress(fraction: float, text: str) -> None:
        print(f"\r{100 * fraction:5.1f}%  {text[:60]:<60}", end="", file=sys.stderr, flush=True)

    try:
        return measure(configs, settings, rounds, progress=progress)
    finally:
        print(file=sys.stderr)
