"""Training throughput: one process against several (torch.distributed.run), and AMP on/off on GPUs.

Every case is one fresh ``densegui train … --json`` process (with ``--nproc N`` it starts
``torch.distributed.run`` itself). images/s is the run's own figure: all ranks' training images
divided by rank 0's training time, averaged over the epochs after the first (warm-up:
imports, allocator, the first collective). Wall time includes start-up.

CPU (always): the shipped digits architecture (basic DenseNet, k=12, blocks 5,5,5, 8×8 input),
global batch 64: 1 process × 1 thread, 1 process × all threads, N processes × 1 thread.
GPU (where CUDA exists): densenet121 at 224×224, global batch 64, on a synthetic in-memory
image folder: 1 GPU and every GPU, fp32 and bf16 + channels-last.

    python benchmarks/train_scaling.py              # CPU cases, and the GPU cases if CUDA is present
    python benchmarks/train_scaling.py --cpu-only --epochs 4 --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY_CPU = ["--dataset", "digits", "--batch-size", "64", "--device", "cpu", "--no-augment"]


def run_case(name: str, flags: list[str], epochs: int, out_dir: Path) -> dict:
    out = out_dir / f"{name.replace(' ', '_').replace('×', 'x')}.pt"
    cmd = [sys.executable, "-m", "densegui", "train", *flags, "--epochs", str(epochs), "--out", str(out), "--json"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise SystemExit(f"{name} failed: {' '.join(cmd)}\n{lines[-1] if lines else proc.returncode}")
    summary = json.loads(proc.stdout)
    later = [h["images_per_s"] for h in summary["history"][1:]] or [summary["history"][0]["images_per_s"]]
    return {"case": name, "images_per_s": sum(later) / len(later), "wall_s": wall,
            "heldout_accuracy": summary["heldout_accuracy"], "world_size": summary.get("world_size", 1),
            "command": " ".join(["densegui", *cmd[3:]])}


def synthetic_folder(root: Path, n: int = 1024, side: int = 224, classes: int = 10) -> str:
    """``folder:`` dataset of random RGB PNGs (read into memory once; on a GPU it stays there)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        d = root / f"c{i % classes}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(d / f"{i}.png", compress_level=0)
    return f"folder:{root}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3, help="epochs per case (the first is not counted)")
    ap.add_argument("--nproc", type=int, default=2, help="processes of the CPU multi-process case")
    ap.add_argument("--cpu-only", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    cpus = os.cpu_count() or 1
    results = []
    with tempfile.TemporaryDirectory(prefix="densegui-scaling-") as tmp:
        out_dir = Path(tmp)
        for name, flags in [("cpu 1 proc × 1 thread", ["--threads", "1"]),
                            (f"cpu 1 proc × {cpus} threads", ["--threads", str(cpus)]),
                            (f"cpu {args.nproc} procs × 1 thread", ["--threads", "1", "--nproc", str(args.nproc)])]:
            results.append(run_case(name, TINY_CPU + flags, args.epochs, out_dir))
        gpus = 0
        if not args.cpu_only:
            import torch

            gpus = torch.cuda.device_count()
        if gpus:
            spec = synthetic_folder(out_dir / "synthetic")
            base = ["--preset", "densenet121", "--dataset", spec, "--input-size", "224", "--batch-size", "64",
                    "--device", "cuda", "--no-augment"]
            counts = sorted({1, gpus})
            for n in counts:
                for amp, extra in (("fp32", []), ("bf16 + channels-last", ["--precision", "bf16", "--channels-last"])):
                    launch = ["--nproc", str(n)] if n > 1 else []
                    results.append(run_case(f"densenet121 {n} GPU {amp}", base + extra + launch, args.epochs, out_dir))
    info = {"python": platform.python_version(), "machine": f"{platform.system()} {platform.machine()}",
            "cpus": cpus, "gpus": gpus, "results": results}
    if args.json:
        print(json.dumps(info, indent=2))
        return
    print(f"{info['machine']}, {cpus} CPUs, {gpus} CUDA GPU(s); images/s after the first epoch")
    width = max(len(r["case"]) for r in results)
    for r in results:
        print(f"{r['case']:<{width}}  {r['images_per_s']:9.0f} img/s  wall {r['wall_s']:6.1f} s  "
              f"held-out {100 * r['heldout_accuracy']:5.1f}%")


if __name__ == "__main__":
    main()
