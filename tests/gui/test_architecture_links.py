"""The Architecture tab linked to the Channels and Summary tabs in the window (real mouse clicks)."""

from __future__ import annotations

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
