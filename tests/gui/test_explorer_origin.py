""""custom (from X)" names what the configuration really came from (issue #26): the preset it was
edited from, or the file or checkpoint it was opened from, never the previous selection."""

from __future__ import annotations

from types import SimpleNamespace

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QComboBox, QWidget

from densegui.core.arch.registry import get_preset


def combo(w) -> QComboBox:
    return w.findChild(QComboBox, "presetCombo")


def test_an_edited_preset_names_that_preset(explorer):
    w = explorer
    w.load_preset("densenet169")
    w.findChild(QWidget, "growthRateSlider").setValue(20)
    assert combo(w).currentText() == "custom (from densenet169)"
    assert w.controls.preset_desc.text().startswith("Edited from ")


def test_an_opened_file_names_the_file_not_the_selected_preset(explorer, tmp_path):
    w = explorer
    w.load_preset("densenet169")
    path = tmp_path / "net.json"
    cfg = get_preset("densenet121").replace(growth_rate=24)
    path.write_text(cfg.to_json() + "\n", encoding="utf-8")
    assert w.open_config(path)
    assert w.config == cfg
    assert combo(w).currentText() == "custom (from net.json)"
    assert w.controls.preset_desc.text() == "Loaded from net.json."
    w.findChild(QWidget, "growthRateSlider").setValue(20)  # an edit keeps the origin
    assert combo(w).currentText() == "custom (from net.json)"
    assert "net.json" in w.windowTitle()
    # A file holding a preset exactly is that preset.
    path.write_text(get_preset("densenet121").to_json() + "\n", encoding="utf-8")
    assert w.open_config(path)
    assert combo(w).currentData() == "densenet121"


def test_send_to_explorer_names_the_checkpoint(explorer):
    w = explorer
    w.load_preset("densenet264")
    reuse = w.panels["reusePanel"]
    cfg = get_preset("densenet121").replace(growth_rate=12, block_depths=(2, 2, 2), num_classes=10,
                                            input_size=32, stem="cifar")
    reuse.loaded = SimpleNamespace(path="/somewhere/run.pt", config=cfg, candidate=None)
    try:
        reuse._send_config()
        assert w.config == cfg
        assert combo(w).currentText() == "custom (from run.pt)"
    finally:
        reuse.loaded = None


def test_the_origin_survives_a_restart(qtbot, widget_leak_check, qt_flush, tmp_path):
    from densegui.gui.main_window import MainWindow

    ini = str(tmp_path / "densegui.ini")
    path = tmp_path / "mine.json"
    path.write_text(get_preset("densenet121").replace(growth_rate=16).to_json() + "\n", encoding="utf-8")
    first = MainWindow(QSettings(ini, QSettings.Format.IniFormat))
    first.show()
    first.load_preset("densenet201")
    assert first.open_config(path)
    first.close()
    first.deleteLater()
    qt_flush()
    second = MainWindow(QSettings(ini, QSettings.Format.IniFormat))
    try:
        assert combo(second).currentText() == "custom (from mine.json)"
    finally:
        second.close()
        second.deleteLater()
        qt_flush()
