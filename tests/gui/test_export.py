"""Figures as files (gui/export.py): PNG, SVG and PDF from one paint function; the channel plots
and the reuse heatmaps as true vector figures (parsed: drawing elements and text, no bitmap);
one-line errors for a bad suffix or path, with nothing left behind."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtSvg import QSvgRenderer

from densegui.core.analysis.reuse import BlockReuse, normalise
from densegui.core.errors import DenseguiError
from densegui.gui import export

SVG = "{http://www.w3.org/2000/svg}"


def svg_tree(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()  # well-formed, or this raises
    assert root.tag == f"{SVG}svg"
    return root


def tags(root: ET.Element, name: str) -> list[ET.Element]:
    return list(root.iter(f"{SVG}{name}"))


def filled_rects(root: ET.Element) -> list[str]:
    """The fill colour of every rectangle drawn with a plain colour (the generator puts it on the group)."""
    out = []
    for group in root.iter(f"{SVG}g"):
        fill = group.get("fill", "")
        out += [fill] * sum(1 for child in group if child.tag == f"{SVG}rect" and fill.startswith("#"))
    return out


def pdf_streams(data: bytes) -> bytes:
    """Every content stream of a PDF, inflated."""
    out = b""
    for match in re.finditer(rb"stream\r?\n(.*?)endstream", data, re.S):
        try:
            out += zlib.decompress(match.group(1))
        except zlib.error:
            out += match.group(1)
    return out


def check_pdf(path: Path, width: float, height: float) -> bytes:
    data = path.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 3000
    box = [float(v) for v in re.search(rb"/MediaBox \[([^\]]*)\]", data).group(1).split()]
    assert box == pytest.approx([0, 0, width, height], abs=0.5)  # the page is the figure, in points
    assert b"/Subtype /Image" not in data  # no bitmap: vector
    content = pdf_streams(data)
    assert b"BT" in content and re.search(rb"\b(re|l|c)\b", content)  # text, and paths
    return data


def svg_to_image(path: Path, scale: float = 2.0) -> QImage:
    renderer = QSvgRenderer(str(path))
    assert renderer.isValid()
    box = renderer.viewBoxF()
    image = QImage(round(box.width() * scale), round(box.height() * scale), QImage.Format.Format_RGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    renderer.render(painter)
    painter.end()
    return image


def colour_at(image: QImage, x: float, y: float) -> tuple[int, int, int]:
    c = image.pixelColor(round(x), round(y))
    return c.red(), c.green(), c.blue()


# ------------------------------------------------------------------ gui/export.py
def test_formats_dialog_filter_and_suffix_helper():
    assert export.FORMATS == ("png", "svg", "pdf")
    assert [export.format_of(p) for p in ("a.png", "b.SVG", Path("c/d.pdf"))] == ["png", "svg", "pdf"]
    for bad in ("fig.jpg", "fig", "fig.svg.gz"):
        with pytest.raises(DenseguiError) as info:
            export.format_of(bad)
        message = str(info.value)
        assert len(message.splitlines()) == 1 and all(s in message for s in (".png", ".svg", ".pdf"))
    assert export.save_dialog_filter() == "PNG image (*.png);;SVG vector (*.svg);;PDF vector (*.pdf)"
    assert export.save_dialog_filter("pdf").startswith("PDF vector (*.pdf);;")
    assert export.with_chosen_suffix("/x/fig", "SVG vector (*.svg)") == "/x/fig.svg"
    assert export.with_chosen_suffix("/x/fig", "PDF vector (*.pdf)") == "/x/fig.pdf"
    assert export.with_chosen_suffix("/x/fig", "") == "/x/fig.png"
    assert export.with_chosen_suffix("/x/fig.pdf", "SVG vector (*.svg)") == "/x/fig.pdf"  # typed: kept
    assert export.with_chosen_suffix("", "SVG vector (*.svg)") == ""  # cancelled


def _paint(painter: QPainter, rect: QRectF) -> None:
    """A red square in the top-left quarter, a blue line, a word."""
    painter.fillRect(QRectF(rect.width() * 0.1, rect.height() * 0.1, rect.width() * 0.3, rect.height() * 0.3),
                     QColor(220, 20, 20))
    painter.setPen(QPen(QColor(20, 20, 220), 3))
    painter.drawLine(QPointF(rect.width() * 0.5, rect.height() * 0.9), QPointF(rect.width() * 0.9, rect.height() * 0.5))
    painter.setPen(QColor("black"))
    painter.drawText(QRectF(0, rect.height() * 0.5, rect.width(), 20), Qt.AlignmentFlag.AlignCenter, "figure")


def test_one_paint_function_makes_png_svg_and_pdf(qapp, tmp_path):
    w, h = 300, 200
    png = export.save_painting(tmp_path / "f.png", w, h, _paint, title="A figure", scale=2.0)
    image = QImage(str(png))
    assert (image.width(), image.height()) == (600, 400) and image.text("Title") == "A figure"
    assert colour_at(image, 150, 100) == (220, 20, 20)  # the square, at 2 px per unit
    assert colour_at(image, 590, 10) == (255, 255, 255)  # white elsewhere

    svg = export.save_painting(tmp_path / "f.svg", w, h, _paint, title="A figure")
    root = svg_tree(svg)
    assert root.get("viewBox").split() == ["0", "0", str(w), str(h)]
    assert tags(root, "title")[0].text == "A figure"
    assert filled_rects(root) == ["#dc1414"] and tags(root, "polyline") + tags(root, "path")
    assert [t.text for t in tags(root, "text")] == ["figure"] and not tags(root, "image")
    from PySide6.QtGui import QFontInfo

    real = QFontInfo(qapp.font()).family()  # the font the text was laid out with, then a generic family
    assert {e.get("font-family") for e in root.iter() if e.get("font-family")} == {f"'{real}', sans-serif"}
    rendered = svg_to_image(svg)  # the same geometry as the PNG
    assert colour_at(rendered, 150, 100) == (220, 20, 20) and colour_at(rendered, 590, 10) == (255, 255, 255)

    check_pdf(export.save_painting(tmp_path / "f.pdf", w, h, _paint, title="A figure"), w, h)


def test_bad_suffix_and_unwritable_paths_raise_one_line_and_leave_nothing(qapp, tmp_path, monkeypatch):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_folder").mkdir()
    (tmp_path / "a_folder.png").mkdir()
    cases = {tmp_path / "f.gif": "format", tmp_path / "missing" / "f.svg": "does not exist",
             tmp_path / "a_file" / "f.pdf": "is not a folder", tmp_path / "a_folder": "format",
             tmp_path / "a_folder.png": "is a folder"}
    for path, phrase in cases.items():
        with pytest.raises(DenseguiError) as info:
            export.save_painting(path, 100, 80, _paint)
        assert len(str(info.value).splitlines()) == 1 and phrase in str(info.value), str(info.value)

    # A write that fails at the last step (the rename): no temporary, no partial file, the old file kept.
    target = tmp_path / "kept.svg"
    target.write_text("old")
    target.chmod(0o640)

    def refuse(*_args):
        raise PermissionError(13, "Permission denied")

    with monkeypatch.context() as m:
        m.setattr(export.os, "replace", refuse)
        with pytest.raises(DenseguiError, match="Permission denied"):
            export.save_painting(target, 100, 80, _paint)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "a_folder", "a_folder.png", "kept.svg"]
    assert target.read_text() == "old"
    export.save_painting(target, 100, 80, _paint)  # overwriting keeps the file's mode
    assert target.read_bytes().startswith(b"<?xml") and target.stat().st_mode & 0o777 == 0o640


# ------------------------------------------------------------------ the channel plots
def test_clip_x_cuts_curves_at_the_frame():
    from densegui.gui.layer_plots import clip_x

    x = np.arange(10.0)
    xs, ys = clip_x(x, 2 * x, 2.5, 6.5)  # both ends cut: they end on the borders, on the line
    assert xs.tolist() == [2.5, 3, 4, 5, 6, 6.5] and ys.tolist() == [5, 6, 8, 10, 12, 13]
    assert clip_x(x, 2 * x, -1, 20)[0].tolist() == x.tolist()  # inside: unchanged
    xs, ys = clip_x(x, np.where(x == 2, np.nan, x), 2.5, 20)  # a gap stays a gap
    assert xs[0] == 2.5 and np.isnan(ys[0]) and ys[1:].tolist() == list(range(3, 10))
    xs, ys = clip_x(x[::-1], x, 2.5, 6.5)  # not ascending: points outside become gaps
    assert np.isnan(ys[(xs < 2.5) | (xs > 6.5)]).all() and not np.isnan(ys[(xs >= 2.5) & (xs <= 6.5)]).any()


@pytest.fixture
def channel_panel(qtbot):
    from densegui.core.arch.registry import get_preset, layer_table
    from densegui.gui.channel_panel import ChannelPanel

    panel = ChannelPanel()
    qtbot.addWidget(panel)
    panel.set_table(layer_table(get_preset("densenet121")))
    panel.set_baseline(layer_table(get_preset("densenet169")))  # longer: its curves must stop at the frame
    return panel


def test_channel_plot_exports_are_vector(channel_panel, tmp_path):
    panel = channel_panel
    w, h = panel.graphics.plot_size("params")
    svg = panel.export("params", tmp_path / "params.svg")
    root = svg_tree(svg)
    assert [float(v) for v in root.get("viewBox").split()] == [0, 0, w, h]
    lines = [g for g in root.iter(f"{SVG}g") if any(c.tag == f"{SVG}polyline" for c in g)]
    assert any(g.get("stroke") == "#2ca02c" for g in lines)  # the parameter curve (green)
    assert any(g.get("stroke") == "#7f7f7f" for g in lines)  # the baseline (grey, dashed)
    texts = [t.text for t in tags(root, "text")]
    assert any(t.startswith("Parameters per layer") for t in texts) and "block 1" in texts
    assert not tags(root, "image")
    # Clipped to the frame although the generator ignores QPainter's clip: no point right of it.
    frame_right = panel.graphics._data_rect(QRectF(0, 0, w, h)).right()
    xs = [float(p.split(",")[0]) for poly in tags(root, "polyline") for p in poly.get("points").split()]
    assert xs and max(xs) <= frame_right + 0.01

    check_pdf(panel.export("params", tmp_path / "params.pdf"), w, h)
    image = QImage(str(panel.export("params", tmp_path / "params.png", width=900)))
    assert image.width() == 900 and image.height() == round(h * 900 / w)
    greens = sum(abs(c.red() - 44) < 30 and abs(c.green() - 160) < 30 and abs(c.blue() - 44) < 30
                 for c in (image.pixelColor(x, y) for x in range(0, 900, 3) for y in range(0, image.height(), 3)))
    assert greens > 20
    with pytest.raises(DenseguiError, match="format"):
        panel.export("params", tmp_path / "params.bmp")


def test_channel_export_button_saves_the_chosen_format_and_says_so(qtbot, channel_panel, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    panel = channel_panel
    assert panel.export_button.text() == "Export…"
    # What the dialog's answer leads to: save, then "Saved <path>" in the panel's line.
    path = str(tmp_path / "macs.pdf")
    assert panel.save_export("macs", path)
    assert panel.hover_label.text() == f"Saved {path}" and Path(path).read_bytes().startswith(b"%PDF")
    bad = str(tmp_path / "missing" / "macs.svg")
    assert not panel.save_export("macs", bad)
    assert panel.hover_label.text().startswith(f"Could not export {bad}: ") and "does not exist" in panel.hover_label.text()

    # The button itself, with the dialog answered: no suffix typed, the SVG filter chosen.
    asked = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda *a: (asked.append(a) or str(tmp_path / "chosen"), "SVG vector (*.svg)"))
    panel.export_combo.setCurrentIndex(panel.export_combo.findData("activations"))
    qtbot.mouseClick(panel.export_button, Qt.MouseButton.LeftButton)
    assert asked[0][3].startswith("PDF vector") and "SVG vector (*.svg)" in asked[0][3]  # last format first
    assert panel.hover_label.text() == f"Saved {tmp_path / 'chosen.svg'}"
    assert any((t.text or "").startswith("Saved activations") for t in tags(svg_tree(tmp_path / "chosen.svg"), "text"))


# ------------------------------------------------------------------ the reuse heatmaps
def synthetic_blocks() -> list[BlockReuse]:
    """Two blocks shaped as a DenseNet's (source s feeds layers after it, every source the last
    target), random values, a few cells within the noise floor."""
    rng = np.random.default_rng(3)
    blocks = []
    for b, (depth, final) in enumerate(((3, "transition 1"), (5, "classifier")), 1):
        matrix = rng.uniform(0.05, 1.0, (depth + 1, depth + 1))
        for s in range(depth + 1):
            matrix[s, :depth][np.arange(depth) < s] = np.nan
        noise = (rng.random(matrix.shape) < 0.3) & ~np.isnan(matrix)
        blocks.append(BlockReuse(b, ["input"] + [f"layer {i}" for i in range(1, depth + 1)],
                                 [f"layer {i}" for i in range(1, depth + 1)] + [final], matrix,
                                 [(i, i + 1) for i in range(depth + 1)], within_noise=noise))
    return blocks


def expected_colours(blocks, normalisation: str, cmap: str) -> list[str]:
    import pyqtgraph as pg

    from densegui.gui.heatmap import color_levels

    lo, hi = color_levels(blocks, normalisation)
    out = []
    for b in blocks:
        shown = normalise(b.matrix, normalisation)
        values = np.clip((shown[~np.isnan(shown)] - lo) / (hi - lo), 0, 1)
        out += [QColor(*c[:3]).name() for c in pg.colormap.get(cmap).map(values, mode="byte").tolist()]
    return out


def test_heatmaps_as_vector_svg_and_pdf_and_png(qapp, tmp_path):
    from densegui.gui.heatmap import HeatmapFigure, noise_cells_of, render

    blocks = synthetic_blocks()
    connected = sum(int((~np.isnan(b.matrix)).sum()) for b in blocks)
    options = {"normalisation": "column-max", "cmap": "inferno", "title": "small.pt: mean |w|"}
    root = svg_tree(render(blocks, tmp_path / "r.svg", **options))
    fills = filled_rects(root)
    assert len(fills) >= connected
    # One rectangle per connected cell, in the view's colours (colour map of the normalised value).
    assert sorted(fills) == sorted(expected_colours(blocks, "column-max", "inferno"))
    assert len(tags(root, "circle")) == sum(len(noise_cells_of(b)) for b in blocks)  # the noise dots
    texts = {t.text for t in tags(root, "text")}
    assert {"Block 1", "Block 2", "source", "target", "T1", "cls", "in", "small.pt: mean |w|"} <= texts
    assert "mean |w| ÷ column max" in texts and not tags(root, "image")
    assert tags(root, "linearGradient")  # the colour bar

    figure = HeatmapFigure(blocks, **options)
    w, h = figure.size()
    check_pdf(render(blocks, tmp_path / "r.pdf", **options), w, h)

    image = QImage(str(render(blocks, tmp_path / "r.png", **options)))
    assert (image.width(), image.height()) == (2 * w, 2 * h)
    rendered = svg_to_image(tmp_path / "r.svg")
    (grid, cell), _second = figure.grids(QRectF(0, 0, w, h))
    first = expected_colours(blocks[:1], "column-max", "inferno")[0]  # block 1, input → layer 1
    inside = (2 * (grid.left() + cell / 4), 2 * (grid.top() + cell / 4))  # (clear of a noise dot)
    assert QColor(*colour_at(image, *inside)).name() == first == QColor(*colour_at(rendered, *inside)).name()
    empty = (2 * (grid.left() + cell / 2), 2 * (grid.top() + 1.5 * cell))  # layer 1 → layer 1: no connection
    assert colour_at(image, *empty) == (255, 255, 255)

    quiet = svg_tree(render(blocks, tmp_path / "quiet.svg", show_noise=False, normalisation="raw", cmap="viridis"))
    assert not tags(quiet, "circle") and sorted(filled_rects(quiet)) == sorted(expected_colours(blocks, "raw", "viridis"))
    for bad, phrase in (({"cmap": "no-such-map"}, "colour map"), ({"normalisation": "loud"}, "normalisation")):
        with pytest.raises(DenseguiError, match=phrase):
            render(blocks, tmp_path / "x.svg", **bad)
    with pytest.raises(DenseguiError, match="format"):
        render(blocks, tmp_path / "x.eps")
    with pytest.raises(DenseguiError, match="does not exist"):
        render(blocks, tmp_path / "nowhere" / "x.pdf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quiet.svg", "r.pdf", "r.png", "r.svg"]


def test_reuse_panel_export_offers_three_formats_and_says_so(qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    from densegui.gui.heatmap import HeatmapFigure, figure_title
    from densegui.gui.reuse_panel import ReusePanel

    panel = ReusePanel(load_default=False)
    qtbot.addWidget(panel)
    blocks = synthetic_blocks()
    panel.blocks = blocks  # (what a finished load shows)
    panel.view.set_blocks(blocks)
    panel.noise_check.setChecked(False)
    path = str(tmp_path / "heat.svg")
    assert panel.save_export(path)
    assert panel.hover_label.text() == f"Saved {path}"
    root = svg_tree(Path(path))
    assert len(filled_rects(root)) >= sum(int((~np.isnan(b.matrix)).sum()) for b in blocks)
    assert not tags(root, "circle")  # the shown options: noise dots off
    assert not panel.save_export(str(tmp_path / "heat.tiff"))
    assert panel.message_label.isVisibleTo(panel) and "format" in panel.message_label.text()

    # The button, with the dialog answered: no suffix typed, the PDF filter chosen.
    asked = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda *a: (asked.append(a[3]) or str(tmp_path / "fig"), export.FILTERS["pdf"]))
    panel.export_button.setEnabled(True)  # (a load enables it)
    qtbot.mouseClick(panel.export_button, Qt.MouseButton.LeftButton)
    assert asked[0].split(";;") == [export.FILTERS[f] for f in ("svg", "png", "pdf")]  # the last format first
    assert panel.hover_label.text() == f"Saved {tmp_path / 'fig.pdf'}"
    title = figure_title("reuse", panel.measure, panel.view.normalisation, show_noise=False)
    check_pdf(tmp_path / "fig.pdf", *HeatmapFigure(blocks, title=title, show_noise=False).size())
    panel.shutdown()
