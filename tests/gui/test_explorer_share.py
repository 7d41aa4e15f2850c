"""Getting a configuration in and out of the explorer: save and open JSON, copy the configuration or
a Python snippet, and the last configuration kept in the settings (never the user's in tests).
"""

from __future__ import annotations

import json

from helpers.explorer import label
from helpers.reference import count_params
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QComboBox, QWidget

from densegui.core.arch.densenet.config import DenseNetConfig

from densegui.core.arch.registry import get_preset
from densegui.gui.main_window import MainWindow


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
