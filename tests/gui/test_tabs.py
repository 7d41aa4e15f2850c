"""``densegui gui --tab NAME --screenshot OUT.png`` for every tab (used for the docs' pictures)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from densegui.gui.main_window import MainWindow


def test_the_cli_knows_every_tab_of_the_window():
    from densegui.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    tab = next(a for a in sub.choices["gui"]._actions if a.dest == "tab")
    assert tuple(tab.choices) == MainWindow.TABS


@pytest.mark.parametrize("tab", ["design", "reuse"])
def test_screenshot_of_a_tab(tab, tmp_path):
    out = tmp_path / f"{tab}.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", DENSEGUI_NO_SETTINGS="1")
    proc = subprocess.run([sys.executable, "-m", "densegui", "--tab", tab, "--screenshot", str(out)],
                          capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_tab_is_one_line_exit_2(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", DENSEGUI_NO_SETTINGS="1")
    proc = subprocess.run([sys.executable, "-m", "densegui", "gui", "--tab", "nope"], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "invalid choice" in proc.stderr


def test_a_panel_that_cannot_be_built_says_why_in_its_tab_and_the_others_work(qtbot, monkeypatch, widget_leak_check):
    """(A broken plotting install, for example.) The tab shows one line; every other panel is built
    and current."""
    def broken():
        raise ImportError("libfoo.so: cannot open shared object file\nmore detail")

    monkeypatch.setitem(MainWindow.DEFERRED, "design", ("design_panel", broken))
    w = MainWindow(settings=None)
    w.show()
    try:
        assert w.panels_built() and w.design_panel is None and w.probe_panel is not None
        text = w.tab_panel("design").text()
        assert text == ("Could not load the Design space tab: ImportError: libfoo.so: cannot open shared "
                        "object file")
        qtbot.waitUntil(w.is_up_to_date, timeout=60_000)
        w.load_preset("densenet169")  # changes still reach every built panel
        assert w.probe_panel.config.block_depths == (6, 12, 32, 32)
    finally:
        w.close()
        w.deleteLater()


def test_hidden_tabs_draw_the_newest_configuration_when_shown(qtbot, explorer):
    """The probe's memory estimate and the train tab's label wait while their tabs are hidden (a
    drag then costs them nothing); shown, they describe the newest configuration."""
    from densegui.core.arch.registry import get_preset
    from densegui.core.arch.registry import estimate_memory
    from densegui.core.units import human_bytes

    w = explorer
    w.select_tab("channels")
    w.load_preset("densenet169")
    w.load_preset("densenet-bc-100-k12")
    probe, train = w.probe_panel, w.train_panel
    assert probe._estimate.pending and train._label.pending
    assert probe.config == train.config == get_preset("densenet-bc-100-k12")  # the data is current
    w.select_tab("probe")
    qtbot.waitUntil(lambda: not probe._estimate.pending, timeout=5000)
    s = probe.settings()
    want = human_bytes(estimate_memory(probe.config.replace(input_size=s.input_size), s.batch_size, s.mode))
    assert f"Estimated memory for this run: {want}" in probe.estimate_label.text()
    w.select_tab("train")
    qtbot.waitUntil(lambda: not train._label.pending, timeout=5000)
    assert get_preset("densenet-bc-100-k12").describe() in train.config_label.text()


@pytest.mark.qt_no_exception_capture  # (the "connect" case raises inside a slot on purpose)
@pytest.mark.parametrize("how", ["import", "connect"])
def test_a_staged_window_whose_channel_tab_fails_still_builds_the_others(qtbot, monkeypatch, how):
    """The channel tab is built first, on its own; whatever goes wrong there, the other tabs'
    modules are imported and their panels built."""
    from PySide6.QtWidgets import QWidget

    class NoBaseline(QWidget):
        def set_baseline(self, _table):
            raise RuntimeError("broken on purpose")

        def set_config(self, _cfg):
            pass

        def shutdown(self):
            pass

    def factory():
        if how == "import":
            raise ImportError("no numpy here")
        panel = NoBaseline()
        panel.setObjectName("channelPanel")
        return panel

    monkeypatch.setitem(MainWindow.DEFERRED, "channels", ("channel_panel", factory))
    w = MainWindow(settings=None, staged=True)
    w.show()
    try:
        qtbot.waitUntil(w.panels_built, timeout=60_000)
        assert w.probe_panel is not None and w.design_panel is not None and w.train_panel is not None
        if how == "import":
            assert w.tab_panel("channels").text() == (
                "Could not load the Channels tab: ImportError: no numpy here")
    finally:
        w.close()
        w.deleteLater()
