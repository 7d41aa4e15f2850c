"""densegui's RDNet forward against timm's, on the same weights, CPU, interleaved.

    python benchmarks/rdnet_speed.py                  # rdnet_tiny, batch 1 and 8 at 224², alternating forwards
    python benchmarks/rdnet_speed.py --quick          # fewer pairs

timm's ``rdnet_tiny`` (random weights, seeded) is built, its state_dict loaded strictly into
densegui's model, and the outputs compared. Then the two forwards alternate one by one (A B B A A B …,
under ``torch.inference_mode()``, after warm-up), so a slow spell of a shared machine hits both: the
figures are each model's median and the median of the paired ratios (each A over its neighbouring B).
The goal (issue #24) is densegui ≤ 1.1 × timm. Threads: ``torch.set_num_threads(os.cpu_count())``
unless ``--threads``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # helpers.libraries: timm beside the CPU torch

import torch  # noqa: E402

from densegui.core.arch import registry as arch  # noqa: E402
from helpers.libraries import timm as import_timm  # noqa: E402


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def time_forward(model, x) -> float:
    """Seconds of one forward."""
    with torch.inference_mode():
        t = time.perf_counter()
        model(x)
        return time.perf_counter() - t


def models(preset: str, timm_name: str):
    timm = import_timm()
    if timm is None:
        raise SystemExit("timm is not installed (README's test command installs timm==1.0.31).")
    torch.manual_seed(0)
    theirs = timm.create_model(timm_name, pretrained=False).eval()
    with torch.no_grad():  # timm's init leaves γ at 1e-6: random γ so every block counts in the output check
        for name, p in theirs.named_parameters():
            if name.endswith("gamma"):
                p.uniform_(0.5, 1.5)
    ours = arch.build_model(arch.get_preset(preset), "cpu").eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        diff = (ours(x) - theirs(x)).abs().max().item()
    return ours, theirs, diff


def run(ours, theirs, batch: int, pairs: int, warmup: int) -> tuple[float, float, float, list[float]]:
    """(our median s, timm's median s, median paired ratio, the ratios)."""
    x = torch.randn(batch, 3, 224, 224)
    for _ in range(warmup):
        for m in (ours, theirs):
            time_forward(m, x)
    a, b = [], []
    for r in range(pairs):  # which goes first alternates: A B, B A, A B, …
        if r % 2 == 0:
            a.append(time_forward(ours, x))
            b.append(time_forward(theirs, x))
        else:
            b.append(time_forward(theirs, x))
            a.append(time_forward(ours, x))
    ratios = [p / q for p, q in zip(a, b)]
    return statistics.median(a), statistics.median(b), statistics.median(ratios), ratios


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer pairs (10 at batch 1, 4 at batch 8)")
    ap.add_argument("--pairs", type=int, default=None, help="timed pairs per batch size (default 30 / 12)")
    ap.add_argument("--batches", default="1,8", help="batch sizes, by commas (default 1,8)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--preset", default="rdnet-tiny")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    timm_name = args.preset.replace("-", "_")
    ours, theirs, diff = models(args.preset, timm_name)
    print(f"{cpu_name()}, {args.threads} threads, torch {torch.__version__}, Python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}; os.getloadavg {os.getloadavg()[0]:.2f}")
    print(f"{args.preset}: densegui vs timm {timm_name}, same weights (strict load), max |Δ output| {diff:.2e}; "
          "forwards alternating one by one")
    print(f"{'batch':>5}{'pairs':>6}{'densegui ms':>13}{'timm ms':>10}{'ratio':>8}{'paired':>8}   paired ratios p10–p90")
    for batch in (int(b) for b in args.batches.split(",")):
        pairs = args.pairs or ((10 if args.quick else 30) if batch == 1 else (4 if args.quick else 12))
        ours_s, theirs_s, paired, ratios = run(ours, theirs, batch, pairs, warmup=2)
        q = statistics.quantiles(ratios, n=10) if len(ratios) > 1 else ratios * 9
        print(f"{batch:>5}{pairs:>6}{ours_s * 1e3:>13.1f}{theirs_s * 1e3:>10.1f}{ours_s / theirs_s:>8.3f}"
              f"{paired:>8.3f}   {q[0]:.3f}–{q[-1]:.3f}")
    print("ratio: median densegui ÷ median timm; paired: median of each forward's ratio to its neighbour's "
          "(goal ≤ 1.10).")


if __name__ == "__main__":
    main()
