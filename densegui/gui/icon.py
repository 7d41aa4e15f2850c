"""The application icon, drawn in code (a dense block: every node feeds every later node)."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap


def app_pixmap(size: int = 256) -> QPixmap:
    pix = QPixmap(size, size)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    s = size / 256
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor("#1f3b5a"))
    p.drawRoundedRect(QRectF(8 * s, 8 * s, 240 * s, 240 * s), 48 * s, 48 * s)
    nodes = [QPointF((48 + 53 * i) * s, (176 - 32 * i) * s) for i in range(4)]
    colors = ["#7fb3e0", "#9fd0a0", "#f5c26b", "#f08a5d"]
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            p.setPen(QPen(QColor(255, 255, 255, 150), 7 * s))
            p.drawLine(a, b)
    p.setPen(Qt.PenStyle.NoPen)
    for c, n in zip(colors, nodes):
        p.setBrush(QColor(c))
        p.drawEllipse(n, 22 * s, 22 * s)
    p.end()
    return pix


def app_icon() -> QIcon:
    icon = QIcon()
    for size in (16, 32, 64, 128, 256):
        icon.addPixmap(app_pixmap(size))
    return icon
