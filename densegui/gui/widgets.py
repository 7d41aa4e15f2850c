"""Small widgets shared by the panels."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QPoint, QRect, QSize, Qt, QTimer
from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtGui import Qt as GuiQt  # (convertFromPlainText lives in QtGui's Qt namespace)
from PySide6.QtWidgets import (QAbstractScrollArea, QComboBox, QFrame, QHBoxLayout, QLabel, QLayout, QScrollArea, QSizePolicy,
                               QToolButton, QVBoxLayout, QWidget)


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

    def __init__(self, text: str = "", parent=None, *, shrink: tuple[int, int] | None = None) -> None:
        """``shrink=(largest, smallest)``: pixel sizes of the font; a text too wide at the largest is
        drawn at the largest size it fits at, and elided only below the smallest (the headline's
        figures stay whole in a narrow window). The height stays the largest size's."""
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self._full = ""
        self._shrink = shrink
        self._fitting = False
        if shrink is not None:
            font = self.font()
            font.setPixelSize(shrink[0])
            self.setFont(font)
            self.setMinimumHeight(QFontMetrics(font).height())
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
        if self._fitting:
            return
        width = self.contentsRect().width()
        if self._shrink is not None and width > 0:
            self._fit_font(width)
        metrics = self.fontMetrics()
        shown = self._full
        if width > 0 and metrics.horizontalAdvance(shown) > width:
            shown = metrics.elidedText(shown, Qt.TextElideMode.ElideRight, width)
        self.setToolTip("" if shown == self._full else GuiQt.convertFromPlainText(self._full))
        super().setText(shown)

    def _fit_font(self, width: int) -> None:
        largest, smallest = self._shrink
        font = QFont(self.font())
        for px in range(largest, smallest - 1, -1):
            font.setPixelSize(px)
            if QFontMetrics(font).horizontalAdvance(self._full) <= width:
                break
        if font.pixelSize() != self.font().pixelSize():
            self._fitting = True  # (setFont sends a FontChange, which would fit again)
            try:
                self.setFont(font)
            finally:
                self._fitting = False


class ClampLabel(FitLabel):
    """A word-wrapped label that always takes ``lines`` lines: a shorter text leaves them blank and
    a longer one ends in "…", its whole text in the tooltip. A new text never moves what is below."""

    def __init__(self, lines: int = 2, parent=None) -> None:
        super().__init__("", parent)
        self.lines = lines
        self.setWordWrap(True)
        self.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self._elide()

    def _elide(self) -> None:
        if not hasattr(self, "lines"):  # (FitLabel's __init__, before ours has run)
            return
        m = self.contentsMargins()
        self.setFixedHeight(self.lines * self.fontMetrics().lineSpacing() + m.top() + m.bottom() + 1)
        self._fit()

    def _wrapped_lines(self, text: str, width: int) -> int:
        rect = self.fontMetrics().boundingRect(0, 0, width, 1 << 20, int(Qt.TextFlag.TextWordWrap), text)
        return round(rect.height() / self.fontMetrics().lineSpacing())

    def _fit(self) -> None:
        width = self.contentsRect().width()
        shown = self._full
        if width > 20 and self._wrapped_lines(shown, width) > self.lines:
            lo, hi = 0, len(shown)  # the longest prefix that fits with "…"
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if self._wrapped_lines(self._full[:mid].rstrip() + "…", width) <= self.lines:
                    lo = mid
                else:
                    hi = mid - 1
            shown = self._full[:lo].rstrip() + "…"
        self.setToolTip("" if shown == self._full else GuiQt.convertFromPlainText(self._full))
        QLabel.setText(self, shown)  # (not FitLabel's: that is the whole text's setter)


class Banner(QFrame):
    """A message floating over the bottom of ``host`` (the tab pages), with a close button: showing
    it moves nothing under the cursor. ``label`` holds the text (objectName ``label_name``)."""

    def __init__(self, host: QWidget, label_name: str, parent: QWidget) -> None:
        super().__init__(parent)
        self.host = host
        self.setObjectName(label_name + "Banner")
        self.setStyleSheet(f"#{label_name}Banner {{ background: #fdecea; border: 1px solid #f5c2bd; "
                           "border-radius: 4px; }")
        self.label = QLabel()
        self.label.setObjectName(label_name)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setStyleSheet("color: #8a1c12; background: transparent; border: none;")
        self.close_button = QToolButton()
        self.close_button.setObjectName(label_name + "Close")
        self.close_button.setText("✕")
        self.close_button.setAutoRaise(True)
        self.close_button.setToolTip("Dismiss (Esc)")
        self.close_button.clicked.connect(self.hide)
        h = QHBoxLayout(self)
        h.setContentsMargins(8, 6, 4, 6)
        h.addWidget(self.label, 1)
        h.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        host.installEventFilter(self)
        self.hide()

    def show_text(self, text: str) -> None:
        self.label.setText(text)
        self.show()
        self.raise_()
        self._place()

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt API
        if obj is self.host and event.type() in (QEvent.Type.Resize, QEvent.Type.Move) and self.isVisible():
            self._place()
        return False

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.key() == Qt.Key.Key_Escape:
            self.hide()
        else:
            super().keyPressEvent(event)

    def _place(self) -> None:
        """Along the host's bottom edge, 8 px in, as tall as the text needs (at most half the host)."""
        top_left = self.host.mapTo(self.parentWidget(), self.host.rect().topLeft())
        width = max(100, self.host.width() - 16)
        height = min(max(self.heightForWidth(width), self.sizeHint().height()), max(40, self.host.height() // 2))
        self.setGeometry(top_left.x() + 8, top_left.y() + self.host.height() - height - 8, width, height)


class FlowLayout(QLayout):
    """Items left to right, wrapping onto a new row when the width runs out (a tool bar that fits a
    narrow window instead of widening it). Hidden widgets take no room."""

    def __init__(self, parent: QWidget | None = None, spacing: int = 6) -> None:
        super().__init__(parent)
        self._items = []
        self.setSpacing(spacing)
        self.setContentsMargins(0, 0, 0, 0)

    def addItem(self, item) -> None:  # noqa: N802 - Qt API
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int):  # noqa: N802 - Qt API
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int):  # noqa: N802 - Qt API
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def expandingDirections(self):  # noqa: N802 - Qt API
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:  # noqa: N802 - Qt API
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802 - Qt API
        return self._arrange(QRect(0, 0, width, 0), move=False)

    def setGeometry(self, rect: QRect) -> None:  # noqa: N802 - Qt API
        super().setGeometry(rect)
        self._arrange(rect, move=True)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API: everything on one row
        shown = [i for i in self._items if not i.isEmpty()]
        m = self.contentsMargins()
        width = sum(i.sizeHint().width() for i in shown) + self.spacing() * max(0, len(shown) - 1)
        height = max((i.sizeHint().height() for i in shown), default=0)
        return QSize(width + m.left() + m.right(), height + m.top() + m.bottom())

    def minimumSize(self) -> QSize:  # noqa: N802 - Qt API: the widest item alone on its row
        size = QSize()
        for item in self._items:
            if not item.isEmpty():
                size = size.expandedTo(item.minimumSize())
        m = self.contentsMargins()
        return size + QSize(m.left() + m.right(), m.top() + m.bottom())

    def _arrange(self, rect: QRect, move: bool) -> int:
        m = self.contentsMargins()
        area = rect.adjusted(m.left(), m.top(), -m.right(), -m.bottom())
        x, y, row_height = area.x(), area.y(), 0
        for item in self._items:
            if item.isEmpty():
                continue
            hint = item.sizeHint()
            if x > area.x() and x + hint.width() > area.right() + 1:
                x, y, row_height = area.x(), y + row_height + self.spacing(), 0
            if move:
                item.setGeometry(QRect(QPoint(x, y), hint))
            x += hint.width() + self.spacing()
            row_height = max(row_height, hint.height())
        return y + row_height - rect.y() + m.bottom()


def together(*widgets, spacing: int = 4) -> QWidget:
    """Widgets kept together on one line (a label and its combo box) as one item of a FlowLayout."""
    box = QWidget()
    h = QHBoxLayout(box)
    h.setContentsMargins(0, 0, 0, 0)
    h.setSpacing(spacing)
    for w in widgets:
        h.addWidget(QLabel(w) if isinstance(w, str) else w)
    return box


class TabPage(QScrollArea):
    """A tab's page. When the window is smaller than its content's minimum size the content scrolls
    instead of being squashed (overlapping rows, text cut in half), and a panel's minimum size never
    makes the window larger than the screen.

    The content is sized here, not by ``widgetResizable``, which sizes a layout with wrapped labels
    to its *preferred* height for the width (a stacked widget reports its pages' preferred heights)
    and so scrolled pages that fit. Here it gets the viewport's size or its minimum size, and then
    as much more height as its wrapped labels lack at that width."""

    def __init__(self, content: QWidget, name: str, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        self.setWidgetResizable(False)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self._extra = 0  # the least height the content showed it needs at the current width (_check_squashed)
        self._passes = 0
        self._shrunk = self._keep = False  # tried the viewport's height again / and it was too short
        self._check = QTimer(self)
        self._check.setSingleShot(True)
        self._check.setInterval(0)
        self._check.timeout.connect(self._check_squashed)
        self.set_content(content)

    def set_content(self, content: QWidget) -> None:
        old = self.takeWidget()
        if old is not None:
            old.removeEventFilter(self)
            old.deleteLater()
        self.setWidget(content)
        content.installEventFilter(self)
        self._extra = self._passes = 0
        self._shrunk = self._keep = False
        self.fit_content()

    def fit_content(self) -> None:
        content = self.widget()
        if content is None:
            return
        view = self.viewport().size()
        need = content.minimumSizeHint().expandedTo(content.minimumSize())
        size = QSize(max(view.width(), need.width()), max(view.height(), need.height(), self._extra))
        if content.size() != size:
            content.resize(size)
        self._check.start()

    def _check_squashed(self) -> None:
        """Grow the content by what its most squashed part lacks: a layout whose wrapped labels take
        their height for the width gives the rest less than its minimum."""
        content = self.widget()
        if content is None or not content.isVisible() or self._passes > 4:
            return
        lack = 0
        for w in content.findChildren(QWidget):
            if (not w.isVisible() or w.isWindow() or w.objectName().startswith("qt_")  # (a spin box's
                    or self._scrolled_inside(w, content)):  # line edit, …: Qt sizes its own parts)
                continue
            if isinstance(w, QLabel) and w.wordWrap():
                need = w.heightForWidth(w.width()) if w.text() else 0
            elif w.sizePolicy().verticalPolicy() == QSizePolicy.Policy.Ignored:
                continue
            else:
                need = w.minimumHeight() or w.minimumSizeHint().height()
            lack = max(lack, need - w.height())
        if lack > 1:
            self._extra = content.height() + lack
            self._passes += 1
            self._keep = self._shrunk  # (it lacked room again after a shrink: the height is needed)
            self.fit_content()
        elif self._extra > self.viewport().height() and not self._shrunk and not self._keep:
            # Once, try the viewport's height again: the lack may have been a panel's passing state
            # (a reflow from one arrangement to another), which would otherwise scroll it for good.
            self._extra, self._shrunk = 0, True
            self.fit_content()

    @staticmethod
    def _scrolled_inside(w: QWidget, content: QWidget) -> bool:
        """Inside a scroll area (or an item view, a text view…) below ``content``: that one sizes and
        scrolls it (a table's header, a form in its own scrolling column)."""
        p = w.parentWidget()
        while p is not None and p is not content:
            if isinstance(p, QAbstractScrollArea):
                return True
            p = p.parentWidget()
        return False

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        if event.oldSize().width() != event.size().width():
            self._extra = self._passes = 0  # (another width: the labels wrap differently)
            self._shrunk = self._keep = False
        self.fit_content()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        self._check.start()

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt API
        if obj is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.fit_content()
        return super().eventFilter(obj, event)


class FineDrag(QObject):
    """Shift+drag on a slider moves it one step per ``PIXELS`` px wherever the range is wide (the
    growth rate's 1-256 on a 110 px groove is otherwise 2-3 values per pixel); a plain drag, the
    keys and the editable box beside it are unchanged."""

    PIXELS = 6

    def __init__(self, slider) -> None:
        super().__init__(slider)
        self.slider = slider
        self._start: tuple[float, int] | None = None  # (x at the press, value at the press)
        slider.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt API
        kind = event.type()
        if kind == QEvent.Type.MouseButtonPress and event.button() == Qt.MouseButton.LeftButton \
                and event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self._start = (event.position().x(), self.slider.value())
            self.slider.setSliderDown(True)
            return True
        if self._start is not None and kind == QEvent.Type.MouseMove:
            x0, v0 = self._start
            steps = round((event.position().x() - x0) / self.PIXELS)
            if self.slider.invertedAppearance():
                steps = -steps
            self.slider.setValue(max(self.slider.minimum(), min(self.slider.maximum(),
                                                                 v0 + steps * self.slider.singleStep())))
            return True
        if self._start is not None and kind == QEvent.Type.MouseButtonRelease:
            self._start = None
            self.slider.setSliderDown(False)
            return True
        return False


class Card(QFrame):
    """A titled figure: small title, big value, one line of detail (FitLabels, so new values never
    re-lay out the window)."""

    def __init__(self, title: str, name: str, tip: str = "", parent=None) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setToolTip(tip)
        self.setMinimumWidth(120)
        self.title = FitLabel(title.upper(), shrink=(10, 8))
        self.title.setStyleSheet("color: #5b6b7b;")
        font = self.title.font()
        font.setWeight(QFont.Weight.DemiBold)
        font.setLetterSpacing(QFont.SpacingType.AbsoluteSpacing, 0.6)
        self.title.setFont(font)
        self.value = FitLabel("–", shrink=(20, 13))
        self.value.setStyleSheet("color: #1f3b5a;")  # (its font is set here: a style sheet's would pin the size)
        font = self.value.font()
        font.setWeight(QFont.Weight.DemiBold)
        self.value.setFont(font)
        self.value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.detail = FitLabel(" ")
        self.detail.setStyleSheet("color: #5b6b7b; font-size: 11px;")
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(8, 5, 8, 5)
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
