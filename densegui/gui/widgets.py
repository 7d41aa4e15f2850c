"""Small widgets shared by the panels."""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import Qt as GuiQt  # (convertFromPlainText lives in QtGui's Qt namespace)
from PySide6.QtWidgets import QComboBox, QFrame, QLabel, QSizePolicy, QVBoxLayout


class FitLabel(QLabel):
    """A one-line label whose text never resizes the window.

    A plain QLabel reports its text's width as its minimum size, so every new
    value (a longer parameter count, a longer status line in a hidden tab)
    changed the main window's minimum width: Qt re-laid out and repainted the
    whole window on each slider change, and at large configurations the
    window even grew. This label ignores its text's
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


class Card(QFrame):
    """A titled figure: small title, big value, one line of detail (FitLabels, so new values never
    re-lay out the window)."""

    def __init__(self, title: str, name: str, tip: str = "", parent=None) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setToolTip(tip)
        self.setMinimumWidth(170)
        self.title = QLabel(title.upper())
        self.title.setStyleSheet("color: #5b6b7b; font-size: 10px; font-weight: 600; letter-spacing: 1px;")
        self.value = FitLabel("–")
        self.value.setStyleSheet("font-size: 20px; font-weight: 600; color: #1f3b5a;")
        self.value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.detail = FitLabel(" ")
        self.detail.setStyleSheet("color: #5b6b7b; font-size: 11px;")
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(10, 6, 10, 6)
        self.layout_.setSpacing(1)
        for w in (self.title, self.value, self.detail):
            self.layout_.addWidget(w)

    def set(self, value: str, detail: str = "", tooltip: str | None = None) -> None:
        self.value.setText(value)
        self.detail.setText(detail)
        if tooltip is not None:
            self.setToolTip(tooltip)


class DeviceCombo(QComboBox):
    """auto / cpu at once; the other devices (and the CPU's name) arrive from the background
    process, which is where torch looks for them (job ``devices``)."""

    def __init__(self, name: str, show_memory: bool = False, parent=None) -> None:
        super().__init__(parent)
        from densegui.gui.jobs import EXPLORE
        from densegui.gui.tasks import TaskRunner

        self.setObjectName(name)
        self._show_memory = show_memory
        self.addItem("auto — CUDA, then MPS, then CPU", "auto")
        self.addItem("cpu", "cpu")
        self.runner = TaskRunner(self)
        self.runner.done.connect(self.set_devices)
        self.runner.start_job(EXPLORE, "devices")

    def set_devices(self, devices: list) -> None:
        from densegui.core.units import human_bytes

        for d in devices:
            text = d.label + (f" ({human_bytes(d.total_memory)})" if self._show_memory and d.total_memory else "")
            index = self.findData(d.id)
            if index < 0:
                self.addItem(text, d.id)
            else:
                self.setItemText(index, text)

    def shutdown(self) -> None:
        self.runner.shutdown()


def save_offscreen_png(view, path, width: int, height: int) -> None:
    """Lay out and paint ``view`` (a fresh, parentless widget) without showing it, save it as PNG
    and delete it; DenseguiError in one line if the file cannot be written."""
    from PySide6.QtCore import QEventLoop

    from densegui.core.errors import DenseguiError

    try:
        view.resize(width, height)
        view.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, True)  # never flash a window
        view.show()
        QEventLoop().processEvents()  # not app.processEvents(): PySide6 6.12 leaks a None reference there
        if not view.grab().save(str(path), "PNG"):
            raise DenseguiError(f"cannot write {str(path)!r}.")
    finally:
        view.close()
        view.deleteLater()
        QEventLoop().processEvents()
