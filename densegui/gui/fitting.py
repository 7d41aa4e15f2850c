"""Widgets that fit small windows: nothing squashed, overlapped or silently clipped.

Used by the Timing probe and Train tabs (issue #26): at 1024×700 a tab page is about 680×450 px, so
every piece here keeps a small minimum size and, where its text may not fit, elides it and puts the
whole text in a tooltip.

* :func:`fit_combo` — a combo box that may be narrower than its text: elided, full text as tooltip.
* :class:`WrapLabel` — a wrapped label that breaks long paths too, so no text widens the window.
* :class:`FitProgressBar` — a progress bar whose text is elided (the percentage kept), full as tooltip.
* :class:`ScrollColumn` — a form column that scrolls vertically, so rows keep their height.
* :class:`ReflowGrid` — cards four in a row when wide, two when narrow.
* :class:`AspectSplitter` — a splitter that turns vertical when its area is tall for its width.
* :func:`legend_below` — a plot legend under the x axis, never over the data.
* :func:`plot_minimum` — a plot's minimum size that holds its title and axes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QSize, Qt
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QGridLayout,
    QLabel,
    QProgressBar,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QStyle,
    QStyleOptionComboBox,
    QStylePainter,
    QWidget,
)


class _ElideCombo(QObject):
    """Paints a combo's current text elided to its field (QComboBox clips it) and keeps the
    combo's tooltip equal to the whole current text."""

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt API
        if event.type() == QEvent.Type.Paint and isinstance(obj, QComboBox) and not obj.isEditable():
            painter = QStylePainter(obj)
            opt = QStyleOptionComboBox()
            obj.initStyleOption(opt)
            painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, opt)
            field = obj.style().subControlRect(QStyle.ComplexControl.CC_ComboBox, opt,
                                               QStyle.SubControl.SC_ComboBoxEditField, obj)
            opt.currentText = obj.fontMetrics().elidedText(opt.currentText, Qt.TextElideMode.ElideRight,
                                                           max(field.width() - 4, 0))
            painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, opt)
            painter.end()
            return True
        return False


_ELIDE_COMBO: _ElideCombo | None = None


def combo_text_fits(combo: QComboBox) -> bool:
    """Whether the current text is drawn whole (the test of what :func:`fit_combo` paints)."""
    opt = QStyleOptionComboBox()
    combo.initStyleOption(opt)
    field = combo.style().subControlRect(QStyle.ComplexControl.CC_ComboBox, opt,
                                         QStyle.SubControl.SC_ComboBoxEditField, combo)
    return combo.fontMetrics().horizontalAdvance(combo.currentText()) <= field.width() - 4


def fit_combo(combo: QComboBox, chars: int = 8) -> QComboBox:
    """Let ``combo`` be as narrow as ``chars`` characters: its text is elided where it does not fit,
    its tooltip is the whole current text, and its list opens wide enough for every item."""
    global _ELIDE_COMBO
    if _ELIDE_COMBO is None:
        _ELIDE_COMBO = _ElideCombo()
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(chars)
    combo.installEventFilter(_ELIDE_COMBO)

    def follow(*_) -> None:
        combo.setToolTip(combo.currentText())
        view = combo.view()
        view.setMinimumWidth(view.sizeHintForColumn(0) + 24)

    combo.currentTextChanged.connect(follow)
    model = combo.model()
    model.dataChanged.connect(follow)  # (setItemText: a device's name arriving from the background)
    model.rowsInserted.connect(follow)
    follow()
    return combo


_LONG_RUN = re.compile(r"\S{24,}")
_ZWSP = "\u200b"  # a zero-width space: where a line may break


class WrapLabel(QLabel):
    """A word-wrapped plain-text label that may also break inside long runs without spaces (a
    checkpoint path, a folder name): a wrapped QLabel is never narrower than its longest word, so
    one long path in a status line made the whole window wider. :meth:`text` is the text as set."""

    def __init__(self, text: str = "", parent: QWidget | None = None, **kwargs) -> None:
        super().__init__(parent, **kwargs)
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self._full = ""
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt API
        self._full = text
        super().setText(_LONG_RUN.sub(lambda m: _breakable(m.group()), text))

    def text(self) -> str:
        return self._full


def _breakable(run: str) -> str:
    """``run`` with a break allowed after every separator and at least every 16 characters."""
    out, since = [], 0
    for ch in run:
        out.append(ch)
        since += 1
        if ch in "/\\_.-:,;=" or since >= 16:
            out.append(_ZWSP)
            since = 0
    return "".join(out)


class FitProgressBar(QProgressBar):
    """A progress bar whose text is elided to its width, the trailing percentage kept; the whole
    text is its tooltip. :meth:`format` stays the format that was set."""

    def __init__(self, parent: QWidget | None = None, **kwargs) -> None:
        super().__init__(parent, **kwargs)
        self.setMinimumWidth(80)
        self.valueChanged.connect(self._tip)

    def setFormat(self, fmt: str) -> None:  # noqa: N802 - Qt API
        super().setFormat(fmt)
        self._tip()

    def full_text(self) -> str:
        return super().text()

    def text(self) -> str:  # called by the style when painting
        full = super().text()
        room = self.contentsRect().width() - 12
        metrics = self.fontMetrics()
        if room <= 0 or metrics.horizontalAdvance(full) <= room:
            return full
        head, sep, tail = full.rpartition(" ")
        if sep and tail.endswith("%"):  # keep "… 42%"
            keep = metrics.horizontalAdvance(sep + tail)
            return metrics.elidedText(head, Qt.TextElideMode.ElideRight, max(room - keep, 0)) + sep + tail
        return metrics.elidedText(full, Qt.TextElideMode.ElideRight, room)

    def _tip(self, *_) -> None:
        self.setToolTip(super().text())


class ScrollColumn(QScrollArea):
    """``widget`` in a frameless area that scrolls vertically only: a form keeps its rows' height
    when the window is short, and is never narrower than the widget's own minimum."""

    def __init__(self, widget: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWidget(widget)
        widget.installEventFilter(self)

    def _bar(self) -> int:
        return self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent) + 2

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt API
        inner = self.widget().minimumSizeHint()
        return QSize(inner.width() + self._bar(), min(inner.height(), 120))

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        widget = self.widget()
        inner = widget.sizeHint()
        height = inner.height()
        if widget.hasHeightForWidth() and self.viewport().width() > 0:  # (wrapped labels: the height at this width)
            height = max(widget.heightForWidth(self.viewport().width()), widget.minimumSizeHint().height())
        return QSize(max(inner.width(), widget.minimumSizeHint().width()) + self._bar(), height)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width() and self.widget().hasHeightForWidth():
            self.updateGeometry()

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt API
        if obj is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()
        return False


class ReflowGrid(QWidget):
    """Equal cells, ``wide`` to a row when each gets at least its minimum width, else ``narrow``.
    The minimum width is the narrow arrangement's, so a wide row never holds the window wide."""

    def __init__(self, cells: Sequence[QWidget], wide: int = 4, narrow: int = 2, parent: QWidget | None = None):
        super().__init__(parent)
        self.cells = list(cells)
        self.wide, self.narrow = wide, narrow
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(6)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.columns = 0
        self._place(narrow)

    def _cell_min(self) -> int:
        return max(c.minimumSizeHint().width() if c.minimumWidth() == 0 else c.minimumWidth() for c in self.cells)

    def _width_for(self, columns: int) -> int:
        return columns * self._cell_min() + (columns - 1) * self.grid.spacing()

    def _place(self, columns: int) -> None:
        if columns == self.columns:
            return
        self.columns = columns
        for c in self.cells:
            self.grid.removeWidget(c)
        for i in range(max(self.wide, self.narrow)):
            self.grid.setColumnStretch(i, 1 if i < columns else 0)
        for i, c in enumerate(self.cells):
            self.grid.addWidget(c, i // columns, i % columns)
        self.updateGeometry()

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(self._width_for(self.narrow), super().minimumSizeHint().height())

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        self._place(self.wide if event.size().width() >= self._width_for(self.wide) else self.narrow)


class AspectSplitter(QSplitter):
    """Side by side while the area is at least ``ratio`` times as wide as it is tall and the
    children's minimum widths fit, else stacked. The minimum size reported is the stacked one, so
    turning side by side never makes the area too narrow for its children."""

    def __init__(self, ratio: float = 1.6, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Vertical, parent)
        self.ratio = ratio
        self.setChildrenCollapsible(False)

    def _children_min(self) -> list[QSize]:
        return [self.widget(i).minimumSizeHint().expandedTo(self.widget(i).minimumSize()) for i in range(self.count())]

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt API
        mins = self._children_min()
        gaps = self.handleWidth() * max(len(mins) - 1, 0)
        return QSize(max((m.width() for m in mins), default=0), sum(m.height() for m in mins) + gaps)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        size = event.size()
        mins = self._children_min()
        side_by_side = sum(m.width() for m in mins) + self.handleWidth() * max(len(mins) - 1, 0)
        want = (Qt.Orientation.Horizontal if size.width() >= self.ratio * size.height() and size.width() >= side_by_side
                else Qt.Orientation.Vertical)
        if want != self.orientation():
            self.setOrientation(want)
            n = self.count()
            self.setSizes([(size.width() if want == Qt.Orientation.Horizontal else size.height()) // max(n, 1)] * n)
        super().resizeEvent(event)


def plot_minimum(plot: pg.PlotWidget, width: int, height: int) -> None:
    """At least ``width`` × ``height``, and never narrower than what the plot's title and axes
    need (a PlotWidget's own minimum ignores them, and the plot is then cut at the edge)."""
    need = plot.getPlotItem().effectiveSizeHint(Qt.SizeHint.MinimumSize)
    plot.setMinimumSize(max(width, int(need.width()) + 2), max(height, int(need.height()) + 2))


def legend_below(plot: pg.PlotWidget, curves: Sequence[pg.PlotDataItem], columns: int | None = None) -> pg.LegendItem:
    """A legend for ``curves`` in a row under ``plot``'s x axis: outside the data area, so it never
    hides a point whatever the curves do."""
    item = plot.getPlotItem()
    legend = pg.LegendItem(colCount=columns or len(curves))
    legend.setLabelTextColor("#333")
    for curve in curves:
        legend.addItem(curve, curve.name())
    legend.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)  # (not spread over the row)
    legend.mouseDragEvent = lambda event: event.ignore()  # it stays where it is
    item.layout.addItem(legend, 4, 1)
    item.layout.setAlignment(legend, Qt.AlignmentFlag.AlignHCenter)
    return legend
