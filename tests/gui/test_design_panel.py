"""The Design space tab: the frontier of both families from published numbers, clicking points,
analytic sweeps checked against the layer table, a measured sweep, and pinning a ResNet baseline."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from PySide6.QtCore import Qt, QTimer
from helpers.explorer import TIMEOUT, label
from helpers.reference import count_params

from densegui.core.arch import registry as arch
from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.arch.family import EXPLORE
from densegui.core.arch.published import published_error
from densegui.core.analysis.design import current_value
from densegui.gui.design_panel import DesignPanel

TINY = DenseNetConfig(growth_rate=4, block_depths=(2, 2), stem="cifar", num_classes=10, input_size=16)


@pytest.fixture
def panel(make_panel):
    return make_panel(DesignPanel, size=(1300, 700))


def test_frontier_shows_every_family_at_its_published_error(panel):
    panel.dataset_combo.setCurrentIndex(panel.dataset_combo.findData("ImageNet"))
    panel.x_combo.setCurrentIndex(panel.x_combo.findData("params"))
    points = panel.frontier_points()
    families = {p[1] for p in points}
    assert families == {"densenet", "resnet", "rdnet"}
    for name, family, x, y in points:
        assert x == arch.layer_table(arch.get_preset(name)).params
        assert y == published_error(name, "ImageNet").value
    rdnet = {n: y for n, f, _x, y in points if f == "rdnet"}
    assert rdnet == pytest.approx({"rdnet-tiny": 100 - 82.8, "rdnet-small": 100 - 83.7, "rdnet-base": 100 - 84.4,
                                   "rdnet-large": 100 - 84.8})  # (100 − the published top-1 accuracy)
    for family in ("resnet", "rdnet"):
        drawn = panel.frontier._scatters[family].getData()
        assert sorted(10 ** drawn[0]) == pytest.approx(sorted(p[2] for p in points if p[1] == family))
    # The current configuration (densenet121 by default) is the vertical line at its parameter count.
    assert panel.frontier._current.isVisible()
    assert panel.frontier._current.value() == pytest.approx(math.log10(7_978_856))
    panel.x_combo.setCurrentIndex(panel.x_combo.findData("macs"))
    assert {p[2] for p in panel.frontier_points()} == {arch.layer_table(arch.get_preset(n)).macs
                                                      for n, *_ in panel.frontier_points()}
    panel.x_combo.setCurrentIndex(panel.x_combo.findData("latency"))
    assert panel.frontier_points() == [] and "Measure presets" in panel.frontier_note.text()


def test_clicking_a_point_loads_an_explorable_family_or_pins_another(qtbot, panel):
    for name in ("densenet169", "resnet50"):
        with qtbot.waitSignal(panel.presetRequested) as loaded:
            panel._point_clicked(name)
        assert loaded.args == [name]
    resnet = arch.get_family("resnet")
    arch.register(dataclasses.replace(resnet, capabilities=resnet.capabilities - {EXPLORE}))
    try:
        with qtbot.waitSignal(panel.baselineRequested) as pinned:
            panel._point_clicked("resnet50")
        assert pinned.args == ["resnet50"]
    finally:
        arch.register(resnet)


def test_a_resnet_sweeps_its_own_fields_with_its_marker(qtbot, panel):
    panel.set_config(arch.get_preset("resnet50"))
    names = [panel.field_combo.itemData(i) for i in range(panel.field_combo.count())]
    assert {"stages", "stage4", "width"} <= set(names) and "growth_rate" not in names and "stage5" not in names
    panel.field_combo.setCurrentIndex(panel.field_combo.findData("width"))
    assert panel.sweep_plots.markers["params"].value() == 64  # the first stage's width
    assert current_value(arch.get_preset("resnet50"), "stage3") == 6
    assert current_value(arch.get_preset("resnet50"), "stages") is None  # the stages differ
    assert current_value(arch.get_preset("resnet20"), "stages") == 3
    panel.start_spin.setValue(32)
    panel.stop_spin.setValue(64)
    panel.step_spin.setValue(32)
    with qtbot.waitSignal(panel.sweepFinished, timeout=TIMEOUT) as done:
        panel.start_sweep()
    assert done.args == [True]
    want = [arch.layer_table(arch.get_preset("resnet50").replace(widths=w, stem_width=w[0])).params / 1e6
            for w in ((32, 64, 128, 256), (64, 128, 256, 512))]
    assert list(panel.sweep_plots.curves["params"].getData()[1]) == pytest.approx(want)
    _, eff = panel.sweep_plots.curves["efficient"].getData()
    assert eff is None or len(eff) == 0  # no memory-efficient mode: no curve


def test_the_frontier_colours_come_from_the_families(panel):
    for name, fam in arch.families().items():
        assert panel.frontier._scatters[name].opts["brush"].color().name() == fam.color


def test_analytic_sweep_matches_the_layer_table(qtbot, panel):
    panel.set_config(arch.get_preset("densenet-bc-100-k12"))
    panel.field_combo.setCurrentIndex(panel.field_combo.findData("growth_rate"))
    panel.start_spin.setValue(6)
    panel.stop_spin.setValue(24)
    panel.step_spin.setValue(6)
    with qtbot.waitSignal(panel.sweepFinished, timeout=TIMEOUT) as done:
        panel.start_sweep()
    assert done.args == [True]
    rows = panel.sweep_rows
    assert [r["value"] for r in rows] == [6, 12, 18, 24]
    xs, ys = panel.sweep_plots.curves["params"].getData()
    want = [count_params(arch.get_preset("densenet-bc-100-k12").replace(growth_rate=k)) / 1e6 for k in (6, 12, 18, 24)]
    assert list(xs) == [6, 12, 18, 24] and list(ys) == pytest.approx(want)
    _, naive = panel.sweep_plots.curves["naive"].getData()
    _, eff = panel.sweep_plots.curves["efficient"].getData()
    assert np.all(eff < naive)
    assert panel.sweep_plots.markers["params"].value() == 12  # the current k


def test_a_bad_range_is_explained_and_nothing_runs(qtbot, panel):
    panel.field_combo.setCurrentIndex(panel.field_combo.findData("growth_rate"))
    panel.start_spin.setValue(40)
    panel.stop_spin.setValue(10)
    with qtbot.waitSignal(panel.sweepFinished) as done:
        panel.start_sweep()
    assert done.args == [False] and "START ≤ STOP" in panel.status.text()
    assert panel.sweep_button.isEnabled()


def test_measured_sweep_adds_latency(qtbot, panel):
    panel.set_config(TINY)
    panel.device_combo.setCurrentIndex(panel.device_combo.findData("cpu"))
    panel.field_combo.setCurrentIndex(panel.field_combo.findData("growth_rate"))
    panel.start_spin.setValue(4)
    panel.stop_spin.setValue(8)
    panel.step_spin.setValue(4)
    panel.measure_check.setChecked(True)
    seen = []  # what the progress line and the latency plot said while it measured

    def record():
        seen.append((panel.progress_label.text(), panel.sweep_plots.latency_message.text()))
        formats.add(panel.progress.format())
    formats = set()
    panel.sweepShown.connect(lambda: QTimer.singleShot(0, record))  # (once the measuring has started)
    panel.measure_runner.progress.connect(lambda _update: record())
    with qtbot.waitSignal(panel.sweepFinished, timeout=120_000) as done:
        qtbot.mouseClick(panel.sweep_button, Qt.MouseButton.LeftButton)
    assert done.args == [True], panel.status.text()
    xs, ys = panel.sweep_plots.curves["latency"].getData()
    assert list(xs) == [4, 8] and all(y > 0 for y in ys)
    assert all(r["measured"]["device"] == "cpu" for r in panel.sweep_rows)
    # It said what it waited for, then which point of how many, in a label beside the bar (a bar's
    # own text wrapped and was clipped), and the latency plot said the same.
    assert seen[0][0].startswith("waiting for the probe's") and seen[0][1] == f"Measuring: {seen[0][0]}"
    assert ("0 of 2 points measured; now growth_rate = 4", "Measuring: 0 of 2 points measured; now growth_rate = 4") \
        in seen
    assert ("1 of 2 points measured; now growth_rate = 8", "Measuring: 1 of 2 points measured; now growth_rate = 8") \
        in seen
    assert formats == {"%p%"} and panel.progress_label.parentWidget() is panel.progress.parentWidget()
    assert panel.sweep_plots.latency_message.text() == "" and panel.progress_label.text().strip() == ""


def test_pinning_a_resnet_baseline_in_the_window(qtbot, explorer):
    w = explorer
    w.pin_preset("resnet50")
    assert w.channel_panel.x_mode == "depth"  # another family: the plots line up by depth fraction
    xs, _ = w.channel_panel.baseline_series("params")
    assert xs[0] == pytest.approx(0.0, abs=0.05) and xs[-1] == pytest.approx(1.0, abs=0.05)
    delta = w.headline.params_card.delta.text()
    assert f"{7_978_856 - 25_557_032:,}" in delta and "vs baseline" in delta
    assert "resnet50" in label(w, "baselineLabel").text()
    assert "Published for densenet121" in label(w, "publishedLabel").text()
    w.clear_baseline()
    assert not w.headline.params_card.delta.isVisible()
    assert w.tabs.tabText(w.TABS.index("design")) == "Design space"


def test_a_hidden_design_tab_marks_the_current_configuration_once_shown(qtbot, explorer):
    """While its tab is hidden the panel only records changes (its markers move when shown), and
    the marker then stands at the newest configuration, counted independently."""
    w = explorer
    w.select_tab("channels")
    panel = w.design_panel
    w.load_preset("densenet169")
    w.load_preset("densenet201")
    assert panel._marks.pending and panel.config == arch.get_preset("densenet201")
    w.select_tab("design")
    qtbot.waitUntil(lambda: not panel._marks.pending, timeout=TIMEOUT)
    want = count_params(arch.get_preset("densenet201"))
    assert panel.frontier._current.value() == pytest.approx(math.log10(want))
