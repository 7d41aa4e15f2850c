"""The explorer explores any family: a ResNet preset shows controls built from the ResNet's fields,
its sliders rebuild the headline and the summary live, a DenseNet preset brings the DenseNet
controls back (each family's widgets are kept), File ▸ Open and Share take either family, and a
third family (the tests' ToyNet) gets controls from its fields with no densegui edit.
"""

from __future__ import annotations

import json

from helpers.explorer import TIMEOUT, label, wait_summary
from PySide6.QtCore import QSettings
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QComboBox, QSpinBox, QWidget

from densegui.core.arch import registry as arch
from densegui.core.arch.family import MEMORY_EFFICIENT, TRAIN
from densegui.gui.main_window import MainWindow


def meta_params(cfg) -> int:
    """Parameters of the real module, built on the meta device (independent of the layer table)."""
    return sum(p.numel() for p in arch.build_model(cfg, "meta").parameters())


def pick_preset(w, name: str) -> None:
    combo = w.findChild(QComboBox, "presetCombo")
    combo.setCurrentIndex(combo.findData(name))


def page_child(w, name: str) -> QWidget:
    """A widget of the shown family's controls (every family has its own "stemCombo", …)."""
    found = w.controls.page.findChild(QWidget, name)
    assert found is not None, name
    return found


def test_a_resnet_preset_shows_resnet_controls_and_a_densenet_one_brings_them_back(qtbot, explorer):
    w = explorer
    densenet_page = w.controls.page
    assert w.controls.family().name == arch.default_family().name
    combo = w.findChild(QComboBox, "presetCombo")
    listed = [combo.itemData(i) for i in range(combo.count())]
    assert set(arch.presets()) <= set(listed)  # every family's presets

    pick_preset(w, "resnet50")
    cfg = arch.get_preset("resnet50")
    assert w.config == cfg and w.controls.family() is arch.family_of(cfg)
    resnet_page = w.controls.page
    assert resnet_page is not densenet_page and resnet_page.isVisible() and not densenet_page.isVisible()
    assert [page_child(w, f"stageDepthSlider{i}").value() for i in range(1, 5)] == [3, 4, 6, 3]
    assert resnet_page.findChild(QWidget, "stageDepthSlider5") is None
    assert [page_child(w, f"widthsSpin{i}").value() for i in range(1, 5)] == [64, 128, 256, 512]
    assert page_child(w, "stageCountSpin").value() == 4
    assert page_child(w, "blockCombo").currentText() == "bottleneck"
    assert page_child(w, "shortcutCombo").currentText() == "B"
    assert page_child(w, "stemCombo").currentText() == "imagenet"
    assert page_child(w, "stemWidthSpin").value() == 64
    assert resnet_page.findChild(QWidget, "growthRateSlider") is None  # DenseNet's fields are not here
    assert resnet_page.findChild(QWidget, "memoryEfficientToggle") is None
    for name in ("stageDepthSlider1", "widthsSpin1", "blockCombo", "shortcutCombo", "stemWidthSpin"):
        assert page_child(w, name).toolTip(), f"{name} has no tooltip"
    n = arch.layer_table(cfg).params
    assert n == meta_params(cfg) == arch.presets()["resnet50"].params == 25_557_032
    assert label(w, "paramsLabel").text() == f"{n:,}"
    assert "ResNet explorer" in w.windowTitle()

    pick_preset(w, "densenet169")
    assert w.controls.page is densenet_page and densenet_page.isVisible() and not resnet_page.isVisible()
    assert w.config == arch.get_preset("densenet169")
    assert w.findChild(QWidget, "blockDepthSlider4").value() == 32
    assert label(w, "paramsLabel").text() == f"{arch.presets()['densenet169'].params:,}"

    pick_preset(w, "resnet18")  # the ResNet page is kept, not rebuilt
    assert w.controls.page is resnet_page
    assert [page_child(w, f"stageDepthSlider{i}").value() for i in range(1, 5)] == [2, 2, 2, 2]
    assert page_child(w, "blockCombo").currentText() == "basic"


def test_resnet_sliders_rebuild_headline_plots_and_summary_live(qtbot, explorer):
    w = explorer
    w.load_preset("resnet18")
    wait_summary(qtbot, w)
    with qtbot.waitSignal(w.summary_panel.summaryUpdated, timeout=TIMEOUT) as blocker:
        page_child(w, "stageDepthSlider3").setValue(5)
        expected = arch.get_preset("resnet18").replace(stage_depths=(2, 2, 5, 2))
        assert w.config == expected  # the headline at once, before the summary
        assert label(w, "paramsLabel").text() == f"{arch.layer_table(expected).params:,}"
        assert label(w, "macsLabel").text() == f"{arch.layer_table(expected).macs / 1e9:.3f} G"
        qtbot.waitUntil(w.plots_up_to_date, timeout=1000)
        assert w.channel_panel.table.config == expected
    assert blocker.args[0].config == expected
    assert blocker.args[0].total_params == arch.layer_table(expected).params == meta_params(expected)
    assert w.findChild(QComboBox, "presetCombo").currentText() == "custom (from resnet18)"

    # Three stages: the widths follow; a new stage starts as a copy of the last.
    page_child(w, "stageCountSpin").setValue(3)
    assert w.config.stage_depths == (2, 2, 5) and w.config.widths == (64, 128, 256)
    assert w.controls.page.findChild(QWidget, "widthsSpin4") is None
    page_child(w, "stageCountSpin").setValue(4)
    assert w.config.stage_depths == (2, 2, 5, 5) and w.config.widths == (64, 128, 256, 256)
    w.controls.page.findChild(QSpinBox, "widthsSpin4").setValue(320)
    page_child(w, "blockCombo").setCurrentText("bottleneck")
    page_child(w, "shortcutCombo").setCurrentText("A")
    expected = expected.replace(stage_depths=(2, 2, 5, 5), widths=(64, 128, 256, 320), block="bottleneck",
                                shortcut="A")
    assert w.config == expected
    assert label(w, "paramsLabel").text() == f"{arch.layer_table(expected).params:,}" == f"{meta_params(expected):,}"
    wait_summary(qtbot, w)
    assert w.summary_panel.result.total_params == arch.layer_table(expected).params

    # An invalid combination is explained; the last valid figures stay.
    page_child(w, "stemWidthSpin").setValue(512)  # shortcut A cannot reduce 512 to 256
    invalid = label(w, "invalidLabel")
    assert invalid.isVisible() and "shortcut A cannot reduce channels" in invalid.text()
    assert w.config == expected


def test_open_save_and_share_a_resnet(qtbot, explorer, tmp_path):
    w = explorer
    plain = tmp_path / "r.json"  # hand-written, without "family": read by its fields
    plain.write_text('{"stage_depths": [2, 2], "widths": [16, 32], "block": "basic", "stem": "cifar", '
                     '"stem_width": 16, "num_classes": 10, "input_size": 32}')
    assert w.open_config(plain)
    cfg = arch.config_from_file(plain)
    assert w.config == cfg and w.controls.family() is arch.family_of(cfg)
    assert [page_child(w, f"stageDepthSlider{i}").value() for i in (1, 2)] == [2, 2]
    assert label(w, "paramsLabel").text() == f"{arch.layer_table(cfg).params:,}"
    assert w.findChild(QComboBox, "presetCombo").currentText() == "custom (from r.json)"

    summary = tmp_path / "summary.json"  # a `summary --json` output of a ResNet preset
    summary.write_text(json.dumps({"config": arch.get_preset("resnet20").to_dict(), "total_params": 1}))
    assert w.open_config(summary)
    assert w.config == arch.get_preset("resnet20")
    assert w.findChild(QComboBox, "presetCombo").currentData() == "resnet20"

    bad = tmp_path / "bad.json"
    bad.write_text('{"stage_depths": [2, 2], "widths": [16]}')
    assert not w.open_config(bad)
    assert "widths must list one width per stage" in label(w, "invalidLabel").text()
    assert w.config == arch.get_preset("resnet20")

    w.copy_config()
    assert arch.config_from_json(QGuiApplication.clipboard().text()) == w.config
    w.copy_snippet()
    scope: dict = {}
    exec(QGuiApplication.clipboard().text(), scope)  # noqa: S102 - our own generated snippet
    assert scope["cfg"] == w.config
    assert sum(p.numel() for p in scope["model"].parameters()) == arch.layer_table(w.config).params
    out = tmp_path / "saved.json"
    assert w.save_config(out) and arch.config_from_file(out) == w.config

    page_child(w, "stageDepthSlider2").setValue(4)
    edited = w.config
    w.open_config(out)  # and back to a DenseNet file
    dense = tmp_path / "d.json"
    dense.write_text(arch.get_preset("densenet-40-k12").to_json())
    assert w.open_config(dense) and w.config == arch.get_preset("densenet-40-k12")
    assert w.controls.family() is arch.default_family()
    assert edited.stage_depths == (3, 4, 3)


def test_a_resnet_is_restored_from_the_settings(qtbot, widget_leak_check, qt_flush, tmp_path):
    ini = str(tmp_path / "densegui.ini")
    first = MainWindow(QSettings(ini, QSettings.Format.IniFormat))
    first.load_preset("resnet34")
    first.close()
    first.deleteLater()
    qt_flush()
    second = MainWindow(QSettings(ini, QSettings.Format.IniFormat))
    try:
        assert second.config == arch.get_preset("resnet34")
        assert second.findChild(QComboBox, "presetCombo").currentData() == "resnet34"
        assert second.controls.family() is arch.family_of(second.config)
    finally:
        second.close()
        second.deleteLater()
        qt_flush()


def test_a_third_family_gets_controls_from_its_fields(qtbot, toy_family, widget_leak_check, qt_flush):
    w = MainWindow(settings=None)
    w.show()
    try:
        pick_preset(w, "toynet-m")
        cfg = arch.get_preset("toynet-m")
        assert w.config == cfg and w.controls.family() is toy_family
        assert [page_child(w, f"stageDepthSlider{i}").value() for i in (1, 2, 3)] == list(cfg.depths)
        assert [page_child(w, f"widthsSpin{i}").value() for i in (1, 2, 3)] == list(cfg.widths)
        page_child(w, "stageDepthSlider2").setValue(4)
        expected = cfg.replace(depths=(2, 4, 2))
        assert w.config == expected
        assert label(w, "paramsLabel").text() == f"{arch.layer_table(expected).params:,}"
        assert "ToyNet explorer" in w.windowTitle()
    finally:
        w.close()
        w.deleteLater()
        qt_flush()


def test_what_a_family_cannot_do_is_one_line_or_a_disabled_control(qtbot, explorer):
    """A ResNet has no trainer and no memory-efficient mode: the train tab says so in one line
    (and Start refuses in one line), the probe's memory-efficient box is off and disabled, and
    the controls have no such toggle; a DenseNet brings them back."""
    w = explorer
    w.load_preset("resnet20")
    family = arch.family_of(w.config)
    assert not family.can(TRAIN) and not family.can(MEMORY_EFFICIENT)
    assert w.controls.page.findChild(QWidget, "memoryEfficientToggle") is None
    w.select_tab("train")
    train = w.train_panel
    qtbot.waitUntil(lambda: not train._label.pending, timeout=5000)
    refusal = [line for line in train.config_label.text().split("<br>") if "cannot train" in line]
    assert len(refusal) == 1 and "ResNet" in refusal[0]
    train.start()
    assert not train.is_running() and train.error_label.isVisible() and "\n" not in train.error_label.text()
    assert not w.probe_panel.memeff_check.isEnabled() and not w.probe_panel.memeff_check.isChecked()

    w.load_preset("densenet-40-k12")
    qtbot.waitUntil(lambda: not train._label.pending, timeout=5000)
    assert "cannot train" not in train.config_label.text()
    assert w.probe_panel.memeff_check.isEnabled()
    assert w.findChild(QWidget, "memoryEfficientToggle").isVisible()


def test_a_family_the_explorer_cannot_edit_is_refused_in_one_line(qtbot, toy_family, widget_leak_check, qt_flush,
                                                                   tmp_path, capsys):
    """Without the EXPLORE capability a family's presets are not offered, its configurations are
    refused in one line (window and CLI), and it can still be pinned as the baseline."""
    import dataclasses

    arch.register(dataclasses.replace(toy_family, capabilities=frozenset()))
    w = MainWindow(settings=None)
    try:
        assert w.findChild(QComboBox, "presetCombo").findData("toynet-s") == -1
        before = w.config
        assert not w.apply_config(arch.get_preset("toynet-s"))
        text = label(w, "invalidLabel").text()
        assert "toynet-s is a ToyNet; the explorer edits a DenseNet or ResNet" in text and "\n" not in text
        assert w.config == before and w.controls.family() is arch.default_family()
        path = tmp_path / "toy.json"
        path.write_text(arch.get_preset("toynet-m").to_json())
        assert not w.open_config(path) and w.config == before
        w.pin_preset("toynet-m")
        assert w.baseline.config == arch.get_preset("toynet-m")
    finally:
        w.close()
        w.deleteLater()
        qt_flush()
    from densegui.cli import main

    assert main(["gui", "--preset", "toynet-s"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the explorer edits a DenseNet or ResNet" in err[0]


def test_every_field_kind_has_a_widget_that_round_trips_its_value(qtbot, widget_leak_check):
    from densegui.core.arch.family import Field
    from densegui.gui.controls import FACTORIES

    family = arch.default_family()
    cases = [
        (Field("depth", "depth", "int", lo=1, hi=64), 17, "depthSlider"),
        (Field("width", "width", "int", "channels", lo=1, hi=4096), 300, "widthSpin"),
        (Field("stem", "stem", "int", "stem channels (default 2k)", lo=1, hi=2048, optional=True), None, "stemSpin"),
        (Field("rate", "rate", "float", lo=0.0, hi=1.0), 0.35, "rateSlider"),
        (Field("decay", "decay", "float"), 12.5, "decaySpin"),
        (Field("scale", "scale", "float", lo=0.0, hi=2.0, optional=True), None, "scaleSpin"),
        (Field("on", "on", "bool"), True, "onToggle"),
        (Field("mode", "mode", "choice", choices=("a", "b")), "b", "modeCombo"),
    ]
    for field, value, name in cases:
        control = FACTORIES[field.kind](field, family)
        qtbot.addWidget(control.widget)
        assert control.widget.objectName() == name
        seen = []
        control.changed.connect(lambda *_: seen.append(1))
        control.set(value)
        assert control.get() == value, field
        assert seen or value is None, f"{name} did not signal the change"
    auto = FACTORIES["int"](cases[2][0], family)
    qtbot.addWidget(auto.widget)
    assert auto.widget.specialValueText() == "2k (auto)" and auto.get() is None
    auto.set(64)
    assert auto.get() == 64
    auto.set(None)
    assert auto.get() is None
