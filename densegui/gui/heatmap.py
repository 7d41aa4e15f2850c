"""The Figure-5 heatmap view and its figures (Qt, no torch; used by the panel and the CLI).

One heatmap per dense block, side by side: rows are sources (block input,
then layers 1..L, top to bottom), columns are targets (layers 1..L, then,
set apart by a blank column, the transition or the classifier). Cells with
no connection are transparent (NaN). Cells within the measure's noise floor
carry a small grey dot (``set_show_noise``). :class:`PruneView` plots the
pruning curve.

The view is pyqtgraph's; figures for files are drawn by :func:`paint_heatmaps` with
QPainter alone (one filled rectangle per cell, text as text), from the same numbers,
colour map and levels, so :func:`render` writes PNG, SVG and PDF alike (gui/export.py).
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QCursor, QFont, QGuiApplication, QLinearGradient, QPainter, QPen
from PySide6.QtWidgets import QApplication, QGraphicsRectItem, QToolTip, QWidget

from densegui.core.analysis.reuse import (
    COLORMAPS,
    DEFAULT_NORMALISATION,
    MEASURE_LABELS,
    MEASURE_UNITS,
    NORMALISATION_LABELS,
    NORMALISATIONS,
    BlockReuse,
    normalise,
)
from densegui.core.errors import DenseguiError
from densegui.gui import export, guard_refcounts
from densegui.gui.layer_plots import linear_ticks


def _short_target(name: str, block: int) -> str:
    if name.startswith("transition"):
        return f"T{block}"
    if name == "classifier":
        return "cls"
    return name.split()[-1]


def _short_source(name: str) -> str:
    return "in" if name == "input" else name.split()[-1]


def _ticks(labels: list[tuple[int, str]], limit: int = 14) -> list[tuple[float, str]]:
    """Every label if few, else every n-th (n from 2, 4, 5, 10, 20 …) keeping about ``limit``."""
    if len(labels) <= limit:
        return [(i + 0.5, s) for i, s in labels]
    stride = next(n for n in (2, 4, 5, 8, 10, 16, 20, 25, 50, 100, 10**9) if len(labels) / n <= limit)
    # labels[0] is "in" (rows) or layer 1 (columns): keep it, then multiples of the stride.
    keep = [(i, s) for n, (i, s) in enumerate(labels) if n == 0 or (s.isdigit() and int(s) % stride == 0)]
    return [(i + 0.5, s) for i, s in keep]


def gap_columns(depth: int) -> int:
    """Blank columns between the last layer and the transition/classifier column."""
    return max(1, round(depth / 16))


# ------------------------------------------------------------------ what a figure shows (pure)
def column_of(block: BlockReuse, target: int) -> int:
    """The image column of ``target`` (the transition/classifier is set apart by the gap)."""
    depth = len(block.targets) - 1
    return target if target < depth else depth + gap_columns(depth)


def color_levels(blocks: list[BlockReuse], normalisation: str) -> tuple[float, float]:
    """The values at the two ends of the colour bar: 0 … 1 for the normalised scales, else
    min(0, lowest) … highest over every block."""
    if normalisation != "raw":
        return 0.0, 1.0
    finite = [b.matrix[~np.isnan(b.matrix)] for b in blocks]
    finite = [f for f in finite if f.size]
    peak = max((float(f.max()) for f in finite), default=1.0)
    low = min((float(f.min()) for f in finite), default=0.0)
    return min(0.0, low), peak if peak > min(0.0, low) else min(0.0, low) + 1.0


def noise_cells_of(block: BlockReuse) -> list[tuple[int, int]]:
    """(row, target) of ``block``'s connected cells within its noise floor."""
    if block.within_noise is None:
        return []
    rows, targets = np.nonzero(block.within_noise & ~np.isnan(block.matrix))
    return list(zip(rows.tolist(), targets.tolist()))


def block_ticks(block: BlockReuse) -> tuple[list[tuple[float, str]], list[tuple[float, str]]]:
    """(bottom, left) axis ticks of a block's heatmap, at cell centres: (column or row + 0.5, label)."""
    depth = len(block.targets) - 1
    xl = [(c, _short_target(t, block.block)) for c, t in enumerate(block.targets[:-1])]
    ticks_x = _ticks(xl, limit=8 if depth > 16 else 14)
    if depth > 16:  # keep the transition/classifier label clear of the last layer labels
        ticks_x = [t for t in ticks_x if t[0] < depth * 0.85]
    ticks_x.append((column_of(block, depth) + 0.5, _short_target(block.targets[-1], block.block)))
    ticks_y = _ticks([(r, _short_source(name)) for r, name in enumerate(block.sources)])
    return ticks_x, ticks_y


def scale_label(blocks: list[BlockReuse], normalisation: str) -> str:
    """The colour bar's label: the measure's unit and the scale."""
    unit = MEASURE_UNITS[blocks[0].measure] if blocks else "mean |w|"
    return {"raw": unit, "column-max": f"{unit} ÷ column max",
            "column": f"{unit}, column min–max", "block": f"{unit}, block min–max"}[normalisation]


def figure_title(name: str, measure: str, normalisation: str, show_noise: bool = True) -> str:
    """A figure's title: the checkpoint's file name, the measure and the scale."""
    dots = "; dots: within the noise floor" if show_noise else ""
    return f"{name}: {MEASURE_LABELS[measure]} ({NORMALISATION_LABELS[normalisation]}{dots})"


class HeatmapView(pg.GraphicsLayoutWidget):
    """One ImageItem per block plus a shared ColorBarItem; no computation beyond rescaling."""

    cellHovered = Signal(object)  # (block index, row, target) or None
    cellClicked = Signal(object)  # (block index, row, target)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("reuseHeatmaps")
        self.setBackground("w")
        self.blocks: list[BlockReuse] = []
        self.normalisation = DEFAULT_NORMALISATION
        self.show_noise = True
        self.cmap_name = "viridis"
        self.title = ""
        self.plots: list[pg.PlotItem] = []
        self.images: list[pg.ImageItem] = []
        self.colorbar: pg.ColorBarItem | None = None
        self._marker: QGraphicsRectItem | None = None
        self._layout_key: tuple | None = None
        self.scene().sigMouseMoved.connect(self._on_move)
        self.scene().sigMouseClicked.connect(self._on_click)

    # ------------------------------------------------------------ data → image
    def displayed(self, index: int) -> np.ndarray:
        """The values shown for block ``index`` (rows = sources, columns = targets), after normalisation."""
        return normalise(self.blocks[index].matrix, self.normalisation)

    def image_array(self, index: int) -> np.ndarray:
        """``displayed(index)`` with a NaN gap column before the transition/classifier column."""
        shown = self.displayed(index)
        depth = shown.shape[1] - 1
        out = np.full((shown.shape[0], depth + gap_columns(depth) + 1), np.nan)
        out[:, :depth] = shown[:, :depth]
        out[:, -1] = shown[:, depth]
        return out

    def levels(self) -> tuple[float, float]:
        return color_levels(self.blocks, self.normalisation)

    def noise_cells(self, index: int) -> list[tuple[int, int]]:
        """(row, target) of the cells of block ``index`` within the noise floor."""
        return noise_cells_of(self.blocks[index])

    def set_show_noise(self, on: bool) -> None:
        self.show_noise = bool(on)
        self._refresh_noise()

    def _refresh_noise(self) -> None:
        for i, plot in enumerate(self.plots):
            dots = plot.noise_dots
            cells = self.noise_cells(i) if self.show_noise and i < len(self.blocks) else []
            dots.setData([self.target_to_column(i, t) + 0.5 for _, t in cells], [r + 0.5 for r, _ in cells])

    def column_to_target(self, index: int, col: int) -> int | None:
        depth = len(self.blocks[index].targets) - 1
        if 0 <= col < depth:
            return col
        if col == depth + gap_columns(depth):
            return depth
        return None

    def target_to_column(self, index: int, target: int) -> int:
        return column_of(self.blocks[index], target)

    # ----------------------------------------------------------------- building
    def set_blocks(self, blocks: list[BlockReuse], title: str = "") -> None:
        self.blocks = list(blocks)
        self.title = title
        self._rebuild()

    def set_normalisation(self, mode: str) -> None:
        if mode not in NORMALISATIONS:
            raise DenseguiError(f"unknown normalisation {mode!r}.")
        self.normalisation = mode
        self._refresh_images()

    def set_colormap(self, name: str) -> None:
        self.cmap_name = name
        if self.colorbar is not None:
            self.colorbar.setColorMap(pg.colormap.get(name))

    def _rebuild(self) -> None:
        """Lay out one plot per block; plots are reused when the block count and title stay the same
        (building pyqtgraph PlotItems is the slow part of showing a new checkpoint)."""
        if not self.blocks:
            self.clear()
            self.plots, self.images, self.colorbar, self._marker, self._layout_key = [], [], None, None, None
            return
        key = (len(self.blocks), self.title)
        if key != self._layout_key:
            self.clear()
            self.plots, self.images, self._marker = [], [], None
            row = 0
            if self.title:
                self.addLabel(self.title, row=0, col=0, colspan=len(self.blocks) + 1, color="k", size="11pt")
                row = 1
            for i in range(len(self.blocks)):
                plot = self.addPlot(row=row, col=i)
                plot.setMenuEnabled(False)
                plot.setMouseEnabled(x=False, y=False)
                plot.hideButtons()
                plot.invertY(True)
                plot.setAspectLocked(True)
                image = pg.ImageItem(axisOrder="row-major")
                plot.addItem(image)
                # A dashed line marks the set-apart transition/classifier column.
                plot.separator = pg.InfiniteLine(angle=90, pen=pg.mkPen((120, 120, 120), width=1,
                                                                        style=Qt.PenStyle.DashLine))
                plot.addItem(plot.separator)
                plot.noise_dots = pg.ScatterPlotItem(size=4, pen=None, brush=pg.mkBrush(150, 150, 150, 220),
                                                     pxMode=True)
                plot.addItem(plot.noise_dots)
                for name in ("bottom", "left"):
                    plot.getAxis(name).setPen("k")
                    plot.getAxis(name).setTextPen("k")
                plot.setLabel("bottom", "target")
                plot.setLabel("left", "source")
                plot.getAxis("left").setWidth(46)  # equal axes → equal plots, aligned side by side
                self.plots.append(plot)
                self.images.append(image)
            self.colorbar = pg.ColorBarItem(colorMap=pg.colormap.get(self.cmap_name), interactive=False,
                                            width=16, pen="k")
            self.colorbar.setImageItem(self.images)
            self.addItem(self.colorbar, row=row, col=len(self.blocks))
            self._layout_key = key
        self._clear_marker()
        for plot, b in zip(self.plots, self.blocks):
            plot.setTitle(f"Block {b.block}", color="k")
            depth = len(b.targets) - 1
            gap = gap_columns(depth)
            plot.separator.setPos(depth + gap / 2)
            ticks_x, ticks_y = block_ticks(b)
            plot.getAxis("bottom").setTicks([ticks_x, []])
            plot.getAxis("left").setTicks([ticks_y, []])
            plot.setRange(xRange=(0, depth + gap + 1), yRange=(0, len(b.sources)), padding=0.02)
        self._refresh_images()

    def clear_selection(self) -> None:
        """Remove the clicked cell's outline and the hover tooltip."""
        self._clear_marker()
        QToolTip.hideText()

    def _clear_marker(self) -> None:
        if self._marker is not None and self._marker.scene() is not None:
            self._marker.scene().removeItem(self._marker)
        self._marker = None

    def _refresh_images(self) -> None:
        if not self.images:
            return
        lo, hi = self.levels()
        for i, image in enumerate(self.images):
            image.setImage(self.image_array(i), autoLevels=False)
        if self.colorbar is not None:
            self.colorbar.setLevels((lo, hi))
            self.colorbar.axis.setLabel(scale_label(self.blocks, self.normalisation))
            self.colorbar.axis.setPen("k")
            self.colorbar.axis.setTextPen("k")
        self._refresh_noise()

    # -------------------------------------------------------------- interaction
    def cell_at(self, scene_pos: QPointF) -> tuple[int, int, int] | None:
        for i, plot in enumerate(self.plots):
            if not plot.vb.sceneBoundingRect().contains(scene_pos):
                continue
            p = plot.vb.mapSceneToView(scene_pos)
            row, col = math.floor(p.y()), math.floor(p.x())
            b = self.blocks[i]
            target = self.column_to_target(i, col)
            if target is None or not 0 <= row < len(b.sources) or math.isnan(b.matrix[row, target]):
                return None
            return i, row, target
        return None

    def scene_pos_of(self, index: int, row: int, target: int) -> QPointF:
        """Scene position of a cell's centre (the inverse of :meth:`cell_at`)."""
        col = self.target_to_column(index, target)
        return self.plots[index].vb.mapViewToScene(QPointF(col + 0.5, row + 0.5))

    def tooltip_text(self, index: int, row: int, target: int) -> str:
        b = self.blocks[index]
        text = f"{b.sources[row]} → {b.targets[target]}: {b.matrix[row, target]:.4g}"
        if b.within_noise is not None and b.within_noise[row, target]:
            text += " (within noise)"
        return text

    def _on_move(self, pos: QPointF) -> None:
        cell = self.cell_at(pos)
        self.cellHovered.emit(cell)
        if cell is None:
            QToolTip.hideText()
        else:
            QToolTip.showText(QCursor.pos(), self.tooltip_text(*cell), self)

    def _on_click(self, event) -> None:
        cell = self.cell_at(event.scenePos())
        if cell is not None:
            self.select(*cell)

    def select(self, index: int, row: int, target: int) -> None:
        """Outline a cell and announce it (click)."""
        col = self.target_to_column(index, target)
        self._clear_marker()
        self._marker = QGraphicsRectItem(QRectF(col, row, 1, 1))
        pen = QPen(QColor(230, 30, 30))
        pen.setCosmetic(True)
        pen.setWidth(2)
        self._marker.setPen(pen)
        self.plots[index].addItem(self._marker)
        self.cellClicked.emit((index, row, target))


# ------------------------------------------------------------------ figures (QPainter: PNG, SVG, PDF)
GRID = 180.0  # a block's heatmap side in a figure of the default size (logical units, ≈ points)
MARGIN = 10.0
TICK_LENGTH = 4.0
BAR_WIDTH = 14.0
INK = QColor("black")
SEPARATOR = QColor(120, 120, 120)  # the dashed line before the transition/classifier column
NOISE_DOT = QColor(150, 150, 150, 220)
_APP = None  # the QApplication a figure made without a window (kept: fonts need it alive)


def colormap_of(name: str) -> pg.ColorMap:
    """pyqtgraph's colour map ``name``; DenseguiError (one line) if it has none of that name."""
    try:
        return pg.colormap.get(name)
    except Exception:  # noqa: BLE001 - pyqtgraph raises various errors for unknown names
        raise DenseguiError(f"unknown colour map {name!r}; try one of {', '.join(COLORMAPS)}.") from None


def _bar_label(value: float, span: float) -> str:
    return "0" if abs(value) < 1e-9 * span else f"{value:.3g}"


class HeatmapFigure:
    """The heatmaps of ``blocks`` as one figure: a panel per block (title, cells, axes, noise dots,
    the dashed line before the transition/classifier column), a colour bar, a title. Drawn with
    QPainter into any rectangle (:meth:`paint`), in the colours and levels :class:`HeatmapView`
    shows; every connected cell is one filled rectangle, a cell without connection stays empty."""

    def __init__(self, blocks: list[BlockReuse], *, normalisation: str = DEFAULT_NORMALISATION,
                 cmap: str = "viridis", title: str = "", show_noise: bool = True) -> None:
        from PySide6.QtGui import QFontMetricsF

        if not blocks:
            raise DenseguiError("there are no heatmaps to draw (no dense blocks).")
        if normalisation not in NORMALISATIONS:
            raise DenseguiError(f"unknown normalisation {normalisation!r}.")
        self.blocks, self.normalisation, self.title, self.show_noise = list(blocks), normalisation, title, show_noise
        self.colormap = colormap_of(cmap)
        self.levels = color_levels(self.blocks, normalisation)
        self.font = QFont(QGuiApplication.font())
        self.font.setPointSizeF(9.0)
        self.title_font = QFont(self.font)
        self.title_font.setPointSizeF(11.0)
        self.fm, self.tfm = QFontMetricsF(self.font), QFontMetricsF(self.title_font)
        self.ticks = [block_ticks(b) for b in self.blocks]
        lo, hi = self.levels
        self.bar_ticks = [(v, _bar_label(v, hi - lo)) for v in linear_ticks(lo, hi, 5)]
        fh = self.fm.height()
        self.label_width = max((self.fm.horizontalAdvance(t) for ticks in self.ticks for _p, t in ticks[1]), default=0.0)
        # Left of a grid: "source" (turned), the row labels, the ticks; below it: ticks, labels, "target".
        self.left = fh + 4 + self.label_width + 3 + TICK_LENGTH + 2
        self.bottom = 2 + TICK_LENGTH + 2 + fh + 2 + fh
        self.head = fh + 4  # "Block b"
        bar_labels = max((self.fm.horizontalAdvance(t) for _v, t in self.bar_ticks), default=0.0)
        self.bar = 14 + BAR_WIDTH + TICK_LENGTH + 3 + bar_labels + 6 + fh

    # ------------------------------------------------------------ geometry
    def title_height(self, width: float) -> float:
        if not self.title:
            return 0.0
        box = self.tfm.boundingRect(QRectF(0, 0, max(10.0, width - 2 * MARGIN), 1e4),
                                    int(Qt.TextFlag.TextWordWrap | Qt.AlignmentFlag.AlignHCenter), self.title)
        return box.height() + 8

    def size(self, grid: float = GRID) -> tuple[int, int]:
        """The figure's default size: each block's heatmap about ``grid`` units square."""
        width = 2 * MARGIN + len(self.blocks) * (self.left + grid + 12) + self.bar
        height = MARGIN + self.title_height(width) + self.head + grid + self.bottom + MARGIN
        return math.ceil(width), math.ceil(height)

    def grids(self, rect: QRectF) -> list[tuple[QRectF, float]]:
        """Each block's cell area in ``rect`` and its cell side: square cells, centred in the panel."""
        top = rect.top() + MARGIN + self.title_height(rect.width()) + self.head
        avail_h = rect.bottom() - MARGIN - self.bottom - top
        panel = (rect.width() - 2 * MARGIN - self.bar) / len(self.blocks)
        out = []
        for i, b in enumerate(self.blocks):
            depth = len(b.targets) - 1
            cols, rows = depth + gap_columns(depth) + 1, len(b.sources)
            avail_w = panel - self.left - 12
            cell = max(0.0, min(avail_w / cols, avail_h / rows))
            x = rect.left() + MARGIN + i * panel + self.left + (avail_w - cell * cols) / 2
            y = top + (avail_h - cell * rows) / 2
            out.append((QRectF(x, y, cell * cols, cell * rows), cell))
        return out

    # ------------------------------------------------------------ drawing
    def paint(self, painter: QPainter, rect: QRectF) -> None:
        """Draw the figure to fill ``rect`` (see gui/export.py for files)."""
        painter.save()
        try:
            if self.title:
                painter.setFont(self.title_font)
                painter.setPen(INK)
                painter.drawText(QRectF(rect.left() + MARGIN, rect.top() + MARGIN, rect.width() - 2 * MARGIN,
                                        self.title_height(rect.width())),
                                 int(Qt.TextFlag.TextWordWrap | Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop),
                                 self.title)
            painter.setFont(self.font)
            grids = self.grids(rect)
            for index, (grid, cell) in enumerate(grids):
                if cell > 0:
                    self._paint_block(painter, index, grid, cell)
            bar_left = rect.right() - MARGIN - self.bar + 14
            top, bottom = min(g.top() for g, _c in grids), max(g.bottom() for g, _c in grids)
            if bottom - top > 1:
                self._paint_bar(painter, QRectF(bar_left, top, BAR_WIDTH, bottom - top))
        finally:
            painter.restore()

    def _paint_block(self, painter: QPainter, index: int, grid: QRectF, cell: float) -> None:
        b = self.blocks[index]
        shown = normalise(b.matrix, self.normalisation)
        lo, hi = self.levels
        columns = np.array([column_of(b, t) for t in range(shown.shape[1])])
        rows, targets = np.nonzero(~np.isnan(shown))
        values = np.clip((shown[rows, targets] - lo) / (hi - lo), 0.0, 1.0)
        colours = self.colormap.map(values, mode="byte") if len(values) else np.zeros((0, 4), np.uint8)
        # Each cell reaches a little into a connected neighbour on its right and below, which is
        # drawn later over it: no hairline seams where a viewer antialiases the shared edges.
        filled = np.zeros((shown.shape[0], int(columns.max()) + 2), dtype=bool)
        filled[rows, columns[targets]] = True
        overlap = min(0.5, 0.05 * cell)
        painter.setPen(Qt.PenStyle.NoPen)
        for r, c, colour in zip(rows.tolist(), columns[targets].tolist(), colours.tolist()):
            right = overlap if filled[r, c + 1] else 0.0
            below = overlap if r + 1 < filled.shape[0] and filled[r + 1, c] else 0.0
            painter.fillRect(QRectF(grid.left() + c * cell, grid.top() + r * cell, cell + right, cell + below),
                             QColor(*colour[:3]))
        if self.show_noise:
            painter.setBrush(NOISE_DOT)
            radius = min(2.0, 0.22 * cell)
            for r, t in noise_cells_of(b):
                painter.drawEllipse(QPointF(grid.left() + (column_of(b, t) + 0.5) * cell, grid.top() + (r + 0.5) * cell),
                                    radius, radius)
            painter.setBrush(Qt.BrushStyle.NoBrush)
        depth = len(b.targets) - 1
        painter.setPen(QPen(SEPARATOR, 1, Qt.PenStyle.DashLine))
        x = grid.left() + (depth + gap_columns(depth) / 2) * cell
        painter.drawLine(QPointF(x, grid.top()), QPointF(x, grid.bottom()))
        self._paint_axes(painter, index, grid, cell)

    def _paint_axes(self, painter: QPainter, index: int, grid: QRectF, cell: float) -> None:
        b, (ticks_x, ticks_y) = self.blocks[index], self.ticks[index]
        fm, fh = self.fm, self.fm.height()
        painter.setPen(QPen(INK, 1))
        painter.drawText(QRectF(grid.left() - 20, grid.top() - self.head, grid.width() + 40, fh),
                         int(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop), f"Block {b.block}")
        ax, ay = grid.left() - 2, grid.bottom() + 2  # the axes sit just off the cells
        painter.drawLine(QPointF(ax, grid.top()), QPointF(ax, grid.bottom()))
        painter.drawLine(QPointF(grid.left(), ay), QPointF(grid.right(), ay))
        right = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        last = -math.inf
        for pos, label in ticks_y:
            y = grid.top() + pos * cell
            painter.drawLine(QPointF(ax - TICK_LENGTH, y), QPointF(ax, y))
            if y - fh / 2 >= last:  # a label that would overlap the one above is left out
                painter.drawText(QRectF(ax - TICK_LENGTH - 3 - self.label_width, y - fh / 2, self.label_width, fh),
                                 right, label)
                last = y + fh / 2
        centre = int(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        last = -math.inf
        for pos, label in ticks_x:
            x = grid.left() + pos * cell
            painter.drawLine(QPointF(x, ay), QPointF(x, ay + TICK_LENGTH))
            width = fm.horizontalAdvance(label)
            if x - width / 2 >= last + 3:
                painter.drawText(QRectF(x - width / 2 - 2, ay + TICK_LENGTH + 2, width + 4, fh), centre, label)
                last = x + width / 2
        painter.drawText(QRectF(grid.left() - 20, ay + TICK_LENGTH + 2 + fh + 2, grid.width() + 40, fh), centre, "target")
        self._turned_text(painter, QPointF(ax - TICK_LENGTH - 3 - self.label_width - 4 - fh / 2, grid.center().y()),
                          "source")

    def _paint_bar(self, painter: QPainter, bar: QRectF) -> None:
        lo, hi = self.levels
        gradient = QLinearGradient(QPointF(0, bar.bottom()), QPointF(0, bar.top()))
        steps = 32
        for i, colour in enumerate(self.colormap.map(np.linspace(0.0, 1.0, steps + 1), mode="byte").tolist()):
            gradient.setColorAt(i / steps, QColor(*colour[:3]))
        painter.fillRect(bar, gradient)
        painter.setPen(QPen(INK, 1))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(bar)
        fh = self.fm.height()
        widest = 0.0
        for value, label in self.bar_ticks:
            y = bar.bottom() - (value - lo) / (hi - lo) * bar.height()
            painter.drawLine(QPointF(bar.right(), y), QPointF(bar.right() + TICK_LENGTH, y))
            painter.drawText(QRectF(bar.right() + TICK_LENGTH + 3, y - fh / 2, 200, fh),
                             int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), label)
            widest = max(widest, self.fm.horizontalAdvance(label))
        self._turned_text(painter, QPointF(bar.right() + TICK_LENGTH + 3 + widest + 6 + fh / 2, bar.center().y()),
                          scale_label(self.blocks, self.normalisation))

    def _turned_text(self, painter: QPainter, centre: QPointF, text: str) -> None:
        """``text`` centred on ``centre``, turned a quarter left (read bottom to top)."""
        painter.save()
        painter.translate(centre)
        painter.rotate(-90)
        width = self.fm.horizontalAdvance(text) + 8
        painter.drawText(QRectF(-width / 2, -self.fm.height() / 2, width, self.fm.height()),
                         int(Qt.AlignmentFlag.AlignCenter), text)
        painter.restore()


def paint_heatmaps(painter: QPainter, rect: QRectF, blocks: list[BlockReuse], **options) -> None:
    """Draw the heatmaps of ``blocks`` into ``rect`` of ``painter`` (options: see :class:`HeatmapFigure`)."""
    HeatmapFigure(blocks, **options).paint(painter, rect)


def _application() -> None:
    """A QApplication to draw with when there is none (the CLI): fonts need one."""
    global _APP
    guard_refcounts()
    if QApplication.instance() is None:
        if not os.environ.get("QT_QPA_PLATFORM") and not os.environ.get("DISPLAY") \
                and not os.environ.get("WAYLAND_DISPLAY") and sys.platform.startswith("linux"):
            os.environ["QT_QPA_PLATFORM"] = "offscreen"
        _APP = QApplication([])


def render(blocks: list[BlockReuse], path, *, normalisation: str = DEFAULT_NORMALISATION, cmap: str = "viridis",
           title: str = "", show_noise: bool = True, width: int | None = None, height: int | None = None,
           scale: float = 2.0, fmt: str | None = None):
    """Write the heatmaps to ``path`` as PNG, SVG or PDF, by its suffix (``fmt`` forces one), without
    a window: vector cells and text in SVG and PDF; a PNG ``scale`` pixels per unit. The size is
    :meth:`HeatmapFigure.size` unless given. DenseguiError (one line) for a bad path, suffix,
    normalisation or colour map; returns the path written."""
    fmt = fmt or export.format_of(path)
    _application()
    figure = HeatmapFigure(blocks, normalisation=normalisation, cmap=cmap, title=title, show_noise=show_noise)
    w, h = figure.size()
    return export.write_painting(fmt, path, width or w, height or h, figure.paint, title=title, scale=scale)


def render_png(blocks: list[BlockReuse], path, *, normalisation: str = DEFAULT_NORMALISATION,
               cmap: str = "viridis", title: str = "", width: int | None = None, height: int | None = None,
               show_noise: bool = True):
    """:func:`render` as a PNG, whatever the suffix (needs a Qt platform; offscreen is fine)."""
    return render(blocks, path, normalisation=normalisation, cmap=cmap, title=title, show_noise=show_noise,
                  width=width, height=height, fmt="png")


class PruneView(pg.PlotWidget):
    """The pruning curve: held-out accuracy against the fraction of connections removed, one line per
    measure, the random baseline as a band (its orders' min–max); rank agreement in the title."""

    COLOURS = {"weights": (31, 119, 180), "bn-weights": (255, 127, 14), "activation": (44, 160, 44),
               "ablation": (214, 39, 40), "random": (120, 120, 120)}

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, background="w")
        self.setObjectName("reusePruneView")
        self.analysis = None
        self.plotItem.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.setLabel("bottom", "connections removed (weakest first), %")
        self.setLabel("left", "held-out accuracy, %")
        for name in ("bottom", "left"):
            self.getAxis(name).setPen("k")
            self.getAxis(name).setTextPen("k")
        self.legend = self.addLegend(offset=(-10, 10), labelTextColor="k")
        self.set_analysis(None)

    def curves(self) -> dict:
        return {} if self.analysis is None or self.analysis.prune is None else self.analysis.prune["curves"]

    def set_analysis(self, analysis) -> None:
        self.analysis = analysis
        self.plotItem.clear()
        self.legend.clear()
        if not self.curves():
            self.setTitle("Pruning curve: press “Pruning curve” (needs data)", color="k")
            return
        prune = analysis.prune
        x = [100 * f for f in prune["fractions"]]
        for name, c in prune["curves"].items():
            colour = self.COLOURS.get(name, (0, 0, 0))
            y = [100 * a for a in c["accuracy"]]
            if "accuracy_min" in c:
                # (an invisible pen, not pen=None: without a pen pyqtgraph keeps no path to fill between)
                lo = pg.PlotDataItem(x, [100 * a for a in c["accuracy_min"]], pen=pg.mkPen(None))
                hi = pg.PlotDataItem(x, [100 * a for a in c["accuracy_max"]], pen=pg.mkPen(None))
                self.addItem(pg.FillBetweenItem(lo, hi, brush=pg.mkBrush(*colour, 50)))
            style = Qt.PenStyle.DashLine if name == "random" else Qt.PenStyle.SolidLine
            label = f"random ({c.get('orders', 1)} orders)" if name == "random" else name
            self.plot(x, y, pen=pg.mkPen(colour, width=2, style=style), symbol="o", symbolSize=5,
                      symbolBrush=colour, symbolPen=None, name=label)
        self.setYRange(0, 100, padding=0.02)
        self.setXRange(0, 90, padding=0.02)
        # One evaluation per point: its binomial standard error is at most 0.5/√images.
        se = 50 / math.sqrt(prune["images"]) if prune["images"] else math.nan
        self.setTitle(f"Held-out accuracy as the {prune['connections']} connections are removed "
                      f"({prune['images']} images: each point ± ≤ {se:.1f} points, one standard error)",
                      color="k", size="9pt")

    def agreement_text(self) -> str:
        """Spearman's ρ of each measure with ablation, a line per block (shown under the plot)."""
        if self.analysis is None or not self.analysis.agreement:
            return ""
        from densegui.core.analysis.reuse_run import agreement_lines

        lines = agreement_lines(self.analysis.agreement)
        prune = self.analysis.prune
        if prune is not None and 0.5 in prune["fractions"]:
            i = prune["fractions"].index(0.5)
            saved = [f"{name} {c['accuracy'][i]:.1%} accuracy, {c['params_saved'][i] / prune['network_params']:.1%} "
                     f"of parameters and {c['macs_saved'][i] / prune['network_macs']:.1%} of MACs saved"
                     for name, c in prune["curves"].items() if "params_saved" in c]
            lines.append("Half the connections removed: " + "; ".join(saved) + " (the removed slices, analytic).")
        return "\n".join(lines)
