"""The Feature reuse tab with a timm RDNet file: a heatmap per stage from the weights measure, the
cell read-out naming the block's 1×1 mixing conv, and a one-line message (no job) for the measures
that do not carry over (bn-weights, the data measures, the pruning curve)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.libraries import timm
from PySide6.QtCore import Qt

from densegui.gui.reuse_panel import ReusePanel

timm_lib = timm()
pytestmark = pytest.mark.skipif(timm_lib is None, reason="timm not installed here")
TIMEOUT = 20_000


@pytest.fixture
def panel(qtbot, monkeypatch, tmp_path, widget_leak_check):
    import densegui.core.resources as resources

    monkeypatch.setattr(resources, "resource_path", lambda name: tmp_path / "resources" / name)
    p = ReusePanel()
    qtbot.addWidget(p)
    p.resize(1100, 560)
    p.show()
    yield p
    p.shutdown()
    p.close()
    p.deleteLater()


def test_an_rdnet_checkpoint_in_the_reuse_tab(qtbot, panel, tmp_path):
    torch.manual_seed(2)
    ref = timm_lib.models.rdnet.RDNet(growth_rates=(8, 16), num_blocks_list=(2, 2), block_type=("Block", "BlockESE"),
                                      is_downsample_block=(None, True), num_init_features=16, patch_size=2,
                                      num_classes=4)
    torch.save(ref.state_dict(), tmp_path / "rdnet.pth")
    with qtbot.waitSignal(panel.loadFinished, timeout=TIMEOUT) as blocker:
        panel.load_checkpoint(str(tmp_path / "rdnet.pth"))
    assert blocker.args == [True]
    qtbot.waitUntil(lambda: not panel.is_loading(), timeout=TIMEOUT)
    assert "RDNet, stages 2,2" in panel.info_label.text() and len(panel.view.images) == 2
    # stage 2, block 2 ← block 1: channels 16–31 of its 1×1 expansion (the transition gives 16)
    w = ref.dense_stages[1][2].dense_block1.layers.layers[2].weight.detach().double().abs()
    assert panel.blocks[1].matrix[1, 1] == pytest.approx(float(w[:, 16:32].mean()), rel=1e-9)
    view = panel.view
    pos = view.scene_pos_of(1, 1, 1)
    assert view.cell_at(pos) == (1, 1, 1)
    view.select(*view.cell_at(pos))
    detail = panel.detail_label.text()
    assert "input channels 16–31" in detail
    assert "layer 2's 1×1 conv (dense_stages.1.2.dense_block1.layers.layers.2)" in detail
    view.select(1, 0, 2)  # the classifier column
    assert "the classifier's weight matrix" in panel.detail_label.text()

    shown = panel.blocks
    panel.measure_combo.setCurrentIndex(panel.measure_combo.findData("bn-weights"))
    assert not panel.is_loading() and panel.blocks is shown  # said at once, no job
    text = panel.message_label.text()
    assert panel.message_label.isVisible() and "\n" not in text and "so bn-weights" in text
    assert panel.measure_combo.currentData() == "weights"
    panel.measure_combo.setCurrentIndex(panel.measure_combo.findData("ablation"))
    assert "so ablation cannot be computed" in panel.message_label.text() and not panel.is_loading()
    qtbot.mouseClick(panel.prune_button, Qt.MouseButton.LeftButton)
    assert "so the pruning curve cannot be computed" in panel.message_label.text() and not panel.is_loading()
    assert panel.measure_combo.currentData() == "weights" and not np.isnan(panel.blocks[0].matrix[0, 0])
