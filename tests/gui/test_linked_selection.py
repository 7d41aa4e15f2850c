"""Linked selection (issue #22 item 3): the Channels and Summary tabs report the layer a click lands
on (``layerSelected``, a module path) and mark a layer they are told of (``select_path``, which
never emits), for a DenseNet, a ResNet and the toy family. Real mouse events; pixels for the
channel plots' marker; the highlighted line's own text for the summary."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.explorer import TIMEOUT
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QImage, QTextCursor

from densegui.core.arch import registry as arch
from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.gui.channel_panel import ChannelPanel
from densegui.gui.layer_plots import SELECTION_FILL, SELECTION_LINE
from densegui.gui.summary_panel import SummaryPanel

LEFT = Qt.MouseButton.LeftButton
# Small enough for a fast summary at depth 4, deep enough for "features.denseblock2.denselayer7".
SMALL = DenseNetConfig(growth_rate=4, block_depths=(2, 7, 2), bn_size=2, input_size=32, num_classes=10).validate()


@pytest.fixture
def shown(make_panel):
    return lambda cls: make_panel(cls, size=(1100, 600))


# ------------------------------------------------------------------ channel plots
def pixels(image: QImage) -> np.ndarray:
    """The image as rows of 0xAARRGGBB."""
    image = image.convertToFormat(QImage.Format.Format_RGB32)
    rows = np.frombuffer(image.constBits(), np.uint32, image.sizeInBytes() // 4)
    return rows.reshape(image.height(), image.bytesPerLine() // 4)[:, :image.width()].copy()


def row_pixel(panel: ChannelPanel, key: str, name: str) -> QPoint:
    """The pixel of row ``name`` in plot ``key``, halfway up its data area."""
    index = [r.name for r in panel.table.rows].index(name)
    x = panel.graphics.map_to_widget(key, float(panel.series(key)[0][index]), 0.0).x()
    return QPoint(round(x), round(panel.graphics.data_rect(key).center().y()))


@pytest.mark.parametrize("preset, names", [
    ("densenet121", ["features.denseblock2.denselayer7", "features.transition2", "classifier", "features.conv0"]),
    ("resnet50", ["layer3.4", "conv1", "fc", "layer1.0"]),
])
def test_a_click_on_a_plot_selects_the_row_under_it(qtbot, shown, preset, names):
    panel = shown(ChannelPanel)
    panel.set_table(arch.layer_table(arch.get_preset(preset)))
    for name, key in zip(names, ("params", "macs", "activations", "channels")):
        with qtbot.waitSignal(panel.layerSelected, timeout=1000) as got:
            qtbot.mouseClick(panel.graphics, LEFT, pos=row_pixel(panel, key, name))
        assert got.args == [name] and panel.selected_path == name
        assert panel.hover_label.text().startswith(f"Selected: {name}  ·")  # not hovering: the selection's values
    # beside the data areas (on the left axis): the selection is cleared
    r = panel.graphics.data_rect("params")
    with qtbot.waitSignal(panel.layerSelected, timeout=1000) as got:
        qtbot.mouseClick(panel.graphics, LEFT, pos=QPoint(round(r.left()) - 30, round(r.center().y())))
    assert got.args == [""] and panel.selected_path is None and panel.graphics.selection is None


@pytest.mark.parametrize("preset, name, gone", [
    ("densenet121", "features.denseblock3.denselayer20", {"block_depths": (6, 12, 12, 16)}),
    ("resnet50", "layer3.4", {"stage_depths": (3, 4, 4, 3)}),
])
def test_select_path_draws_a_marker_over_the_cached_frame(qtbot, shown, preset, name, gone):
    panel = shown(ChannelPanel)
    cfg = arch.get_preset(preset)
    panel.set_table(arch.layer_table(cfg))
    before = pixels(panel.graphics.grab().toImage())
    frame = panel.graphics._frame
    with qtbot.assertNotEmitted(panel.layerSelected):
        panel.select_path(name)
    after = pixels(panel.graphics.grab().toImage())
    assert panel.graphics._frame is frame  # selecting redraws no titles, axes or shading
    index = [r.name for r in panel.table.rows].index(name)
    x = float(panel.series("params")[0][index])
    for key in ("channels", "params", "macs", "activations"):
        r = panel.graphics.data_rect(key)
        top, bottom = round(r.top()) + 1, round(r.bottom()) - 1
        cx = round(panel.graphics.map_to_widget(key, x, 0.0).x())
        marker = after[top:bottom, cx - 3:cx + 3]
        assert not np.isin(before[top:bottom, cx - 3:cx + 3], [SELECTION_FILL.rgb(), SELECTION_LINE.rgb()]).any()
        assert (marker == SELECTION_LINE.rgb()).sum() > 0.5 * 2 * (bottom - top), key  # the centre line (curves cross it)
        assert (marker == SELECTION_FILL.rgb()).any(), key  # the band around it
        changed = np.flatnonzero((after != before)[top:bottom, round(r.left()):round(r.right())].any(axis=0))
        step = r.width() / (panel.graphics.x_range[1] - panel.graphics.x_range[0])  # one row, in pixels
        assert changed.size and np.abs(changed + round(r.left()) - cx).max() <= max(3, step / 2 + 2), key
    assert panel.hover_label.text().startswith(f"Selected: {name}  ·")

    panel.select_path("no.such.layer")  # unknown: cleared, every pixel back
    assert panel.selected_path is None and (pixels(panel.graphics.grab().toImage()) == before).all()
    panel.select_path(name)
    panel.set_table(arch.layer_table(cfg.replace(growth_rate=16) if preset == "densenet121" else cfg.replace(widths=(32, 64, 128, 256))))
    assert panel.selected_path == name  # a new table that has the row keeps it
    panel.set_table(arch.layer_table(cfg.replace(**gone)))
    assert panel.selected_path is None and panel.graphics.selection is None  # one without it drops it


# ------------------------------------------------------------------ summary
def summarised(qtbot, panel: SummaryPanel, cfg) -> None:
    with qtbot.waitSignal(panel.summaryUpdated, timeout=TIMEOUT):
        panel.set_config(cfg)


def line_below(lines: list[str], *needles: str) -> int:
    """The first line containing the last needle, below the first containing the one before, …"""
    at = -1
    for needle in needles:
        at = next(i for i in range(at + 1, len(lines)) if needle in lines[i])
    return at


def click_line(qtbot, panel: SummaryPanel, block: int) -> None:
    view = panel.text_view
    cursor = QTextCursor(view.document().findBlockByNumber(block))
    view.setTextCursor(cursor)
    view.ensureCursorVisible()
    rect = view.cursorRect(cursor)
    qtbot.mouseClick(view.viewport(), LEFT, pos=QPoint(rect.left() + 60, rect.center().y()))


def highlighted(panel: SummaryPanel) -> str | None:
    sel = panel.text_view.extraSelections()
    return sel[0].cursor.block().text() if sel else None


def in_view(panel: SummaryPanel, block: int) -> bool:
    view = panel.text_view
    first = view.firstVisibleBlock().blockNumber()
    return first <= block < first + view.viewport().height() // view.fontMetrics().lineSpacing()


def test_a_click_on_a_summary_line_selects_its_layer(qtbot, shown):
    panel = shown(SummaryPanel)
    panel.depth_spin.setValue(4)  # every conv inside a dense layer
    summarised(qtbot, panel, SMALL)
    lines = panel.text().splitlines()
    for needles, unit in [
        (("(denseblock2)", "(denselayer7)", "Conv2d (conv1)"), "features.denseblock2.denselayer7"),
        (("(denseblock2)", "(denselayer7)"), "features.denseblock2.denselayer7"),
        (("(transition2)", "Conv2d (conv)"), "features.transition2"),
        (("(denseblock1)", "(denselayer2)", "BatchNorm2d (norm2)"), "features.denseblock1.denselayer2"),
        (("Linear (classifier)",), "classifier"),
    ]:
        with qtbot.waitSignal(panel.layerSelected, timeout=1000) as got:
            click_line(qtbot, panel, line_below(lines, *needles))
        assert got.args == [unit] and panel.selected_path == unit
        assert f"({unit.rsplit('.', 1)[-1]})" in highlighted(panel)  # the layer's own line
    with qtbot.assertNotEmitted(panel.layerSelected):  # the header and a block (several layers)
        click_line(qtbot, panel, line_below(lines, "Layer (type"))
        click_line(qtbot, panel, line_below(lines, "DenseBlock (denseblock2)"))
    assert panel.selected_path == "classifier"


def test_select_path_highlights_the_layers_line(qtbot, shown):
    panel = shown(SummaryPanel)
    summarised(qtbot, panel, arch.get_preset("densenet121"))
    with qtbot.assertNotEmitted(panel.layerSelected):
        for needles, path in [(("(denseblock3)", "(denselayer20)"), "features.denseblock3.denselayer20"),
                              (("(denseblock2)", "(denselayer7)"), "features.denseblock2.denselayer7"),
                              (("(transition2)",), "features.transition2")]:
            panel.text_view.verticalScrollBar().setValue(0)
            panel.select_path(path)
            block = line_below(panel.text().splitlines(), *needles)
            assert highlighted(panel) == panel.text().splitlines()[block] and in_view(panel, block), path
        panel.filter_edit.setText("denselayer")  # the transition's line is filtered out: nothing highlighted
        assert highlighted(panel) is None
        panel.filter_edit.clear()
        assert "Transition (transition2)" in highlighted(panel)
        panel.select_path("features.denseblock2.denselayer7")
        summarised(qtbot, panel, arch.get_preset("densenet169"))  # it has that layer: highlighted again
        block = line_below(panel.text().splitlines(), "(denseblock2)", "(denselayer7)")
        assert panel.selected_path == "features.denseblock2.denselayer7"
        assert highlighted(panel) == panel.text().splitlines()[block]
        summarised(qtbot, panel, arch.get_preset("resnet50"))  # no such layer: dropped
        assert panel.selected_path is None and highlighted(panel) is None
        panel.select_path("layer3.4")
        block = line_below(panel.text().splitlines(), "Sequential (layer3)", "Bottleneck (4)")
        assert highlighted(panel) == panel.text().splitlines()[block] and in_view(panel, block)
        panel.select_path("layer9.1")  # no such module: nothing
        assert panel.selected_path is None and highlighted(panel) is None


def test_both_panels_link_a_family_registered_at_runtime(qtbot, shown, toy_family):
    from densegui.core.analysis.summary import summarize

    cfg = toy_family.presets["toynet-m"].config
    channels = shown(ChannelPanel)
    channels.set_table(arch.layer_table(cfg))
    with qtbot.waitSignal(channels.layerSelected, timeout=1000) as got:
        qtbot.mouseClick(channels.graphics, LEFT, pos=row_pixel(channels, "macs", "stages.1.layers.0"))
    assert got.args == ["stages.1.layers.0"]
    summary = shown(SummaryPanel)
    # The shared background process started before this test registered the family; the worker's
    # own function, run here, stands in for it.
    summary.runner.done.emit(summarize(cfg, depth=4))
    summary.select_path("stages.1.layers.0")
    lines = summary.text().splitlines()
    assert highlighted(summary) == lines[line_below(lines, "Stage (1)", "ConvUnit (0)")]
    with qtbot.waitSignal(summary.layerSelected, timeout=1000) as got:
        click_line(qtbot, summary, line_below(lines, "ConvUnit (stem)", "Conv2d (conv)"))
    assert got.args == ["stem"]
