"""The reuse measures' speed targets (issue #20), measured here and reported, not asserted.

1. ``bn-weights`` of a densenet121 (random weights; the cost does not depend on them): the core
   computation with its noise floor, and in the panel, from choosing the measure to the heatmaps
   shown (target ≤ 0.3 s).
2. ``activation`` against one plain forward pass over the same images (target ≤ 1.5×): the
   shipped L = 40 net on the 359 held-out digits, and a densenet121 on 16 random 224² images.
3. ``ablation`` of every connection of the shipped L = 40 net (273 cuts, 359 images; target ≤ 30 s).
4. In the panel (offscreen), while that ablation runs in its background process: the longest
   gap between ticks of a 2 ms timer on the GUI thread (target ≤ 33 ms), and cancel → idle:
   from *Cancel* until the background process is free for the next job (target ≤ 0.2 s).

    python benchmarks/reuse_measures.py [--repeats 3] [--no-gui]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("DENSEGUI_NO_SETTINGS", "1")

from densegui.core.weights.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from densegui.core.arch.registry import get_preset  # noqa: E402
from densegui.core.train.data import Split  # noqa: E402
from densegui.core.arch.densenet.model import build_model  # noqa: E402
from densegui.core.analysis.reuse import default_checkpoint_path  # noqa: E402
from densegui.core.analysis.reuse_data import ablation_blocks, activation_values  # noqa: E402
from densegui.core.analysis.reuse_images import EvalData, resolve_data  # noqa: E402
from densegui.core.analysis.reuse_walk import network  # noqa: E402
from densegui.core.analysis.reuse_measures import _untrained_weight_blocks, weight_measure_with_noise  # noqa: E402

import reuse_load  # noqa: E402  (this folder; its machine line)


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{reuse_load.machine()}, load average {load:.1f} at start"


def timed(fn, repeats: int) -> tuple[float, float]:
    """(first, median of the rest) in seconds."""
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times[0], statistics.median(times[1:])


@torch.no_grad()
def forward_seconds(model, data: EvalData, repeats: int) -> float:
    batches = list(data.batches())
    return timed(lambda: [model(x) for x, _ in batches], repeats)[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-gui", action="store_true", help="skip the panel measurements")
    args = ap.parse_args()
    print(f"machine: {machine()}\n")
    rows = []

    # 1. bn-weights of a densenet121.
    cfg121 = get_preset("densenet121")
    torch.manual_seed(0)
    tmp = tempfile.TemporaryDirectory()
    path121 = save_checkpoint(Path(tmp.name) / "densenet121.pt", build_model(cfg121).state_dict(), cfg121, {})
    loaded121 = load_checkpoint(path121)
    _untrained_weight_blocks.cache_clear()
    first, median = timed(lambda: weight_measure_with_noise(loaded121.state_dict, cfg121, "bn-weights"), args.repeats)
    rows.append(("bn-weights, densenet121, core (first: with the noise floor's 3 untrained draws)",
                 f"{first:.3f} s first, {median:.3f} s after", "≤ 0.3 s"))

    # 2. activation against a forward pass.
    shipped = load_checkpoint(default_checkpoint_path())
    digits = resolve_data(shipped.config, shipped.metadata)
    walk = network(shipped.config, shipped.state_dict)
    fwd = forward_seconds(walk.model, digits, args.repeats)
    act = timed(lambda: activation_values(walk, digits), args.repeats)[1]
    rows.append((f"activation, shipped L=40 net, {len(digits)} digits", f"{act:.3f} s = {act / fwd:.2f}× "
                 f"one forward ({fwd:.3f} s)", "≤ 1.5×"))
    g = torch.Generator().manual_seed(0)
    images = Split(torch.randint(0, 256, (16, 3, 224, 224), dtype=torch.uint8, generator=g),
                   torch.randint(0, 1000, (16,), generator=g))
    data121 = EvalData("random", "16 random 224² images", images, 255.0, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    walk121 = network(cfg121, loaded121.state_dict)
    fwd121 = forward_seconds(walk121.model, data121, args.repeats)
    act121 = timed(lambda: activation_values(walk121, data121), args.repeats)[1]
    rows.append(("activation, densenet121, 16 images at 224²", f"{act121:.3f} s = {act121 / fwd121:.2f}× one "
                 f"forward ({fwd121:.3f} s)", "≤ 1.5×"))
    del walk121, loaded121

    # 3. ablation of every connection of the shipped net.
    t0 = time.perf_counter()
    blocks, _ = ablation_blocks(shipped.config, shipped.state_dict, digits, walk=walk)
    abl = time.perf_counter() - t0
    cuts = sum(int((~__import__("numpy").isnan(b.matrix)).sum()) for b in blocks)
    rows.append((f"ablation, shipped L=40 net: {cuts} cuts × {len(digits)} images", f"{abl:.1f} s "
                 f"({abl / fwd:.0f} forward passes' worth)", "≤ 30 s"))

    if not args.no_gui:
        rows += panel_measurements(path121)
    print("| measurement | result | target |\n|---|---|---|")
    for what, result, target in rows:
        print(f"| {what} | {result} | {target} |")
    tmp.cleanup()


def panel_measurements(path121: Path) -> list[tuple[str, str, str]]:
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from densegui.gui.jobs import EXPLORE, REUSE
    from densegui.gui.reuse_panel import ReusePanel
    from densegui.gui.tasks import close_shared_pool, shared_pool

    from densegui.gui import guard_refcounts

    guard_refcounts()  # before any Qt call (densegui/gui/__init__.py)
    app = QApplication.instance() or QApplication([])
    # In the app both lanes are warm long before a measure is chosen.
    shared_pool().get(EXPLORE).run("warm_up")
    shared_pool().get(REUSE).run("warm_up")
    panel = ReusePanel(load_default=False)
    panel.resize(1400, 800)
    panel.show()
    rows = []
    clock = QElapsedTimer()
    clock.start()

    def run_until(start, done_signal=None, stop_after: float | None = None) -> tuple[float, float]:
        """(seconds until ``done_signal`` or ``stop_after``, longest gap between 2 ms ticks in ms)."""
        ticks: list[int] = []
        timer = QTimer()
        timer.setInterval(2)
        timer.timeout.connect(lambda: ticks.append(clock.elapsed()))
        loop = QEventLoop()
        if done_signal is not None:
            done_signal.connect(loop.quit)
        if stop_after is not None:
            QTimer.singleShot(int(stop_after * 1000), loop.quit)
        t0 = time.perf_counter()
        timer.start()
        start()
        loop.exec()
        timer.stop()
        if done_signal is not None:
            done_signal.disconnect(loop.quit)
        gaps = [b - a for a, b in zip(ticks, ticks[1:])]
        return time.perf_counter() - t0, float(max(gaps, default=0))

    def choose(measure: str) -> tuple[float, float]:
        if panel.measure_combo.currentData() == measure:
            return 0.0, 0.0
        return run_until(lambda: panel.measure_combo.setCurrentIndex(panel.measure_combo.findData(measure)),
                         panel.loadFinished)

    run_until(lambda: panel.load_checkpoint(str(path121)), panel.loadFinished)
    times = []
    for _ in range(3):
        choose("weights")
        times.append(choose("bn-weights")[0])
    rows.append(("bn-weights, densenet121, in the panel (choose → shown)",
                 f"median {statistics.median(times):.3f} s of {len(times)}", "≤ 0.3 s"))

    choose("weights")
    run_until(lambda: panel.load_checkpoint(str(default_checkpoint_path())), panel.loadFinished)
    seconds, stall = choose("ablation")
    rows.append(("ablation of the shipped net in the panel: longest GUI stall while it runs",
                 f"{stall:.0f} ms over {seconds:.1f} s", "≤ 33 ms"))
    idle = []
    for _ in range(5):
        choose("weights")
        panel.measure_combo.setCurrentIndex(panel.measure_combo.findData("ablation"))
        run_until(lambda: None, stop_after=1.5)
        t0 = time.perf_counter()
        panel.cancel()
        proc = shared_pool().get(REUSE)
        while proc.is_busy():
            app.processEvents()
            time.sleep(0.001)
        idle.append(time.perf_counter() - t0)
    rows.append(("cancel → background process idle (ablation running)",
                 f"median {1000 * statistics.median(idle):.0f} ms, max {1000 * max(idle):.0f} ms of 5", "≤ 0.2 s"))
    panel.shutdown()
    panel.close()
    panel.deleteLater()
    app.processEvents()
    close_shared_pool()
    return rows


if __name__ == "__main__":
    sys.exit(main())
