"""Render docs/images/resnet_explorer.png: ResNet-50 pinned as the baseline, stage 3 dragged from
6 to 9 residual blocks, the hover on ``layer3.7`` (offscreen; ``python docs/make_resnet_screenshot.py [OUT]``)."""

from __future__ import annotations

import os
import sys
import time


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("DENSEGUI_NO_SETTINGS", "1")
    from densegui.gui import guard_refcounts

    guard_refcounts()  # before any Qt call (densegui/gui/__init__.py)
    from PySide6.QtCore import QEventLoop
    from PySide6.QtWidgets import QApplication

    from densegui.gui.main_window import MainWindow
    from densegui.gui.tasks import close_shared_pool

    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "images", "resnet_explorer.png")
    app = QApplication(sys.argv[:1])
    app.setStyle("Fusion")
    window = MainWindow(settings=None)
    window.show()

    def settle() -> None:
        end = time.monotonic() + 60
        while not window.is_up_to_date() and time.monotonic() < end:
            QEventLoop().processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
        for _ in range(20):
            QEventLoop().processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)

    window.load_preset("resnet50")
    settle()
    window.pin_baseline()
    window.controls.depth_sliders[2].setValue(9)
    settle()
    rows = window.table.rows
    window.channel_panel.hover_index(next(i for i, r in enumerate(rows) if r.name == "layer3.7"))
    settle()
    ok = window.grab().save(out, "PNG")
    print(f"{out}: {window.table.params:,} parameters (baseline {window.baseline.params:,})")
    window.close()
    window.deleteLater()
    close_shared_pool()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
