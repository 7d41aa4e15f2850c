"""The Architecture tab linked to the Channels and Summary tabs in the window (real mouse clicks)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt


def test_a_click_in_the_diagram_selects_the_row_in_the_other_tabs_and_back(qtbot, explorer):
    w = explorer
    w.resize(1400, 900)
    w.load_preset("densenet121")
    panel = w.architecture_panel
    w.select_tab("architecture")
    qtbot.waitUntil(panel.is_up_to_date, timeout=5000)
    panel.view.repaint()
    item = panel.view.layout_.by_path["features.denseblock3.denselayer5"]
    qtbot.mouseClick(panel.view, Qt.MouseButton.LeftButton, pos=panel.view.widget_rect(item).center().toPoint())
    assert w.channel_panel.selected_path == item.path
    assert w.summary_panel.selected_path == item.path

    # the other way: a click on the channel plots selects here
    w.select_tab("channels")
    qtbot.waitUntil(w.plots_up_to_date, timeout=5000)
    rows = w.channel_panel.table.rows
    index = next(i for i, r in enumerate(rows) if r.name == "features.transition2")
    plots = w.channel_panel.graphics
    lo, hi = w.channel_panel.y_range("params")
    point = plots.map_to_widget("params", index, (lo + hi) / 2).toPoint()
    qtbot.mouseClick(plots, Qt.MouseButton.LeftButton, pos=point)
    assert w.channel_panel.selected_path == "features.transition2"
    assert panel.view.selected == "features.transition2"


def test_selecting_a_layer_inside_a_collapsed_block_expands_it(qtbot, explorer):
    w = explorer
    w.load_preset("densenet264")
    panel = w.architecture_panel
    w.select_tab("architecture")
    qtbot.waitUntil(panel.is_up_to_date, timeout=5000)
    assert next(r for r in panel.view.layout_.rows if r.block == 3).collapsed
    w.select_layer("features.denseblock3.denselayer40", w.summary_panel)
    assert not next(r for r in panel.view.layout_.rows if r.block == 3).collapsed
    assert panel.view.selected == "features.denseblock3.denselayer40"
    assert "features.denseblock3.denselayer40" in panel.readout.text()


def test_the_reuse_tabs_checkpoint_colours_the_diagram(qtbot, explorer):
    import numpy as np

    from densegui.core.analysis.reuse import normalise

    w = explorer
    w.select_tab("reuse")
    reuse = w.reuse_panel
    qtbot.waitUntil(lambda: reuse.loaded is not None, timeout=60_000)
    reuse.norm_combo.setCurrentIndex(reuse.norm_combo.findData("column"))
    reuse._send_config()  # "Send to explorer": the diagram now draws the checkpoint's network
    panel = w.architecture_panel
    w.select_tab("architecture")
    qtbot.waitUntil(panel.is_up_to_date, timeout=5000)
    panel.colour_combo.setCurrentIndex(panel.colour_combo.findData("reuse"))
    c = panel.view.colouring
    assert c is not None and reuse.loaded.path.endswith(".pt") and "column" in c.label
    for b in reuse.blocks:  # every connection of every block, at the heatmap's values
        want = normalise(b.matrix, "column")
        for (s, t), v in np.ndenumerate(want):
            assert (c.values.get((b.block, s, t)) is None) == bool(np.isnan(v))
            if not np.isnan(v):
                assert c.values[(b.block, s, t)] == pytest.approx(v)
    n_noise = sum(int((b.within_noise & ~np.isnan(b.matrix)).sum()) for b in reuse.blocks if b.within_noise is not None)
    assert len(c.noise) == n_noise
    # pixels: the arcs carry the colour map's colours (viridis: no blue-only pixels in structure mode)
    panel.view.repaint()
    image = panel.view.grab().toImage()
    row = panel.view.layout_.rows[0]
    y0 = int(panel.view.to_widget(0, row.y + 30).y())
    y1 = int(panel.view.to_widget(0, row.baseline - 52).y())
    lut = {tuple(x) for x in c.lut}
    hits = sum(1 for y in range(y0, y1, 2) for x in range(0, image.width(), 2)
               if min(sum(abs(a - b) for a, b in zip(image.pixelColor(x, y).getRgb()[:3], col)) for col in
                      list(lut)[::8]) < 30)
    assert hits > 30
    panel.hide_slider.setValue(100)
    hidden, total, _params, _macs = panel.hidden_cost()
    assert total == len(c.values) and hidden == sum(1 for v in c.values.values() if v < 1.0)
