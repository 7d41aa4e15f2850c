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
def panel(monkeypatch, make_panel):
    # Short runs: the panel's settings with fewer repeats (the probe logic itself is tested in tests/core/probe/test_probe.py).
    orig = ProbePanel.settings

    def fast(self):
        return probe_mod.replace(orig(self), repeats=5, min_repeats=3, max_warmup=4, breakdown_iters=1)

    monkeypatch.setattr(ProbePanel, "settings", fast)
    p = make_panel(ProbePanel, size=(1300, 800))
    p.set_config(TINY)
    cpu = p.device_combo.findData("cpu")
    p.device_combo.setCurrentIndex(cpu)
    yield p
    p.shutdown()  # here to check it; make_panel's own shutdown then has nothing left to stop
    assert p.runner.threads_alive() == 0  # every task was awaited


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


# ---- small windows (issue #26): a 1024×700 window gives a tab about 680×450 px

@pytest.fixture(scope="module")
def real_results():
    """A real probe (with its breakdown) and sweep of TINY, measured here on the CPU (one thread:
    tiny tensors, and a loaded machine's threads slowed it tenfold)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fast = probe_mod.ProbeSettings(device="cpu", repeats=5, min_repeats=3, max_warmup=4, breakdown_iters=1)
        return probe_mod.run_probe(TINY, fast), probe_mod.sweep(TINY, fast, max_batch=4)
    finally:
        torch.set_num_threads(threads)


def show_results(qtbot, panel, results, size):
    from densegui.core.devices import list_devices

    panel.device_combo.set_devices(list_devices())  # the real names ("cpu — <model> (<memory>)")
    panel.resize(*size)
    panel._show_result(results[0])
    panel._show_sweep(results[1])
    qtbot.waitUntil(lambda: panel.size().toTuple() == size, timeout=2000)
    qtbot.wait(10)


def test_at_660x440_all_is_legible_and_the_breakdown_explained(qtbot, panel, real_results):
    import re

    from densegui.gui.legibility import clipped_texts, overlapping_siblings, squashed

    assert panel.minimumSizeHint().width() <= 640 and panel.minimumSizeHint().height() <= 430
    show_results(qtbot, panel, real_results, (660, 440))
    cards = [panel.card_latency, panel.card_throughput, panel.card_memory, panel.card_compute]
    rects = [c.geometry() for c in cards]
    assert all(not a.intersects(b) for i, a in enumerate(rects) for b in rects[i + 1:]), [r.getRect() for r in rects]
    assert len({r.top() for r in rects}) == 2 and len({r.left() for r in rects}) == 2  # two by two
    assert panel.compact and panel._tabs.count() == 3
    for i in range(panel._tabs.count()):  # each result page in turn
        panel._tabs.setCurrentIndex(i)
        qtbot.wait(5)
        assert clipped_texts(panel) + squashed(panel) + overlapping_siblings(panel) == [], panel._tabs.tabText(i)
    # every card value whole; a detail that does not fit is elided with its whole text as tooltip
    for c in cards:
        assert c.value.full_text_fits(), c.value.text()
    # progress text: elided to the bar with its percentage kept, whole as tooltip
    panel._on_progress((0.92, "profiling the per-kind breakdown of every layer kind in the network"))
    bar = panel.progress
    assert bar.full_text() != bar.text() and bar.text().endswith("… 92%") and bar.toolTip() == bar.full_text()
    assert clipped_texts(panel) == []
    # a combo narrower than its text: elided, whole text as tooltip (a long device name)
    combo = panel.device_combo
    combo.setItemText(combo.currentIndex(), "cpu — AMD EPYC 9654 96-Core Processor (2 threads) (23.5 GiB)")
    assert combo.toolTip() == combo.currentText()
    hint = panel.minimumSizeHint()
    assert hint.width() <= 640 and hint.height() <= 430, hint  # results shown: still small
    # a long message without spaces (a path in an error) wraps instead of widening the window
    panel._show_message("Cannot write /data/" + "a_folder_name_without_any_spaces_in_it_" * 5 + "/out.json")
    qtbot.wait(10)
    assert panel.minimumSizeHint().width() <= 640
    # the breakdown: how its total relates to the median, with the result's numbers
    r = real_results[0]
    note = panel.breakdown_note.text()
    m = re.search(r"add up to ([\d.]+) ms per profiled iteration, ([\d.]+)× the ([\d.]+) ms median", note)
    assert m, note
    total = sum(v["ms"] for v in r.breakdown.values())
    assert float(m[1]) == pytest.approx(total, abs=0.05)
    assert float(m[3]) == pytest.approx(r.median_ms, abs=0.05)
    assert float(m[2]) == pytest.approx(total / r.median_ms, abs=0.005)
    assert "separate run under the profiler" in note and "Shares are of the profiled total" in note
    table = panel.breakdown_table
    shares = [float(table.item(i, 2).text().rstrip("%")) for i in range(table.rowCount())]
    assert sum(shares) == pytest.approx(100, abs=0.1 * len(shares))  # shares of the profiled total


def test_wide_the_cards_share_a_row_and_everything_is_in_view(qtbot, panel, real_results):
    from densegui.gui.legibility import clipped_texts, overlapping_siblings, squashed

    show_results(qtbot, panel, real_results, (1900, 950))
    rects = [c.geometry() for c in (panel.card_latency, panel.card_throughput, panel.card_memory,
                                    panel.card_compute)]
    assert len({r.top() for r in rects}) == 1 and not panel.compact
    assert panel.breakdown_table.isVisible() and panel.throughput_plot.isVisible() and panel.history_table.isVisible()
    assert clipped_texts(panel) + squashed(panel) + overlapping_siblings(panel) == []
    show_results(qtbot, panel, real_results, (660, 440))  # and back
    assert panel.compact and panel.minimumSizeHint().width() <= 640
