"""Regenerate docs/screenshot.png: DenseNet-121 pinned as the baseline, then θ raised to 1.0,
hovering a layer of block 3. Offscreen, deterministic; run from the repository root:

    python docs/make_screenshot.py [OUT.png]
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("DENSEGUI_NO_SETTINGS", "1")


def main() -> int:
    from PySide6.QtWidgets import QApplication

    from densegui.gui.main_window import MainWindow

    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "screenshot.png")
    from densegui.gui import guard_refcounts

    guard_refcounts()  # before any Qt call (densegui/gui/__init__.py)
    app = QApplication(sys.argv[:1])
    app.setStyle("Fusion")
    window = MainWindow(settings=None)
    window.select_tab("channels")
    window.show()

    def settle() -> None:
        end = time.monotonic() + 120
        while not window.is_up_to_date() and time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)
        app.processEvents()

    window.load_preset("densenet121")
    settle()
    window.pin_baseline()
    window.controls.control("compression").setValue(1.0)
    settle()
    rows = window.table.rows
    index = next(i for i, r in enumerate(rows) if r.name == "features.denseblock3.denselayer20")
    window.channel_panel.hover_index(index)
    app.processEvents()
    ok = window.grab().save(out, "PNG")
    window.close()
    window.deleteLater()
    app.processEvents()
    print(f"{'saved' if ok else 'could not save'} {out}")
    return 0 if ok else 2


if __name__ == "__main__":
    raise SystemExit(main())
