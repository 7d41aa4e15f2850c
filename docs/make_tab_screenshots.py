"""Regenerate the pictures of docs/probe.md and docs/reuse.md from the window itself (offscreen):

* docs/probe.png: the Timing probe tab (1700×1000) after a run and a batch sweep of densenet-bc-100-k12 (CPU);
* docs/reuse.png: the Feature reuse tab (the panel alone) on the shipped resources/densenet40-digits.pt, measure
  ``weights``, the cell "in → classifier" of block 3 selected;
* docs/reuse_bn.png: the same with measure ``bn-weights``;
* docs/reuse_prune.png: its Pruning curve tab after *Pruning curve* (all four measures, ≈ 1 min).

From the repository root: ``python docs/make_tab_screenshots.py [probe] [reuse]`` (default both).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("DENSEGUI_NO_SETTINGS", "1")
HERE = Path(__file__).resolve().parent


def main() -> int:
    which = set(sys.argv[1:]) or {"probe", "reuse"}
    from PySide6.QtWidgets import QApplication

    from densegui.gui import guard_refcounts

    guard_refcounts()
    app = QApplication(sys.argv[:1])
    app.setStyle("Fusion")
    from densegui.gui.main_window import MainWindow

    win = MainWindow(settings=None)
    win.resize(1400, 900)
    win.show()

    def pump(until, timeout: float = 600.0, what: str = "") -> None:
        end = time.monotonic() + timeout
        while not until():
            if time.monotonic() > end:
                raise SystemExit(f"timed out waiting for {what}")
            app.processEvents()
            time.sleep(0.01)
        for _ in range(30):
            app.processEvents()
            time.sleep(0.01)

    def save(name: str, widget=None) -> None:
        ok = (widget or win).grab().save(str(HERE / name), "PNG")
        print(f"{'saved' if ok else 'could not save'} docs/{name}")

    pump(win.is_up_to_date, what="the window")
    if "probe" in which:
        win.resize(1700, 1000)  # (wide enough for the breakdown and the sweep side by side)
        win.load_preset("densenet-bc-100-k12")
        win.select_tab("probe")
        probe = win.probe_panel
        pump(lambda: win.is_up_to_date() and probe.config == win.config, what="the preset")
        probe.start_run()
        pump(lambda: probe.result is not None and not probe.runner.is_busy(), what="the probe run")
        probe.max_batch_spin.setValue(64)
        probe.start_sweep()
        pump(lambda: not probe.runner.is_busy(), what="the sweep")
        save("probe.png")
    if "reuse" in which:
        win.resize(1400, 900)
        win.select_tab("reuse")
        panel = win.reuse_panel
        pump(lambda: panel.loaded is not None and not panel.runner.is_busy(), what="the shipped checkpoint")
        last = panel.blocks[2]

        def select_classifier_cell() -> None:
            panel.view.select(2, 0, len(last.targets) - 1)

        select_classifier_cell()
        save("reuse.png", panel)
        panel.measure_combo.setCurrentIndex(panel.measure_combo.findData("bn-weights"))
        pump(lambda: panel.measure == "bn-weights" and not panel.runner.is_busy(), what="bn-weights")
        select_classifier_cell()
        save("reuse_bn.png", panel)
        panel.measure_combo.setCurrentIndex(panel.measure_combo.findData("weights"))
        pump(lambda: not panel.runner.is_busy(), what="weights")
        panel.run_prune_curve()
        pump(lambda: panel.prune is not None and not panel.runner.is_busy(), 900, "the pruning curve")
        panel.views.setCurrentWidget(panel.prune_page)
        pump(lambda: True)
        save("reuse_prune.png", panel)
    win.shutdown()
    win.close()
    win.deleteLater()
    app.processEvents()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
