"""UI latency of the explorer window: scripted slider sweeps, offscreen.

For every change of a sweep (driven from the event loop at ~60 Hz, like a
drag) it measures

* headline + plots: from the slider's setValue until the end of the first
  repaint of the channel plots that shows its table or a newer one (the
  headline labels are updated synchronously in the change handler).
  The event loop paints on its own, as in a real drag: an earlier version
  forced a synchronous repaint after each change, and the scene's own queued
  update then painted everything a second time;
* summary: from the last change of the sweep until the torchinfo summary of
  that last configuration is on screen (intermediate configurations are
  dropped by design: latest wins); plus single changes made from idle;
* longest event-loop stall: the largest gap between ticks of a 2 ms timer
  running during the whole sweep (includes the change handling itself).

Usage: python benchmarks/ui_latency.py [--quick]
       PYTHONPATH=/path/to/older/checkout python benchmarks/ui_latency.py   (before/after in one sitting)
Targets: headline and plots <= 100 ms; stall <= 33 ms; summary <= 1 s (densenet121).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("DENSEGUI_NO_SETTINGS", "1")

from PySide6.QtCore import QElapsedTimer, QEventLoop, Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402


class StallMonitor:
    def __init__(self, interval_ms: int = 2) -> None:
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.clock = QElapsedTimer()
        self.last = None
        self.max_gap = 0.0

    def _tick(self) -> None:
        now = self.clock.nsecsElapsed() / 1e6
        if self.last is not None:
            self.max_gap = max(self.max_gap, now - self.last)
        self.last = now

    def start(self) -> None:
        self.clock.start()
        self.last = None
        self.max_gap = 0.0
        self.timer.start()

    def stop(self) -> float:
        self.timer.stop()
        return self.max_gap


def wait_until(app, predicate, timeout_s: float = 60.0) -> None:
    end = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > end:
            raise TimeoutError("timed out")
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 5)
        time.sleep(0.001)


def sweep(app, window, name: str, setter, values, pace_ms: int = 16, view: str = "channels") -> dict:
    """Apply values one per pace_ms from the event loop; measure everything. ``view``: the tab whose
    drawing counts as "on screen" ("channels": the plots; "architecture": the diagram)."""
    if hasattr(window, "select_tab") and view in getattr(window, "TABS", ()):
        window.select_tab(view)
        wait_until(app, window.is_up_to_date)
    monitor = StallMonitor()
    per_change: list[float] = []
    state = {"i": 0, "t_last": 0.0, "t_summary": None, "drawn": 0}
    pending: list[tuple[int, float]] = []  # (index, setValue time) of the changes not on screen yet
    loop = QEventLoop()
    if view == "architecture":
        diagram = window.architecture_panel
        canvas, updated = diagram.view, diagram.diagramUpdated
        up_to_date = diagram.is_up_to_date
    else:
        canvas, updated, up_to_date = window.channel_panel.graphics, window.plotsUpdated, window.plots_up_to_date

    paints: list[float] = []

    def plotted(_cfg) -> None:  # the plots now hold the table of every change made so far
        state["drawn"] = state["i"]

    def painted(t_end: float, ms: float) -> None:
        # A change counts as shown by the first paint after the plots drew its table (or a newer
        # one); a paint of an older table (still owed when the change came) does not count.
        paints.append(ms)
        shown = [t0 for i, t0 in pending if i < state["drawn"]]
        per_change.extend((t_end - t0) * 1000 for t0 in shown)
        pending[:] = [(i, t0) for i, t0 in pending if i >= state["drawn"]]

    updated.connect(plotted)
    canvas.painted.connect(painted)

    def summary_done(_result) -> None:
        if state["i"] >= len(values) and window.summary_panel.is_up_to_date():
            state["t_summary"] = time.perf_counter()
            loop.quit()

    window.summary_panel.summaryUpdated.connect(summary_done)

    def step() -> None:
        i = state["i"]
        if i >= len(values):
            return
        t0 = time.perf_counter()
        changed = setter(values[i])
        t1 = time.perf_counter()
        if changed is not False:  # (a mouse move within one slider step changes nothing)
            pending.append((i, t0))
        state["i"] = i + 1
        if up_to_date():  # (the change led back to the table already drawn)
            state["drawn"] = state["i"]
        state["t_last"] = t0
        if state["i"] >= len(values):
            driver.stop()
            if window.summary_panel.is_up_to_date():  # (only if the last value changed nothing)
                state["t_summary"] = t1
                loop.quit()

    driver = QTimer()
    driver.setInterval(pace_ms)
    driver.timeout.connect(step)
    monitor.start()
    driver.start()
    QTimer.singleShot(120_000, loop.quit)
    loop.exec()
    stall = monitor.stop()
    window.summary_panel.summaryUpdated.disconnect(summary_done)
    wait_until(app, lambda: not pending, 10.0)
    canvas.painted.disconnect(painted)
    updated.disconnect(plotted)
    summary_s = (state["t_summary"] - state["t_last"]) if state["t_summary"] else float("nan")
    return {
        "sweep": name,
        "changes": len(per_change),
        "p50": statistics.median(per_change),
        "p95": sorted(per_change)[max(0, int(0.95 * len(per_change)) - 1)],
        "max": max(per_change),
        "summary_s": summary_s,
        "stall": stall,
        "paints": len(paints),
        "paint_p50": statistics.median(paints) if paints else float("nan"),
        "paint_max": max(paints, default=float("nan")),
    }


def single_changes(app, window, name: str, setter, values) -> dict:
    """Changes made from idle: time until the summary of each is shown.

    Waits in a real QEventLoop (quit by the summary panel's signal), as an application idles;
    a polling loop with sleeps here measured its own gaps (up to 270 ms) rather than the window's.
    """
    monitor = StallMonitor()
    times, heads, paints = [], [], []

    def wait_summary() -> None:
        if window.summary_panel.is_up_to_date():
            return
        loop = QEventLoop()
        done = lambda *_: loop.quit() if window.summary_panel.is_up_to_date() else None  # noqa: E731
        window.summary_panel.summaryUpdated.connect(done)
        QTimer.singleShot(60_000, loop.quit)
        loop.exec()
        window.summary_panel.summaryUpdated.disconnect(done)

    if "channels" in getattr(window, "TABS", ()):
        window.select_tab("channels")  # (its plots' repaint is what this waits for)
    canvas = window.channel_panel.graphics
    monitor.start()
    for v in values:
        wait_summary()
        shown = window.channel_panel.table
        t0 = time.perf_counter()
        setter(v)
        if window.table is shown:
            raise RuntimeError(f"{name}: {v!r} changes nothing; the benchmark must move to a new configuration")
        while canvas.last_paint_end <= t0 or not window.plots_up_to_date():  # a real event loop, as above
            loop = QEventLoop()
            canvas.painted.connect(loop.quit)
            QTimer.singleShot(10_000, loop.quit)
            loop.exec()
            canvas.painted.disconnect(loop.quit)
        heads.append((canvas.last_paint_end - t0) * 1000)
        paints.append(canvas.last_paint_ms)
        wait_summary()
        times.append(time.perf_counter() - t0)
    stall = monitor.stop()
    return {"sweep": name, "changes": len(values), "p50": statistics.median(heads), "p95": max(heads),
            "max": max(heads), "summary_s": statistics.median(times), "summary_max": max(times), "stall": stall,
            "paints": len(paints), "paint_p50": statistics.median(paints), "paint_max": max(paints)}


def diagram_events(app, window, repeats: int = 7) -> list[str]:
    """The Architecture tab's one-off costs: its first paint after it is shown (the configuration
    changed while another tab was up), and expanding/collapsing densenet264's 64-layer block."""
    panel = window.architecture_panel
    firsts, expands, collapses, layouts = [], [], [], []
    for i in range(repeats):
        window.select_tab("channels")
        window.load_preset("densenet264" if i % 2 == 0 else "densenet201")
        wait_until(app, window.is_up_to_date)
        times: list[float] = []
        panel.view.painted.connect(lambda t_end, _ms: times.append(t_end))
        t0 = time.perf_counter()
        window.select_tab("architecture")
        wait_until(app, lambda: bool(times) and panel.is_up_to_date())
        panel.view.painted.disconnect()
        firsts.append((times[0] - t0) * 1000)
        layouts.append(panel.last_layout_ms)
    window.load_preset("densenet264")
    wait_until(app, window.is_up_to_date)
    for _ in range(repeats):
        expands.append(panel.expand_block(3, True))
        collapses.append(panel.expand_block(3, False))
        app.processEvents()
    med = statistics.median
    return [f"[diagram] first paint after the tab is shown (densenet264/201): p50 {med(firsts):.1f} ms, "
            f"max {max(firsts):.1f} ms (layout p50 {med(layouts):.1f} ms)",
            f"[diagram] expand densenet264 block 3 (64 layers, 2,080+65 arcs), layout + repaint: p50 "
            f"{med(expands):.1f} ms, max {max(expands):.1f} ms; collapse p50 {med(collapses):.1f} ms"]


def mouse_drag(slider, values) -> tuple:
    """A real drag of ``slider``'s handle with the mouse (QTest events through the slider's own
    mouse handling): press on the handle, one move per value, release after the last. Returns
    (setter, x positions) for :func:`sweep`; the setter says whether the value changed."""
    from PySide6.QtCore import QPoint
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QSlider, QStyle

    inner = slider if isinstance(slider, QSlider) else slider.findChild(QSlider)
    handle = inner.style().pixelMetric(QStyle.PixelMetric.PM_SliderLength, None, inner)
    y = inner.height() // 2

    def x_of(v) -> int:
        return handle // 2 + QStyle.sliderPositionFromValue(inner.minimum(), inner.maximum(), v, inner.width() - handle)

    xs = [x_of(v) for v in values]
    state = {"pressed": False, "n": 0}

    def setter(x: int) -> bool:
        before = inner.value()
        if not state["pressed"]:
            QTest.mousePress(inner, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(x_of(before), y))
            state["pressed"] = True
        QTest.mouseMove(inner, QPoint(x, y))
        state["n"] += 1
        if state["n"] == len(xs):
            QTest.mouseRelease(inner, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(x, y))
        return inner.value() != before

    return setter, xs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter sweeps")
    args = parser.parse_args()

    from densegui.gui.main_window import MainWindow

    try:  # before any Qt call (densegui/gui/__init__.py; older versions did it at import)
        from densegui.gui import guard_refcounts
        guard_refcounts()
    except ImportError:
        pass
    app = QApplication.instance() or QApplication(sys.argv[:1])
    try:  # as run_app does: garbage collected on the GUI thread only (absent in older versions)
        from densegui.gui.collector import MainThreadCollector

        MainThreadCollector(app).start()
    except ImportError:
        pass
    window = MainWindow(settings=None)
    window.show()
    t0 = time.perf_counter()
    wait_until(app, window.is_up_to_date)
    startup = time.perf_counter() - t0
    c = window.controls
    # (older versions: one attribute per DenseNet widget)
    growth = c.control("growth_rate") if hasattr(c, "control") else c.growth_slider
    compression = c.control("compression") if hasattr(c, "control") else c.compression_slider

    def k(v):
        growth.setValue(v)

    def theta(v):
        compression.setValue(v)

    def depth(i):
        return lambda v: c.depth_sliders[i].setValue(v)

    step = 3 if args.quick else 1
    rows = []
    window.load_preset("densenet121")
    wait_until(app, window.is_up_to_date)
    rows.append(sweep(app, window, "densenet121: k 1→64", k, list(range(1, 65, step))))
    for i, hi in enumerate((24, 24, 48, 32)):
        window.load_preset("densenet121")
        wait_until(app, window.is_up_to_date)
        rows.append(sweep(app, window, f"densenet121: block {i + 1} depth 1→{hi}", depth(i), list(range(1, hi + 1, step))))
    window.load_preset("densenet121")
    wait_until(app, window.is_up_to_date)
    rows.append(sweep(app, window, "densenet121: θ 0.10→1.00", theta, [round(0.10 + 0.01 * j, 2) for j in range(0, 91, step)]))
    window.load_preset("densenet264")
    wait_until(app, window.is_up_to_date)
    rows.append(sweep(app, window, "densenet264: k 1→64", k, list(range(1, 65, step))))
    rows.append(sweep(app, window, "densenet264: block 3 depth 1→64", depth(2), list(range(1, 65, step))))
    # The mouse, through the slider's own event handling (press on the handle, 60 moves/s, release).
    window.load_preset("densenet264")
    wait_until(app, window.is_up_to_date)
    setter, xs = mouse_drag(growth, list(range(1, 65, step)))
    rows.append(sweep(app, window, "densenet264: mouse drag of k 1→64", setter, xs))
    # (one pixel of the groove is about one step of k, so the handle lands within a step of 64)
    assert abs(growth.value() - (64 - (64 - 1) % step)) <= 1, growth.value()
    window.load_preset("densenet264")
    wait_until(app, window.is_up_to_date)
    setter, xs = mouse_drag(c.depth_sliders[2], list(range(64, 0, -step)))
    rows.append(sweep(app, window, "densenet264: mouse drag of block 3 64→1", setter, xs))
    fields = getattr(getattr(c, "family", lambda: None)(), "field_names", ())
    editor = c.control("connectivity") if "connectivity" in fields else None
    if editor is not None:  # (absent before the connectivity field) window:W, W through its spin box
        window.load_preset("densenet264")
        editor.combo.setCurrentIndex(editor.combo.findText("window"))
        wait_until(app, window.is_up_to_date)
        rows.append(sweep(app, window, "densenet264: window:W, W 1→32", editor.spin.setValue,
                          list(range(1, 33, step))))
    from densegui.core.arch import registry as arch

    if "rdnet-tiny" in arch.presets():  # (absent before the RDNet family) a per-stage spin box and slider
        window.load_preset("rdnet-tiny")
        wait_until(app, window.is_up_to_date)
        from PySide6.QtWidgets import QSpinBox

        spin = c.page.findChild(QSpinBox, "growthRatesSpin1")
        rows.append(sweep(app, window, "rdnet-tiny: stage 1 growth 8→128 (spin)", spin.setValue,
                          list(range(8, 129, 4 * step))))
        window.load_preset("rdnet-tiny")
        wait_until(app, window.is_up_to_date)
        rows.append(sweep(app, window, "rdnet-tiny: stage 3 depth 1→32", depth(2), list(range(1, 33, step))))

    arch_rows, arch_events = [], []
    if "architecture" in getattr(window, "TABS", ()):
        # The Architecture tab shown: a change counts when the diagram's first repaint showing it ends.
        for preset, label, setter_of, values in (
                ("densenet121", "k 1→64", lambda: k, list(range(1, 65, step))),
                ("densenet264", "k 1→64", lambda: k, list(range(1, 65, step))),
                ("densenet264", "block 3 depth 1→64", lambda: depth(2), list(range(1, 65, step))),
                *([("rdnet-large", "stage 3 depth 1→32", lambda: depth(2), list(range(1, 33, step)))]
                  if "rdnet-large" in arch.presets() else [])):
            window.load_preset(preset)
            wait_until(app, window.is_up_to_date)
            arch_rows.append(sweep(app, window, f"[diagram] {preset}: {label}", setter_of(), values,
                                   view="architecture"))
        window.load_preset("densenet264")
        wait_until(app, window.is_up_to_date)
        setter, xs = mouse_drag(growth, list(range(1, 65, step)))
        arch_rows.append(sweep(app, window, "[diagram] densenet264: mouse drag of k 1→64", setter, xs,
                               view="architecture"))
        arch_events = diagram_events(app, window)

    singles = []
    window.load_preset("densenet121")
    wait_until(app, window.is_up_to_date)  # (the preset switch itself is measured below, not here)
    singles.append(single_changes(app, window, "densenet121: single k changes from idle", k, [24, 32, 40, 48, 32]))
    window.load_preset("densenet264")
    wait_until(app, window.is_up_to_date)
    singles.append(single_changes(app, window, "densenet264: single k changes from idle", k, [24, 32, 40, 32]))
    # A preset switch rebuilds the depth sliders, the block regions and every plot's ranges at once.
    window.load_preset("densenet121")
    wait_until(app, window.is_up_to_date)
    singles.append(single_changes(app, window, "preset switches (121→264→169→121)", window.load_preset,
                                  ["densenet264", "densenet169", "densenet121"]))
    platform_name = app.platformName()
    window.close()
    window.deleteLater()
    app.processEvents()
    try:
        from densegui.gui.tasks import close_shared_pool
    except ImportError:  # (older versions, measured with PYTHONPATH=<checkout> for a before/after)
        close_shared_pool = None
    if close_shared_pool is not None:
        close_shared_pool()

    from importlib.metadata import version

    import PySide6

    import densegui

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"torch {version('torch')}, PySide6 {PySide6.__version__}, Qt platform {platform_name}, "
          f"densegui from {os.path.dirname(os.path.dirname(densegui.__file__))}, "
          f"torch in the window process: {'torch' in sys.modules}; "
          f"startup until every panel is current: {startup:.2f} s")
    print("headline+plots = setValue → end of the first repaint of the plots showing its table or a newer one (ms);")
    print("summary = last change → its torchinfo table on screen (s); stall = longest gap of a 2 ms timer (ms);\n"
          "paints = repaints of the plots during the sweep, paint = their duration (ms)\n")
    head = f"{'sweep':44} {'changes':>7} {'head p50':>9} {'p95':>7} {'max':>7} {'summary':>8} {'stall':>7} {'paints':>6} {'paint p50':>9} {'max':>6}"
    print(head)
    print("-" * len(head))
    for r in rows + arch_rows + singles:
        print(f"{r['sweep']:44} {r['changes']:7d} {r['p50']:9.1f} {r['p95']:7.1f} {r['max']:7.1f} "
              f"{r['summary_s']:7.2f}s {r['stall']:7.1f} {r['paints']:6d} {r['paint_p50']:9.1f} {r['paint_max']:6.1f}")
    if arch_events:
        print()  # (the table ends at a blank line: ui_latency_ab.py reads it so)
    for text in arch_events:
        print(text)
    worst_head = max(r["max"] for r in rows + arch_rows + singles)
    worst_stall = max(r["stall"] for r in rows + arch_rows + singles)
    s121 = singles[0]["summary_max"]
    print(f"\ntargets: headline+plots ≤ 100 ms: worst {worst_head:.1f} ms; stall ≤ 50 ms: worst {worst_stall:.1f} ms; "
          f"densenet121 summary ≤ 1 s: worst {s121:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
