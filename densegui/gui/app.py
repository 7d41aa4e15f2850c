"""Start the explorer: QApplication, main window, clean shutdown.

``run_app`` owns the whole life cycle so that nothing outlives the
QApplication (a widget or thread that does makes the process crash at exit):
the window's ``closeEvent`` stops every panel's work at once, within half a
second; ``finish_app``, after the event loop, awaits what is left, deletes the
window and reaps the background processes before the function returns.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from densegui.core.errors import DenseguiError
from densegui.gui import guard_refcounts

SCREENSHOT_TIMEOUT_S = 120.0


# Shared libraries the window loads, by soname, with the Debian/Ubuntu package of each. QtGui needs
# the first group on any platform (offscreen included); PySide6's xcb platform plugin (X11) needs the
# second, and Qt aborts naming only the first one it misses (the NEEDED entries of PySide6 6.12's
# libqxcb.so and libQt6XcbQpa.so.6 outside PySide6 itself).
GUI_LIBRARIES = {
    "libEGL.so.1": "libegl1", "libGL.so.1": "libgl1", "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6", "libxkbcommon.so.0": "libxkbcommon0", "libX11.so.6": "libx11-6",
    "libglib-2.0.so.0": "libglib2.0-0", "libgthread-2.0.so.0": "libglib2.0-0",
}
XCB_LIBRARIES = {
    "libxcb.so.1": "libxcb1", "libX11-xcb.so.1": "libx11-xcb1", "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4", "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1", "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render.so.0": "libxcb-render0", "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0", "libxcb-shm.so.0": "libxcb-shm0", "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1", "libxcb-xfixes.so.0": "libxcb-xfixes0", "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
}


def library_loads(soname: str) -> bool:
    """Whether the dynamic loader finds ``soname`` and its dependencies, as Qt's would."""
    import ctypes

    try:
        ctypes.CDLL(soname, mode=os.RTLD_LAZY)
    except OSError:
        return False
    return True


def x_display_error(display: str) -> int:
    """libxcb's error code for connecting to X ``display`` (0: it answers), as Qt's xcb plugin will."""
    import ctypes

    xcb = ctypes.CDLL("libxcb.so.1")
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    connection = xcb.xcb_connect(display.encode(), None)
    try:
        return int(xcb.xcb_connection_has_error(connection))
    finally:
        xcb.xcb_disconnect(connection)


def check_startup(headless: bool) -> None:
    """Before Qt loads (Linux): one line, not Qt's abort, when there is no display to open or the
    window's system libraries are missing. ``headless``: rendering offscreen was asked for."""
    if not sys.platform.startswith("linux"):
        return
    platform = os.environ.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0]
    if not platform and not headless:
        if os.environ.get("WAYLAND_DISPLAY"):
            platform = "wayland"  # Qt tries Wayland first there; xcb is only its fallback
        elif os.environ.get("DISPLAY"):
            platform = "xcb"
        else:
            raise DenseguiError(
                "no display: neither DISPLAY nor WAYLAND_DISPLAY is set (an SSH session?), so the window cannot "
                "open; render it to a file with `densegui --screenshot out.png`, or use the commands "
                "(`densegui summary`, `probe`, `reuse`, `train`; `densegui --help`).")
    needed = dict(GUI_LIBRARIES, **(XCB_LIBRARIES if platform == "xcb" else {}))
    missing = [soname for soname in needed if not library_loads(soname)]
    if missing:
        packages = " ".join(dict.fromkeys(needed[soname] for soname in missing))
        offscreen = "`densegui --screenshot out.png` or " if not set(missing) & set(GUI_LIBRARIES) else ""
        raise DenseguiError(
            f"the window needs system libraries that are missing ({', '.join(missing)}); install them with: "
            f"sudo apt-get install {packages} (Debian/Ubuntu package names), or run without a window: "
            f"{offscreen}the commands (`densegui --help`).")
    display = os.environ.get("DISPLAY", "")
    if platform == "xcb" and display and x_display_error(display):
        raise DenseguiError(
            f"cannot open the display {display!r}: no X server answers there (is DISPLAY stale, or X forwarding "
            "off?); render the window to a file with `densegui --screenshot out.png`, or use the commands "
            "(`densegui --help`).")


def _ensure_platform(headless: bool) -> None:
    """Render offscreen when asked to (``--screenshot``), unless QT_QPA_PLATFORM names a platform."""
    if headless and not os.environ.get("QT_QPA_PLATFORM"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"


# Qt's offscreen platform plugin (--screenshot) says this whenever a window's size hints change.
QUIET_QT_MESSAGES = frozenset({"This plugin does not support propagateSizeHints()"})


def quiet_qt_messages():
    """Install a Qt message handler that drops ``QUIET_QT_MESSAGES`` and writes every other
    message as Qt would; returns a function that restores the previous handler."""
    from PySide6.QtCore import qFormatLogMessage, qInstallMessageHandler

    def handler(kind, context, message: str) -> None:
        if message in QUIET_QT_MESSAGES:
            return
        if previous is not None:
            previous(kind, context, message)
        else:
            print(qFormatLogMessage(kind, context, message), file=sys.stderr, flush=True)

    previous = qInstallMessageHandler(handler)
    return lambda: qInstallMessageHandler(previous)


def prestart_background() -> None:
    """Start the summary's background process now: its torch import (seconds of one core) then
    overlaps with importing Qt and building the window on another core. Before Qt is loaded, on Linux, the child is forked (see ``fork_is_safe``)."""
    from densegui.gui.jobs import EXPLORE, shared_pool

    shared_pool().get(EXPLORE).start(fork=True)


def run_app(config: Any = None, preset: str | None = None, screenshot: str | Path | None = None,
            argv: Sequence[str] | None = None, tab: str | None = None, origin: str | None = None) -> int:
    """Open the explorer and return the process exit code.

    ``config``/``preset``: what to show first, a configuration of any family (otherwise the last
    session's configuration, or the default preset); ``origin``: the file ``config`` came from, for
    "custom (from …)". ``tab``: the tab to show (see
    ``densegui.gui.TABS``). ``screenshot``: render once every panel is up to date
    (summary included, and the shown tab's own work), save the window as PNG and exit 0.
    """
    check_startup(headless=screenshot is not None)
    _ensure_platform(headless=screenshot is not None)
    prestart_background()
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from densegui.gui.icon import app_icon
    from densegui.gui.main_window import MainWindow, settings_disabled

    guard_refcounts()  # (before Qt makes its first calls; see densegui/gui/__init__.py)
    restore_messages = quiet_qt_messages()
    app = QApplication.instance() or QApplication(list(argv) if argv is not None else ["densegui"])
    app.setApplicationName("densegui")
    app.setOrganizationName("densegui")
    app.setApplicationDisplayName("densegui")
    app.setWindowIcon(app_icon())
    if app.style().objectName().lower() != "fusion":
        app.setStyle("Fusion")

    from densegui.gui.collector import MainThreadCollector

    collector = MainThreadCollector(app)  # no automatic collection in worker threads (see collector.py)
    collector.start()
    settings = None if settings_disabled() or screenshot is not None else QSettings("densegui", "densegui")
    window = MainWindow(settings, staged=True)
    if config is not None:
        window.apply_config(config, preset, origin)
    elif preset is not None:
        window.load_preset(preset)
    if tab is not None:
        window.select_tab(tab)
    window.show()

    outcome = {"rc": 0}
    timers = []
    if screenshot is not None:
        deadline = time.monotonic() + SCREENSHOT_TIMEOUT_S

        def poll() -> None:
            if window.is_up_to_date() and window.current_tab_ready():
                poll_timer.stop()
                app.processEvents()
                image = window.grab()
                ok = image.save(str(screenshot), "PNG")
                if ok:
                    print(f"wrote {screenshot} ({image.width()}×{image.height()} px)")
                else:
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
        finish_app(app, window, collector)
        restore_messages()
    return outcome["rc"]


def finish_app(app, window, collector=None) -> None:
    """What follows the event loop: the window is gone, so nothing needs to respond any more.
    Await the workers its close left running, delete the window (no widget outlives the
    QApplication), then stop every background process and reap it."""
    from PySide6.QtCore import QCoreApplication, QEvent

    window.finish_shutdown()  # (idempotent: closeEvent stopped everything, within its budget)
    window.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    app.processEvents()
    from densegui.gui.tasks import close_shared_pool

    close_shared_pool()
    if collector is not None:
        collector.stop()
