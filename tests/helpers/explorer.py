"""The explorer window in tests: its labels by object name, and waiting for its summary (Qt)."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QWidget

TIMEOUT = 30_000  # ms: a summary computed in the background process on a loaded 2-core machine


def label(window: QWidget, name: str) -> QLabel:
    w = window.findChild(QLabel, name)
    assert w is not None, name
    return w


def wait_summary(qtbot, window) -> None:
    """Until the summary panel shows the window's current configuration."""
    qtbot.waitUntil(window.summary_panel.is_up_to_date, timeout=TIMEOUT)
