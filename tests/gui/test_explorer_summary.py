"""The explorer's summary tab: computed in the background, the latest configuration wins, stale
computations are cancelled or dropped; filter, depth and saving the text.
"""

from __future__ import annotations

from helpers.explorer import TIMEOUT, label, wait_summary
from helpers.reference import count_params
from PySide6.QtWidgets import QWidget

from densegui.core.arch.registry import get_preset
from densegui.gui.jobs import EXPLORE


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


def test_summary_copy_and_save_say_so(qtbot, explorer, tmp_path, monkeypatch):
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication

    from densegui.gui import summary_panel

    w = explorer
    panel = w.summary_panel
    wait_summary(qtbot, w)
    qtbot.mouseClick(panel.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == panel.text()
    assert w.statusBar().currentMessage() == "Summary table copied"
    path = str(tmp_path / "summary.txt")
    monkeypatch.setattr(summary_panel.QFileDialog, "getSaveFileName", lambda *a: (path, ""))
    qtbot.mouseClick(panel.save_button, Qt.MouseButton.LeftButton)
    assert w.statusBar().currentMessage() == f"Saved {path}" and (tmp_path / "summary.txt").exists()
