"""Start the explorer: QApplication, main window, clean shutdown.

``run_app`` owns the whole life cycle so that nothing outlives the
QApplication (a widget or thread that does makes the process crash at exit):
the window's panels stop and await their workers in ``closeEvent``, then the
window is deleted before the function returns.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from densegui.core.config import DenseNetConfig

SCREENSHOT_TIMEOUT_S = 120.0


def _ensure_platform(headless: bool) -> None:
    """Render offscreen when asked to or when there is no display to open."""
    if os.environ.get("QT_QPA_PLATFORM"):
        return
    no_display = sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if headless or no_display:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"


def prestart_background() -> None:
    """Start the summary's background process now: its torch import and warm-up (≈ 4 s of one
    core on the 2-core development machine) then overlap with importing Qt and building the
    window on the other core."""
    from densegui.gui.jobs import EXPLORE
    from densegui.gui.tasks import shared_pool

    shared_pool().get(EXPLORE).start()


def run_app(config: DenseNetConfig | None = None, preset: str | None = None, screenshot: str | Path | None = None,
            argv: Sequence[str] | None = None) -> int:
    """Open the explorer and return the process exit code.

    ``config``/``preset``: what to show first (otherwise the last session's
    configuration, or densenet121). ``screenshot``: render once every panel
    is up to date (summary included), save the window as PNG and exit 0.
    """
    _ensure_platform(headless=screenshot is not None)
    prestart_background()
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from densegui.gui.icon import app_icon
    from densegui.gui.main_window import MainWindow, settings_disabled

    app = QApplication.instance() or QApplication(list(argv) if argv is not None else ["densegui"])
    app.setApplicationName("densegui")
    app.setOrganizationName("densegui")
    app.setApplicationDisplayName("densegui")
    app.setWindowIcon(app_icon())
    if app.style().objectName().lower() != "fusion":
        app.setStyle("Fusion")

    settings = None if settings_disabled() or screenshot is not None else QSettings("densegui", "densegui")
    window = MainWindow(settings)
    if config is not None:
        window.apply_config(config, preset)
    elif preset is not None:
        window.load_preset(preset)
    window.show()

    outcome = {"rc": 0}
    timers = []
    if screenshot is not None:
        deadline = time.monotonic() + SCREENSHOT_TIMEOUT_S

        def poll() -> None:
            if window.is_up_to_date():
                poll_timer.stop()
                app.processEvents()
                ok = window.grab().save(str(screenshot), "PNG")
                if not ok:
                    print(f"densegui: error: cannot write the screenshot {str(screenshot)!r}.", file=sys.stderr)
                    outcome["rc"] = 2
                window.close()
            elif time.monotonic() > deadline:
                poll_timer.stop()
                print("densegui: error: the panels did not finish updating; no screenshot taken.", file=sys.stderr)
                outcome["rc"] = 1
                window.close()

        poll_timer = QTimer()
        poll_timer.setInterval(50)
        poll_timer.timeout.connect(poll)
        poll_timer.start()
        timers.append(poll_timer)

    # Ctrl+C in the terminal closes the window cleanly (the timer lets Python see the signal).
    previous = signal.signal(signal.SIGINT, lambda *_: window.close())
    tick = QTimer()
    tick.start(200)
    tick.timeout.connect(lambda: None)
    timers.append(tick)
    app.setQuitOnLastWindowClosed(True)
    try:
        app.exec()
    finally:
        signal.signal(signal.SIGINT, previous)
        for t in timers:
            t.stop()
        window.shutdown()  # idempotent: closeEvent already did it on a normal close
        window.deleteLater()
        from PySide6.QtCore import QCoreApplication, QEvent

        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        app.processEvents()
        from densegui.gui.tasks import close_shared_pool

        close_shared_pool()
    return outcome["rc"]
