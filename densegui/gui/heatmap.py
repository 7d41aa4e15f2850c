"""The Figure-5 heatmap view and its PNG rendering (Qt, no torch; used by the panel and the CLI).

One heatmap per dense block, side by side: rows are sources (block input,
then layers 1..L, top to bottom), columns are targets (layers 1..L, then,
set apart by a blank column, the transition or the classifier). Cells with
no connection are transparent (NaN). Cells within the measure's noise floor
carry a small grey dot (``set_show_noise``). :class:`PruneView` plots the
pruning curve.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QCursor, QPen
from PySide6.QtWidgets import QApplication, QGraphicsRectItem, QToolTip, QWidget

from densegui.core.errors import DenseguiError
from densegui.core.analysis.reuse import COLORMAPS, DEFAULT_NORMALISATION, MEASURE_UNITS, NORMALISATIONS, BlockReuse, normalise
from densegui.gui import guard_refcounts
from densegui.gui.widgets import save_offscreen_png


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
        if self.normalisation != "raw":
            return 0.0, 1.0
        finite = [b.matrix[~np.isnan(b.matrix)] for b in self.blocks]
        finite = [f for f in finite if f.size]
        peak = max((float(f.max()) for f in finite), default=1.0)
        low = min((float(f.min()) for f in finite), default=0.0)
        return min(0.0, low), peak if peak > min(0.0, low) else min(0.0, low) + 1.0

    def noise_cells(self, index: int) -> list[tuple[int, int]]:
        """(row, target) of the cells of block ``index`` within the noise floor."""
        b = self.blocks[index]
        if b.within_noise is None:
            return []
        rows, targets = np.nonzero(b.within_noise & ~np.isnan(b.matrix))
        return list(zip(rows.tolist(), targets.tolist()))

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
        depth = len(self.blocks[index].targets) - 1
        return target if target < depth else depth + gap_columns(depth)

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
            xl = [(c, _short_target(t, b.block)) for c, t in enumerate(b.targets[:-1])]
            ticks_x = _ticks(xl, limit=8 if depth > 16 else 14)
            if depth > 16:  # keep the transition/classifier label clear of the last layer labels
                ticks_x = [t for t in ticks_x if t[0] < depth * 0.85]
            ticks_x.append((depth + gap + 0.5, _short_target(b.targets[-1], b.block)))
            ticks_y = _ticks([(r, _short_source(name)) for r, name in enumerate(b.sources)])
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
            unit = MEASURE_UNITS[self.blocks[0].measure] if self.blocks else "mean |w|"
            label = {"raw": unit, "column-max": f"{unit} ÷ column max",
                     "column": f"{unit}, column min–max", "block": f"{unit}, block min–max"}[self.normalisation]
            self.colorbar.axis.setLabel(label)
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


def render_png(blocks: list[BlockReuse], path: str, *, normalisation: str = DEFAULT_NORMALISATION,
               cmap: str = "viridis",
               title: str = "", width: int | None = None, height: int = 460) -> None:
    """Render the heatmaps to a PNG without showing a window (needs a Qt platform; offscreen is fine)."""
    guard_refcounts()
    app = QApplication.instance() or QApplication([])  # noqa: F841 - must exist while the view lives
    try:
        pg.colormap.get(cmap)
    except Exception:  # noqa: BLE001 - pyqtgraph raises various errors for unknown names
        raise DenseguiError(f"unknown colour map {cmap!r}; try one of {', '.join(COLORMAPS)}.") from None
    view = HeatmapView()
    view.normalisation = normalisation
    view.cmap_name = cmap
    view.set_blocks(blocks, title=title)
    total = sum(len(b.targets) + 1 for b in blocks)
    save_offscreen_png(view, path, width or max(520, min(2400, 160 + 240 * len(blocks) + 6 * total)), height)


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
