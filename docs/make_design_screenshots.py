"""Regenerate docs/design.png (Design space tab after a k sweep of densenet121),
docs/channels_resnet.png (densenet121 with resnet50 pinned as the baseline, x = fraction of depth)
and docs/design_frontier.png (the ImageNet frontier of the three families against parameters, MACs
and latency measured here by "Measure presets": CPU, batch 1, a few minutes on 2 cores).
Offscreen; run from the repository root:

    python docs/make_design_screenshots.py [FOLDER] [--no-latency]
"""
import os, sys, time
os.environ["QT_QPA_PLATFORM"]="offscreen"; os.environ["DENSEGUI_NO_SETTINGS"]="1"
from PySide6.QtCore import QEventLoop
from PySide6.QtWidgets import QApplication
def main():
    latency = "--no-latency" not in sys.argv
    sys.argv = [a for a in sys.argv if a != "--no-latency"]
    if len(sys.argv) < 2:
        sys.argv.append(os.path.dirname(os.path.abspath(__file__)))
    from densegui.gui import guard_refcounts

    guard_refcounts()  # before any Qt call (densegui/gui/__init__.py)
    app = QApplication([])
    from densegui.gui.main_window import MainWindow
    w = MainWindow(settings=None); w.resize(1500, 950); w.show()
    def pump(t):
        end=time.time()+t
        while time.time()<end: QEventLoop().processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
    end=time.time()+60
    while not w.is_up_to_date() and time.time()<end: pump(0.05)
    w.select_tab("design")
    d=w.design_panel
    d.field_combo.setCurrentIndex(d.field_combo.findData("growth_rate"))
    d.start_sweep(); pump(1.5)
    w.grab().save(sys.argv[1] + "/design.png")
    w.pin_preset("resnet50")
    w.select_tab("channels"); pump(1.0)
    w.grab().save(sys.argv[1] + "/channels_resnet.png")
    w.clear_baseline()
    frontier(w, d, pump, latency, sys.argv[1] + "/design_frontier.png")
    w.close()
    from densegui.gui.tasks import close_shared_pool; close_shared_pool()
def frontier(w, d, pump, latency, path):
    """The three-family frontier against params, MACs and (measured) latency, side by side."""
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QColor, QPainter, QPixmap
    w.load_preset("rdnet-tiny"); pump(0.5)
    w.select_tab("design")
    d.dataset_combo.setCurrentIndex(d.dataset_combo.findData("ImageNet"))
    d.device_combo.setCurrentIndex(max(d.device_combo.findData("cpu"), 0))
    if latency:
        d.measure_presets(); t0 = time.time()
        while d.presets_runner.is_busy() and time.time() - t0 < 1800:
            pump(0.02); time.sleep(0.2)  # (idle between: a spinning event loop takes a core from the probe)
        print(f"measured {len(d.latency_ms)} presets in {time.time() - t0:.0f} s:",
              ", ".join(f"{n} {ms:.0f} ms" for n, ms in d.latency_ms.items()))
    from densegui.gui.design_panel import X_AXES
    from densegui.gui.design_plots import FrontierPlot
    axes = ["params", "macs"] + (["latency"] if d.latency_ms else [])
    shots = []
    for axis in axes:  # (a plot of its own, sized for the page, fed as the tab feeds its own)
        d.x_combo.setCurrentIndex(d.x_combo.findData(axis)); pump(0.2)
        plot = FrontierPlot(); plot.resize(620, 460); plot.show()
        plot.set_points(d.frontier_points(), X_AXES[axis], "ImageNet top-1 error (%, published)", d._current_x(), si=axis != "latency")
        pump(0.3); plot.place_labels(); pump(0.2)
        shots.append(plot.grab()); plot.close(); plot.deleteLater()
    out = QPixmap(sum(s.width() for s in shots), max(s.height() for s in shots)); out.fill(QColor("white"))
    p = QPainter(out); x = 0
    for s in shots:
        p.drawPixmap(QPoint(x, 0), s); x += s.width()
    p.end(); out.save(path)
if __name__=="__main__": main()
