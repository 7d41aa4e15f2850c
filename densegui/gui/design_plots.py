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
from PySide6.QtGui import QColor, QFontMetricsF, QTextDocument, QTextOption
from PySide6.QtWidgets import QApplication, QGraphicsTextItem, QWidget

from densegui.core.analysis.design import FIELDS, sweep_x
from densegui.core.arch import registry as arch
from densegui.gui import guard_refcounts
from densegui.gui.widgets import save_offscreen_png

CURRENT = "#444444"  # the current configuration's line: no family's colour (RDNet's is green)
CURRENT_PEN = pg.mkPen(CURRENT, width=2, style=Qt.PenStyle.DashLine)
# Where a point's label may sit (TextItem anchors), tried in turn: right-above, right-below,
# left-above, left-below, above, below, right, left; the first that collides with no label or
# point placed before wins.
ANCHORS = ((0.0, 1.0), (0.0, 0.0), (1.0, 1.0), (1.0, 0.0), (0.5, 1.0), (0.5, 0.0), (0.0, 0.5), (1.0, 0.5))
LABEL_PAD = 6.0  # px kept clear around a point
SPEC_PAD = 4.0  # … around a sweep's point (a smaller symbol)


class ViewMessage(QGraphicsTextItem):
    """A centred, wrapped message over a plot's data area, in its pixels (a child of the ViewBox,
    not of its data): what an empty plot is waiting for."""

    def __init__(self, vb: pg.ViewBox) -> None:
        super().__init__(vb)
        self._vb = vb
        self.setDefaultTextColor(QColor("#5b6b7b"))
        option = QTextOption(Qt.AlignmentFlag.AlignHCenter)
        option.setWrapMode(QTextOption.WrapMode.WordWrap)
        self.document().setDefaultTextOption(option)
        self.setZValue(1e6)
        self.hide()
        vb.sigResized.connect(self._place)

    def paint(self, painter, option, widget=None) -> None:  # noqa: D102 - on a white card: lines pass below
        painter.fillRect(self.boundingRect(), QColor(255, 255, 255, 230))
        super().paint(painter, option, widget)

    def set(self, text: str) -> None:
        """Show ``text`` (empty: hide)."""
        if text != self.toPlainText():
            self.setPlainText(text)
        self.setVisible(bool(text))
        self._place()

    def text(self) -> str:
        return self.toPlainText() if self.isVisible() else ""

    def _place(self, *_args) -> None:
        r = self._vb.boundingRect()
        self.setTextWidth(max(r.width() - 16, 40))
        self.setPos(r.left() + 8, r.top() + max((r.height() - self.boundingRect().height()) / 2, 0))


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
        # The legend is the title row, off the data: "● DenseNet  ● ResNet …" in the families' colours.
        item = self.getPlotItem()
        item.setTitle(" ", size="9pt")
        item.titleLabel.updateMin = lambda: None  # (no minimum width: a narrow window squeezes nothing)
        item.titleLabel.setMinimumWidth(0)
        item.layout.setRowFixedHeight(0, 20)
        self.legend_html = ""
        self.message = ViewMessage(self.getViewBox())
        self._y_labels: tuple[str, ...] = ("",)  # the left axis's wordings, longest first
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
        vb.sigResized.connect(self._fit_y_label)
        vb.sigRangeChanged.connect(self.place_labels)

    def _scatter(self, family: str) -> pg.ScatterPlotItem:
        """The points of ``family`` (one legend entry per family, in its colour)."""
        scatter = self._scatters.get(family)
        if scatter is None:
            scatter = pg.ScatterPlotItem(size=10, brush=pg.mkBrush(_color(family)), pen=pg.mkPen("w"),
                                         hoverable=True, tip=self._tip)
            scatter.sigClicked.connect(self._clicked)
            self._scatters[family] = scatter
            self.addItem(scatter)
        return scatter

    def set_points(self, points: list[tuple[str, str, float, float]], x_label: str, y_label: str | tuple[str, ...],
                   current_x: float | None, si: bool = True) -> None:
        """``si``: the x axis's labels with SI prefixes (counts), else plain numbers (ms). ``y_label``:
        one text, or its wordings longest first (the longest that fits the plot's height is shown)."""
        self.getAxis("bottom").si = si
        self.points = [p for p in points if p[2] > 0 and math.isfinite(p[3])]
        for side in ("bottom", "left"):  # (an empty plot shows no ticks of the axis it had before)
            self.getAxis(side).setStyle(showValues=bool(self.points))
        present = [f for f in arch.families() if any(p[1] == f for p in self.points)]
        present += sorted({p[1] for p in self.points} - set(present))
        self.legend_html = "&nbsp;&nbsp; ".join(f"<span style='color:{_color(f)}'>● {_title(f)}</span>"
                                               for f in present)
        self.getPlotItem().setTitle(self.legend_html or " ", size="9pt")
        self.getPlotItem().layout.setRowFixedHeight(0, 20)  # (setTitle makes it 30)
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
        self._y_labels = (y_label,) if isinstance(y_label, str) else tuple(y_label)
        self._fit_y_label()
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

    def _fit_y_label(self, *_args) -> None:
        """The longest wording of the left axis's label that fits the plot's height."""
        axis = self.getAxis("left")
        room = self.getViewBox().height() - 4
        metrics = QFontMetricsF(axis.label.font())
        text = next((t for t in self._y_labels if metrics.horizontalAdvance(t) <= room), self._y_labels[-1])
        if axis.labelText != text or not axis.label.isVisible():
            self.setLabel("left", text)

    def _tip(self, x: float, y: float, data) -> str:
        return self.tips.get(str(data), str(data))

    def label_rects(self) -> dict[str, QRectF]:
        """Each shown label's rectangle in the view's pixels."""
        return {name: text.mapRectToScene(text.boundingRect()) for name, text in self._labels.items()
                if text.isVisible()}

    def place_labels(self, *_args) -> None:
        """Put each point's label on the side (:data:`ANCHORS`) where it overlaps no label or point
        placed before it (points left to right) nor the current line's label; a label that
        collides on every side is hidden (its point's tooltip names it): no two texts overlap."""
        if self._placing or not self.points:
            return
        self._placing = True
        try:
            vb = self.getViewBox()
            view = vb.mapRectToScene(vb.boundingRect())
            where = {p[0]: vb.mapViewToScene(QPointF(math.log10(p[2]), p[3])) for p in self.points}
            taken = [QRectF(q.x() - LABEL_PAD, q.y() - LABEL_PAD, 2 * LABEL_PAD, 2 * LABEL_PAD) for q in where.values()]
            if self._current.isVisible():  # the current line's "current": at the top, else where no point is
                line_label = self._current.label

                def rect_at(position: float) -> QRectF:
                    line_label.setPosition(position)
                    return line_label.mapRectToScene(line_label.boundingRect())

                position = next((p for p in (0.95, 0.05, 0.5, 0.75, 0.25)
                                 if not any(rect_at(p).intersects(t) for t in taken)), 0.95)
                taken.append(rect_at(position))
            for name, *_ in sorted(self.points, key=lambda p: (p[2], p[3])):
                text, q = self._labels[name], where[name]
                size = text.textItem.boundingRect().size()
                mine = QRectF(q.x() - LABEL_PAD, q.y() - LABEL_PAD, 2 * LABEL_PAD, 2 * LABEL_PAD)

                def rect(anchor, size=size, q=q) -> QRectF:
                    return QRectF(q.x() - anchor[0] * size.width(), q.y() - anchor[1] * size.height(), size.width(),
                                  size.height())

                def cost(anchor, mine=mine) -> float:
                    r = rect(anchor)
                    inside = view.intersected(r)
                    out = r.width() * r.height() - inside.width() * inside.height()
                    hit = sum(max(0.0, x.width()) * max(0.0, x.height())
                              for t in taken if t != mine and not (x := r.intersected(t)).isEmpty())
                    return hit + out

                best = min(ANCHORS, key=cost)  # (the first of equals: right-above when nothing collides)
                text.setAnchor(best)
                text.setVisible(cost(best) <= 0.5)  # (half a pixel: rounding)
                if text.isVisible():
                    taken.append(rect(best))
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
    """Parameters, MACs, activation memory and (optionally) latency against the swept field.

    Each title is the longest of its wordings that fits its plot (a narrow window gets "GMACs",
    a wide one "GMACs (batch 1)"), and the memory plot's legend is in its title, off the data."""

    PLOTS = (("params", "parameters (M)"), ("macs", "GMACs (batch 1)"),
             ("memory", "training activations per image (MiB)"), ("latency", "measured latency (ms)"))
    # Each plot's titles, longest first; the memory plot's take its legend after a colon.
    TITLES = {"params": ("parameters (M)", "params (M)", "M params"), "macs": ("GMACs (batch 1)", "GMACs"),
              "memory": ("training activations per image (MiB)", "activations (MiB)", "MiB"),
              "latency": ("measured latency (ms)", "latency (ms)", "ms")}
    LEGEND = (("naive", ("naive",)), ("efficient", ("memory-efficient", "efficient", "eff.")))
    GLYPHS = {"naive": "●", "efficient": "▼"}  # (the curves' symbols "o" and "t")
    TITLE_SIZE = "10pt"
    TITLE_COLOR = "#666666"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("designSweepPlots")
        self.setBackground("w")
        self.plots: dict[str, pg.PlotItem] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.markers: dict[str, pg.InfiniteLine] = {}
        self.titles: dict[str, str] = {}  # plot → its title as shown (plain text)
        for i, (key, _title) in enumerate(self.PLOTS):
            plot = self.addPlot(row=0, col=i)
            plot.setTitle(" ", size=self.TITLE_SIZE)
            # (a title sets its plot's minimum width, which pushes the row past a narrow view's
            # edge and draws plots over each other; here the title fits the plot instead)
            plot.titleLabel.updateMin = lambda: None
            plot.titleLabel.setMinimumWidth(0)
            plot.showGrid(x=True, y=True, alpha=0.25)
            if self.plots:
                plot.setXLink(self.plots["params"])
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
        self.latency_message = ViewMessage(self.plots["latency"].getViewBox())
        self.rows: list[dict] = []
        self._legend: tuple[str, ...] = ("naive", "efficient")  # the memory curves with points
        self._shown_labels: dict[str, int] = {}  # labelled curve → how many of its labels are in use
        for key, plot_key in self.PLOTS_LABELLED.items():
            scatter = self.curves[key].scatter  # (a point's hover text: its value, for a hidden label)
            scatter.opts["hoverable"] = True
            scatter.opts["tip"] = lambda x, y, data: f"{data}: {y:.4g}" if data is not None else f"{x:g}: {y:.4g}"
            vb = self.plots[plot_key].getViewBox()
            vb.sigResized.connect(self.place_labels)
            vb.sigRangeChanged.connect(self.place_labels)
        for key, plot in self.plots.items():
            plot.geometryChanged.connect(lambda key=key: self._fit_title(key))
            self._fit_title(key)

    def legend_keys(self) -> tuple[str, ...]:
        """The memory curves named in its title (those with points)."""
        return self._legend

    def _title_choices(self, key: str) -> list[tuple[str, str]]:
        """(plain text, HTML) of each wording of plot ``key``'s title, longest first."""
        bases = self.TITLES[key]
        if key != "memory" or not self._legend:
            return [(b, b) for b in bases]
        words = dict(self.LEGEND)
        out = []
        for base in bases:
            for i in range(max(len(words[k]) for k in self._legend)):
                parts = [(self.GLYPHS[k], words[k][min(i, len(words[k]) - 1)], self.pens[k].color().name())
                         for k in self._legend]
                plain = base + ": " + "  ".join(f"{g} {w}" for g, w, _c in parts)
                html = base + ": " + "&nbsp; ".join(f"<span style='color:{c}'>{g} {w}</span>" for g, w, c in parts)
                out.append((plain, html))
        return out

    def _fit_title(self, key: str) -> None:
        """The longest wording of ``key``'s title that fits above its plot (the shortest if none)."""
        plot = self.plots[key]
        room = plot.geometry().width() - plot.getAxis("left").geometry().width() - 8
        doc = QTextDocument()
        doc.setDefaultFont(plot.titleLabel.item.font())
        choices = self._title_choices(key)
        chosen = choices[-1]
        for plain, html in choices:
            doc.setHtml(f"<span style='font-size: {self.TITLE_SIZE}'>{html}</span>")
            if doc.idealWidth() <= room:
                chosen = (plain, html)
                break
        if self.titles.get(key) != chosen[0]:
            self.titles[key] = chosen[0]
            plot.setTitle(chosen[1], size=self.TITLE_SIZE, color=self.TITLE_COLOR)

    def title_fits(self, key: str) -> bool:
        """Whether plot ``key``'s title is drawn whole within its plot's width."""
        plot = self.plots[key]
        return plot.titleLabel.item.boundingRect().width() <= plot.geometry().width()

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
            values = [str(r["value"]) for r, s in zip(ok, shown, strict=True) if s]
            self.curves[key].setData(xs[shown], ys[shown], pen=None if spec else self.pens[key],
                                     symbolSize=self.sizes[key] + (3 if spec else 0), data=values)
            if key in self.labels:
                self._label(key, values if spec else [], xs[shown], ys[shown])
        measured = bool(np.isfinite(series["latency"]).any())
        self.latency_message.set("" if measured else "not measured")
        self.plots["latency"].getAxis("left").setStyle(showValues=measured)  # (no ticks of nothing)
        legend = tuple(k for k in ("naive", "efficient") if np.isfinite(series[k]).any())
        if legend != self._legend:  # (a family without a memory-efficient mode names one curve)
            self._legend = legend
            self.titles.pop("memory", None)
            self._fit_title("memory")
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

    def measured(self) -> bool:
        """Whether any point has a measured latency."""
        xs, _ys = self.curves["latency"].getData()
        return xs is not None and len(xs) > 0

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
        self._shown_labels[key] = len(texts)
        self.place_labels()

    def place_labels(self, *_args) -> None:
        """Each spec point's label on the first side (:data:`ANCHORS`) where it overlaps no label
        placed before, no other point and stays in the plot; one with no such side is hidden
        (its point's hover text names it)."""
        for key, count in self._shown_labels.items():
            if not count:
                continue
            vb = self.plots[self.PLOTS_LABELLED[key]].getViewBox()
            view = vb.mapRectToScene(vb.boundingRect())
            items = self.labels[key][:count]
            where = [vb.mapViewToScene(item.pos()) for item in items]
            pad = SPEC_PAD
            taken = [QRectF(q.x() - pad, q.y() - pad, 2 * pad, 2 * pad) for q in where]
            for i, (item, q) in enumerate(zip(items, where, strict=True)):
                size = item.textItem.boundingRect().size()
                others = [t for j, t in enumerate(taken) if j != i]
                for anchor in ANCHORS:
                    r = QRectF(q.x() - anchor[0] * size.width(), q.y() - anchor[1] * size.height(), size.width(),
                               size.height()).adjusted(3, 3, -3, -3)  # (the text, not its document's margin)
                    if view.contains(r) and not any(r.intersects(t) for t in others):
                        item.setAnchor(anchor)
                        item.show()
                        taken.append(r)
                        break
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
