"""A short confirmation that a save or copy worked: in the window's status bar, or, for a
panel shown on its own, in one of its labels."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QMainWindow, QWidget

CONFIRM_MS = 5000


def confirm(widget: QWidget, text: str, label: QLabel | None = None) -> None:
    """Show ``text`` (e.g. "Saved /tmp/x.png") in the status bar of ``widget``'s window, or in ``label``."""
    window = widget.window()
    if isinstance(window, QMainWindow):
        window.statusBar().showMessage(text, CONFIRM_MS)
    elif label is not None:
        label.setText(text)
