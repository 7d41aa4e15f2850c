"""Regenerate the Architecture tab's pictures in docs/ (docs/diagram.md). Offscreen, deterministic;
run from the repository root:

    python docs/make_diagram_screenshots.py

* diagram_densenet121.png: the window on densenet121, densenet169 pinned as the baseline (its outline),
  denseblock3.denselayer20 selected;
* diagram_densenet264.png / diagram_densenet264_expanded.png: densenet264 as it opens (blocks 3 and 4
  collapsed), then every block expanded (the whole diagram, exported as PNG);
* diagram_resnet50.png: a ResNet's stages, residual skips drawn over each block;
* diagram_reuse.png: the shipped digits network coloured by the Feature reuse tab's measure
  (per-column min–max scale), connections below 0.3 hidden.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("DENSEGUI_NO_SETTINGS", "1")

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    from PySide6.QtWidgets import QApplication

    from densegui.gui import guard_refcounts

    guard_refcounts()
    app = QApplication(sys.argv[:1])
    app.setStyle("Fusion")
    from densegui.gui.main_window import MainWindow

    window = MainWindow(settings=None)
    window.resize(1467, 900)
    window.show()
    panel = window.architecture_panel

    def settle(predicate=lambda: True) -> None:
        end = time.monotonic() + 120
        while not (window.is_up_to_date() and panel.is_up_to_date() and predicate()) and time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)
        for _ in range(5):
            app.processEvents()

    def save(name: str, widget=None) -> None:
        path = os.path.join(HERE, name)
        (widget or window).grab().save(path, "PNG")
        print(f"saved {path}")

    window.select_tab("architecture")
    window.pin_preset("densenet169")
    window.load_preset("densenet121")
    settle()
    window.select_layer("features.denseblock3.denselayer20")
    panel.readout.setText(panel.describe_path("features.denseblock3.denselayer20"))
    app.processEvents()
    save("diagram_densenet121.png")
    window.clear_baseline()

    window.load_preset("densenet264")
    settle()
    save("diagram_densenet264.png")
    panel.set_all_expanded(True)
    app.processEvents()
    out = panel.export(os.path.join(HERE, "diagram_densenet264_expanded.png"))
    print(f"saved {out}")

    window.load_preset("resnet50")
    settle()
    save("diagram_resnet50.png")

    window.select_tab("reuse")
    reuse = window.reuse_panel
    settle(lambda: reuse.loaded is not None)
    reuse.norm_combo.setCurrentIndex(reuse.norm_combo.findData("column"))
    reuse._send_config()  # "Send to explorer"
    window.select_tab("architecture")
    settle()
    panel.colour_combo.setCurrentIndex(panel.colour_combo.findData("reuse"))
    panel.hide_slider.setValue(30)
    settle()
    save("diagram_reuse.png")

    window.close()
    window.deleteLater()
    app.processEvents()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
