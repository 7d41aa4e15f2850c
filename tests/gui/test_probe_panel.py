"""ProbePanel standalone (pytest-qt, offscreen, CPU): run, cancel, errors, stale results, history, sweep."""

from __future__ import annotations

import time

import pytest
from PySide6.QtCore import QTimer

import densegui.core.probe.run as probe_mod
from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.arch.registry import estimate_memory, family_of, get_preset
from densegui.core.arch.resnet.config import ResNetConfig
from densegui.core.units import human_bytes
from densegui.gui.probe_panel import ProbePanel

TIMEOUT = 60_000
TINY = DenseNetConfig(growth_rate=4, block_depths=(2, 2), stem="cifar", num_classes=10, input_size=16)


@pytest.fixture
def panel(qtbot, widget_leak_check, monkeypatch):
    # Short runs: the panel's settings with fewer repeats (the probe logic itself is tested in tests/core/probe/test_probe.py).
    orig = ProbePanel.settings

    def fast(self):
        return probe_mod.replace(orig(self), repeats=5, min_repeats=3, max_warmup=4, breakdown_iters=1)

    monkeypatch.setattr(ProbePanel, "settings", fast)
    p = ProbePanel()
    qtbot.addWidget(p)
    p.resize(1300, 800)
    p.show()
    p.set_config(TINY)
    cpu = p.device_combo.findData("cpu")
    p.device_combo.setCurrentIndex(cpu)
    yield p
    p.shutdown()
    assert p.runner.threads_alive() == 0  # every task was awaited
    p.close()
    p.deleteLater()


def run(qtbot, panel, ok=True, job="run"):
    with qtbot.waitSignal(panel.runFinished, timeout=TIMEOUT) as blocker:
        (panel.start_sweep if job == "sweep" else panel.start_run)()
    assert blocker.args == [ok], panel.message_label.text()


def test_device_selector_lists_what_is_present(qtbot, panel):
    qtbot.waitUntil(lambda: panel.device_combo.itemText(1) != "cpu", timeout=TIMEOUT)  # named by the background process
    items = [panel.device_combo.itemData(i) for i in range(panel.device_combo.count())]
    assert items[0] == "auto" and "cpu" in items
    cpu_text = panel.device_combo.itemText(items.index("cpu"))
    assert cpu_text.startswith("cpu — ") and len(cpu_text) > len("cpu — ")  # named (the CPU model)


def test_run_fills_the_cards_and_the_history(qtbot, panel):
    panel.batch_spin.setValue(3)
    run(qtbot, panel)
    r = panel.result
    assert r.batch_size == 3 and r.device == "cpu" and r.input_size == 16
    assert panel.card_latency.value.text() == f"{r.median_ms:.3g} ms"
    assert panel.card_throughput.value.text() == f"{r.throughput:,.1f} img/s"
    assert "MiB" in panel.card_memory.value.text() or "KiB" in panel.card_memory.value.text()
    assert panel.breakdown_table.rowCount() == len(r.breakdown) >= 5
    assert panel.history_table.rowCount() == 1
    # a different configuration: the history keeps both for comparison
    panel.set_config(get_preset("densenet-40-k12").replace(block_depths=(2, 2, 2)).validate())
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("training"))
    run(qtbot, panel)
    assert panel.history_table.rowCount() == 2
    assert panel.history_table.item(0, 2).text() == "inference"
    assert panel.history_table.item(1, 2).text() == "training"
    assert panel.history_table.item(0, 0).text() != panel.history_table.item(1, 0).text()
    assert panel.history_table.item(1, 8).text() == f"{panel.result.median_ms:.3f}"
    assert not panel.cancel_button.isEnabled()


def test_cancel_takes_effect_within_a_second_and_the_window_stays_responsive(qtbot, panel):
    # A run of many seconds on this CPU: densenet-bc-100-k12 training at batch 64.
    panel.set_config(get_preset("densenet-bc-100-k12"))
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("training"))
    panel.batch_spin.setValue(64)
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(20)
    panel.start_run()
    qtbot.waitUntil(lambda: "warming" in panel.progress.format() or "building" in panel.progress.format(),
                    timeout=10_000)
    qtbot.wait(700)  # inside the first training iteration
    assert panel.is_running()
    t0 = time.perf_counter()
    panel.cancel()
    assert not panel.is_running() and not panel.cancel_button.isEnabled()  # the panel is idle at once
    assert "Cancelled" in panel.message_label.text()
    qtbot.waitUntil(lambda: panel.runner.threads_alive() == 0, timeout=1000)  # and the worker really stopped
    assert time.perf_counter() - t0 < 1.0
    timer.stop()
    assert len(ticks) > 10  # the event loop kept spinning during the run (its smoothness: benchmarks/)
    assert panel.result is None  # nothing from the cancelled run reached the screen


def test_bad_setting_shows_a_message_and_the_panel_keeps_working(qtbot, panel):
    panel.set_config(get_preset("densenet121"))
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("training"))
    panel.batch_spin.setValue(65536)
    run(qtbot, panel, ok=False)
    text = panel.message_label.text()
    assert panel.message_label.isVisible() and "estimated" in text and "available" in text
    panel.set_config(TINY)
    panel.batch_spin.setValue(2)
    run(qtbot, panel)
    assert panel.result.batch_size == 2


def test_a_newer_run_makes_the_older_result_stale(qtbot, panel):
    panel.batch_spin.setValue(5)
    panel.start_run()
    panel.batch_spin.setValue(2)
    with qtbot.waitSignal(panel.runFinished, timeout=TIMEOUT):
        panel.start_run()  # restarts: the batch-5 run is cancelled, its result would be stale
    qtbot.waitUntil(lambda: panel.runner.threads_alive() == 0, timeout=TIMEOUT)
    assert panel.result.batch_size == 2
    assert [panel.history_table.item(i, 3).text() for i in range(panel.history_table.rowCount())] == ["2"]


def test_sweep_plots_throughput_and_memory(qtbot, panel):
    panel.max_batch_spin.setValue(4)
    run(qtbot, panel, job="sweep")
    s = panel.sweep_result
    assert [p.batch_size for p in s.points] == [1, 2, 4]
    curves = panel.throughput_plot.getPlotItem().listDataItems()
    assert len(curves) == 1
    xs, ys = curves[0].getOriginalDataset()
    assert list(xs) == [1, 2, 4] and list(ys) == pytest.approx([p.throughput for p in s.points])
    assert "limit batch 4" in panel.sweep_label.text()


def test_set_config_is_cheap_and_updates_the_estimate(panel):
    t0 = time.perf_counter()
    for depth in range(1, 60):
        panel.set_config(get_preset("densenet121").replace(block_depths=(6, 12, depth, 16)).validate())
    assert time.perf_counter() - t0 < 1.0
    assert "Estimated memory" in panel.estimate_label.text()
    assert panel.input_spin.value() == 224


def test_a_resnet_is_estimated_and_measured(qtbot, panel):
    """Any family: the estimate is the registry's, the memory-efficient box is off where the family
    has no such mode, and the breakdown uses the family's kinds."""
    cfg = ResNetConfig(stage_depths=(1, 1), widths=(4, 8), block="basic", stem="cifar", stem_width=4, num_classes=10,
                       input_size=16).validate()
    panel.set_config(cfg)
    assert not panel.memeff_check.isEnabled() and not panel.memeff_check.isChecked()
    assert "ResNets have no memory-efficient mode" in panel.memeff_check.toolTip()
    panel.batch_spin.setValue(3)
    assert f"Estimated memory for this run: {human_bytes(estimate_memory(cfg, 3, 'inference'))}" \
        in panel.estimate_label.text()
    run(qtbot, panel)
    r = panel.result
    assert r.config == cfg.to_dict() and r.memory_efficient is False
    assert set(r.breakdown) <= set(family_of(cfg).kinds) | {"optimizer", "other"}
    assert panel.history_table.item(0, 0).text() == cfg.label()
    panel.set_config(TINY)  # back to a DenseNet: the box is offered again
    assert panel.memeff_check.isEnabled()
