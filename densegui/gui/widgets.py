"""Small widgets shared by the panels."""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import Qt as GuiQt  # (convertFromPlainText lives in QtGui's Qt namespace)
from PySide6.QtWidgets import QLabel, QSizePolicy


class FitLabel(QLabel):
    """A one-line label whose text never resizes the window.

    A plain QLabel reports its text's width as its minimum size, so every new
    value (a longer parameter count, a longer status line in a hidden tab)
    changed the main window's minimum width: Qt re-laid out and repainted the
    whole window on each slider change (≈ 30 ms on a 2-core machine), and at
    large configurations the window even grew. This label ignores its text's
    width for layout and elides what does not fit ("…", full text in the tooltip).
    :meth:`text` returns the full text, never the elided one.
    """

    def __init__(self, text: str = "", parent=None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self._full = ""
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt API
        if text == self._full:
            return
        self._full = text
        self._elide()

    def text(self) -> str:
        return self._full

    def full_text_fits(self) -> bool:
        return super().text() == self._full

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        self._elide()

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().changeEvent(event)
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange):  # (a style sheet's font-size)
            self._elide()

    def _elide(self) -> None:
        width = self.contentsRect().width()
        metrics = self.fontMetrics()
        shown = self._full
        if width > 0 and metrics.horizontalAdvance(shown) > width:
            shown = metrics.elidedText(shown, Qt.TextElideMode.ElideRight, width)
        self.setToolTip("" if shown == self._full else GuiQt.convertFromPlainText(self._full))
        super().setText(shown)
