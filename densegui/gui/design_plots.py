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
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtWidgets import QApplication, QWidget

from densegui.core.analysis.design import FIELDS, sweep_x
from densegui.core.arch import registry as arch
from densegui.gui import guard_refcounts
from densegui.gui.widgets import save_offscreen_png

CURRENT = "#444444"  # the current configuration's line: no family's colour (RDNet's is green)
CURRENT_PEN = pg.mkPen(CURRENT, width=2, style=Qt.PenStyle.DashLine)
# Where a point's label may sit (TextItem anchors), tried in turn: right-above, right-below,
# left-above, left-below, and the first that collides with no label or point placed before wins.
ANCHORS = ((0.0, 1.0), (0.0, 0.0), (1.0, 1.0), (1.0, 0.0))
LABEL_PAD = 6.0  # px kept clear around a point


def _color(family: str) -> str:
    fam = arch.families().get(family)
    return fam.color if fam is not None else "#333"


def _title(family: str) -> str:
    fam = arch.families().get(family)
    return fam.title if fam is not None else family


def _si(x: float) -> str:
    for div, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:g}{prefix}"
    return f"{x:g}"


class LogAxis(pg.AxisItem):
    """A log axis labelled at 10ⁿ and, where they fit, 2 and 5 × 10ⁿ (``si``: "20M", else "20");
    the other digits are unlabelled ticks. (pyqtgraph's own labels every digit of a short range,
    and "8·10⁶9·10⁶10⁷" collide.)"""

    MIN_GAP = 56.0  # px between two labels

    def __init__(self, orientation: str = "bottom", si: bool = True) -> None:
        super().__init__(orientation)
        self.si = si
        self.setStyle(maxTextLevel=1)  # (labels on the first two levels only)
        self.enableAutoSIPrefix(False)  # (the labels carry their prefixes: no "(x1e+09)" in the title)

    def logTickValues(self, minVal, maxVal, size, stdTicks):  # noqa: N802, N803 - pyqtgraph's names
        lo, hi = math.floor(minVal), math.ceil(maxVal)

        def inside(v: float) -> bool:
            return minVal <= v <= maxVal

        major = [float(v) for v in range(lo, hi + 1) if inside(v)]
        mids = [v + math.log10(m) for v in range(lo, hi) for m in (2, 5) if inside(v + math.log10(m))]
        minor = [v + math.log10(m) for v in range(lo, hi) for m in (3, 4, 6, 7, 8, 9) if inside(v + math.log10(m))]
        per_decade = size / max(maxVal - minVal, 1e-9)
        if per_decade * math.log10(2) < self.MIN_GAP:  # 1 → 2 is the shortest labelled step
            return [(1.0, major), (None, []), (None, mids + minor)]
        return [(1.0, major), (None, mids), (None, minor)]

    def logTickStrings(self, values, scale, spacing):  # noqa: N802
        numbers = [float(f"{10 ** v:.3g}") for v in values]
        return [_si(x) if self.si else f"{x:g}" for x in numbers]


class FrontierPlot(pg.PlotWidget):
    """Published error against a cost, one labelled point per preset."""

    pointClicked = Signal(str)  # the preset's name

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, axisItems={"bottom": LogAxis("bottom")})
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
                                        label="current", labelOpts={"position": 0.95, "color": CURRENT})
        self._current.hide()
        self.addItem(self._current)
        for family in arch.families():
            self._scatter(family)
        self._placing = False
        self.tips: dict[str, str] = {}  # preset → its hover text (the published result and source)
        vb = self.getViewBox()
        vb.sigResized.connect(self.place_labels)
        vb.sigRangeChanged.connect(self.place_labels)

    def _scatter(self, family: str) -> pg.ScatterPlotItem:
        """The points of ``family`` (one legend entry per family, in its colour)."""
        scatter = self._scatters.get(family)
        if scatter is None:
            scatter = pg.ScatterPlotItem(size=10, brush=pg.mkBrush(_color(family)), pen=pg.mkPen("w"),
                                         name=_title(family), hoverable=True, tip=self._tip)
            scatter.sigClicked.connect(self._clicked)
            self._scatters[family] = scatter
            self.addItem(scatter)
        return scatter

    def set_points(self, points: list[tuple[str, str, float, float]], x_label: str, y_label: str,
                   current_x: float | None, si: bool = True) -> None:
        """``si``: the x axis's labels with SI prefixes (counts), else plain numbers (ms)."""
        self.getAxis("bottom").si = si
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
        if self.points:  # both ranges from the points (labels never move them): room for labels around
            lo = min(math.log10(p[2]) for p in self.points)
            hi = max(math.log10(p[2]) for p in self.points)
            self.setXRange(lo - 0.1 * (hi - lo + 0.1), hi + 0.2 * (hi - lo + 0.1), padding=0)
            y0, y1 = min(p[3] for p in self.points), max(p[3] for p in self.points)
            span = max(y1 - y0, 1.0)
            self.setYRange(y0 - 0.1 * span, y1 + 0.12 * span, padding=0)
        self.place_labels()

    def _tip(self, x: float, y: float, data) -> str:
        return self.tips.get(str(data), str(data))

    def label_rects(self) -> dict[str, QRectF]:
        """Each shown label's rectangle in the view's pixels."""
        return {name: text.mapRectToScene(text.boundingRect()) for name, text in self._labels.items()
                if text.isVisible()}

    def place_labels(self, *_args) -> None:
        """Put each point's label on the side (:data:`ANCHORS`) where it overlaps no label or point
        placed before it (points left to right); where every side does, the least-overlapping one."""
        if self._placing or not self.points:
            return
        self._placing = True
        try:
            vb = self.getViewBox()
            view = vb.mapRectToScene(vb.boundingRect())
            where = {p[0]: vb.mapViewToScene(QPointF(math.log10(p[2]), p[3])) for p in self.points}
            taken = [QRectF(q.x() - LABEL_PAD, q.y() - LABEL_PAD, 2 * LABEL_PAD, 2 * LABEL_PAD) for q in where.values()]
            for name, *_ in sorted(self.points, key=lambda p: (p[2], p[3])):
                text, q = self._labels[name], where[name]
                size = text.textItem.boundingRect().size()
                mine = QRectF(q.x() - LABEL_PAD, q.y() - LABEL_PAD, 2 * LABEL_PAD, 2 * LABEL_PAD)

                def cost(anchor, size=size, q=q, mine=mine) -> float:
                    r = QRectF(q.x() - anchor[0] * size.width(), q.y() - anchor[1] * size.height(), size.width(),
                               size.height())
                    inside = view.intersected(r)
                    out = r.width() * r.height() - inside.width() * inside.height()
                    hit = sum(max(0.0, x.width()) * max(0.0, x.height())
                              for t in taken if t != mine and not (x := r.intersected(t)).isEmpty())
                    return hit + out

                best = min(ANCHORS, key=cost)  # (the first of equals: right-above when nothing collides)
                text.setAnchor(best)
                taken.append(QRectF(q.x() - best[0] * size.width(), q.y() - best[1] * size.height(),
                                    size.width(), size.height()))
        finally:
            self._placing = False

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
