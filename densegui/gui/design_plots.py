"""Plots of the Design space tab (Qt, no torch): the frontier and sweep curves, and the sweep's PNG.

:class:`FrontierPlot` draws every preset with a published error as a labelled
point, one colour per family, error against parameters, MACs or measured
latency on a log axis (the paper's Figures 3-4), plus a vertical line at the
current configuration's x (its error is unknown). :class:`SweepPlots` draws
parameters, MACs, activation memory (naive vs memory-efficient) and, when
measured, latency against the swept field, with the current value marked; a
"spec" field (connectivity) is drawn against the fraction of the connections
each value keeps, as labelled points.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QApplication, QWidget

from densegui.core.analysis.design import FIELDS, sweep_x
from densegui.core.arch import registry as arch
from densegui.gui import guard_refcounts
from densegui.gui.widgets import save_offscreen_png

CURRENT_PEN = pg.mkPen("#2ca02c", width=2, style=Qt.PenStyle.DashLine)


def _color(family: str) -> str:
    fam = arch.families().get(family)
    return fam.color if fam is not None else "#333"


class FrontierPlot(pg.PlotWidget):
    """Published error against a cost, one labelled point per preset."""

    pointClicked = Signal(str)  # the preset's name

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("designFrontier")
        self.setBackground("w")
        self.showGrid(x=True, y=True, alpha=0.25)
        self.setLogMode(x=True, y=False)
        self.getViewBox().setDefaultPadding(0.08)  # (room for the labels right of the points)
        self.addLegend(offset=(-10, 10))
        self.points: list[tuple[str, str, float, float]] = []  # (name, family, x, y)
        self._scatters: dict[str, pg.ScatterPlotItem] = {}
        self._labels: dict[str, pg.TextItem] = {}  # made once per preset, then only moved
        self._current = pg.InfiniteLine(angle=90, pen=CURRENT_PEN, movable=False,
                                        label="current", labelOpts={"position": 0.95, "color": "#2ca02c"})
        self._current.hide()
        self.addItem(self._current)
        for family in arch.families():
            self._scatter(family)

    def _scatter(self, family: str) -> pg.ScatterPlotItem:
        """The points of ``family`` (one legend entry per family, in its colour)."""
        scatter = self._scatters.get(family)
        if scatter is None:
            scatter = pg.ScatterPlotItem(size=10, brush=pg.mkBrush(_color(family)), pen=pg.mkPen("w"), name=family,
                                         hoverable=True)
            scatter.sigClicked.connect(self._clicked)
            self._scatters[family] = scatter
            self.addItem(scatter)
        return scatter

    def set_points(self, points: list[tuple[str, str, float, float]], x_label: str, y_label: str,
                   current_x: float | None) -> None:
        self.points = [p for p in points if p[2] > 0 and math.isfinite(p[3])]
        for family in {p[1] for p in self.points}:  # a family registered since
            self._scatter(family)
        for family, scatter in self._scatters.items():
            mine = [p for p in self.points if p[1] == family]
            scatter.setData(x=[math.log10(p[2]) for p in mine], y=[p[3] for p in mine], data=[p[0] for p in mine])
        shown = set()
        for name, family, x, y in self.points:
            text = self._labels.get(name)
            if text is None:
                text = self._labels[name] = pg.TextItem(name, color=_color(family), anchor=(0, 1))
                self.addItem(text)
            text.setPos(math.log10(x), y)
            text.show()
            shown.add(name)
        for name, text in self._labels.items():
            if name not in shown:
                text.hide()
        self.setLabel("bottom", x_label)
        self.setLabel("left", y_label)
        self.set_current_x(current_x)
        self.enableAutoRange()
        if self.points:  # labels sit right of their points: leave room right of the last one
            lo = min(math.log10(p[2]) for p in self.points)
            hi = max(math.log10(p[2]) for p in self.points)
            self.setXRange(lo - 0.05 * (hi - lo + 0.1), hi + 0.2 * (hi - lo + 0.1), padding=0)

    def set_current_x(self, x: float | None) -> None:
        """The current configuration's vertical line (hidden when ``x`` is unknown)."""
        if x is not None and x > 0:
            self._current.setValue(math.log10(x))
            self._current.show()
        else:
            self._current.hide()

    def _clicked(self, _scatter, spots, *_args) -> None:
        if len(spots):
            self.pointClicked.emit(str(spots[0].data()))


def _number(value, unit: float = 1.0) -> float:
    """``value / unit``, NaN when it is unknown."""
    return np.nan if value is None else value / unit


class SweepPlots(pg.GraphicsLayoutWidget):
    """Parameters, MACs, activation memory and (optionally) latency against the swept field."""

    PLOTS = (("params", "parameters (M)"), ("macs", "GMACs (batch 1)"),
             ("memory", "training activations per image (MiB)"), ("latency", "measured latency (ms)"))

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("designSweepPlots")
        self.setBackground("w")
        self.plots: dict[str, pg.PlotItem] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.markers: dict[str, pg.InfiniteLine] = {}
        for i, (key, title) in enumerate(self.PLOTS):
            plot = self.addPlot(row=0, col=i, title=title)
            plot.showGrid(x=True, y=True, alpha=0.25)
            if self.plots:
                plot.setXLink(self.plots["params"])
            if key == "memory":
                plot.addLegend(offset=(-10, 10))
            self.plots[key] = plot
            marker = pg.InfiniteLine(angle=90, pen=CURRENT_PEN, movable=False)
            marker.hide()
            plot.addItem(marker)
            self.markers[key] = marker
        pen = pg.mkPen("#1f77b4", width=2)
        self.curves["params"] = self.plots["params"].plot([], [], pen=pen, symbol="o", symbolSize=5)
        self.curves["macs"] = self.plots["macs"].plot([], [], pen=pen, symbol="o", symbolSize=5)
        self.curves["naive"] = self.plots["memory"].plot([], [], pen=pen, symbol="o", symbolSize=5, name="naive")
        self.curves["efficient"] = self.plots["memory"].plot([], [], pen=pg.mkPen("#ff7f0e", width=2), symbol="t",
                                                             symbolSize=6, name="memory-efficient")
        self.curves["latency"] = self.plots["latency"].plot([], [], pen=pg.mkPen("#9467bd", width=2), symbol="o",
                                                            symbolSize=5)
        self.pens = {key: curve.opts["pen"] for key, curve in self.curves.items()}
        self.sizes = {key: curve.opts["symbolSize"] for key, curve in self.curves.items()}
        self.labels: dict[str, list[pg.TextItem]] = {key: [] for key in self.PLOTS_LABELLED}  # made once, reused
        self.rows: list[dict] = []

    # A spec's points are labelled in these curves (the memory plot's naive one only).
    PLOTS_LABELLED = {"params": "params", "macs": "macs", "naive": "memory", "latency": "latency"}

    def set_rows(self, rows: list[dict], field: str, current: float | None) -> None:
        """``current``: the current configuration's x (:func:`densegui.core.analysis.design.sweep_x`)."""
        self.rows = rows
        spec = field in FIELDS and FIELDS[field].spec is not None
        ok = [r for r in rows if r.get("config") and (not spec or r.get("fraction_kept") is not None)]
        # A spec's values are no axis: its points stand at the fraction of the connections they keep.
        xs = np.array([float(r["fraction_kept"] if spec else r["value"]) for r in ok])
        series = {
            "params": [r["params"] / 1e6 for r in ok],
            "macs": [r["macs"] / 1e9 for r in ok],
            "naive": [r["memory"]["naive_bytes"] / 2**20 for r in ok],
            "efficient": [_number(r["memory"]["efficient_bytes"], 2**20) for r in ok],
            "latency": [_number((r.get("measured") or {}).get("latency_ms")) for r in ok],
        }
        for key, ys in series.items():
            ys = np.array(ys, dtype=float)
            # Only the finite points: pyqtgraph warns "All-NaN slice" on a curve with none (a
            # family without a memory-efficient mode, a sweep not measured).
            shown = np.isfinite(ys)
            # (a spec's points in the order given: a line through them would read as a continuum)
            self.curves[key].setData(xs[shown], ys[shown], pen=None if spec else self.pens[key],
                                     symbolSize=self.sizes[key] + (3 if spec else 0))
            if key in self.labels:
                self._label(key, [str(r["value"]) for r, s in zip(ok, shown) if s] if spec else [],
                            xs[shown], ys[shown])
        measured = bool(np.isfinite(series["latency"]).any())
        title = dict(self.PLOTS)["latency"]
        self.plots["latency"].setTitle(title if measured else f"{title}: not measured")
        for key, plot in self.plots.items():
            plot.setLabel("bottom", "fraction of connections kept" if spec else field)
            plot.enableAutoRange()
            if current is not None:
                self.markers[key].setValue(float(current))
                self.markers[key].show()
            else:
                self.markers[key].hide()
        if spec and len(xs):  # room right of the points for their labels (the x axes are linked)
            lo, hi = float(xs.min()), float(xs.max())
            span = max(hi - lo, 0.05)
            self.plots["params"].setXRange(lo - 0.05 * span, hi + 0.3 * span, padding=0)


    def _label(self, key: str, texts: list[str], xs, ys) -> None:
        """One text item per point of curve ``key`` (none: hidden), reusing those made before."""
        items, plot = self.labels[key], self.plots[self.PLOTS_LABELLED[key]]
        while len(items) < len(texts):
            item = pg.TextItem("", color="#1f77b4", anchor=(0, 1))
            plot.addItem(item)
            items.append(item)
        for i, item in enumerate(items):
            if i < len(texts):
                item.setText(texts[i])
                item.setPos(float(xs[i]), float(ys[i]))
                item.show()
            else:
                item.hide()


def render_sweep_png(rows: list[dict], field: str, cfg, path: str, width: int = 1400, height: int = 380) -> None:
    """Render a sweep's plots to a PNG without showing a window (needs a Qt platform; offscreen is fine)."""
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    guard_refcounts()
    app = QApplication.instance() or QApplication([])  # noqa: F841 - must exist while the view lives
    view = SweepPlots()
    view.set_rows(rows, field, sweep_x(cfg, field))
    save_offscreen_png(view, path, width, height)
