"""The network drawn: a zoomable, pannable view of a plan's layout (:mod:`densegui.gui.diagram_layout`).

One paint function (:meth:`DiagramView.paint_scene`) draws the scene in scene coordinates; the view
calls it under its zoom and pan, and export calls it on a QImage, a QSvgGenerator or a QPdfWriter
(true vector drawings). The arcs of a row are built once per layout into a few QPainterPaths (one
per colour), so a frame costs a handful of path draws however many connections a block has; labels
are dropped where they would be smaller than ~6 px on screen (level of detail).
"""

from __future__ import annotations

import time
from math import ceil, log1p

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from densegui.gui import diagram_layout as dl

LOW, HIGH = QColor("#deebf7"), QColor("#08306b")  # bar colour: MACs, log scale
SELECT = QColor("#e8590c")
BASELINE = QColor(120, 120, 120, 150)
NOISE = QColor(150, 150, 150, 230)
TEXT = QColor("#1f2933")
MUTED = QColor("#6b7280")
BINS = 32  # reuse colours drawn per row (one path each)


def mix(a: QColor, b: QColor, t: float) -> QColor:
    t = min(max(t, 0.0), 1.0)
    return QColor(round(a.red() + (b.red() - a.red()) * t), round(a.green() + (b.green() - a.green()) * t),
                  round(a.blue() + (b.blue() - a.blue()) * t))


def _cosmetic(color: QColor, width: float = 1.0, style=Qt.PenStyle.SolidLine) -> QPen:
    pen = QPen(color, width, style)
    pen.setCosmetic(True)
    return pen


class Colouring:
    """Connection values from the Feature reuse tab: ``values[(block, source, target)]`` in [0, 1]
    (already normalised as the heatmap shows them), the cells within noise, and the colour map as
    256 (r, g, b) tuples. ``threshold``: connections below it are hidden."""

    def __init__(self, values: dict[tuple[int, int, int], float], noise: set[tuple[int, int, int]],
                 lut: list[tuple[int, int, int]], label: str) -> None:
        self.values, self.noise, self.lut, self.label = values, noise, lut, label
        self.threshold = 0.0

    def color(self, value: float) -> QColor:
        i = min(len(self.lut) - 1, max(0, int(value * (len(self.lut) - 1) + 0.5)))
        return QColor(*self.lut[i])


class DiagramView(QWidget):
    """Draws a :class:`~densegui.gui.diagram_layout.Layout`; hover, click, zoom (wheel) and pan (drag)."""

    hovered = Signal(object)  # the Item under the mouse, or None
    clicked = Signal(str)  # a unit's path ("" on empty space)
    toggled = Signal(int, bool)  # (block, expanded): a block header or a collapsed block was clicked
    painted = Signal(float, float)  # (perf_counter at the end of a paint, its duration in ms)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("architectureDiagram")
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 200)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.layout_: dl.Layout | None = None
        self.baseline: dl.Layout | None = None
        self.colouring: Colouring | None = None
        self.zoom = 1.0
        self.offset = QPointF(0, 0)
        self.auto_fit = True  # until the user zooms or pans
        self.hover: dl.Item | None = None
        self.selected = ""
        self._press: QPointF | None = None
        self._panning = False
        self._paths: dict[int, list[tuple[QColor, QPainterPath]]] = {}
        self._noise_dots: dict[int, list[QPointF]] = {}
        self._font = QFont()
        self._font.setPixelSize(11)
        self._small = QFont()
        self._small.setPixelSize(9)
        self._bold = QFont()
        self._bold.setPixelSize(12)
        self._bold.setBold(True)
        self.last_paint_ms = 0.0
        self._cache: tuple | None = None
        self._direct_paints = 0
        self._path_steps: tuple[int, ...] = ()
        self._titles_width: tuple = (None, 0.0)
        self.drawn_arcs = 0

    # ------------------------------------------------------------------ state
    def set_layout(self, layout: dl.Layout | None, baseline: dl.Layout | None = None) -> None:
        self.layout_, self.baseline = layout, baseline
        if self.hover is not None and (layout is None or self.hover.path not in layout.by_path):
            self.hover = None
        self._rebuild_paths()
        if self.auto_fit:
            self.fit()
        self.update()

    def set_colouring(self, colouring: Colouring | None) -> None:
        self.colouring = colouring
        self._rebuild_paths()
        self.update()

    def set_threshold(self, value: float) -> None:
        if self.colouring is not None:
            self.colouring.threshold = value
            self._rebuild_paths()
            self.update()

    def set_selected(self, path: str | None) -> None:
        self.selected = path or ""
        self.update()

    def fit(self) -> None:
        """Zoom so the whole network fits, unless that would make it smaller than 0.75× while its
        width alone fits larger (then the width fits and the wheel scrolls); never above 1.4×."""
        self.auto_fit = True
        if self.layout_ is None:
            return
        w, h = self.scene_size()
        by_width = min(1.4, (self.width() - 4) / max(w, 1))
        whole = min(by_width, (self.height() - 4) / max(h, 1))
        self.zoom = max(0.05, whole, min(by_width, 0.75))
        self.offset = QPointF(2, 2)
        self.update()

    def zoom_by(self, factor: float, at: QPointF | None = None) -> None:
        at = at if at is not None else QPointF(self.width() / 2, self.height() / 2)
        scene = self.to_scene(at)
        self.zoom = max(0.05, min(8.0, self.zoom * factor))
        self.offset = at - scene * self.zoom
        self.auto_fit = False
        self.update()

    def to_scene(self, p: QPointF) -> QPointF:
        return (p - self.offset) / self.zoom

    def to_widget(self, x: float, y: float) -> QPointF:
        return QPointF(x, y) * self.zoom + self.offset

    def widget_rect(self, item: dl.Item) -> QRectF:
        tl = self.to_widget(item.x, item.y)
        return QRectF(tl.x(), tl.y(), item.w * self.zoom, item.h * self.zoom)

    # ------------------------------------------------------------------ paths
    def _arc_value(self, row: dl.Row, arc: dl.Arc) -> float | None:
        c = self.colouring
        if c is None or row.block is None:
            return None
        return c.values.get((row.block, arc.source, arc.target))

    LOD_PX = 14.0  # below this many screen pixels per layer slot, a row's arcs are thinned out
    MAX_ARCS = 700  # and below 20 px, a row draws about this many at most

    def lod_steps(self, zoom: float | None = None) -> tuple[int, ...]:
        """Per row, draw one in ``step`` of each target's connections (always its nearest and its
        block input, and all of the selected unit's): 1 when the slots are wide enough to tell the
        arcs apart. A frame then costs about the same at densenet264's 2,145 arcs as at 300."""
        if self.layout_ is None:
            return ()
        px = dl.PITCH * (self.zoom if zoom is None else zoom)
        base = max(1, ceil(self.LOD_PX / max(px, 1e-6))) if px < self.LOD_PX else 1
        return tuple(max(base, ceil(len(r.arcs) / self.MAX_ARCS)) if px < 20 else base for r in self.layout_.rows)

    def thinning(self) -> int:
        """The largest step of the drawn rows (1: every connection is drawn)."""
        return max(self._path_steps, default=1)

    def _drawn(self, row: dl.Row, step: int) -> list[dl.Arc]:
        if step == 1:
            return row.arcs
        out = []
        for a in row.arcs:
            gap = a.dst.slot - a.src.slot
            if gap == 1 or a.source == 0 or a.source % step == 0:
                out.append(a)
        return out

    def _rebuild_paths(self, steps: tuple[int, ...] | None = None) -> None:
        """The arcs of every row as a few paths: one colour in structure mode, ``BINS`` colours when
        coloured by reuse (hidden connections left out); thinned out by :meth:`lod_steps`."""
        self._paths, self._noise_dots = {}, {}
        self._cache = None
        self._direct_paints = 0  # paints since the paths changed (the first draws directly: see _arc_image)
        self._path_steps = steps = self.lod_steps() if steps is None else steps
        self.drawn_arcs = 0
        if self.layout_ is None:
            return
        for row, step in zip(self.layout_.rows, steps, strict=True):
            if not row.arcs:
                continue
            arcs = self._drawn(row, step)
            self.drawn_arcs += len(arcs)
            if self.colouring is None:
                path = QPainterPath()
                for a in arcs:
                    path.moveTo(a.src.cx, a.src.y)
                    path.cubicTo(a.src.cx, a.apex, a.dst.cx, a.apex, a.dst.cx, a.dst.y)
                alpha = max(28, min(200, int(2600 / len(arcs))))
                self._paths[row.index] = [(QColor(31, 119, 180, alpha), path)]
                continue
            bins: dict[int, QPainterPath] = {}
            dots = []
            c = self.colouring
            for a in arcs:
                v = self._arc_value(row, a)
                if v is None or v != v or v < c.threshold:  # (NaN: no value)
                    continue
                k = min(BINS - 1, int(v * BINS))
                path = bins.get(k)
                if path is None:
                    path = bins[k] = QPainterPath()
                path.moveTo(a.src.cx, a.src.y)
                path.cubicTo(a.src.cx, a.apex, a.dst.cx, a.apex, a.dst.cx, a.dst.y)
                if (row.block, a.source, a.target) in c.noise:
                    dots.append(QPointF((a.src.cx + a.dst.cx) / 2, a.apex + (a.src.y - a.apex) * 0.25))
            self._paths[row.index] = [(c.color((k + 0.5) / BINS), bins[k]) for k in sorted(bins)]
            self._noise_dots[row.index] = dots

    # --------------------------------------------------------------- painting
    def paint_scene(self, p: QPainter, visible: QRectF | None = None, zoom: float = 1.0, arcs: bool = True) -> None:
        """Draw the whole scene in scene coordinates (``visible``: skip rows outside it;
        ``zoom``: screen pixels per scene unit, for the level of detail; ``arcs``: False when the
        view has drawn them from its cache)."""
        lay = self.layout_
        if lay is None:
            return
        text_ok = zoom * 10 >= 6
        if self.baseline is not None:
            self._paint_baseline(p, self.baseline, visible)
        for row in lay.rows:
            if visible is not None and (row.y > visible.bottom() or row.y + row.height + dl.ROW_GAP < visible.top()):
                continue
            if arcs:
                self._paint_arcs(p, row, zoom)
            self._paint_row(p, row, text_ok, zoom)
        self._paint_wraps(p, lay)

    def _paint_arcs(self, p: QPainter, row: dl.Row, zoom: float) -> None:
        p.setBrush(Qt.BrushStyle.NoBrush)
        for color, path in self._paths.get(row.index, ()):
            p.setPen(_cosmetic(color, 1.0 if self.colouring is None else 1.3))
            p.drawPath(path)
        dots = self._noise_dots.get(row.index)
        if dots:
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(NOISE)
            r = 2.2 / max(zoom, 0.3)
            for d in dots:
                p.drawEllipse(d, r, r)

    def _paint_baseline(self, p: QPainter, base: dl.Layout, visible: QRectF | None) -> None:
        p.setPen(_cosmetic(BASELINE, 1.0, Qt.PenStyle.DashLine))
        p.setBrush(Qt.BrushStyle.NoBrush)
        for row in base.rows:
            if visible is not None and (row.y > visible.bottom() or row.y + row.height < visible.top()):
                continue
            for item in row.items:
                if item.role != "port":
                    p.drawRect(QRectF(item.x, item.y, item.w, item.h))

    def _paint_row(self, p: QPainter, row: dl.Row, text_ok: bool, zoom: float) -> None:
        lay = self.layout_
        if row.block is not None and row.title:
            hx, hy, hw, hh = row.header
            if text_ok:
                p.setFont(self._bold)
                p.setPen(TEXT)
                chevron = "▸" if row.collapsed else "▾"
                p.drawText(QRectF(hx, hy, max(hw, 2000), hh), Qt.AlignmentFlag.AlignVCenter, f"{chevron} {row.title}")
        # straight links and residual skips
        link_y = row.baseline - dl.BAR_MAX_H / 2
        p.setPen(_cosmetic(MUTED, 1.0))
        for a, b in row.links:
            y = link_y if a.role != "layer" and b.role != "layer" else row.baseline - 4
            p.drawLine(QPointF(a.x + a.w, y), QPointF(b.x, y))
        skip_pen = _cosmetic(QColor(214, 39, 40, 170), 1.0)
        for item in row.items:
            if item.role == "layer" and item.unit.residual:
                p.setPen(skip_pen)
                path = QPainterPath(QPointF(item.x - 3, row.baseline - 2))
                top = item.y - 14
                path.cubicTo(item.x - 3, top, item.x + item.w + 3, top, item.x + item.w + 3, row.baseline - 2)
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.drawPath(path)
        # items
        label_every = max(1, int(24 / max(dl.PITCH * zoom, 1e-6)) + (0 if dl.PITCH * zoom >= 24 else 1))
        for item in row.items:
            u = item.unit
            rect = QRectF(item.x, item.y, item.w, item.h)
            if item.role == "layer":
                t = log1p(u.macs) / log1p(max(lay.max_macs, 1))
                p.setPen(Qt.PenStyle.NoPen)
                p.setBrush(mix(LOW, HIGH, t * t))
                p.drawRect(rect)
                if text_ok and (item.slot % label_every == 0 or item.slot == len(row.items) - 1):
                    p.setFont(self._small)
                    p.setPen(MUTED)
                    p.drawText(QRectF(item.cx - 15, row.baseline + 1, 30, dl.LABEL_H - 2),
                               Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, str(u.in_channels))
            else:
                self._paint_box(p, row, item, rect, text_ok)
            if item.path == self.selected or (item.role == "block" and self._selected_in(item)):
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.setPen(_cosmetic(SELECT, 2.5))
                p.drawRect(rect.adjusted(-2, -2, 2, 2))
            elif self.hover is item:
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.setPen(_cosmetic(TEXT, 1.5))
                p.drawRect(rect.adjusted(-1.5, -1.5, 1.5, 1.5))
        if self.selected:
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.setPen(_cosmetic(SELECT, 1.6))
            for a in row.arcs:
                if a.dst.path == self.selected and a.dst.role != "block":
                    path = QPainterPath(QPointF(a.src.cx, a.src.y))
                    path.cubicTo(a.src.cx, a.apex, a.dst.cx, a.apex, a.dst.cx, a.dst.y)
                    p.drawPath(path)

    def _selected_in(self, block_item: dl.Item) -> bool:
        return bool(self.selected) and self.layout_ is not None and self.layout_.inside.get(self.selected) is block_item

    def _paint_box(self, p: QPainter, row: dl.Row, item: dl.Item, rect: QRectF, text_ok: bool) -> None:
        u = item.unit
        lay = self.layout_
        if item.role == "block":
            p.setPen(_cosmetic(QColor(31, 119, 180), 1.2))
            p.setBrush(QColor(232, 240, 254))
            p.drawRoundedRect(rect, 6, 6)
            if text_ok:
                p.setFont(self._font)
                p.setPen(TEXT)
                p.drawText(rect.adjusted(8, 4, -8, -4), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                           f"{row.depth} {row.layer_word} collapsed · {row.connections:,} connections\n"
                           "click to expand")
            return
        if item.role == "port":
            p.setPen(_cosmetic(MUTED, 1.0, Qt.PenStyle.DashLine))
            p.setBrush(QColor(250, 250, 250))
        else:
            t = log1p(u.macs) / log1p(max(lay.max_macs, 1))
            p.setPen(_cosmetic(MUTED, 1.0))
            p.setBrush(mix(QColor(248, 249, 250), LOW, t))
        p.drawRoundedRect(rect, 4, 4)
        if not text_ok:
            return
        name = u.kind if u.block is None else f"{u.kind} {u.block}"
        if item.role == "port":  # (the previous row's output: a transition's, or its last layer's)
            name = f"← {name}" if u.index is None else f"← {row.port_word} {u.block}"
        p.setFont(self._font)
        p.setPen(TEXT)
        p.drawText(rect.adjusted(4, 3, -4, -3), Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, name)
        p.setFont(self._small)
        p.setPen(MUTED)
        ch = f"{u.out_channels} ch" if item.role == "port" else f"{u.in_channels} → {u.out_channels} ch"
        size = f"{u.out_size}²" if item.role == "port" or u.in_size == u.out_size else f"{u.in_size}² → {u.out_size}²"
        p.drawText(rect.adjusted(2, 18, -2, -2), Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop,
                   f"{ch}\n{size}")

    def _paint_wraps(self, p: QPainter, lay: dl.Layout) -> None:
        """Dashed connectors from a row's last unit to the next row's port."""
        p.setPen(_cosmetic(MUTED, 1.0, Qt.PenStyle.DashLine))
        p.setBrush(Qt.BrushStyle.NoBrush)
        for row, nxt in zip(lay.rows, lay.rows[1:], strict=False):
            port = next((i for i in nxt.items if i.role == "port"), None)
            if port is None or not row.items:
                continue
            last = row.items[-1]
            y_mid = row.y + row.height + dl.ROW_GAP / 2
            x_in = dl.MARGIN / 2
            path = QPainterPath(QPointF(last.cx, last.y + last.h))
            path.lineTo(last.cx, y_mid)
            path.lineTo(x_in, y_mid)
            path.lineTo(x_in, port.y + port.h / 2)
            path.lineTo(port.x, port.y + port.h / 2)
            p.drawPath(path)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        t0 = time.perf_counter()
        p = QPainter(self)
        p.fillRect(self.rect(), Qt.GlobalColor.white)
        if self.layout_ is None:
            p.end()
            return
        if self.lod_steps() != self._path_steps:
            self._rebuild_paths()
        cached = self._arc_image()
        if cached is not None:
            p.drawImage(self.offset, cached)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.translate(self.offset)
        p.scale(self.zoom, self.zoom)
        visible = QRectF(self.to_scene(QPointF(0, 0)), self.to_scene(QPointF(self.width(), self.height())))
        self.paint_scene(p, visible, self.zoom, arcs=cached is None)
        p.end()
        self.last_paint_ms = (time.perf_counter() - t0) * 1000
        self.painted.emit(time.perf_counter(), self.last_paint_ms)

    CACHE_PIXELS = 24_000_000

    def _arc_image(self) -> QImage | None:
        """The arcs of the whole scene at the current zoom, rendered once (hover, selection and pan
        then cost a blit); None where that image would be too large, and for the first paint of new
        paths (a slider drag repaints each configuration once: the image would be thrown away), when
        the visible arcs are drawn directly."""
        w, h = self.scene_size()
        dpr = self.devicePixelRatioF()
        key = (self.zoom, dpr)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        self._direct_paints += 1
        if self._direct_paints == 1:
            return None
        pw, ph = int(w * self.zoom * dpr) + 2, int(h * self.zoom * dpr) + 2
        if pw * ph > self.CACHE_PIXELS:
            return None
        image = QImage(pw, ph, QImage.Format.Format_ARGB32_Premultiplied)
        image.setDevicePixelRatio(dpr)
        image.fill(Qt.GlobalColor.transparent)
        q = QPainter(image)
        q.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        q.scale(self.zoom, self.zoom)
        for row in self.layout_.rows:
            self._paint_arcs(q, row, self.zoom)
        q.end()
        self._cache = (key, image)
        return image

    def scene_size(self) -> tuple[float, float]:
        """The drawing's extent: the layout's, widened to the block titles (an export shows them whole)."""
        lay = self.layout_
        if lay is None:
            return 400.0, 200.0
        if self._titles_width[0] is not lay:
            fm = QFontMetricsF(self._bold)
            widest = max((r.header[0] + fm.horizontalAdvance(f"▾ {r.title}") + dl.MARGIN for r in lay.rows if r.title),
                         default=0.0)
            self._titles_width = (lay, widest)
        w, h = max(lay.width, self._titles_width[1]), lay.height
        if self.baseline is not None:
            w, h = max(w, self.baseline.width), max(h, self.baseline.height)
        return w, h

    def paint_export(self, p: QPainter, rect: QRectF) -> None:
        """The whole scene scaled into ``rect`` (export: PNG, SVG and PDF share this)."""
        w, h = self.scene_size()
        s = min(rect.width() / w, rect.height() / h)
        p.fillRect(rect, Qt.GlobalColor.white)
        p.save()
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.translate(rect.topLeft())
        p.scale(s, s)
        thinned = self.thinning() > 1
        if thinned:  # (an export draws every connection)
            self._rebuild_paths((1,) * len(self.layout_.rows))
        self.paint_scene(p, None, max(s, 1.0))
        if thinned:
            self._rebuild_paths()
        p.restore()

    # ------------------------------------------------------------ interaction
    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        if self.auto_fit:
            self.fit()
        super().resizeEvent(event)

    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt API
        """Ctrl+wheel zooms at the cursor; the wheel scrolls (Shift: sideways)."""
        delta = event.angleDelta()
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            if delta.y():
                self.zoom_by(1.15 ** (delta.y() / 120), event.position())
            return
        dx, dy = (delta.y(), 0) if event.modifiers() & Qt.KeyboardModifier.ShiftModifier else (delta.x(), delta.y())
        self.pan_by(dx / 2, dy / 2)

    def pan_by(self, dx: float, dy: float) -> None:
        self.offset = QPointF(self.offset.x() + dx, self.offset.y() + dy)
        self.auto_fit = False
        self.update()

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.button() == Qt.MouseButton.LeftButton:
            self._press = event.position()
            self._press_offset = QPointF(self.offset)
            self._panning = False

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt API
        pos = event.position()
        if self._press is not None and event.buttons() & Qt.MouseButton.LeftButton:
            delta = pos - self._press
            if self._panning or abs(delta.x()) + abs(delta.y()) > 4:
                self._panning = True
                self.auto_fit = False
                self.offset = self._press_offset + delta
                self.update()
                return
        self._set_hover(self.item_at(pos), event.globalPosition().toPoint())

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.button() != Qt.MouseButton.LeftButton or self._press is None:
            return
        panned, self._press = self._panning, None
        self._panning = False
        if panned:
            return
        pos = event.position()
        scene = self.to_scene(pos)
        lay = self.layout_
        if lay is None:
            return
        row = lay.header_at(scene.x(), scene.y())
        if row is not None:
            self.toggled.emit(row.block, row.collapsed)
            return
        item = lay.item_at(scene.x(), scene.y())
        if item is not None and item.role == "block":
            row = lay.rows[item.row]
            self.toggled.emit(row.block, True)
            return
        path = "" if item is None else item.path
        self.set_selected(path)
        self.clicked.emit(path)

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802 - Qt API
        if self.item_at(event.position()) is None:
            self.fit()

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt API
        key = event.key()
        if key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom_by(1.25)
        elif key == Qt.Key.Key_Minus:
            self.zoom_by(0.8)
        elif key == Qt.Key.Key_0:
            self.fit()
        else:
            super().keyPressEvent(event)

    def leaveEvent(self, event) -> None:  # noqa: N802 - Qt API
        self._set_hover(None, None)
        super().leaveEvent(event)

    def item_at(self, pos: QPointF) -> dl.Item | None:
        if self.layout_ is None:
            return None
        s = self.to_scene(pos)
        return self.layout_.item_at(s.x(), s.y())

    def _set_hover(self, item: dl.Item | None, global_pos) -> None:
        if item is self.hover:
            return
        self.hover = item
        self.update()
        self.hovered.emit(item)
        if item is None or global_pos is None:
            QToolTip.hideText()
        else:
            QToolTip.showText(global_pos, self.toolTipFor(item), self)

    def toolTipFor(self, item: dl.Item) -> str:  # noqa: N802 - (the panel replaces it with the full read-out)
        return item.path
