"""Saving figures: the one place a plot becomes a PNG, SVG or PDF file.

A figure is a ``paint(painter, rect)`` callable that draws into ``rect`` (0, 0, width,
height) in logical units. The same callable draws all three formats, so SVG and PDF are
true vector files (paths, rectangles and text, no embedded bitmap):

* PNG: a QImage at ``scale`` device pixels per unit, on white;
* SVG: QSvgGenerator (pyqtgraph's own SVG exporter is broken on PySide6 ≥ 6.11);
* PDF: QPdfWriter, one page exactly the figure's size in points, no margins.

Units are the screen's logical pixels, so text laid out with a widget's QFontMetrics lands
where it would on screen; every format is ``width`` × ``height`` points on paper. The file
is written to a temporary next to the target and renamed over it: a failed save leaves
nothing behind, and any failure is a DenseguiError of one line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QBuffer, QIODevice, QMarginsF, QRectF, QSize, QSizeF
from PySide6.QtGui import QColor, QGuiApplication, QImage, QPageSize, QPainter, QPdfWriter

from densegui.core.errors import DenseguiError
from densegui.core.writing import check_writable, write_atomic  # noqa: F401 (check_writable: the CLI's too)

FORMATS = ("png", "svg", "pdf")
FILTERS = {"png": "PNG image (*.png)", "svg": "SVG vector (*.svg)", "pdf": "PDF vector (*.pdf)"}
POINTS_PER_INCH = 72.0

Paint = Callable[[QPainter, QRectF], None]


def format_of(path: str | os.PathLike) -> str:
    """"png", "svg" or "pdf" from ``path``'s suffix (any case); DenseguiError otherwise."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise DenseguiError(f"cannot tell the format of {str(path)!r}: name the file .png, .svg or .pdf.")
    return suffix


def save_dialog_filter(first: str = "png") -> str:
    """The QFileDialog filter of the three formats, ``first`` listed first (the dialog's default)."""
    order = [first] + [f for f in FORMATS if f != first] if first in FORMATS else list(FORMATS)
    return ";;".join(FILTERS[f] for f in order)


def with_chosen_suffix(path: str, selected_filter: str = "") -> str:
    """``path`` with the suffix of the dialog's chosen filter added when the user typed none
    (PNG when no filter was chosen); a typed suffix is kept, even a wrong one (save says why)."""
    if not path or Path(path).suffix:
        return path
    chosen = next((f for f, text in FILTERS.items() if text == selected_filter), None)
    if chosen is None:
        chosen = next((f for f in FORMATS if f"*.{f}" in (selected_filter or "")), FORMATS[0])
    return f"{path}.{chosen}"


def ask_save_path(parent, caption: str, name: str, first: str = "png") -> str | None:
    """Ask where to save a figure (PNG, SVG or PDF); the path with its suffix, or None if cancelled."""
    from PySide6.QtWidgets import QFileDialog

    path, chosen = QFileDialog.getSaveFileName(parent, caption, name, save_dialog_filter(first))
    return with_chosen_suffix(path, chosen) or None


def save_painting(path: str | os.PathLike, width: int, height: int, paint: Paint, *, title: str = "",
                  scale: float = 2.0) -> Path:
    """Draw ``paint`` into a ``width`` × ``height`` figure and save it as the format ``path`` names
    (see the module docstring); returns the path written."""
    return write_painting(format_of(path), path, width, height, paint, title=title, scale=scale)


def write_painting(fmt: str, path: str | os.PathLike, width: int, height: int, paint: Paint, *,
                   title: str = "", scale: float = 2.0) -> Path:
    """:func:`save_painting` in format ``fmt`` whatever ``path``'s suffix (``--png OUT`` in the CLI)."""
    if fmt not in FORMATS:
        raise DenseguiError(f"unknown figure format {fmt!r}; use one of {', '.join(FORMATS)}.")
    if not (width >= 1 and height >= 1):
        raise DenseguiError(f"a figure needs a positive size, not {width} × {height}.")
    target = Path(path)
    check_writable(target)  # before painting: a bad path fails at once
    data = {"png": _png, "svg": _svg, "pdf": _pdf}[fmt](width, height, paint, title, scale)
    write_atomic(target, data)
    return target


# ---------------------------------------------------------------- the three devices
def font_dpi() -> float:
    """The resolution QFontMetrics lay text out at (the primary screen's logical DPI): every
    device gets it, so text is as wide, relative to the figure, as the layout measured."""
    screen = QGuiApplication.primaryScreen() if QGuiApplication.instance() is not None else None
    return float(screen.logicalDotsPerInchY()) if screen is not None else 96.0


def _paint_on(device, paint: Paint, width: float, height: float, scale: float = 1.0) -> None:
    painter = QPainter()
    if not painter.begin(device):
        raise DenseguiError("cannot start drawing the figure (Qt refused the paint device).")
    try:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
        if scale != 1.0:
            painter.scale(scale, scale)
        paint(painter, QRectF(0, 0, width, height))
    finally:
        painter.end()


def _buffer() -> QBuffer:
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    return buffer


def _png(width: int, height: int, paint: Paint, title: str, scale: float) -> bytes:
    scale = float(scale) if scale > 0 else 1.0
    image = QImage(max(1, round(width * scale)), max(1, round(height * scale)), QImage.Format.Format_RGB32)
    if image.isNull():
        raise DenseguiError(f"cannot make a {width} × {height} image at scale {scale:g} (too large).")
    image.setDevicePixelRatio(scale)
    dpm = round(font_dpi() / 0.0254)
    image.setDotsPerMeterX(dpm)
    image.setDotsPerMeterY(dpm)
    image.fill(QColor("white"))
    _paint_on(image, paint, width, height)
    # On paper the PNG is as large as the SVG and PDF: width × height points.
    dpm = round(POINTS_PER_INCH * scale / 0.0254)
    image.setDotsPerMeterX(dpm)
    image.setDotsPerMeterY(dpm)
    if title:
        image.setText("Title", title)
    buffer = _buffer()
    if not image.save(buffer, "PNG"):
        raise DenseguiError("cannot encode the figure as PNG.")
    return bytes(buffer.data())


def _svg(width: int, height: int, paint: Paint, title: str, _scale: float) -> bytes:
    from PySide6.QtSvg import QSvgGenerator

    dpi = font_dpi()
    buffer = _buffer()
    generator = QSvgGenerator()
    generator.setOutputDevice(buffer)
    generator.setResolution(round(dpi))
    # The size (at that resolution) makes the drawing width × height points on paper; the view
    # box keeps the painter's units, so coordinates are written as painted.
    generator.setSize(QSize(max(1, round(width * dpi / POINTS_PER_INCH)), max(1, round(height * dpi / POINTS_PER_INCH))))
    generator.setViewBox(QRectF(0, 0, width, height))
    generator.setTitle(title)
    generator.setDescription("densegui figure")
    _paint_on(generator, paint, width, height)
    return _portable_fonts(bytes(buffer.data()))


def _portable_fonts(svg: bytes) -> bytes:
    """Font families as the SVG's readers can find them: the font Qt laid the text out with, then a
    generic family. Qt writes the requested name, often an alias only fontconfig knows ("Sans
    Serif"), which a browser or an editor would replace with its default serif font."""
    from PySide6.QtGui import QFont, QFontInfo

    names: dict[bytes, bytes] = {}

    def portable(match: re.Match) -> bytes:
        if match.group(1) not in names:
            info = QFontInfo(QFont(match.group(1).decode("utf-8", "replace")))
            generic = "monospace" if info.fixedPitch() else "sans-serif"
            real = info.family().replace("'", "").replace('"', "").replace("&", "")
            names[match.group(1)] = f'font-family="\'{real}\', {generic}"'.encode()
        return names[match.group(1)]

    return re.sub(rb'font-family="([^"\',]*)"', portable, svg)


def _pdf(width: int, height: int, paint: Paint, title: str, _scale: float) -> bytes:
    dpi = round(font_dpi())
    buffer = _buffer()
    writer = QPdfWriter(buffer)
    writer.setResolution(dpi)  # fonts are sized for this resolution: the same as the layout's
    writer.setPageSize(QPageSize(QSizeF(width, height), QPageSize.Unit.Point, "figure",
                                 QPageSize.SizeMatchPolicy.ExactMatch))
    writer.setPageMargins(QMarginsF(0, 0, 0, 0))
    writer.setTitle(title)
    writer.setCreator("densegui")
    _paint_on(writer, paint, width, height, scale=dpi / POINTS_PER_INCH)
    return bytes(buffer.data())
