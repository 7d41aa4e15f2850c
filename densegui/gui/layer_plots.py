"""Per-layer line plots painted with QPainter: a grid of plots sharing one x axis.

The channel tab redraws its four plots on every slider change, up to 60 times a
second. A plotting library's scene graph (pyqtgraph's, which this replaces) spent
most of a repaint in Python: items, bounding rects and four bottom axes that
regenerated their tick pictures whenever the x range moved. Here one widget paints
everything in one pass into a cached pixmap, from NumPy arrays turned into pixel
polygons in bulk; a hover only blits that pixmap and draws the cursor line.

What it draws: a title per plot; a left axis with round ticks (decimal counts,
binary byte units, or decades on a log scale); a bottom axis with named ticks
(the panel passes block names) and minor ticks; shaded x spans and dashed
vertical lines behind the curves; solid curves and grey dashed baseline curves
(NaN breaks a curve); a legend; a vertical cursor; a selected x (an amber band, drawn
over the cached frame, so selecting never redraws it). Nothing here knows about
DenseNet; ``channel_panel`` maps the layer table onto it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter, QPen, QPixmap, QPolygonF
from PySide6.QtWidgets import QSizePolicy, QWidget

from densegui.core.units import human_bytes, human_count

FG = QColor("#333333")
BASELINE = QColor("#7f7f7f")
CURSOR = QColor("#444444")
SELECTION_FILL = QColor("#ffe08a")  # the selected row's band (opaque: exact pixels, no blending)
SELECTION_LINE = QColor("#e69500")  # its centre line
LINE_GREY = QColor("#888888")
AXIS_WIDTH = 64  # left axis: room for "1.5 GiB" or "128 KiB"
LOG2 = math.log10(2.0)
TICK = 5


def tint(red: int, green: int, blue: int, alpha: int = 28) -> QColor:
    """``(red, green, blue)`` at ``alpha`` over white, as an opaque colour: the same pixels as a
    translucent fill, without per-pixel blending."""
    a = alpha / 255
    return QColor(*(round(255 * (1 - a) + c * a) for c in (red, green, blue)))


SHADES = (tint(31, 119, 180), tint(255, 127, 14))  # alternating spans: blue, orange tints


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    color: str
    width: float = 2.0


@dataclass(frozen=True)
class PlotSpec:
    key: str
    title: str
    series: tuple[Series, ...]
    baseline: tuple[str, ...] = ()  # keys of the baseline's series drawn here (grey, dashed)
    binary: bool = False  # a byte axis: ticks on round KiB/MiB/GiB
    legend: bool = False
    legend_baseline: bool = False  # list "baseline" in the legend while one is shown


# ------------------------------------------------------------------ ticks and ranges (pure)
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


def tick_step(lo: float, hi: float, max_ticks: int, binary: bool = False) -> float:
    """The spacing of at most about ``max_ticks`` ticks over [lo, hi]: 1, 2 or 5 × 10ⁿ, of a
    KiB/MiB/GiB/TiB on a byte axis (2 MiB, not 1.91 MiB)."""
    span = hi - lo
    if not (span > 0 and math.isfinite(span)):
        return math.inf
    top = max(abs(lo), abs(hi))
    unit = 1024.0 ** min(4, int(math.log(top, 1024))) if binary and top >= 1024 else 1.0
    raw = span / unit / max(1, max_ticks)
    exp = math.floor(math.log10(raw))
    for mantissa in (1.0, 2.0, 5.0, 10.0):
        if mantissa * 10.0 ** exp >= raw * (1 - 1e-9):
            return mantissa * 10.0 ** exp * unit
    return 10.0 ** (exp + 1) * unit  # pragma: no cover - the loop always returns


def linear_ticks(lo: float, hi: float, max_ticks: int, binary: bool = False) -> list[float]:
    """Every multiple of :func:`tick_step` inside [lo, hi]."""
    step = tick_step(lo, hi, max_ticks, binary)
    if not math.isfinite(step):  # an empty or unbounded range: no ticks
        return []
    first = math.ceil(lo / step - 1e-9)
    last = math.floor(hi / step + 1e-9)
    return [i * step for i in range(first, last + 1)]


def log_ticks(lo: float, hi: float, max_ticks: int, binary: bool = False) -> list[float]:
    """Ticks of a log axis over [10^lo, 10^hi], as exact values: decades (every n-th, so that at
    most ``max_ticks`` remain), or on a byte axis powers of two (2^m with m a multiple of 1, 2, 5,
    10 or 20: 1 KiB, 32 KiB, 1 MiB rather than 97.7 KiB)."""
    if binary:
        first, last = math.ceil(lo / LOG2 - 1e-6), math.floor(hi / LOG2 + 1e-6)
        step = next((s for s in (1, 2, 5, 10, 20, 30, 40) if (last - first) // s + 1 <= max(1, max_ticks)), 40)
        return [2.0 ** m for m in range(first, last + 1) if m % step == 0]
    decades = list(range(math.ceil(lo - 1e-9), math.floor(hi + 1e-9) + 1))
    every = max(1, math.ceil(len(decades) / max(1, max_ticks)))
    return [10.0 ** d for d in decades if d % every == 0]


def tick_label(value: float, binary: bool) -> str:
    """400K, 2.5M, 1.2G (counts); 512 KiB, 2 MiB (bytes); small values as they are."""
    if value == 0:
        return "0"
    if binary:
        return human_bytes(value) if abs(value) >= 1 else f"{value:.2g}"
    return human_count(value) if abs(value) >= 1000 else f"{value:g}"


def fit_linear(lo: float, hi: float, current: tuple[float, float] | None) -> tuple[float, float]:
    """A y range for data in [lo, hi] (lo ≤ 0 ≤ hi after the caller's min/max with 0), with
    hysteresis: ``current`` is kept while the data fit in it and fill more than 40 % of it, else
    the range becomes 0 … the first round number (1, 1.5, 2, 3, 4, 5, 6, 8 × 10ⁿ) at or above
    1.25 × the maximum. A range that stays keeps the repaint cheap and the plot calm during a
    drag; round tops give tidy ticks and 25–60 % headroom."""
    if hi <= lo:
        hi = lo + 1.0
    if current is not None:
        cur_lo, cur_hi = current
        if cur_lo <= lo and hi <= cur_hi and (hi - lo) > 0.4 * (cur_hi - cur_lo) and cur_lo >= lo - 0.05 * (hi - lo):
            return current
    span = hi - lo
    top = nice_ceil(hi + 0.25 * span) if lo >= 0 else hi + 0.25 * span
    return lo - (0.05 * span if lo < 0 else 0.0), top


def fit_log(lo: float, hi: float, binary: bool = False) -> tuple[float, float]:
    """A log-scale range (exponents) for positive data in [10^lo, 10^hi]: whole decades (on a
    byte axis whole powers of two), with a little room so a curve never runs along the frame."""
    unit = LOG2 if binary else 1.0
    bottom, top = math.floor(lo / unit - 0.02), math.ceil(hi / unit + 0.02)
    return bottom * unit, max(top, bottom + 1) * unit


# ------------------------------------------------------------------ polygons
def polylines(px: np.ndarray, py: np.ndarray) -> list[QPolygonF]:
    """Pixel coordinates → one QPolygonF per run of finite points (a NaN breaks the line)."""
    finite = np.isfinite(px) & np.isfinite(py)
    if not finite.any():
        return []
    # Starts and ends of the finite runs.
    edges = np.flatnonzero(np.diff(np.concatenate(([0], finite.view(np.int8), [0]))))
    out = []
    for start, stop in zip(edges[::2], edges[1::2]):
        out.append(_polygon(px[start:stop], py[start:stop]))
    return out


def clip_x(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """The curve (x, y) cut to lo ≤ x ≤ hi, ending on the borders where it crosses them: a clip in
    the points, for the SVG generator, which ignores QPainter's clip (a baseline longer than the
    table ran past the frame). ``x`` ascends (a shared x axis); otherwise points outside are NaN."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if np.any(np.diff(x) < 0):
        return x, np.where((x >= lo) & (x <= hi), y, np.nan)
    if not len(x) or (x[0] >= lo and x[-1] <= hi):
        return x, y
    first, last = int(np.searchsorted(x, lo, "left")), int(np.searchsorted(x, hi, "right"))

    def border(edge: float, before: int) -> tuple[list[float], list[float]]:
        """The point where the segment from ``before`` crosses ``edge`` (none if it does not)."""
        after = before + 1
        if 0 <= before and after < len(x) and x[before] < edge < x[after]:
            t = (edge - x[before]) / (x[after] - x[before])
            return [edge], [y[before] + t * (y[after] - y[before])]  # (NaN if an end is NaN)
        return [], []

    (x0, y0), (x1, y1) = border(lo, first - 1), border(hi, last - 1)
    return np.concatenate((x0, x[first:last], x1)), np.concatenate((y0, y[first:last], y1))


def _polygon(xs: np.ndarray, ys: np.ndarray) -> QPolygonF:
    n = len(xs)
    poly = QPolygonF()
    poly.resize(n)
    try:
        import shiboken6

        # Fill the polygon's own storage (n QPointF = n × 2 doubles) from NumPy: 50× faster than
        # n QPointF objects made in Python, which was most of a repaint for long curves.
        view = np.frombuffer(shiboken6.VoidPtr(poly.data(), n * 16, True), dtype=np.float64).reshape(n, 2)
        view[:, 0] = xs
        view[:, 1] = ys
    except Exception:  # noqa: BLE001 - a binding without raw access: the slow, safe path
        poly = QPolygonF([QPointF(float(x), float(y)) for x, y in zip(xs, ys)])
    return poly


# ------------------------------------------------------------------ the widget
@dataclass
class _Plot:
    spec: PlotSpec
    y_range: tuple[float, float] | None = None  # in axis units (exponents on a log scale)
    rect: QRectF = field(default_factory=QRectF)  # the data area, in widget pixels


class LayerPlots(QWidget):
    """A grid of line plots over one shared x axis (see the module docstring)."""

    painted = Signal(float, float)  # (perf_counter at the end of a paint, its duration in ms)
    hovered = Signal(object)  # the x (data units) under the mouse, or None when it leaves the plots
    clicked = Signal(object)  # the x (data units) of a left click, or None for one outside the data areas

    def __init__(self, specs: Sequence[PlotSpec], columns: int = 2, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plots = {s.key: _Plot(s) for s in specs}
        self.columns = columns
        self.log = False
        self.x = np.zeros(0)
        self.data: dict[str, np.ndarray] = {}
        self._has_values: dict[str, bool] = {}
        self.base_x: np.ndarray | None = None
        self.base_data: dict[str, np.ndarray] = {}
        self.x_range = (0.0, 1.0)
        self.x_label = ""
        self.ticks: list[tuple] = []  # named ticks on the x axis: (x, label[, shorter label])
        self.minor: list[float] = []  # unnamed x ticks
        self.spans: list[tuple[float, float]] = []  # shaded x spans (alternating tints)
        self.lines: list[float] = []  # dashed vertical lines
        self.cursor: float | None = None
        self.selection: tuple[float, float, float] | None = None  # (x, band from, band to), data units
        self.last_paint_end = 0.0
        self.last_paint_ms = 0.0
        self._frame: QPixmap | None = None  # titles, axes, shading: all but the curves and legends
        self._legend_boxes: dict[tuple, QRectF] = {}  # legend_box's answers, by what they depend on
        self._frame_key: tuple | None = None  # what the frame was drawn from
        self.setMouseTracking(True)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)  # the pixmap covers every pixel
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(420, 300)

    # ---------------------------------------------------------------- data
    def set_data(self, x: np.ndarray, series: dict[str, np.ndarray], *, x_range: tuple[float, float],
                 ticks: list[tuple[float, str]] = (), minor: list[float] = (),
                 spans: list[tuple[float, float]] = (), lines: list[float] = ()) -> None:
        """The curves (``series``: key → y over ``x``) and everything on the shared x axis."""
        self.x = np.asarray(x, dtype=float)
        self.data = {k: np.asarray(v, dtype=float) for k, v in series.items()}
        self._has_values = {k: bool(np.isfinite(v).any()) for k, v in self.data.items()}  # (for the legends)
        self.x_range = (float(x_range[0]), float(x_range[1]))
        self.ticks, self.minor = list(ticks), [float(v) for v in minor]
        self.spans, self.lines = [tuple(map(float, s)) for s in spans], [float(v) for v in lines]
        self._legend_boxes.clear()
        self._refit()

    def set_baseline(self, x: np.ndarray | None, series: dict[str, np.ndarray] | None = None) -> None:
        """Grey dashed curves (None: none)."""
        if x is None:
            self.base_x, self.base_data = None, {}
        else:
            self.base_x = np.asarray(x, dtype=float)
            self.base_data = {k: np.asarray(v, dtype=float) for k, v in (series or {}).items()}
        self._legend_boxes.clear()
        self._refit()

    def set_log(self, on: bool) -> None:
        if on != self.log:
            self.log = on
            for plot in self.plots.values():
                plot.y_range = None
            self._refit()

    def set_x_label(self, text: str) -> None:
        if text != self.x_label:
            self.x_label = text
            self._invalidate()

    def set_cursor(self, x: float | None) -> None:
        if x != self.cursor:
            self.cursor = x
            self.update()

    def set_selection(self, x: float | None, span: tuple[float, float] | None = None) -> None:
        """Mark ``x`` (None: no mark) with a band over ``span`` (data units; default: ``x`` alone,
        at least a few pixels wide) and a line, in every plot. Drawn over the cached frame."""
        sel = None if x is None else (float(x), *(map(float, span) if span is not None else (x, x)))
        if sel != self.selection:
            self.selection = sel
            self.update()

    # ------------------------------------------------------------- queries
    def values(self, key: str) -> np.ndarray:
        """Series ``key`` as plotted: NaN where a log scale cannot show a value (≤ 0)."""
        return self._shown(self.data.get(key, np.zeros(0)))

    def baseline_values(self, key: str) -> np.ndarray:
        return self._shown(self.base_data.get(key, np.zeros(0)))

    def y_range(self, key: str) -> tuple[float, float]:
        """The y range plot ``key`` shows, in data units (10^exponent on a log scale)."""
        lo, hi = self.plots[key].y_range or (0.0, 1.0)
        return (10.0 ** lo, 10.0 ** hi) if self.log else (lo, hi)

    def y_ticks(self, key: str) -> list[tuple[float, str]]:
        """The left axis's ticks of plot ``key`` as shown: (value in data units, label)."""
        plot = self.plots[key]
        self._layout()
        return [(10.0 ** v if self.log else v, label) for v, label in self._y_ticks(plot)]

    def data_rect(self, key: str) -> QRectF:
        self._layout()
        return QRectF(self.plots[key].rect)

    def map_to_widget(self, key: str, x: float, y: float) -> QPointF:
        """Widget pixel of data point (x, y) in plot ``key``."""
        self._layout()
        px, py = self._to_pixels(self.plots[key], np.array([x], float), self._shown(np.array([y], float)))
        return QPointF(float(px[0]), float(py[0]))

    def plot_size(self, key: str) -> tuple[int, int]:
        """Plot ``key``'s size on screen (its cell of the grid), or 600 × 400 while the widget is too
        small to show it: the proportions an export keeps."""
        index = list(self.plots).index(key)
        cell = self._cell(index) if self.width() > 0 else QRectF(0, 0, 600, 400)
        if cell.width() < 200 or cell.height() < 150:
            cell = QRectF(0, 0, 600, 400)
        return round(cell.width()), round(cell.height())

    def paint_plot(self, painter: QPainter, key: str, rect: QRectF) -> None:
        """Draw plot ``key`` alone (title, axes, shading, curves, legend; no cursor) to fill ``rect``
        of any painter: the widget's frame, a PNG, an SVG or a PDF (gui/export.py)."""
        plot = self.plots[key]
        saved = plot.rect
        painter.save()
        try:
            painter.translate(rect.topLeft())
            cell = QRectF(0, 0, rect.width(), rect.height())
            plot.rect = self._data_rect(cell)
            self._paint_frame(painter, plot, cell)
            self._paint_curves(painter, plot, cut=True)
        finally:
            plot.rect = saved
            painter.restore()

    def render_plot(self, key: str, width: int = 1200) -> QImage:
        """Plot ``key`` alone as an image ``width`` pixels wide (its on-screen proportions, text and
        lines scaled with it)."""
        w, h = self.plot_size(key)
        scale = width / w
        image = QImage(width, max(1, round(h * scale)), QImage.Format.Format_RGB32)
        image.fill(QColor("white"))
        painter = QPainter(image)
        try:
            painter.scale(scale, scale)
            self.paint_plot(painter, key, QRectF(0, 0, w, h))
        finally:
            painter.end()
        return image

    # --------------------------------------------------------------- Qt
    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        self._invalidate()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        t0 = time.perf_counter()
        self._layout()
        key = self._frame_state()
        if self._frame is None or key != self._frame_key:
            self._frame, self._frame_key = self._render_frame(), key
        painter = QPainter(self)
        painter.drawPixmap(0, 0, self._frame)
        # Antialiased lines cost most of a repaint at 2× device pixels, where steps are half as
        # visible: screens of 2× and more draw them plain.
        antialias = self.devicePixelRatioF() < 2
        if self.selection is not None:
            self._paint_selection(painter)
        for plot in self.plots.values():
            self._paint_curves(painter, plot, antialias)
        if self.cursor is not None:
            painter.setPen(QPen(CURSOR, 1))
            for plot in self.plots.values():
                px = self._x_pixels(plot, np.array([self.cursor]))[0]
                if plot.rect.left() <= px <= plot.rect.right():
                    painter.drawLine(QPointF(px, plot.rect.top()), QPointF(px, plot.rect.bottom()))
        painter.end()
        self.last_paint_end = time.perf_counter()
        self.last_paint_ms = (self.last_paint_end - t0) * 1000
        self.painted.emit(self.last_paint_end, self.last_paint_ms)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt API
        self.hovered.emit(self.x_at(event.position()))

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit(self.x_at(event.position()))
        super().mousePressEvent(event)

    def x_at(self, pos: QPointF) -> float | None:
        """The x (data units) at widget pixel ``pos``, or None outside every data area."""
        for plot in self.plots.values():
            r = plot.rect
            if r.contains(pos) and r.width() > 0:
                x0, x1 = self.x_range
                return x0 + (pos.x() - r.left()) / r.width() * (x1 - x0)
        return None

    def leaveEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().leaveEvent(event)
        self.hovered.emit(None)

    # ------------------------------------------------------------ internals
    def _shown(self, values: np.ndarray) -> np.ndarray:
        if self.log:
            return np.where(values > 0, values, np.nan)
        return values

    def _invalidate(self) -> None:
        self.update()

    def _frame_state(self) -> tuple:
        """Everything the frame depends on: while a drag keeps the layout and the y ranges (a k or
        θ sweep), each repaint only blits it and draws the curves."""
        return (self.size().toTuple(), self.devicePixelRatioF(), self.log, self.x_range, self.x_label,
                tuple(self.ticks), tuple(self.minor), tuple(self.spans), tuple(self.lines),
                tuple(p.y_range for p in self.plots.values()), self.font().key())

    def _refit(self) -> None:
        """Each plot's y range from its curves and baseline curves (see :func:`fit_linear`)."""
        for plot in self.plots.values():
            ys = [self.values(s.key) for s in plot.spec.series]
            if self.base_x is not None:
                ys += [self.baseline_values(k) for k in plot.spec.baseline]
            finite = np.concatenate([y[np.isfinite(y)] for y in ys]) if ys else np.zeros(0)
            if self.log:
                finite = finite[finite > 0]
                plot.y_range = (fit_log(*np.log10([finite.min(), finite.max()]), plot.spec.binary) if finite.size
                                else (0.0, 1.0))
            else:
                lo = min(0.0, float(finite.min())) if finite.size else 0.0
                hi = max(0.0, float(finite.max())) if finite.size else 1.0
                plot.y_range = fit_linear(lo, hi, plot.y_range)
        self._invalidate()

    def _metrics(self) -> tuple[QFontMetrics, QFontMetrics]:
        return QFontMetrics(self.font()), QFontMetrics(self._title_font())

    def _title_font(self) -> QFont:
        """The widget's font, at least 10 pt (derived, so a font change reaches titles and layout alike)."""
        font = QFont(self.font())
        if font.pointSizeF() < 10:
            font.setPointSizeF(10)
        return font

    def _cell(self, index: int) -> QRectF:
        rows = math.ceil(len(self.plots) / self.columns)
        w, h = self.width() / self.columns, self.height() / rows
        return QRectF((index % self.columns) * w, (index // self.columns) * h, w, h)

    def _data_rect(self, cell: QRectF) -> QRectF:
        fm, tfm = self._metrics()
        bottom = TICK + 3 + fm.height() + (fm.height() + 2 if self.x_label else 0) + 4
        return cell.adjusted(AXIS_WIDTH, tfm.height() + 8, -14, -bottom)

    def _layout(self) -> None:
        for i, plot in enumerate(self.plots.values()):
            plot.rect = self._data_rect(self._cell(i))

    def _x_pixels(self, plot: _Plot, x: np.ndarray) -> np.ndarray:
        r, (x0, x1) = plot.rect, self.x_range
        return r.left() + (x - x0) * (r.width() / ((x1 - x0) or 1.0))

    def _to_pixels(self, plot: _Plot, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = plot.rect
        y0, y1 = plot.y_range or (0.0, 1.0)
        if self.log:
            with np.errstate(divide="ignore", invalid="ignore"):
                y = np.log10(y)
        return self._x_pixels(plot, x), r.bottom() - (y - y0) * (r.height() / ((y1 - y0) or 1.0))

    def _y_ticks(self, plot: _Plot) -> list[tuple[float, str]]:
        lo, hi = plot.y_range or (0.0, 1.0)
        fm = QFontMetrics(self.font())
        most = max(2, int(plot.rect.height() // (fm.height() * 2.5)))
        if self.log:
            return [(math.log10(v), tick_label(v, plot.spec.binary)) for v in log_ticks(lo, hi, most, plot.spec.binary)]
        return [(v, tick_label(v, plot.spec.binary)) for v in linear_ticks(lo, hi, most, plot.spec.binary)]

    def _render_frame(self) -> QPixmap:
        ratio = self.devicePixelRatioF()
        pixmap = QPixmap(self.size() * ratio)
        pixmap.setDevicePixelRatio(ratio)
        pixmap.fill(QColor("white"))
        painter = QPainter(pixmap)
        try:
            for i, plot in enumerate(self.plots.values()):
                self._paint_frame(painter, plot, self._cell(i))
        finally:
            painter.end()
        return pixmap

    def _paint_frame(self, painter: QPainter, plot: _Plot, cell: QRectF) -> None:
        """Title, shading, dashed lines, axes and ticks of one plot."""
        fm, tfm = self._metrics()
        r = plot.rect
        if r.width() <= 1 or r.height() <= 1:
            return
        spec = plot.spec
        painter.setFont(self._title_font())
        painter.setPen(FG)
        painter.drawText(QRectF(r.left(), cell.top() + 3, r.width(), tfm.height()),
                         Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter,
                         tfm.elidedText(spec.title, Qt.TextElideMode.ElideRight, int(r.width())))
        painter.setFont(self.font())

        # Behind the curves: shaded spans and dashed lines, clipped to the data area.
        painter.save()
        painter.setClipRect(r)
        if self.spans:
            edges = self._x_pixels(plot, np.array(self.spans, dtype=float).reshape(-1))
            for i in range(len(self.spans)):
                painter.fillRect(QRectF(QPointF(edges[2 * i], r.top()), QPointF(edges[2 * i + 1], r.bottom())),
                                 SHADES[i % 2])
        if self.lines:
            dashed = QPen(LINE_GREY, 1, Qt.PenStyle.DashLine)
            painter.setPen(dashed)
            for px in self._x_pixels(plot, np.array(self.lines)):
                painter.drawLine(QPointF(px, r.top()), QPointF(px, r.bottom()))
        painter.restore()

        # Frame and axes.
        painter.setPen(QPen(FG, 1))
        painter.drawLine(r.bottomLeft(), r.bottomRight())
        painter.drawLine(r.bottomLeft(), r.topLeft())
        right = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        y0, y1 = plot.y_range or (0.0, 1.0)
        for value, label in self._y_ticks(plot):
            py = r.bottom() - (value - y0) * (r.height() / ((y1 - y0) or 1.0))
            painter.drawLine(QPointF(r.left() - TICK, py), QPointF(r.left(), py))
            painter.drawText(QRectF(cell.left() + 1, py - fm.height() / 2, AXIS_WIDTH - TICK - 5, fm.height()), right, label)
        for px in self._x_pixels(plot, np.array(self.minor)):
            if r.left() <= px <= r.right():
                painter.drawLine(QPointF(px, r.bottom()), QPointF(px, r.bottom() + TICK - 2))
        last_right = -math.inf
        top = r.bottom() + TICK + 3
        centre = Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop
        for px, (_x, *labels) in zip(self._x_pixels(plot, np.array([t[0] for t in self.ticks])), self.ticks):
            if not r.left() - 1 <= px <= r.right() + 1:
                continue
            painter.drawLine(QPointF(px, r.bottom()), QPointF(px, r.bottom() + TICK))
            for label in labels:  # the full label, else its short form; one that would overlap is left out
                width = fm.horizontalAdvance(label)
                if px - width / 2 > last_right + 4:
                    painter.drawText(QRectF(px - width / 2 - 2, top, width + 4, fm.height()), centre, label)
                    last_right = px + width / 2
                    break
        if self.x_label:
            painter.drawText(QRectF(r.left(), top + fm.height() + 2, r.width(), fm.height()), centre, self.x_label)

    def _paint_selection(self, painter: QPainter) -> None:
        """The selected x: a band (at least 4 px) and a 2 px centre line, inside each data area
        (the axes stay visible), behind the curves."""
        x, lo, hi = self.selection
        for plot in self.plots.values():
            r = plot.rect
            if r.width() <= 1 or r.height() <= 1:
                continue
            cx, left, right = self._x_pixels(plot, np.array([x, lo, hi]))
            left, right = min(left, cx - 2), max(right, cx + 2)
            band = QRectF(QPointF(left, r.top()), QPointF(right, r.bottom())).intersected(r.adjusted(1, 0, 0, -1))
            if band.width() > 0:
                painter.fillRect(band, SELECTION_FILL)
                if r.left() < cx < r.right():
                    painter.fillRect(QRectF(round(cx) - 1, band.top(), 2, band.height()), SELECTION_LINE)

    def _paint_curves(self, painter: QPainter, plot: _Plot, antialias: bool = True, cut: bool = False) -> None:
        """The baseline's and the table's curves (clipped to the data area; ``cut``: their data cut
        to the x range too, see :func:`clip_x`), then the legend."""
        r, spec = plot.rect, plot.spec

        def curve(x, y):
            px, py = self._to_pixels(plot, x, y)
            return polylines(*(clip_x(px, py, r.left(), r.right()) if cut else (px, py)))

        if r.width() <= 1 or r.height() <= 1:
            return
        painter.save()
        painter.setClipRect(r)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, antialias)
        if self.base_x is not None:
            painter.setPen(QPen(BASELINE, 1.5, Qt.PenStyle.DashLine))
            for key in spec.baseline:
                if key in self.base_data:
                    for poly in curve(self.base_x, self.base_data[key]):
                        painter.drawPolyline(poly)
        for s in spec.series:
            if s.key in self.data:
                painter.setPen(QPen(QColor(s.color), s.width))
                for poly in curve(self.x, self.data[s.key]):
                    painter.drawPolyline(poly)
        painter.restore()
        if spec.legend:
            painter.setFont(self.font())
            self._paint_legend(painter, plot, QFontMetrics(self.font()))

    def legend_box(self, plot: _Plot, width: float, height: float) -> QRectF:
        """The corner of the data area where a legend of this size covers the fewest curve points
        (the baseline's too), top-left on a tie: in log scale the saved-activations curves fill the
        top-left, where the legend always sat."""
        r, margin = plot.rect, 8
        key = (plot.spec.key, self.log, plot.y_range, r.getRect(), width, height)  # (new data clears them)
        cached = self._legend_boxes.get(key)
        if cached is not None:
            return QRectF(cached)
        self._legend_boxes[key] = box = self._place_legend(plot, width, height)
        return QRectF(box)

    def _place_legend(self, plot: _Plot, width: float, height: float) -> QRectF:
        r, margin = plot.rect, 8
        corners = [QRectF(r.left() + margin, r.top() + margin, width, height),
                   QRectF(r.right() - margin - width, r.top() + margin, width, height),
                   QRectF(r.right() - margin - width, r.bottom() - margin - height, width, height),
                   QRectF(r.left() + margin, r.bottom() - margin - height, width, height)]
        points = []
        sources = [(self.x, self.data)] + ([(self.base_x, self.base_data)] if self.base_x is not None else [])
        keys = [s.key for s in plot.spec.series] + list(plot.spec.baseline)
        for x, data in sources:
            for key in keys:
                if key in data:
                    px, py = self._to_pixels(plot, x, data[key])
                    keep = np.isfinite(px) & np.isfinite(py)
                    px, py = px[keep], py[keep]
                    if len(px) > 1 and np.all(np.diff(px) > 0):  # the lines between the points too
                        dense = np.arange(px[0], px[-1], 3.0)
                        px, py = np.concatenate([px, dense]), np.concatenate([py, np.interp(dense, px, py)])
                    points.append((px, py))
        if not points:
            return corners[0]
        px = np.concatenate([p[0] for p in points])
        py = np.concatenate([p[1] for p in points])
        pad = 3  # a point just outside the box still touches its border

        def covered(box: QRectF) -> int:
            return int(np.count_nonzero((px >= box.left() - pad) & (px <= box.right() + pad)
                                        & (py >= box.top() - pad) & (py <= box.bottom() + pad)))

        return min(corners, key=covered)

    def _paint_legend(self, painter: QPainter, plot: _Plot, fm: QFontMetrics) -> None:
        # (a series with no values, e.g. the memory-efficient curve of a family without that mode, is not listed)
        entries = [(QPen(QColor(s.color), s.width), s.label) for s in plot.spec.series
                   if self._has_values.get(s.key, False)]
        if plot.spec.legend_baseline and self.base_x is not None:
            entries.append((QPen(BASELINE, 1.5, Qt.PenStyle.DashLine), "baseline"))
        if not entries:  # nothing drawn yet
            return
        sample, pad, line_h = 22, 6, fm.height() + 2
        width = sample + 6 + max(fm.horizontalAdvance(text) for _pen, text in entries) + 2 * pad
        box = self.legend_box(plot, width, len(entries) * line_h + pad)
        painter.setPen(QPen(QColor("#bbbbbb"), 1))
        painter.setBrush(QColor(255, 255, 255, 215))
        painter.drawRect(box)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for i, (pen, text) in enumerate(entries):
            y = box.top() + pad / 2 + i * line_h + line_h / 2
            painter.setPen(pen)
            painter.drawLine(QPointF(box.left() + pad, y), QPointF(box.left() + pad + sample, y))
            painter.setPen(FG)
            painter.drawText(QRectF(box.left() + pad + sample + 6, y - line_h / 2, width, line_h),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, text)
