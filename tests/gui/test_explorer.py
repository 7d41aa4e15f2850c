"""The explorer window driven through its real widgets (pytest-qt, offscreen).

Every number the window shows is checked against an independent
computation: parameters by counting the tensors of a model built on the
meta device, MACs with forward hooks on that model, channels by the paper's
formula.
"""

from __future__ import annotations

import json

import pytest
import torch
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QComboBox, QLabel, QWidget

from densegui.core.config import PRESETS, DenseNetConfig, get_preset
from densegui.core.model import build_model
from densegui.core.stats import layer_table
from densegui.gui.jobs import EXPLORE
from densegui.gui.main_window import MainWindow

TIMEOUT = 30_000


# ----------------------------------------------------------- independent truth
def count_params(cfg: DenseNetConfig) -> int:
    return sum(p.numel() for p in build_model(cfg, "meta").parameters())


def count_macs(cfg: DenseNetConfig) -> int:
    """Conv + linear multiply-accumulates from forward hooks on a meta-device model."""
    model = build_model(cfg, "meta").eval()
    total = 0

    def conv_hook(m, _inp, out):
        nonlocal total
        total += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear_hook(m, _inp, out):
        nonlocal total
        total += out.numel() * m.in_features

    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(conv_hook)
        elif isinstance(m, torch.nn.Linear):
            m.register_forward_hook(linear_hook)
    with torch.no_grad():
        model(torch.empty(1, cfg.in_channels, cfg.input_size, cfg.input_size, device="meta"))
    return total


def final_channels(cfg: DenseNetConfig) -> int:
    c = cfg.init_features if cfg.init_features is not None else 2 * cfg.growth_rate
    for i, d in enumerate(cfg.block_depths):
        c += d * cfg.growth_rate
        if i < len(cfg.block_depths) - 1:
            c = int(cfg.compression * c + 1e-9)
    return c


def label(window: QWidget, name: str) -> QLabel:
    w = window.findChild(QLabel, name)
    assert w is not None, name
    return w


def wait_summary(qtbot, window: MainWindow) -> None:
    qtbot.waitUntil(window.summary_panel.is_up_to_date, timeout=TIMEOUT)


# ------------------------------------------------------------------- the tests
def test_structure_and_initial_numbers(qtbot, explorer):
    w = explorer
    for name in ("presetCombo", "growthRateSlider", "compressionSlider", "bottleneckToggle", "bnSizeSlider",
                 "blockCountSpin", "blockDepthSlider1", "blockDepthSlider4", "stemCombo", "inputSizeSpin",
                 "paramsLabel", "summaryPanel", "channelPanel"):
        found = w.findChild(QWidget, name)
        assert found is not None, name
        assert found.toolTip() or name in ("paramsLabel", "summaryPanel", "channelPanel"), f"{name} has no tooltip"
    assert w.findChild(QWidget, "blockDepthSlider5") is None
    tabs = [w.tabs.tabText(i) for i in range(w.tabs.count())]
    assert tabs[:2] == ["Channels", "Summary"]
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
        assert w.channel_panel.curves["in"].getData()[1].max() == max(r.in_channels for r in w.table.rows)
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


def test_rapid_changes_end_on_the_last_configuration(qtbot, explorer):
    w = explorer
    shown = []
    w.summary_panel.summaryUpdated.connect(lambda r: shown.append(r.config))
    slider = w.findChild(QWidget, "growthRateSlider")
    for k in range(1, 41):
        slider.setValue(k)
        if k % 5 == 0:
            qtbot.wait(30)  # let some intermediate summaries start (and become stale)
    last = get_preset("densenet121").replace(growth_rate=40)
    assert label(w, "paramsLabel").text() == f"{count_params(last):,}"
    wait_summary(qtbot, w)
    qtbot.wait(300)  # any stale result still in flight must be dropped, not shown
    assert w.summary_panel.result.config == last
    assert f"Total params: {count_params(last):,}" in w.summary_panel.text()
    assert shown and shown[-1] == last
    assert len(shown) < 40  # most intermediate configurations were never summarised


def test_plots_draw_only_the_latest_of_a_burst_of_changes(qtbot, explorer):
    """Changes that arrive before the event loop runs again (a fast drag on a busy machine) update
    the headline each time and the plots once, with the last configuration."""
    w = explorer
    qtbot.waitUntil(w.plots_up_to_date, timeout=2000)
    drawn = []
    w.plotsUpdated.connect(drawn.append)
    slider = w.findChild(QWidget, "growthRateSlider")
    for k in (10, 20, 30, 44):
        slider.setValue(k)
        expected = get_preset("densenet121").replace(growth_rate=k)
        assert label(w, "paramsLabel").text() == f"{count_params(expected):,}"
    assert drawn == [] and not w.plots_up_to_date()
    with qtbot.waitSignal(w.plotsUpdated, timeout=1000):
        pass
    qtbot.wait(50)
    assert drawn == [expected]
    assert w.channel_panel.table.config == expected
    ys = w.channel_panel.curves["in"].getData()[1]
    assert ys.max() == max(r.in_channels for r in layer_table(expected).rows)
    # Back to a configuration already drawn before the timer fires: nothing is redrawn.
    slider.setValue(30)
    slider.setValue(44)
    qtbot.wait(50)
    assert drawn == [expected]


def test_a_stale_summary_still_running_is_cancelled(qtbot, explorer):
    """A change while the summary of an older (large) configuration is being computed cancels
    that computation; the newest configuration's table follows, and the stale one never shows."""
    w = explorer
    panel = w.summary_panel
    proc = panel.runner.process(EXPLORE)
    wait_summary(qtbot, w)
    shown = []
    panel.summaryUpdated.connect(lambda r: shown.append(r.config))
    panel.summaryFailed.connect(lambda m: shown.append(m))
    panel.depth_spin.setValue(4)
    big = get_preset("densenet264").replace(growth_rate=64)  # ≈ 0.5 s of torchinfo at depth 4
    sent = proc.jobs_run
    before = proc.jobs_refused + proc.jobs_stopped
    w.apply_config(big)
    qtbot.waitUntil(lambda: proc.jobs_run > sent, timeout=TIMEOUT)  # in flight
    small = get_preset("densenet121").replace(growth_rate=12)
    w.apply_config(small)
    wait_summary(qtbot, w)
    assert shown == [small] and panel.result.config == small  # no stale table, no failure shown
    assert proc.jobs_refused + proc.jobs_stopped == before + 1  # refused before sending, or stopped in flight
    assert f"Total params: {count_params(small):,}" in panel.text()


def test_stale_summary_never_overwrites_a_newer_one(qtbot, explorer):
    """Config A starts computing, B is requested meanwhile: A's result is dropped."""
    w = explorer
    panel = w.summary_panel
    wait_summary(qtbot, w)
    a = get_preset("densenet169")
    b = get_preset("densenet-40-k12")
    shown = []
    panel.summaryUpdated.connect(lambda r: shown.append(r.config))
    proc = panel.runner.process(EXPLORE)
    sent = proc.jobs_run
    w.apply_config(a, "densenet169")
    qtbot.waitUntil(lambda: proc.jobs_run > sent, timeout=TIMEOUT)  # A is being computed
    w.apply_config(b, "densenet-40-k12")
    qtbot.waitUntil(lambda: bool(shown) and shown[-1] == b, timeout=TIMEOUT)
    qtbot.waitUntil(lambda: not panel.runner.is_busy() and not proc.is_busy(), timeout=TIMEOUT)
    qtbot.wait(100)
    assert shown == [b]
    assert panel.result.config == b
    assert label(w, "paramsLabel").text() == f"{count_params(b):,}"


def test_invalid_input_is_explained_and_last_results_stay(qtbot, explorer):
    w = explorer
    wait_summary(qtbot, w)
    before_params = label(w, "paramsLabel").text()
    before_summary = w.summary_panel.text()
    invalid = label(w, "invalidLabel")
    assert not invalid.isVisible()

    w.findChild(QWidget, "inputSizeSpin").setValue(8)
    assert invalid.isVisible()
    text = invalid.text()
    assert "input_size 8 is too small" in text and "at least" in text
    assert label(w, "paramsLabel").text() == before_params
    assert w.config == get_preset("densenet121")
    qtbot.wait(300)
    assert w.summary_panel.text() == before_summary

    w.findChild(QWidget, "inputSizeSpin").setValue(224)
    assert not invalid.isVisible()

    # A compression that leaves no channel after a transition.
    w.findChild(QWidget, "growthRateSlider").setValue(1)
    w.findChild(QWidget, "compressionSlider").setValue(0.05)
    assert invalid.isVisible() and "leaves 0 channels after transition" in invalid.text()
    assert label(w, "paramsLabel").text() == f"{count_params(get_preset('densenet121').replace(growth_rate=1)):,}"


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


def test_compare_with_a_pinned_baseline(qtbot, explorer):
    w = explorer
    base = get_preset("densenet121")
    w.pin_baseline()
    w.findChild(QWidget, "compressionSlider").setValue(1.0)
    new = base.replace(compression=1.0)
    diff = count_params(new) - count_params(base)
    assert diff > 0
    delta = label(w, "paramsDelta")
    assert delta.isVisible()
    assert delta.text().startswith(f"+{diff:,} (+{100 * diff / count_params(base):.1f}%)")
    assert label(w, "channelsDelta").text().startswith(f"+{final_channels(new) - final_channels(base):,}")
    x, y = w.channel_panel.base_curves["in"].getData()
    assert len(x) == len(w.baseline.rows) and y.max() == 1024  # the baseline's own channel curve
    w.clear_baseline()
    assert not delta.isVisible()
    assert len(w.channel_panel.base_curves["in"].getData()[0] or []) == 0


def test_channel_panel_hover_log_and_png_export(qtbot, explorer, tmp_path):
    w = explorer
    panel = w.channel_panel
    row = w.table.rows[3]
    text = panel.hover_index(3)
    assert row.name in text and f"params {row.params:,}" in text and f"{row.in_channels:,} → {row.out_channels:,}" in text
    assert panel.cursors[0].isVisible()
    panel.hover_index(None)
    assert not panel.cursors[0].isVisible()

    panel.log_check.setChecked(True)
    assert all(p.ctrl.logYCheck.isChecked() for p in panel.plots.values())
    out = panel.export_png("params", tmp_path / "params.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


def test_save_open_copy_and_snippet(qtbot, explorer, tmp_path):
    w = explorer
    w.findChild(QWidget, "growthRateSlider").setValue(24)
    path = tmp_path / "cfg.json"
    assert w.save_config(path)
    assert DenseNetConfig.from_file(path) == w.config  # the CLI's --config reader accepts it
    saved = w.config

    w.apply_config(get_preset("densenet-40-k12"), "densenet-40-k12")
    assert w.open_config(path)
    assert w.config == saved

    bad = tmp_path / "bad.json"
    bad.write_text('{"growth_rate": 0}')
    assert not w.open_config(bad)
    assert label(w, "invalidLabel").isVisible() and "growth_rate" in label(w, "invalidLabel").text()
    assert w.config == saved

    w.copy_config()
    from PySide6.QtGui import QGuiApplication

    assert DenseNetConfig.from_json(QGuiApplication.clipboard().text()) == saved
    w.copy_snippet()
    scope: dict = {}
    exec(QGuiApplication.clipboard().text(), scope)  # noqa: S102 - our own generated snippet
    assert scope["cfg"] == saved
    assert sum(p.numel() for p in scope["model"].parameters()) == count_params(saved)
    assert saved.python_snippet() == QGuiApplication.clipboard().text()


def test_summary_filter_depth_and_save(qtbot, explorer, tmp_path):
    w = explorer
    panel = w.summary_panel
    w.apply_config(get_preset("densenet-bc-100-k12"), "densenet-bc-100-k12")
    wait_summary(qtbot, w)
    panel.filter_edit.setText("transition")
    body = panel.text()
    rows = [line for line in body.splitlines() if "│" in line or "─" in line]
    assert "Total params" in body
    assert all("transition" in line.lower() for line in rows), rows
    assert sum("transition" in line.lower() for line in body.splitlines()) >= 2
    panel.filter_edit.clear()
    with qtbot.waitSignal(panel.summaryUpdated, timeout=TIMEOUT) as blocker:
        panel.depth_spin.setValue(1)
    assert blocker.args[0].depth == 1
    assert "denselayer" not in panel.text()
    panel.save_text(tmp_path / "summary.txt")
    assert (tmp_path / "summary.txt").read_text().strip() == panel.text().strip()


def test_settings_persist_last_configuration(qtbot, widget_leak_check, qt_flush, tmp_path):
    ini = str(tmp_path / "densegui.ini")
    first = MainWindow(QSettings(ini, QSettings.Format.IniFormat))
    first.show()
    first.findChild(QWidget, "growthRateSlider").setValue(20)
    first.tabs.setCurrentIndex(1)
    expected = first.config
    first.close()
    first.deleteLater()
    qt_flush()
    stored = json.loads(QSettings(ini, QSettings.Format.IniFormat).value("explorer/config"))
    assert stored["growth_rate"] == 20

    second = MainWindow(QSettings(ini, QSettings.Format.IniFormat))
    try:
        assert second.config == expected
        assert second.findChild(QWidget, "growthRateSlider").value() == 20
        assert second.findChild(QComboBox, "presetCombo").currentText() == "custom (from densenet121)"
        assert second.tabs.currentIndex() == 1
    finally:
        second.close()
        second.deleteLater()
        qt_flush()


def test_no_settings_are_touched_by_default(monkeypatch):
    from densegui.gui.main_window import settings_disabled

    assert settings_disabled()  # the root conftest keeps tests away from the user's settings


@pytest.mark.parametrize("name", ["densenet-40-k12", "densenet264"])
def test_preset_parameter_counts_match_the_model(qtbot, explorer, name):
    explorer.load_preset(name)
    assert label(explorer, "paramsLabel").text() == f"{count_params(get_preset(name)):,}"


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


def test_block_shading_and_transition_lines_follow_the_layout(qtbot, explorer, qt_flush):
    """Regions and dashed lines sit where the table's rows say, also after a change that keeps the
    layout (k: the panel then skips redrawing them) and one that changes it (a block's depth)."""
    w = explorer
    panel = w.channel_panel

    def expected():
        rows = panel.table.rows
        blocks = sorted({r.block for r in rows if r.kind == "dense"})
        spans = [(min(i for i, r in enumerate(rows) if r.kind == "dense" and r.block == b) - 0.5,
                  max(i for i, r in enumerate(rows) if r.kind == "dense" and r.block == b) + 0.5) for b in blocks]
        lines = [float(i) for i, r in enumerate(rows) if r.kind == "transition"]
        return spans, lines

    def drawn(i):
        shading = panel.shadings[i]
        return ([tuple(round(v, 6) for v in span) for span in shading.spans], [float(x) for x in shading.lines])

    for change in (lambda: w.findChild(QWidget, "growthRateSlider").setValue(20),
                   lambda: w.findChild(QWidget, "blockDepthSlider2").setValue(3),
                   lambda: w.findChild(QWidget, "blockCountSpin").setValue(3),
                   lambda: w.findChild(QWidget, "growthRateSlider").setValue(40)):
        change()
        qt_flush()
        spans, lines = expected()
        for i in range(len(panel.plots)):
            assert drawn(i) == ([tuple(round(v, 6) for v in s) for s in spans], lines)


def test_y_ranges_always_show_every_curve_whole(qtbot, explorer, qt_flush):
    """The channel plots keep their y range while the data fit (cheap repaints), but never clip a
    curve and never leave it squashed into less than 40 % of the plot."""
    w = explorer
    panel = w.channel_panel
    slider = w.findChild(QWidget, "growthRateSlider")
    w.pin_baseline()

    def check():
        qt_flush()
        for key in panel.plots:
            lo, hi = panel.y_range(key)
            ys = [c.getData()[1] for c in panel._plot_curves[key] if c.getData()[1] is not None]
            vals = torch.tensor([float(v) for y in ys for v in y if v == v])
            assert lo <= float(vals.min()) and float(vals.max()) <= hi, key
            assert float(vals.max()) - min(0.0, float(vals.min())) > 0.4 * (hi - lo), key

    for k in (1, 2, 8, 64, 63, 12, 32):
        slider.setValue(k)
        check()
    w.clear_baseline()
    check()
    panel.set_log_scale(True)
    assert all(p.vb.autoRangeEnabled()[1] for p in panel.plots.values())
    panel.set_log_scale(False)
    check()


def test_nice_ceil_is_the_smallest_round_number_above():
    """Round y-range tops: s × 10ⁿ with s in (1, 1.5, 2, 3, 4, 5, 6, 8), checked by brute force."""
    import math
    import random

    from densegui.gui.channel_panel import nice_ceil

    rng = random.Random(0)
    candidates = sorted(s * 10.0 ** e for e in range(-8, 15) for s in (1, 1.5, 2, 3, 4, 5, 6, 8))
    for value in [rng.uniform(0.001, 1) * 10 ** rng.randint(-3, 12) for _ in range(2000)] + [1.0, 3.0, 150.0, 8e9]:
        expected = min(c for c in candidates if c >= value * (1 - 1e-12))
        assert math.isclose(nice_ceil(value), expected, rel_tol=1e-12), value
        assert value <= nice_ceil(value) * (1 + 1e-12) < 1.5 * value * (1 + 1e-9)
    assert nice_ceil(0.0) == 0.0


def test_block_shading_is_painted_where_the_blocks_are(qtbot, explorer):
    """Pixels, not just item state: inside a block the background is that block's tint, between
    blocks it is white, and a transition's dashed line is drawn at its row."""
    from PySide6.QtCore import QPointF

    from densegui.gui.channel_panel import SHADES

    w = explorer
    w.load_preset("densenet-bc-100-k12")  # 3 blocks of 16 layers: wide spans
    panel = w.channel_panel
    qtbot.waitUntil(w.plots_up_to_date, timeout=2000)
    assert panel.table.config == get_preset("densenet-bc-100-k12")
    plot = panel.plots["params"]
    image = panel.graphics.grab().toImage()
    rows = panel.table.rows

    def point(x_data: float, y_frac: float):
        lo, hi = plot.vb.viewRange()[1]
        return panel.graphics.mapFromScene(plot.vb.mapViewToScene(QPointF(x_data, hi - y_frac * (hi - lo))))

    def pixel(x_data: float, y_frac: float, dx: int = 0):
        p = point(x_data, y_frac)
        return image.pixelColor(p.x() + dx, p.y())

    def blend(shade):  # the tint over the white background
        a = shade.alpha() / 255
        return tuple(round(255 * (1 - a) + c * a) for c in (shade.red(), shade.green(), shade.blue()))

    dense = [i for i, r in enumerate(rows) if r.kind == "dense"]
    for block in (1, 2, 3):
        xs = [i for i in dense if rows[i].block == block]
        got = pixel((xs[0] + xs[-1]) / 2 + 0.25, 0.03)  # near the top: above every curve
        want = blend(SHADES[(block - 1) % 2])
        assert all(abs(g - e) <= 3 for g, e in zip((got.red(), got.green(), got.blue()), want)), (block, got.name())
    stem = pixel(0, 0.03)
    assert (stem.red(), stem.green(), stem.blue()) == (255, 255, 255)  # the stem row is not shaded
    transition = next(i for i, r in enumerate(rows) if r.kind == "transition")
    # A 1-pixel dashed line: look along its column (±1 pixel for rounding) above the curves.
    grey = [pixel(transition, f / 100, dx) for dx in (-1, 0, 1) for f in range(1, 30)]
    assert sum(c.red() < 200 and abs(c.red() - c.blue()) < 10 for c in grey) >= 5, [c.name() for c in grey]
    beside = [pixel(transition + 0.5, f / 100) for f in range(1, 30)]  # between the line and the next row
    assert not any(c.red() < 200 for c in beside)


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


def test_headline_values_never_resize_the_window(qtbot, explorer):
    """Longer or shorter figures (k 1 → 64 on densenet264) leave the window's minimum size and size
    alone: a plain QLabel made every change re-lay out and repaint the whole window, and the window
    grew at large configurations."""
    w = explorer
    w.load_preset("densenet264")
    qtbot.waitUntil(w.plots_up_to_date, timeout=2000)
    qtbot.wait(20)
    size, minimum = w.size(), w.minimumSizeHint()
    slider = w.findChild(QWidget, "growthRateSlider")
    for k in (1, 7, 64, 2, 33):
        slider.setValue(k)
        qtbot.waitUntil(w.plots_up_to_date, timeout=2000)
        qtbot.wait(10)
        assert w.minimumSizeHint() == minimum and w.size() == size, k
        expected = get_preset("densenet264").replace(growth_rate=k)
        params = label(w, "paramsLabel")
        assert params.text() == f"{count_params(expected):,}" and params.full_text_fits()  # never elided
    for index in (0, 5, len(w.table.rows) // 2, len(w.table.rows) - 1):  # hover read-outs neither
        w.channel_panel.hover_index(index)
        qtbot.wait(10)
        assert w.minimumSizeHint() == minimum and w.size() == size, index
        assert w.channel_panel.hover_label.text().startswith(w.table.rows[index].name)


def test_fit_label_elides_what_does_not_fit_and_keeps_the_full_text(qtbot, widget_leak_check):
    from densegui.gui.widgets import FitLabel

    text = "torchinfo (background process), meta device, batch 1, depth 3 · computed in 0.42 s"
    lab = FitLabel(text)
    qtbot.addWidget(lab)
    lab.resize(120, 20)
    lab.show()
    qtbot.waitExposed(lab)
    assert lab.text() == text and not lab.full_text_fits()
    shown = super(FitLabel, lab).text()
    from PySide6.QtGui import Qt as GuiQt

    assert shown.endswith("…") and text.startswith(shown[:-1]) and lab.toolTip() == GuiQt.convertFromPlainText(text)
    assert lab.fontMetrics().horizontalAdvance(shown) <= lab.contentsRect().width()
    lab.setText(text * 3)
    assert lab.sizePolicy().horizontalPolicy().name == "Ignored"  # its width never drives a layout
    lab.resize(2000, 20)
    lab.setText("short")
    assert lab.full_text_fits() and super(FitLabel, lab).text() == "short" and lab.toolTip() == ""
    # A font change re-elides without a resize; a tooltip with markup-like text stays plain.
    lab.resize(120, 20)
    lab.setText("a <b>not bold</b> error message that is far too long for 120 pixels")
    assert "&lt;b&gt;" in lab.toolTip()
    shown = super(FitLabel, lab).text()
    font = lab.font()
    font.setPointSize(font.pointSize() * 2)
    lab.setFont(font)
    assert super(FitLabel, lab).text() != shown
    assert lab.fontMetrics().horizontalAdvance(super(FitLabel, lab).text()) <= lab.contentsRect().width()


def test_byte_axis_ticks_fall_on_round_binary_units(qtbot):
    """Ticks of the activations axis are 1/2/5 × 10ⁿ of a KiB, MiB or GiB (2 MiB, not 1.91 MiB);
    the count axes keep pyqtgraph's decimal ticks."""
    import math
    import random

    from densegui.gui.channel_panel import CountAxis

    binary, decimal = CountAxis(orientation="left", binary=True), CountAxis(orientation="left")
    rng = random.Random(1)
    for _ in range(300):
        top = 10 ** rng.uniform(3.2, 11)
        levels = binary.tickSpacing(0.0, top, rng.uniform(150, 600))
        unit = 1024.0 ** int(math.log(top, 1024))
        major = levels[0][0] / unit
        mantissa = major / 10 ** math.floor(math.log10(major) + 1e-9)
        assert any(math.isclose(mantissa, m, rel_tol=1e-9) for m in (1, 2, 5)), (top, major)
        assert 2 <= top / levels[0][0] <= 12  # a readable number of ticks
    assert decimal.tickSpacing(0.0, 1e7, 300)[0][0] in (1e6, 2e6, 5e6)
