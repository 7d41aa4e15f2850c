"""The connectivity control (a "spec" field: a combo box and a spin box for W) driven with the keyboard
through its real widgets, loading without signals, bad values in an opened JSON (the red banner),
Share (JSON and Python snippet), and the Design space sweep of it against the fraction of the
connections kept (counted here from the plan)."""

from __future__ import annotations

import json

import pytest
from helpers.explorer import TIMEOUT, label
from helpers.reference import count_params
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QComboBox, QSpinBox

from densegui.core.arch import registry as arch

FIELD = "connectivity"


def widgets(w) -> tuple[QComboBox, QSpinBox]:
    combo, spin = w.findChild(QComboBox, "connectivityCombo"), w.findChild(QSpinBox, "connectivitySpin")
    assert combo is not None and spin is not None
    return combo, spin


def edit(qtbot, w, act) -> object:
    """Run one user action; the one configuration the controls emitted for it."""
    emitted: list = []
    w.controls.configChanged.connect(emitted.append)
    try:
        act()
        qtbot.waitUntil(lambda: bool(emitted), timeout=2000)
    finally:
        w.controls.configChanged.disconnect(emitted.append)
    assert len(emitted) == 1, emitted
    return emitted[0]


def headline_is(w, cfg) -> None:
    assert w.config == cfg
    assert label(w, "paramsLabel").text() == f"{arch.layer_table(cfg).params:,}"


def kept(cfg) -> float:
    """The dense layers' sources in the plan over the dense pattern's (layer i of a block: i)."""
    units = [u for u in arch.plan(cfg).units if u.kind == "dense"]
    return sum(len(u.sources) for u in units) / sum(u.index for u in units)


def test_the_control_then_a_sweep_of_it(qtbot, explorer):
    w = explorer
    combo, spin = widgets(w)
    field = arch.family_of(w.config).field(FIELD)
    assert [combo.itemText(i) for i in range(combo.count())] == [c.partition(":")[0] for c in field.choices]
    assert field.help in combo.toolTip() and field.help in spin.toolTip() and "1 to 128" in spin.toolTip()
    assert combo.currentText() == "dense" and not spin.isVisible() and spin.value() == 4
    base = arch.get_preset("densenet121")

    combo.setFocus()
    cfg = edit(qtbot, w, lambda: qtbot.keyClick(combo, Qt.Key.Key_End))  # the last choice: log
    assert cfg == base.replace(connectivity="log") and combo.currentText() == "log" and not spin.isVisible()
    headline_is(w, cfg)
    assert arch.layer_table(cfg).params == count_params(cfg) < count_params(base)  # (a model built and counted)
    assert w.controls.preset_combo.currentText() == "custom (from densenet121)"

    cfg = edit(qtbot, w, lambda: qtbot.keyClick(combo, Qt.Key.Key_Up))  # window, at its default W
    assert cfg.connectivity == "window:4" and spin.isVisible()
    headline_is(w, cfg)
    spin.setFocus()
    cfg = edit(qtbot, w, lambda: qtbot.keyClick(spin, Qt.Key.Key_Up))
    assert cfg.connectivity == "window:5"
    headline_is(w, cfg)

    def type_12():
        spin.lineEdit().selectAll()
        qtbot.keyClicks(spin, "12")  # (no keyboard tracking: "1" is not a configuration)
        qtbot.keyClick(spin, Qt.Key.Key_Return)

    cfg = edit(qtbot, w, type_12)
    assert cfg == base.replace(connectivity="window:12") and spin.value() == 12
    headline_is(w, cfg)
    assert arch.layer_table(cfg).params == count_params(cfg)

    # The Design space tab sweeps it: params and MACs against the fraction of the connections kept.
    base = arch.get_preset("densenet-40-k12")
    current = base.replace(connectivity="log")
    w.apply_config(current, origin="test")
    w.select_tab("design")
    qtbot.waitUntil(lambda: w.design_panel is not None and w.design_panel.config == current, timeout=TIMEOUT)
    panel = w.design_panel
    index = panel.field_combo.findData(FIELD)
    assert index >= 0
    panel.field_combo.setCurrentIndex(index)
    defaults = panel.values_edit.text().split(",")
    assert defaults[:2] == ["dense", "log"] and "window:1" in defaults and "window:8" in defaults
    assert panel.values_edit.isVisible() and not panel.start_spin.isVisible()
    panel.values_edit.setText("dense, log, window:2, Window:06")
    with qtbot.waitSignal(panel.sweepFinished, timeout=TIMEOUT) as done:
        qtbot.mouseClick(panel.sweep_button, Qt.MouseButton.LeftButton)
    assert done.args == [True], panel.status.text()
    specs = ["dense", "log", "window:2", "window:6"]
    assert [r["value"] for r in panel.sweep_rows] == specs
    configs = [base.replace(connectivity=s) for s in specs]
    xs, ys = panel.sweep_plots.curves["params"].getData()
    assert list(xs) == pytest.approx([kept(c) for c in configs]) and xs[0] == 1.0
    assert list(ys) == pytest.approx([arch.layer_table(c).params / 1e6 for c in configs])
    _, macs = panel.sweep_plots.curves["macs"].getData()
    assert list(macs) == pytest.approx([arch.layer_table(c).macs / 1e9 for c in configs])
    texts = [t.toPlainText() for t in panel.sweep_plots.labels["params"] if t.isVisible()]
    assert texts == specs
    assert panel.sweep_plots.markers["params"].value() == pytest.approx(kept(current)) and kept(current) < 1
    assert panel.sweep_plots.plots["macs"].getAxis("bottom").labelText == "fraction of connections kept"

    panel.values_edit.setText("dense, sparse")  # refused in one line; nothing runs
    with qtbot.waitSignal(panel.sweepFinished) as done:
        qtbot.mouseClick(panel.sweep_button, Qt.MouseButton.LeftButton)
    assert done.args == [False] and "'sparse'" in panel.status.text() and panel.sweep_button.isEnabled()

    panel.field_combo.setCurrentIndex(panel.field_combo.findData("growth_rate"))  # numbers again
    assert panel.start_spin.isVisible() and not panel.values_edit.isVisible()
    assert panel.sweep_plots.markers["params"].value() == 12  # (k of the current configuration)


def test_loading_bad_values_and_share(qtbot, explorer, tmp_path):
    w = explorer
    combo, spin = widgets(w)
    emitted: list = []
    w.controls.configChanged.connect(emitted.append)
    w.controls.set_config(arch.get_preset("densenet169").replace(connectivity="window:9"), origin="densenet169")
    assert (combo.currentText(), spin.value(), spin.isVisible()) == ("window", 9, True)
    w.controls.set_config(arch.get_preset("densenet169").replace(connectivity="log"), origin="densenet169")
    assert (combo.currentText(), spin.isVisible()) == ("log", False)
    w.controls.configChanged.disconnect(emitted.append)
    assert emitted == []

    path = tmp_path / "sparse.json"
    path.write_text(arch.get_preset("densenet-40-k12").replace(connectivity="window:3").to_json())
    assert w.open_config(path)
    assert (combo.currentText(), spin.value()) == ("window", 3)
    assert w.controls.preset_combo.currentText() == "custom (from sparse.json)"
    spin.setFocus()
    cfg = edit(qtbot, w, lambda: qtbot.keyClick(spin, Qt.Key.Key_Down))
    assert cfg == arch.get_preset("densenet-40-k12").replace(connectivity="window:2")
    assert w.controls.preset_combo.currentText() == "custom (from sparse.json)"

    for bad in ("window:0", "window:x", "sparse"):  # the red banner; the window keeps its configuration
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(arch.get_preset("densenet121").to_dict() | {FIELD: bad}))
        assert not w.open_config(path)
        banner = label(w, "invalidLabel")
        assert banner.isVisible() and "connectivity" in banner.text() and repr(bad) in banner.text()
        assert "\n" not in banner.text() and w.config == cfg

    # Share: the JSON and the Python snippet carry it.
    w.copy_config()
    assert json.loads(QGuiApplication.clipboard().text())[FIELD] == "window:2"
    assert arch.config_from_json(QGuiApplication.clipboard().text()) == cfg
    w.copy_snippet()
    scope: dict = {}
    exec(QGuiApplication.clipboard().text(), scope)  # noqa: S102 - our own generated snippet
    assert scope["cfg"] == cfg and scope["cfg"].connectivity == "window:2"
    assert sum(p.numel() for p in scope["model"].parameters()) == count_params(cfg) < count_params(
        cfg.replace(connectivity="dense"))
