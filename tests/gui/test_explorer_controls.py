"""The explorer's controls driven through their real widgets (pytest-qt, offscreen): the window's
structure, sliders, presets, block count and toggles, the other panels' wiring.

Every number is checked against an independent computation (tests/helpers/reference.py):
parameters by counting the tensors of a model built on the meta device, MACs with forward hooks
on that model, channels by the paper's formula.
"""

from __future__ import annotations

from helpers.explorer import TIMEOUT, label, wait_summary
from helpers.reference import count_macs, count_params, final_channels
from PySide6.QtWidgets import QComboBox, QWidget

from densegui.core.arch.densenet.config import PRESETS

from densegui.core.arch.registry import get_preset


def test_structure_and_initial_numbers(qtbot, explorer):
    w = explorer
    for name in ("presetCombo", "growthRateSlider", "compressionSlider", "bottleneckToggle", "bnSizeSlider",
                 "blockCountSpin", "blockDepthSlider1", "blockDepthSlider4", "stemCombo", "inputSizeSpin",
                 "paramsLabel", "summaryPanel", "channelPanel", "architecturePanel"):
        found = w.findChild(QWidget, name)
        assert found is not None, name
        assert found.toolTip() or name in ("paramsLabel", "summaryPanel", "channelPanel", "architecturePanel"), \
            f"{name} has no tooltip"
    assert w.findChild(QWidget, "blockDepthSlider5") is None
    tabs = [w.tabs.tabText(i) for i in range(w.tabs.count())]
    assert tabs[:3] == ["Architecture", "Channels", "Summary"]
    assert w.current_panel() is w.architecture_panel  # the network itself is what a new window shows
    cfg = get_preset("densenet121")
    assert w.config == cfg
    assert label(w, "paramsLabel").text() == f"{count_params(cfg):,}" == "7,978,856"
    assert label(w, "macsLabel").text() == f"{count_macs(cfg) / 1e9:.3f} G"
    assert label(w, "channelsLabel").text() == "1,024"
    wait_summary(qtbot, w)
    assert "Total params: 7,978,856" in w.summary_panel.text()


def test_slider_updates_params_label_and_summary(qtbot, explorer):
    w = explorer
    wait_summary(qtbot, w)
    slider = w.findChild(QWidget, "growthRateSlider")
    with qtbot.waitSignal(w.summary_panel.summaryUpdated, timeout=TIMEOUT) as blocker:
        slider.setValue(12)
        # the headline synchronously; the plots in the next event-loop pass; both before the summary
        expected = get_preset("densenet121").replace(growth_rate=12)
        n = count_params(expected)
        assert label(w, "paramsLabel").text() == f"{n:,}"
        qtbot.waitUntil(w.plots_up_to_date, timeout=1000)
        assert w.channel_panel.table.config == expected
        assert w.channel_panel.series("in")[1].max() == max(r.in_channels for r in w.table.rows)
    result = blocker.args[0]
    assert result.config == expected
    assert result.total_params == n
    assert f"Total params: {n:,}" in w.summary_panel.text()
    assert w.findChild(QComboBox, "presetCombo").currentText() == "custom (from densenet121)"

    w.findChild(QWidget, "blockDepthSlider3").setValue(10)
    expected = expected.replace(block_depths=(6, 12, 10, 16))
    assert label(w, "paramsLabel").text() == f"{count_params(expected):,}"
    assert label(w, "macsLabel").text() == f"{count_macs(expected) / 1e9:.3f} G"
    assert label(w, "channelsLabel").text() == f"{final_channels(expected):,}"
    wait_summary(qtbot, w)
    assert w.summary_panel.result.config == expected


def test_presets_block_count_and_toggles(qtbot, explorer, qt_flush):
    w = explorer
    combo = w.findChild(QComboBox, "presetCombo")
    combo.setCurrentIndex(combo.findData("densenet169"))
    assert label(w, "paramsLabel").text() == f"{PRESETS['densenet169'].params:,}"
    assert w.findChild(QWidget, "blockDepthSlider4").value() == 32

    w.findChild(QWidget, "blockCountSpin").setValue(3)
    qt_flush()
    assert w.findChild(QWidget, "blockDepthSlider4") is None
    expected = get_preset("densenet169").replace(block_depths=(6, 12, 32))
    assert w.config == expected
    assert label(w, "paramsLabel").text() == f"{count_params(expected):,}"
    assert combo.currentText() == "custom (from densenet169)"

    w.findChild(QWidget, "bottleneckToggle").setChecked(False)
    assert not w.findChild(QWidget, "bnSizeSlider").isEnabled()
    w.findChild(QWidget, "stemCombo").setCurrentText("cifar")
    expected = expected.replace(bottleneck=False, stem="cifar")
    assert w.config == expected
    assert label(w, "paramsLabel").text() == f"{count_params(expected):,}"

    w.findChild(QWidget, "memoryEfficientToggle").setChecked(True)
    assert w.config.memory_efficient
    assert "efficient on" in label(w, "memoryDetail").text()


def test_other_panels_follow_the_contract_and_are_wired(qtbot, explorer):
    from densegui.gui.panel import Panel

    w = explorer
    titles = [w.tabs.tabText(i) for i in range(w.tabs.count())]
    for key, title in (("reusePanel", "Feature reuse"), ("probePanel", "Timing probe"), ("trainPanel", "Train")):
        assert key in w.panels and title in titles, f"{key} missing"
    assert all(isinstance(p, Panel) for p in w.panels.values())
    # "Send to explorer" from the reuse panel loads the configuration into the controls.
    cfg = get_preset("densenet-bc-100-k12")
    w.panels["reusePanel"].configRequested.emit(cfg)
    assert w.config == cfg
    assert w.findChild(QComboBox, "presetCombo").currentData() == "densenet-bc-100-k12"
    assert label(w, "paramsLabel").text() == f"{count_params(cfg):,}"


def test_startup_objects_are_frozen_but_new_garbage_is_still_collected(qtbot, explorer):
    """A full collection over torch's, pyqtgraph's and Qt's start-up objects took ~150 ms (a
    freeze mid-drag); the window freezes them once. Cycles made later are still collected."""
    import gc
    import weakref

    assert gc.get_freeze_count() > 10_000

    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a
    ref = weakref.ref(a)
    del a, b
    gc.collect()
    assert ref() is None
