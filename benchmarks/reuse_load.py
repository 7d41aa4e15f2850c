"""Time load + infer + reuse matrices for a densenet264-sized checkpoint (issue #4 target: ≤ 1 s).

Writes a random-weight DenseNet-264 (≈33.3M parameters, ≈133 MB float32) to a
temporary folder in several formats, then for each format runs
``load_checkpoint`` (safe load, key normalisation, config inference or stored
config check, NaN scan) followed by ``reuse_matrices`` several times and
prints the median and spread. The first (cold page-cache) run is reported
separately.

Then it loads the plain state_dict in ``ReusePanel`` (offscreen) while a
10 ms QTimer ticks on the GUI thread and reports the longest gap between
ticks: how long the panel could not react while the load ran.

    python benchmarks/reuse_load.py [--repeats 7] [--preset densenet264] [--no-gui]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from densegui.core.weights.checkpoint import load_checkpoint, save_checkpoint, save_safetensors
from densegui.core.arch.registry import get_preset
from densegui.core.arch.densenet.model import build_model
from densegui.core.analysis.reuse_measures import reuse_matrices


def legacy(sd):
    import re

    return {re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", k): v
            for k, v in sd.items() if not k.endswith("num_batches_tracked")}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--preset", default="densenet264")
    ap.add_argument("--no-gui", action="store_true", help="skip the GUI responsiveness measurement")
    args = ap.parse_args()
    cfg = get_preset(args.preset)
    torch.manual_seed(0)
    sd = build_model(cfg).state_dict()
    params = sum(v.numel() for k, v in sd.items() if "running" not in k and "num_batches" not in k)
    print(f"{args.preset}: {params:,} parameters; machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        files = {
            "densegui checkpoint (stored config)": save_checkpoint(Path(tmp) / "a.pt", sd, cfg, {"note": "bench"}),
            "plain state_dict (inferred)": Path(tmp) / "b.pt",
            "torchvision legacy keys (inferred)": Path(tmp) / "c.pth",
            "DDP 'module.' in {'state_dict': …}": Path(tmp) / "d.pt",
            "safetensors (inferred)": save_safetensors(Path(tmp) / "e.safetensors", sd),
        }
        torch.save(sd, files["plain state_dict (inferred)"])
        torch.save(legacy(sd), files["torchvision legacy keys (inferred)"])
        torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in sd.items()}},
                   files["DDP 'module.' in {'state_dict': …}"])
        # Let the kernel write the fresh files out first (a user's checkpoint is not seconds old).
        os.sync()
        del sd
        # Round-robin over the formats so that load from other jobs on a shared machine
        # spreads over all of them instead of penalising whichever format runs first.
        times: dict[str, list[float]] = {label: [] for label in files}
        split: dict[str, list[tuple[float, float]]] = {label: [] for label in files}
        for _ in range(args.repeats + 1):
            for label, path in files.items():
                t0 = time.perf_counter()
                loaded = load_checkpoint(path)
                t1 = time.perf_counter()
                blocks = reuse_matrices(loaded.state_dict, loaded.config)
                t2 = time.perf_counter()
                times[label].append(t2 - t0)
                split[label].append((t1 - t0, t2 - t1))
                assert loaded.config.block_depths == cfg.block_depths and len(blocks) == cfg.num_blocks
                del loaded, blocks
        print()
        print(f"| format | size | first run (s) | median of {args.repeats} (s) | min–max (s) | load / matrices (s) |")
        print("|---|---|---|---|---|---|")
        for label, path in files.items():
            first, rest = times[label][0], times[label][1:]
            load_med = statistics.median(x[0] for x in split[label][1:])
            mat_med = statistics.median(x[1] for x in split[label][1:])
            size = path.stat().st_size / 1e6
            print(f"| {label} | {size:.0f} MB | {first:.3f} | {statistics.median(rest):.3f} "
                  f"| {min(rest):.3f}–{max(rest):.3f} | {load_med:.3f} / {mat_med:.3f} |")
        if not args.no_gui:
            gui_responsiveness(files["plain state_dict (inferred)"], args.repeats)


def gui_responsiveness(path: Path, repeats: int) -> None:
    """Load in ReusePanel (offscreen) while a 10 ms QTimer ticks; report the longest gap between ticks."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from densegui.gui.reuse_panel import ReusePanel

    from densegui.gui import guard_refcounts

    guard_refcounts()  # before any Qt call (densegui/gui/__init__.py)
    app = QApplication.instance() or QApplication([])
    # The panel loads in the background process the explorer starts for its summaries; in the app
    # it is running long before a checkpoint is opened, so start it (and warm it up) first.
    from densegui.gui.jobs import EXPLORE
    from densegui.gui.tasks import close_shared_pool, shared_pool

    shared_pool().get(EXPLORE).run("warm_up")
    panel = ReusePanel(load_default=False)
    panel.resize(1200, 600)
    panel.show()
    gaps, totals = [], []
    clock = QElapsedTimer()
    for _ in range(repeats):
        ticks: list[int] = []
        timer = QTimer()
        timer.setInterval(10)
        timer.timeout.connect(lambda: ticks.append(clock.elapsed()))
        # A real event loop until the panel reports (not a processEvents() polling loop).
        loop = QEventLoop()
        panel.loadFinished.connect(loop.quit)
        clock.start()
        timer.start()
        panel.load_checkpoint(str(path))
        loop.exec()
        timer.stop()
        panel.loadFinished.disconnect(loop.quit)
        totals.append(clock.elapsed() / 1000)
        stamps = [0, *ticks, clock.elapsed()]
        gaps.append(max(b - a for a, b in zip(stamps, stamps[1:])))
    panel.shutdown()
    panel.close()
    panel.deleteLater()
    QEventLoop().processEvents()
    close_shared_pool()
    print()
    print("| GUI: ReusePanel.load_checkpoint (background process), offscreen | median | max |")
    print("|---|---|---|")
    print(f"| time until the heatmaps are shown (s) | {statistics.median(totals):.3f} | {max(totals):.3f} |")
    print(f"| longest gap between 10 ms timer ticks on the GUI thread (ms) | {statistics.median(gaps):.0f} "
          f"| {max(gaps):.0f} |")


if __name__ == "__main__":
    main()
