"""Channels tab: the analytic layer table drawn layer by layer (pyqtgraph).

Four x-linked plots over the whole network (x = row of ``layer_table``:
stem, every dense layer, transitions, head): input/output channels,
parameters, MACs, and the activation bytes a training step keeps per sample
(naive vs memory-efficient). Dense blocks are shaded and labelled on the
x axis, transitions are marked by dashed lines, hovering shows the layer's
name and values, a check box switches to log scale and each plot exports to
PNG. A pinned baseline is drawn as grey dashed curves.

Everything here is a few ``setData`` calls on arrays built from the table,
cheap enough to run on the main thread on every slider change.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from densegui.core.config import DenseNetConfig
from densegui.core.stats import LayerTable
from densegui.core.units import human_bytes, human_count
from densegui.gui.panel import PanelMixin
from densegui.gui.widgets import FitLabel

PLOTS = {
    "channels": "Channels (input of each layer, output)",
    "params": "Parameters per layer",
    "macs": "MACs per layer (conv + linear, batch 1)",
    "activations": "Saved activations per sample (training, float32)",
}
BLUE, ORANGE, GREEN, PURPLE, RED = "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#d62728"


def _tint(red: int, green: int, blue: int, alpha: int = 28) -> QColor:
    """``(red, green, blue)`` at ``alpha`` over the plots' white background, as an opaque colour:
    the same pixels, but an opaque fill skips per-pixel blending (the translucent fills were the
    largest single cost of a repaint: ≈ 4 ms of 9 on the 2-core development machine)."""
    a = alpha / 255
    return QColor(*(round(255 * (1 - a) + c * a) for c in (red, green, blue)))


SHADES = (_tint(31, 119, 180), _tint(255, 127, 14))  # alternate blocks: blue, orange tints
BASELINE_PEN = pg.mkPen("#7f7f7f", width=1.5, style=Qt.PenStyle.DashLine)
FG = "#333333"


class BlockShading(pg.GraphicsObject):
    """Every dense block's shading and every transition's dashed line, in one item.

    One ``LinearRegionItem`` per block and one ``InfiniteLine`` per transition (what this
    replaces) made a repaint paint and bound 3 items per block per plot, each recomputing a
    pixel-dependent bounding rect whenever the view moved: about half of the channel tab's
    repaint time. This item spans the view's y range and paints all spans and lines at once.
    """

    def __init__(self) -> None:
        super().__init__()
        self.spans: list[tuple[float, float]] = []  # (left, right) edges in x, one per block
        self.lines: list[float] = []  # x of every transition
        self._pen = QPen(QColor("#888888"), 1, Qt.PenStyle.DashLine)
        self._pen.setCosmetic(True)
        self._rect: QRectF | None = None
        self.setZValue(-10)

    def set_layout(self, spans: list[tuple[float, float]], lines: list[float]) -> None:
        self.spans, self.lines = list(spans), list(lines)
        self.prepareGeometryChange()
        self._rect = None
        self.update()

    def viewTransformChanged(self) -> None:  # noqa: N802 - pyqtgraph API: the y extent follows the view
        super().viewTransformChanged()
        self.prepareGeometryChange()
        self._rect = None

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt API
        if self._rect is None:
            vb = self.getViewBox()
            xs = [x for span in self.spans for x in span] + self.lines
            if vb is None or not xs:
                self._rect = QRectF()
            else:
                (_x0, _x1), (y0, y1) = vb.viewRange()
                self._rect = QRectF(min(xs), y0, max(xs) - min(xs), y1 - y0).normalized()
        return self._rect

    def paint(self, painter, *_args) -> None:
        r = self.boundingRect()
        if r.isEmpty():
            return
        y0, y1 = r.top(), r.bottom()
        for i, (lo, hi) in enumerate(self.spans):
            painter.fillRect(QRectF(lo, y0, hi - lo, y1 - y0), SHADES[i % 2])
        painter.setPen(self._pen)
        for x in self.lines:
            painter.drawLine(QPointF(x, y0), QPointF(x, y1))


class PlotCanvas(pg.GraphicsLayoutWidget):
    """The plots' view; records when and how long its last repaint took (for the latency benchmark)."""

    painted = Signal(float, float)  # (perf_counter at the end of the paint, its duration in ms)

    def __init__(self) -> None:
        super().__init__()
        self.last_paint_end = 0.0
        self.last_paint_ms = 0.0

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        t0 = time.perf_counter()
        super().paintEvent(event)
        self.last_paint_end = time.perf_counter()
        self.last_paint_ms = (self.last_paint_end - t0) * 1000
        self.painted.emit(self.last_paint_end, self.last_paint_ms)


class CountAxis(pg.AxisItem):
    """Tick labels like 400k, 2.5M, 1.2G (bytes: KiB/MiB) instead of 4e+07."""

    def __init__(self, *args, binary: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._binary = binary

    def tickSpacing(self, minVal, maxVal, size):  # noqa: N802 - pyqtgraph API
        """Byte axes: round numbers of KiB/MiB/GiB (2, 4, 6 MiB), not of bytes (1.91, 3.81 MiB)."""
        top = max(abs(minVal), abs(maxVal))
        if not self._binary or self.logMode or not math.isfinite(top) or top < 1024:
            return super().tickSpacing(minVal, maxVal, size)
        unit = 1024.0 ** min(4, int(math.log(top, 1024)))
        return [(spacing * unit, offset * unit) for spacing, offset in super().tickSpacing(minVal / unit, maxVal / unit, size)]

    def tickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph API
        out = []
        for v in values:
            if self.logMode:
                v = 10.0 ** v
            v *= scale
            if self._binary:
                out.append(human_bytes(v) if v >= 1 else ("0" if v == 0 else f"{v:.2g}"))
            else:
                out.append(human_count(v) if abs(v) >= 1000 else f"{v:g}")
        return out


NICE_STEPS = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)


def nice_ceil(value: float) -> float:
    """The smallest number of the form s × 10ⁿ (s in NICE_STEPS) that is ≥ ``value`` (> 0)."""
    if not value > 0 or not math.isfinite(value):
        return value
    exp = math.floor(math.log10(value))
    for step in NICE_STEPS:
        candidate = step * 10.0 ** exp
        if candidate >= value * (1 - 1e-12):
            return candidate
    return 10.0 ** (exp + 1)


X_MODES = {"layer": "layer (row of the table)", "depth": "fraction of depth"}


def table_arrays(table: LayerTable, x_mode: str = "layer") -> dict[str, np.ndarray]:
    """The per-row series the plots show (float arrays, one entry per row). ``x_mode`` "depth"
    puts each row at its fraction of the network's depth, so networks of different depth and
    family overlay."""
    rows = table.rows
    xs = np.array(table.depth_fraction(), dtype=float) if x_mode == "depth" else np.arange(len(rows), dtype=float)
    return {
        "x": xs,
        "in": np.array([r.in_channels for r in rows], dtype=float),
        "out": np.array([r.out_channels if r.kind != "head" else np.nan for r in rows], dtype=float),
        "params": np.array([r.params for r in rows], dtype=float),
        "macs": np.array([r.macs for r in rows], dtype=float),
        "naive": np.array([r.saved_naive + r.fixed_naive for r in rows], dtype=float),
        "efficient": np.array([r.saved_efficient + r.fixed_efficient for r in rows], dtype=float),
    }


def block_spans(table: LayerTable) -> tuple[list[tuple[int, int, int]], list[tuple[int, int]]]:
    """(block, first row, last row) of every dense block or ResNet stage, and (block, row) of every
    transition."""
    blocks: dict[int, list[int]] = {}
    transitions: list[tuple[int, int]] = []
    for i, r in enumerate(table.rows):
        if r.kind in ("dense", "residual"):
            blocks.setdefault(r.block, []).append(i)
        elif r.kind == "transition":
            transitions.append((r.block, i))
    spans = [(b, rows[0], rows[-1]) for b, rows in sorted(blocks.items())]
    return spans, transitions


def span_edges(xs: np.ndarray, first: int, last: int) -> tuple[float, float]:
    """x extent of rows ``first..last``: halfway to the neighbouring rows (half a step at the ends)."""
    n = len(xs)
    step = (xs[-1] - xs[0]) / max(n - 1, 1)
    lo = (xs[first - 1] + xs[first]) / 2 if first > 0 else xs[first] - step / 2
    hi = (xs[last] + xs[last + 1]) / 2 if last + 1 < n else xs[last] + step / 2
    return float(lo), float(hi)


class ChannelPanel(PanelMixin, QWidget):
    """Layer-by-layer plots of the analytic table, with a baseline overlay."""


    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("channelPanel")
        self.table: LayerTable | None = None
        self.baseline: LayerTable | None = None
        self._arrays: dict[str, np.ndarray] | None = None
        self._base_arrays: dict[str, np.ndarray] | None = None
        self._hover_index: int | None = None
        self._blocks_key: tuple | None = None  # the layout _draw_blocks last drew
        self.x_mode = "layer"

        self.graphics = PlotCanvas()
        self.graphics.setObjectName("channelGraphics")
        self.graphics.setBackground("w")
        self.plots: dict[str, pg.PlotItem] = {}
        for i, (key, title) in enumerate(PLOTS.items()):
            left = CountAxis(orientation="left", binary=key == "activations")
            p = self.graphics.addPlot(row=i // 2, col=i % 2, axisItems={"left": left})
            p.setTitle(title, color=FG, size="10pt")
            # No grid: it doubles the paint time of every change (benchmarks/ui_latency.py);
            # the hover read-out gives exact values.
            p.setMenuEnabled(False)
            for side in ("left", "bottom"):
                ax = p.getAxis(side)
                ax.setPen(pg.mkPen(FG))
                ax.setTextPen(pg.mkPen(FG))
                # No unit prefixes (the tick labels carry k/M/G themselves). With it on, pyqtgraph
                # re-renders each axis's (hidden or unit-less) label as HTML on every range change.
                ax.enableAutoSIPrefix(False)
            p.getAxis("bottom").setStyle(tickTextOffset=4)
            p.getAxis("left").setWidth(58)
            if self.plots:
                p.setXLink(self.plots["channels"])
            self.plots[key] = p
        self.shadings: list[BlockShading] = []
        for p in self.plots.values():
            shading = BlockShading()
            p.addItem(shading, ignoreBounds=True)
            self.shadings.append(shading)

        legend = self.plots["channels"].addLegend(offset=(8, 8), labelTextColor=FG, brush=pg.mkBrush(255, 255, 255, 200))
        self.curves = {
            "in": self.plots["channels"].plot(pen=pg.mkPen(BLUE, width=2), name="input channels"),
            "out": self.plots["channels"].plot(pen=pg.mkPen(ORANGE, width=1.5), name="output channels"),
            "params": self.plots["params"].plot(pen=pg.mkPen(GREEN, width=2)),
            "macs": self.plots["macs"].plot(pen=pg.mkPen(PURPLE, width=2)),
        }
        act_legend = self.plots["activations"].addLegend(offset=(8, 8), labelTextColor=FG,
                                                         brush=pg.mkBrush(255, 255, 255, 200))
        self.curves["naive"] = self.plots["activations"].plot(pen=pg.mkPen(RED, width=2), name="naive")
        self.curves["efficient"] = self.plots["activations"].plot(pen=pg.mkPen(BLUE, width=2), name="memory-efficient")
        self.base_curves = {
            "in": self.plots["channels"].plot(pen=BASELINE_PEN),
            "params": self.plots["params"].plot(pen=BASELINE_PEN),
            "macs": self.plots["macs"].plot(pen=BASELINE_PEN),
            "naive": self.plots["activations"].plot(pen=BASELINE_PEN),
        }
        self._plot_curves = {  # the curves that decide each plot's y range
            "channels": [self.curves["in"], self.curves["out"], self.base_curves["in"]],
            "params": [self.curves["params"], self.base_curves["params"]],
            "macs": [self.curves["macs"], self.base_curves["macs"]],
            "activations": [self.curves["naive"], self.curves["efficient"], self.base_curves["naive"]],
        }
        self._legends = (legend, act_legend)
        self._base_legend_added = False
        self.cursors = []
        for p in self.plots.values():
            line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen("#444444", width=1))
            line.setZValue(20)
            line.hide()
            p.addItem(line, ignoreBounds=True)
            self.cursors.append(line)

        self._proxy = pg.SignalProxy(self.graphics.scene().sigMouseMoved, rateLimit=60, slot=self._mouse_moved)

        # ---- toolbar
        self.log_check = QCheckBox("Log scale")
        self.log_check.setObjectName("channelLogToggle")
        self.log_check.setToolTip("Logarithmic y axes (parameters and MACs span orders of magnitude)")
        self.log_check.toggled.connect(self.set_log_scale)
        self.x_combo = QComboBox()
        self.x_combo.setObjectName("channelXAxis")
        self.x_combo.setToolTip("x axis: each layer in turn, or its fraction of the network's depth (to overlay "
                                "a baseline of another depth or family, e.g. a ResNet)")
        for key, text in X_MODES.items():
            self.x_combo.addItem(text, key)
        self.x_combo.currentIndexChanged.connect(lambda _i: self.set_x_mode(self.x_combo.currentData()))
        self.export_combo = QComboBox()
        self.export_combo.setObjectName("channelExportCombo")
        for key, title in PLOTS.items():
            self.export_combo.addItem(title.split(" (")[0], key)
        self.export_button = QPushButton("Export PNG…")
        self.export_button.setObjectName("channelExportPng")
        self.export_button.setToolTip("Save the chosen plot as a PNG image")
        self.export_button.clicked.connect(self._export_dialog)
        # A FitLabel: a new read-out on every mouse move must not re-lay out the window.
        self.hover_label = FitLabel("Hover over a plot to read a layer's values.")
        self.hover_label.setObjectName("channelHover")
        self.hover_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.hover_label.setMinimumHeight(22)

        bar = QHBoxLayout()
        bar.addWidget(self.log_check)
        bar.addSpacing(12)
        bar.addWidget(QLabel("x:"))
        bar.addWidget(self.x_combo)
        bar.addStretch(1)
        bar.addWidget(QLabel("Plot:"))
        bar.addWidget(self.export_combo)
        bar.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.graphics, 1)
        layout.addWidget(self.hover_label)

    # ----------------------------------------------------------------- updates
    def set_table(self, table: LayerTable) -> None:
        """Draw ``table`` (the current configuration's analytic table)."""
        self.table = table
        a = self._arrays = table_arrays(table, self.x_mode)
        # Plain lines (no per-point symbols): symbols double the paint time of a
        # change, and the hover read-out gives the exact values anyway.
        for key in ("in", "out", "params", "macs", "naive", "efficient"):
            self.curves[key].setData(a["x"], self._y(a[key]), connect="finite")
        self._draw_blocks(table)
        self._fit_y()
        if self._hover_index is not None:
            self.hover_index(self._hover_index)

    def set_baseline(self, table: LayerTable | None) -> None:
        """Overlay ``table`` as grey dashed curves (None removes it). A baseline of another family
        switches the x axis to the fraction of depth, where the two line up."""
        self.baseline = table
        if table is not None and self.table is not None and table.family != self.table.family:
            self.x_combo.setCurrentIndex(self.x_combo.findData("depth"))  # (redraws through set_x_mode)
        self._base_arrays = table_arrays(table, self.x_mode) if table is not None else None
        self._draw_baseline()
        if table is not None and not self._base_legend_added:
            self._legends[0].addItem(self.base_curves["in"], "baseline")
            self._base_legend_added = True
        elif table is None and self._base_legend_added:
            self._legends[0].removeItem(self.base_curves["in"])
            self._base_legend_added = False

    def set_log_scale(self, on: bool) -> None:
        if self.log_check.isChecked() != on:
            self.log_check.setChecked(on)  # re-enters through toggled
            return
        for p in self.plots.values():
            p.setLogMode(x=False, y=on)
        if self.table is not None:
            self.set_table(self.table)
        self._draw_baseline()

    def is_log_scale(self) -> bool:
        return self.log_check.isChecked()

    def set_x_mode(self, mode: str) -> None:
        """"layer" or "depth" (fraction of the network's depth)."""
        if mode not in X_MODES:
            raise ValueError(f"unknown x mode {mode!r}")
        if self.x_combo.currentData() != mode:
            self.x_combo.setCurrentIndex(self.x_combo.findData(mode))  # re-enters through the combo
            return
        if mode == self.x_mode:
            return
        self.x_mode = mode
        self._blocks_key = None
        for p in self.plots.values():
            p.getAxis("bottom").setLabel("fraction of depth" if mode == "depth" else "")
        if self.baseline is not None:
            self._base_arrays = table_arrays(self.baseline, mode)
        if self.table is not None:
            self.set_table(self.table)
        self._draw_baseline()

    def hover_index(self, index: int | None) -> str:
        """Show the read-out of row ``index`` (None clears it); returns the text."""
        if self.table is None or index is None or not 0 <= index < len(self.table.rows):
            self._hover_index = None
            for c in self.cursors:
                c.hide()
            text = ""
            self.hover_label.setText("Hover over a plot to read a layer's values.")
        else:
            self._hover_index = index
            r = self.table.rows[index]
            x = self._arrays["x"][index] if self._arrays is not None else index
            for c in self.cursors:
                c.setPos(x)
                c.show()
            text = (f"{r.name}  ·  {r.in_channels:,} → {r.out_channels:,} channels at {r.out_size}×{r.out_size}"
                    f"  ·  params {r.params:,}  ·  MACs {r.macs:,}"
                    f"  ·  saved {human_bytes(r.saved_naive + r.fixed_naive)} naive, "
                    f"{human_bytes(r.saved_efficient + r.fixed_efficient)} efficient")
            self.hover_label.setText(text)
        return text

    def export_png(self, key: str, path: str | Path, width: int = 1200) -> Path:
        """Save plot ``key`` (one of PLOTS) as a PNG file."""
        import pyqtgraph.exporters as exporters

        exporter = exporters.ImageExporter(self.plots[key])
        exporter.parameters()["width"] = width
        exporter.export(str(path))
        return Path(path)

    # ----------------------------------------------------------- panel contract
    def set_config(self, cfg: DenseNetConfig) -> None:  # noqa: ARG002 - the window passes the table
        """The window calls :meth:`set_table` with the already computed table."""

    # --------------------------------------------------------------- internals
    def _y(self, values: np.ndarray) -> np.ndarray:
        if self.is_log_scale():
            values = np.where(values > 0, values, np.nan)
        return values

    def _draw_baseline(self) -> None:
        b = self._base_arrays
        for key, curve in self.base_curves.items():
            if b is None:
                curve.setData([], [])
            else:
                curve.setData(b["x"], self._y(b[key]), connect="finite")
        self._fit_y()

    def _fit_y(self) -> None:
        """Linear scale: y ranges with hysteresis instead of pyqtgraph's auto-range.

        Auto-range moved every plot's y range on every change, and a moved range makes pyqtgraph
        recompute every axis, region and line: ≈ 30 ms of repaint per change on a 2-core machine
        against ≈ 5 ms when the range stays (benchmarks/ui_latency.py). So a range is kept while
        the data fit in it and use more than 40 % of it, else reset to 0 … the first round number
        (1, 1.5, 2, 3, 4, 5, 6, 8 × 10ⁿ) at or above 1.25 × the maximum: round tops give tidy
        ticks and 25–60 % headroom, so a monotonic drag (k 1 → 64) resets a range about half as
        often as a fixed 1.25 ×.
        Log scale keeps pyqtgraph's auto-range (decades move rarely there anyway).
        """
        log = self.is_log_scale()
        for key, plot in self.plots.items():
            vb = plot.vb
            if log:
                vb.enableAutoRange(axis=vb.YAxis)
                continue
            vb.disableAutoRange(axis=vb.YAxis)
            lo, hi = 0.0, 0.0
            for curve in self._plot_curves[key]:
                _x, y = curve.getData()
                if y is not None and len(y):
                    finite = y[np.isfinite(y)]
                    if finite.size:
                        lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
            if hi <= lo:
                hi = lo + 1.0
            cur_lo, cur_hi = vb.viewRange()[1]
            if cur_lo <= lo and hi <= cur_hi and (hi - lo) > 0.4 * (cur_hi - cur_lo) and cur_lo >= lo - 0.05 * (hi - lo):
                continue
            span = hi - lo
            top = nice_ceil(hi + 0.25 * span) if lo >= 0 else hi + 0.25 * span
            vb.setYRange(lo - (0.05 * span if lo < 0 else 0.0), top, padding=0)

    def y_range(self, key: str) -> tuple[float, float]:
        """The y range plot ``key`` shows now (for tests and exports)."""
        lo, hi = self.plots[key].vb.viewRange()[1]
        return float(lo), float(hi)

    def _draw_blocks(self, table: LayerTable) -> None:
        spans, transitions = block_spans(table)
        key = (tuple(spans), tuple(transitions), len(table.rows), self.x_mode)
        if key == self._blocks_key:
            # Same layer layout (a k, θ or bn_size change): moving the regions, lines, ticks and
            # x range to where they already are still re-lays out every axis and item (~10 ms).
            return
        self._blocks_key = key
        xs = self._arrays["x"]
        word = "stage" if table.family == "resnet" else "block"
        # Block names as x tick labels (transitions are the dashed lines between them;
        # their names would collide with a short block's label).
        edges = [span_edges(xs, lo, hi) for _b, lo, hi in spans]
        ticks = [((a + b) / 2, f"{word} {blk}" if hi - lo >= 3 or len(spans) <= 4 else str(blk))
                 for (blk, lo, hi), (a, b) in zip(spans, edges)]
        lines = [float(xs[i]) for _b, i in transitions]
        minor = [(x, "") for x in lines]
        for shading, p in zip(self.shadings, self.plots.values()):
            shading.set_layout(edges, lines)
            p.getAxis("bottom").setTicks([ticks, minor])
        # The other plots are x-linked to this one: setting each of them too made every change
        # propagate through the links several times.
        lo, hi = span_edges(xs, 0, len(xs) - 1)
        self.plots["channels"].setXRange(lo, hi, padding=0.01)

    def _mouse_moved(self, event) -> None:
        pos = event[0]
        for p in self.plots.values():
            if p.sceneBoundingRect().contains(pos) and p.vb.sceneBoundingRect().contains(pos):
                x = p.vb.mapSceneToView(pos).x()
                if math.isfinite(x) and self._arrays is not None and len(self._arrays["x"]):
                    self.hover_index(int(np.argmin(np.abs(self._arrays["x"] - x))))
                return
        if self._hover_index is not None:
            self.hover_index(None)

    def _export_dialog(self) -> None:
        key = self.export_combo.currentData()
        path, _ = QFileDialog.getSaveFileName(self, "Export plot as PNG", f"densenet_{key}.png", "PNG image (*.png)")
        if path:
            try:
                self.export_png(key, path)
            except Exception as exc:  # noqa: BLE001 - show, never crash
                self.hover_label.setText(f"Could not export {path}: {exc}")
