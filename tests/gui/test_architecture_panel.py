"""The Architecture tab, driven by real mouse events and checked on its pixels.

Numbers it shows (params, hidden connections' cost) are checked against the built ``nn.Module``."""

from __future__ import annotations

import math
import random
import xml.etree.ElementTree as ET

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor

from densegui.core.arch import registry as arch
from densegui.gui import diagram_layout as dl
from densegui.gui.architecture_panel import ArchitecturePanel
from densegui.gui.diagram import SELECT


@pytest.fixture
def panel(make_panel):
    return make_panel(ArchitecturePanel, size=(1100, 640))


def draw(qtbot, panel, cfg):
    panel.set_config(cfg)
    qtbot.waitUntil(panel.is_up_to_date, timeout=5000)
    panel.view.repaint()
    return panel.view.layout_


def centre(panel, item) -> QPoint:
    return panel.view.widget_rect(item).center().toPoint()


def pixel(panel, point: QPoint) -> QColor:
    image = panel.view.grab().toImage()
    dpr = image.devicePixelRatio()
    return image.pixelColor(int(point.x() * dpr), int(point.y() * dpr))


def ink(image, x0, y0, x1, y1) -> int:
    """Non-white pixels in a widget-coordinate rectangle of a grabbed image."""
    dpr = image.devicePixelRatio()
    n = 0
    for y in range(int(y0 * dpr), int(y1 * dpr), 2):
        for x in range(int(x0 * dpr), int(x1 * dpr), 2):
            if 0 <= x < image.width() and 0 <= y < image.height() and image.pixelColor(x, y).lightness() < 235:
                n += 1
    return n


def module_params(model, path: str) -> int:
    return sum(p.numel() for p in model.get_submodule(path).parameters())


@pytest.mark.parametrize("name", ["densenet121", "resnet50"])
def test_every_family_is_drawn_and_hover_reads_the_module(qtbot, panel, name):
    cfg = arch.get_preset(name)
    lay = draw(qtbot, panel, cfg)
    layers = [i for r in lay.rows for i in r.items if i.role == "layer"]
    assert len(layers) == sum(1 for u in arch.plan(cfg).units if u.index is not None)
    item = layers[len(layers) // 2]
    point = centre(panel, item)
    assert pixel(panel, point).lightness() < 200  # a bar is drawn there
    qtbot.mouseMove(panel.view, point)
    qtbot.waitUntil(lambda: item.path in panel.readout.text(), timeout=2000)
    text = panel.readout.text()
    model = arch.build_model(cfg, device="meta")
    n = module_params(model, item.path)
    shown = next(part for part in text.split(" · ") if part.endswith(" params"))
    value, prefix = shown.split()[0], shown.split()[1][0]
    assert math.isclose(float(value) * {"k": 1e3, "M": 1e6, "G": 1e9}.get(prefix, 1), n, rel_tol=5e-3)
    u = item.unit
    assert f"in {u.in_channels}×{u.in_size}×{u.in_size}" in text
    assert "saved for backward" in text


def test_a_click_selects_and_emits_the_module_path(qtbot, panel):
    lay = draw(qtbot, panel, arch.get_preset("densenet121"))
    item = lay.by_path["features.denseblock2.denselayer7"]
    with qtbot.waitSignal(panel.layerSelected, timeout=2000) as sig:
        qtbot.mouseClick(panel.view, Qt.MouseButton.LeftButton, pos=centre(panel, item))
    assert sig.args == ["features.denseblock2.denselayer7"]
    panel.view.repaint()
    rect = panel.view.widget_rect(item)
    edge = QPoint(int(rect.left() - 2 * panel.view.zoom), int(rect.center().y()))
    c = pixel(panel, edge)
    assert abs(c.red() - SELECT.red()) < 60 and c.blue() < 120  # the orange outline
    # selecting from elsewhere: no signal, the outline moves
    other = lay.by_path["features.transition1"]
    with qtbot.assertNotEmitted(panel.layerSelected):
        panel.select_path("features.transition1")
    assert panel.view.selected == other.path


def test_a_big_block_starts_collapsed_and_expands_on_click(qtbot, panel):
    cfg = arch.get_preset("densenet264")
    lay = draw(qtbot, panel, cfg)
    row3 = next(r for r in lay.rows if r.block == 3)
    assert row3.collapsed and row3.depth == 64 > dl.COLLAPSE_OVER
    box = next(i for i in row3.items if i.role == "block")
    before = panel.view.grab().toImage()
    qtbot.mouseClick(panel.view, Qt.MouseButton.LeftButton, pos=centre(panel, box))
    lay = panel.view.layout_
    row3 = next(r for r in lay.rows if r.block == 3)
    assert not row3.collapsed
    assert sum(1 for i in row3.items if i.role == "layer") == 64
    assert len(row3.arcs) == sum(len(u.sources) for u in arch.plan(cfg).units if u.block == 3)
    panel.view.repaint()
    after = panel.view.grab().toImage()
    top = panel.view.to_widget(0, row3.y).y()
    bottom = panel.view.to_widget(0, row3.baseline).y()
    assert ink(after, 0, top, panel.view.width(), bottom) > 2 * ink(before, 0, top, panel.view.width(), bottom)
    # and the header collapses it again
    hx, hy, hw, hh = row3.header
    qtbot.mouseClick(panel.view, Qt.MouseButton.LeftButton,
                     pos=panel.view.to_widget(hx + 30, hy + hh / 2).toPoint())
    assert next(r for r in panel.view.layout_.rows if r.block == 3).collapsed


def test_zoom_and_pan_move_the_drawing(qtbot, panel):
    lay = draw(qtbot, panel, arch.get_preset("densenet121"))
    item = lay.by_path["features.transition2"]
    before = panel.view.widget_rect(item)
    qtbot.mousePress(panel.view, Qt.MouseButton.LeftButton, pos=QPoint(600, 300))
    qtbot.mouseMove(panel.view, QPoint(560, 250))
    qtbot.mouseRelease(panel.view, Qt.MouseButton.LeftButton, pos=QPoint(560, 250))
    moved = panel.view.widget_rect(item)
    assert (moved.x() - before.x(), moved.y() - before.y()) == pytest.approx((-40, -50), abs=1)
    panel.view.zoom_by(2.0)
    assert panel.view.widget_rect(item).width() == pytest.approx(2 * moved.width())
    panel.view.fit()
    assert panel.view.widget_rect(item) == before


def synthetic_reuse(cfg, seed=0):
    rng = random.Random(seed)
    blocks = []
    readers: dict[int, list] = {}
    for u in arch.plan(cfg).units:
        if u.sources:
            readers.setdefault(u.block if u.block is not None else max(readers), []).append(u)
    for block, us in readers.items():
        n = len(us)
        rows = {path: j for j, path in enumerate(us[-1].sources)}  # (the transition/head reads every map)
        matrix = [[float("nan")] * n for _ in range(n)]
        noise = [[False] * n for _ in range(n)]
        for t, u in enumerate(us):
            for src in u.sources:
                matrix[rows[src]][t] = rng.random()
                noise[rows[src]][t] = rng.random() < 0.2
        blocks.append((block, matrix, noise))
    lut = [(round(255 * i / 255), 40, round(255 * (1 - i / 255))) for i in range(256)]  # blue → red
    return {"config": cfg, "label": "a test measure", "lut": lut, "blocks": blocks}


@pytest.mark.parametrize("spec", ["dense", "log"])
def test_reuse_colours_the_arcs_and_hiding_counts_what_the_hidden_connections_carry(qtbot, panel, spec):
    cfg = arch.get_preset("densenet-40-k12").replace(connectivity=spec)
    lay = draw(qtbot, panel, cfg)
    row = lay.rows[0]
    top = panel.view.to_widget(0, row.y + dl.HEADER_H).y()
    bottom = panel.view.to_widget(0, row.baseline - dl.BAR_MAX_H).y()
    plain = panel.view.grab().toImage()
    payload = synthetic_reuse(cfg)
    panel.set_reuse(payload)
    panel.colour_combo.setCurrentIndex(panel.colour_combo.findData("reuse"))
    panel.view.repaint()
    coloured = panel.view.grab().toImage()
    reds = sum(1 for y in range(int(top), int(bottom), 3) for x in range(0, coloured.width(), 3)
               if (c := coloured.pixelColor(x, y)).red() > 150 and c.green() < 120)
    plain_reds = sum(1 for y in range(int(top), int(bottom), 3) for x in range(0, plain.width(), 3)
                     if (c := plain.pixelColor(x, y)).red() > 150 and c.green() < 120)
    assert reds > 50 and plain_reds == 0
    assert "a test measure" in panel.reuse_label.text()

    panel.hide_slider.setValue(50)
    hidden, total, params, macs = panel.hidden_cost()
    # independently: the nn.Module's weight slices that read each hidden feature map
    model = arch.build_model(cfg, device="meta")
    want_n = want_p = want_m = 0
    n_total = 0
    for block, matrix, _noise in payload["blocks"]:
        readers = [u for u in arch.plan(cfg).units if u.sources and (u.block == block or
                                                                       (u.block is None and block == 3))]
        rows = {path: j for j, path in enumerate(readers[-1].sources)}
        for t, u in enumerate(readers):
            start = 0
            for src, ch in zip(u.sources, u.source_channels, strict=True):
                n_total += 1
                if matrix[rows[src]][t] < 0.5:
                    want_n += 1
                    mixer = model.get_submodule(u.mixer)
                    w = mixer.weight[:, start:start + ch]
                    want_p += w.numel() + 2 * ch  # and the pre-activation BatchNorm's two vectors
                    want_m += w.numel() * (u.in_size ** 2 if w.dim() == 4 else 1)  # (1×1 convs, stride 1)
                start += ch
    assert (hidden, total, params, macs) == (want_n, n_total, want_p, want_m)
    assert f"{hidden:,} of {total:,} connections" in panel.reuse_label.text()
    # every drawn arc has its own cell's value (a sparse layer's sources are rows of the whole block)
    values = {(b, s, t): m[s][t] for b, m, _ in payload["blocks"] for s in range(len(m)) for t in range(len(m))}
    for r in panel.view.layout_.rows:
        whole = [i.path for i in r.items if i.role in ("port", "unit")][:1] + \
                [i.path for i in r.items if i.role == "layer"]
        for a in r.arcs:
            assert whole[a.source] == a.src.path or (a.source == 0 and a.src.role in ("port", "unit"))
            assert values[(r.block, a.source, a.target)] == values[(r.block, a.source, a.target)]  # not NaN
    panel.view.repaint()
    thinned = panel.view.grab().toImage()
    assert ink(thinned, 0, top, thinned.width(), bottom) < ink(coloured, 0, top, coloured.width(), bottom)


def test_reuse_of_another_network_says_so(qtbot, panel):
    draw(qtbot, panel, arch.get_preset("densenet121"))
    panel.set_reuse(synthetic_reuse(arch.get_preset("densenet-40-k12")))
    panel.colour_combo.setCurrentIndex(panel.colour_combo.findData("reuse"))
    assert panel.view.colouring is None
    assert "another network" in panel.reuse_label.text()


def test_the_baseline_is_a_faded_outline(qtbot, panel):
    lay = draw(qtbot, panel, arch.get_preset("densenet121"))
    row = next(r for r in lay.rows if r.block == 3)
    right = panel.view.to_widget(row.right + 40, row.baseline - 5)
    assert pixel(panel, right.toPoint()).lightness() > 245  # nothing past the row's end
    panel.set_baseline(arch.get_preset("densenet169"))  # block 3: 32 layers, 24 in densenet121
    qtbot.waitUntil(lambda: panel.view.baseline is not None, timeout=2000)
    panel.view.repaint()
    image = panel.view.grab().toImage()
    end = panel.view.to_widget(row.right, row.baseline - 20).x()
    far = panel.view.to_widget(next(r for r in panel.view.baseline.rows if r.block == 3).right, 0).x()
    assert ink(image, end + 4, panel.view.to_widget(0, row.y).y(), far, panel.view.to_widget(0, row.baseline).y()) > 5


@pytest.mark.parametrize("suffix", ["svg", "pdf", "png"])
def test_export_is_vector_where_it_should_be(qtbot, panel, tmp_path, suffix):
    draw(qtbot, panel, arch.get_preset("densenet121"))
    out = tmp_path / f"net.{suffix}"
    assert panel.save_to(str(out))
    assert f"Saved {out}" in panel.readout.text()
    data = out.read_bytes()
    if suffix == "svg":
        root = ET.fromstring(data)
        tags = [e.tag.rsplit("}", 1)[-1] for e in root.iter()]
        assert "image" not in tags and "text" in tags
        # every connection is a cubic curve of some path, every bar a rect
        cubics = sum(e.get("d", "").count("C") for e in root.iter() if e.tag.endswith("path"))
        assert cubics >= sum(len(r.arcs) for r in panel.view.layout_.rows) == 597
        assert tags.count("rect") >= 58
    elif suffix == "pdf":
        assert data.startswith(b"%PDF") and len(data) > 5000
    else:
        assert data.startswith(b"\x89PNG")
    assert not panel.save_to(str(tmp_path / "missing" / "x.svg"))
    assert panel.readout.text().startswith("Could not export")


def test_a_selection_that_no_longer_exists_is_cleared(qtbot, panel):
    draw(qtbot, panel, arch.get_preset("densenet121"))
    panel.select_path("features.denseblock3.denselayer20")
    assert "in 864×14×14" in panel.readout.text()
    draw(qtbot, panel, arch.get_preset("densenet-40-k12"))  # 12 layers per block
    assert panel.view.selected == "" and "denselayer20" not in panel.readout.text()
    panel.select_path("features.denseblock2.denselayer3")
    before = panel.readout.text()
    draw(qtbot, panel, arch.get_preset("densenet-40-k12").replace(growth_rate=24))
    assert panel.view.selected == "features.denseblock2.denselayer3" and panel.readout.text() != before
