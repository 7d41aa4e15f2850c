"""The panels the explorer feeds (channel plots, headline, summary, design) with a configuration of
any family: the family's words, its kinds of rows and, where it has none, no memory-efficient figure."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.explorer import TIMEOUT

from densegui.core.arch import registry as arch
from densegui.core.arch.resnet.config import ResNetConfig
from densegui.core.units import human_bytes
from densegui.gui.channel_panel import ChannelPanel, block_spans
from densegui.gui.headline import Headline
from densegui.gui.summary_panel import SummaryPanel

TINY_RESNET = ResNetConfig(stage_depths=(1, 2), widths=(4, 8), block="basic", stem="cifar", stem_width=4,
                           num_classes=10, input_size=16).validate()


@pytest.fixture
def shown(make_panel):
    return lambda cls: make_panel(cls, size=(1100, 600))


def _names(panel: ChannelPanel) -> list[str]:
    return [t[1] for t in panel.graphics.ticks]


def test_channel_plots_name_the_units_in_the_familys_words(shown):
    panel = shown(ChannelPanel)
    panel.set_table(arch.layer_table(arch.get_preset("resnet50")))
    assert _names(panel) == ["stage 1", "stage 2", "stage 3", "stage 4"] and panel.graphics.lines == []
    spans, transitions = block_spans(panel.table)
    assert [(b, hi - lo + 1) for b, lo, hi in spans] == [(1, 3), (2, 4), (3, 6), (4, 3)] and transitions == []
    assert "layer1.0" in panel.hover_index(1) and "256 channels" in panel.hover_index(1)
    # one saved-activations curve, no "efficient" figure: a ResNet has no memory-efficient mode
    assert "efficient" not in panel.hover_index(1)
    assert np.isnan(panel.series("efficient")[1]).all() and np.isfinite(panel.series("naive")[1]).all()
    panel.set_table(arch.layer_table(arch.get_preset("densenet121")))
    assert "efficient" in panel.hover_index(1) and np.isfinite(panel.series("efficient")[1]).all()
    assert _names(panel) == ["block 1", "block 2", "block 3", "block 4"] and len(panel.graphics.lines) == 3
    panel.set_baseline(arch.layer_table(arch.get_preset("resnet50")))  # another family: by depth fraction
    assert panel.x_mode == "depth"


def test_the_headline_of_a_resnet_has_no_memory_efficient_figure(shown):
    head = shown(Headline)
    table = arch.layer_table(arch.get_preset("resnet50"))
    head.set_table(table)
    assert head.params_card.value.text() == "25,557,032"
    assert head.channels_card.value.text() == "2,048"
    assert head.channels_card.detail.text() == "→ 1,000 classes · 16 residual blocks"
    assert head.memory_card.value.text() == human_bytes(table.naive_bytes)
    assert "no memory-efficient mode" in head.memory_card.detail.text()
    assert "ResNets have no memory-efficient mode" in head.memory_card.detail.toolTip()
    assert "Published for resnet50: ImageNet" in head.published_label.text()
    head.set_table(arch.layer_table(arch.get_preset("densenet121")))
    head.set_baseline(table)
    assert head.channels_card.detail.text() == "→ 1,000 classes · 58 dense layers"
    assert "→" in head.memory_card.value.text() and "resnet50" in head.baseline_label.text()


def test_the_summary_of_a_resnet(qtbot, shown):
    panel = shown(SummaryPanel)
    with qtbot.waitSignal(panel.summaryUpdated, timeout=TIMEOUT) as done:
        panel.set_config(TINY_RESNET)
    assert panel.is_up_to_date() and "BasicBlock" in panel.text()
    assert f"Total params: {arch.layer_table(TINY_RESNET).params:,}" in panel.text()
    assert done.args[0] is panel.result


def test_a_family_registered_at_runtime_is_drawn_in_its_words(shown, toy_family):
    cfg = toy_family.presets["toynet-m"].config
    panel = shown(ChannelPanel)
    panel.set_table(arch.layer_table(cfg))
    assert _names(panel) == ["stage 1", "stage 2", "stage 3"]
    head = shown(Headline)
    head.set_table(arch.layer_table(cfg))
    assert head.channels_card.detail.text() == "→ 10 classes · 6 convs"
    assert "ToyNets have no memory-efficient mode" in head.memory_card.detail.toolTip()
