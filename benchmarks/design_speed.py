"""Design space speed: a 50-point analytic sweep, a change of the frontier's axis, and the window's
longest event-loop stall while a measured sweep runs in the background.

    python benchmarks/design_speed.py [--repeats 15]

Targets (issue #13): sweep and axis change ≤ 50 ms each; the window within the stall target
while a measured sweep runs. The sweep is timed uncached (each point's layer table computed anew).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("DENSEGUI_NO_SETTINGS", "1")


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()

    from densegui.core.arch import registry as arch

    from densegui.core.analysis import design

    from densegui.core.arch.resnet import config as resnet

    from densegui.core.arch.densenet import table as stats

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f} at start")
    print(f"{'measure':<58}{'median ms':>10}{'max ms':>9}")
    cases = [("densenet121: k = 1..50 (50 points)", "densenet121", "k=1:50:1"),
             ("densenet264: block 3 depth = 1..50", "densenet264", "block3=1:50:1"),
             ("resnet50: width = 8..400 step 8 (50 points)", "resnet50", "width=8:400:8")]
    for label, preset, vary in cases:
        cfg, v = arch.get_preset(preset), design.parse_vary(vary)

        def run(cfg=cfg, v=v):
            stats._cached_layer_table.cache_clear()  # (uncached: every point's table computed anew)
            resnet._cached.cache_clear()
            rows = design.sweep_rows(cfg, v)
            assert len(rows) == 50
        ms = timed(run, args.repeats)
        print(f"{'analytic sweep, ' + label:<58}{statistics.median(ms):>10.1f}{max(ms):>9.1f}")

    from PySide6.QtCore import QElapsedTimer, QEventLoop, Qt, QTimer
    from PySide6.QtWidgets import QApplication

    from densegui.core.arch.densenet.config import DenseNetConfig
    from densegui.gui.design_panel import DesignPanel
    from densegui.gui.tasks import close_shared_pool

    from densegui.gui import guard_refcounts

    guard_refcounts()  # before any Qt call (densegui/gui/__init__.py)
    app = QApplication.instance() or QApplication([])
    panel = DesignPanel()
    panel.resize(1300, 800)
    panel.show()
    QEventLoop().processEvents()
    axes = ["params", "macs"]

    def switch(state={"i": 0}):
        state["i"] += 1
        panel.x_combo.setCurrentIndex(panel.x_combo.findData(axes[state["i"] % 2]))
        panel.frontier.repaint()
    ms = timed(switch, args.repeats)
    print(f"{'frontier: change of x axis (recompute + repaint)':<58}{statistics.median(ms):>10.1f}{max(ms):>9.1f}")

    # Stall while a measured sweep runs: a 2 ms timer's longest gap.
    panel.set_config(DenseNetConfig(growth_rate=12, block_depths=(4, 4, 4), stem="cifar", num_classes=10,
                                    input_size=32))
    panel.device_combo.setCurrentIndex(panel.device_combo.findData("cpu"))
    panel.field_combo.setCurrentIndex(panel.field_combo.findData("growth_rate"))
    panel.start_spin.setValue(4)
    panel.stop_spin.setValue(40)
    panel.step_spin.setValue(4)
    panel.measure_check.setChecked(True)
    clock, gaps, last = QElapsedTimer(), [], [None]

    def tick():
        now = clock.nsecsElapsed() / 1e6
        if last[0] is not None:
            gaps.append(now - last[0])
        last[0] = now
    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(2)
    timer.timeout.connect(tick)
    loop = QEventLoop()
    panel.sweepFinished.connect(lambda _ok: loop.quit())
    clock.start()
    timer.start()
    t0 = time.perf_counter()
    panel.start_sweep()
    loop.exec()
    timer.stop()
    took = time.perf_counter() - t0
    measured = sum(1 for r in panel.sweep_rows if r.get("measured"))
    print(f"{'measured sweep (10 points, cpu): longest stall':<58}{max(gaps):>10.1f}{'':>9}")
    print(f"  ({measured} points measured in {took:.1f} s, the probe's process started cold; p99 gap "
          f"{sorted(gaps)[int(0.99 * len(gaps))]:.1f} ms)")
    panel.shutdown()
    panel.close()
    close_shared_pool()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
