"""The explorer on an RDNet (issue #24): its controls come from the family's fields, with one row per
stage (a depth slider, a growth-rate spin box, a downsample check box) for 7 to 12 stages; real
widget edits rebuild the headline, checked against the layer table and the meta-built module; the
Architecture tab draws every stage; Pin as baseline works across families.
"""

from __future__ import annotations

from helpers.explorer import label
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QSlider, QSpinBox, QWidget

from densegui.core.arch import registry as arch
from densegui.gui.architecture_panel import si


def meta_params(cfg) -> int:
    """Parameters of the real module on the meta device (independent of the layer table)."""
    return sum(p.numel() for p in arch.build_model(cfg, "meta").parameters())


def pick_preset(qtbot, w, name: str) -> None:
    combo = w.findChild(QComboBox, "presetCombo")
    combo.setCurrentIndex(combo.findData(name))
    qtbot.waitUntil(lambda: w.config == arch.get_preset(name), timeout=2000)
    # (rows added to a shown page appear on a queued show: wait for the last one)
    last = w.controls.depth_sliders[-1]
    qtbot.waitUntil(last.isVisible, timeout=2000)


def child(w, cls, name: str):
    """A widget of the shown family's page (ResNet has "stageDepthSlider1" too)."""
    found = w.controls.page.findChild(cls, name)
    assert found is not None, name
    return found


def rows_shown(w, cfg) -> dict[str, tuple]:
    n = len(cfg.stage_depths)
    return {"depths": tuple(child(w, QWidget, f"stageDepthSlider{i}").value() for i in range(1, n + 1)),
            "growth": tuple(child(w, QSpinBox, f"growthRatesSpin{i}").value() for i in range(1, n + 1)),
            "down": tuple(int(child(w, QCheckBox, f"downsampleToggle{i}").isChecked()) for i in range(1, n + 1))}


def type_into(qtbot, spin: QSpinBox, text: str) -> None:
    """Select the spin box's text, type ``text`` and press Enter (keyboard tracking is off)."""
    spin.selectAll()
    qtbot.keyClicks(spin, text)
    qtbot.keyClick(spin, Qt.Key.Key_Return)


def assert_headline(w, cfg, module: bool = False) -> None:
    """The headline shows ``cfg``'s table (``module``: and the meta-built module's count)."""
    table = arch.layer_table(cfg)
    assert w.config == cfg
    assert label(w, "paramsLabel").text() == f"{table.params:,}"
    if module:
        assert table.params == meta_params(cfg)
    assert label(w, "macsLabel").text() == f"{table.macs / 1e9:.3f} G"


def test_rdnet_tiny_rows_and_real_edits_rebuild_the_headline(qtbot, explorer):
    w = explorer
    pick_preset(qtbot, w, "rdnet-tiny")
    cfg = arch.get_preset("rdnet-tiny")
    assert w.controls.family() is arch.family_of(cfg)
    assert child(w, QSpinBox, "stageCountSpin").value() == 7
    assert rows_shown(w, cfg) == {"depths": cfg.stage_depths, "growth": cfg.growth_rates, "down": cfg.downsample}
    assert w.controls.page.findChild(QWidget, "stageDepthSlider8") is None
    assert_headline(w, cfg)
    assert "RDNet explorer" in w.windowTitle()

    # A click on stage 4's check box: it now downsamples.
    toggle = child(w, QCheckBox, "downsampleToggle4")
    qtbot.mouseClick(toggle, Qt.MouseButton.LeftButton, pos=toggle.rect().center())
    cfg = cfg.replace(downsample=(0, 1, 1, 1, 0, 0, 1))
    assert_headline(w, cfg)
    assert w.findChild(QComboBox, "presetCombo").currentText() == "custom (from rdnet-tiny)"
    # Stage 2's growth rate typed in; stage 5's depth one step up by the keyboard.
    type_into(qtbot, child(w, QSpinBox, "growthRatesSpin2"), "96")
    cfg = cfg.replace(growth_rates=(64, 96, 128, 128, 128, 128, 224))
    assert_headline(w, cfg)
    slider = child(w, QWidget, "stageDepthSlider5").findChild(QSlider)
    qtbot.keyClick(slider, Qt.Key.Key_Up)
    cfg = cfg.replace(stage_depths=(3, 3, 3, 3, 4, 3, 3))
    assert_headline(w, cfg)
    # An eighth stage starts as a copy of the seventh, in every per-stage field.
    qtbot.keyClick(child(w, QSpinBox, "stageCountSpin"), Qt.Key.Key_Up)
    cfg = cfg.replace(stage_depths=cfg.stage_depths + (3,), growth_rates=cfg.growth_rates + (224,),
                      downsample=cfg.downsample + (1,))
    assert_headline(w, cfg)
    assert rows_shown(w, cfg)["down"] == cfg.downsample
    assert_headline(w, cfg, module=True)

    # Too many downsampling stages for the input: the banner says why; the last valid figures stay.
    type_into(qtbot, child(w, QSpinBox, "inputSizeSpin"), "32")
    invalid = label(w, "invalidLabel")
    assert invalid.isVisible() and "input_size 32 is too small" in invalid.text()
    assert_headline(w, cfg)


def test_twelve_stages_load_whole_and_drop_one(qtbot, explorer):
    w = explorer
    pick_preset(qtbot, w, "rdnet-large")
    cfg = arch.get_preset("rdnet-large")
    count = child(w, QSpinBox, "stageCountSpin")
    assert count.value() == 12  # (the spin box once stopped at 8 while 12 rows showed)
    assert rows_shown(w, cfg) == {"depths": cfg.stage_depths, "growth": cfg.growth_rates, "down": cfg.downsample}
    assert_headline(w, cfg)
    labels = [lab for lab in w.controls.page.findChildren(QLabel) if lab.text() in ("Stage 10", "Stage 12")]
    assert len(labels) == 2
    for lab in labels:  # the whole text fits
        assert lab.width() >= lab.fontMetrics().horizontalAdvance(lab.text())
    qtbot.keyClick(count, Qt.Key.Key_Down)
    cfg = cfg.replace(stage_depths=cfg.stage_depths[:11], growth_rates=cfg.growth_rates[:11],
                      downsample=cfg.downsample[:11])
    assert_headline(w, cfg, module=True)
    assert w.controls.page.findChild(QWidget, "growthRatesSpin12") is None


def test_architecture_tab_draws_every_stage_and_hover_reads_a_block(qtbot, explorer):
    w = explorer
    pick_preset(qtbot, w, "rdnet-small")  # 11 stages
    w.select_tab("architecture")
    panel = w.architecture_panel
    qtbot.waitUntil(panel.is_up_to_date, timeout=5000)
    cfg = arch.get_preset("rdnet-small")
    lay = panel.view.layout_
    per_row = [sum(1 for i in r.items if i.role == "layer") for r in lay.rows]
    assert [n for n in per_row if n] == list(cfg.stage_depths)
    blocks = [i for r in lay.rows for i in r.items if i.role == "layer"]
    assert [b.path for b in blocks] == [u.path for u in arch.plan(cfg).units if u.kind == "dense"]
    # The first stage's second block: a bar is drawn where the layout puts it, and hovering reads it.
    item = blocks[1]
    point = panel.view.widget_rect(item).center().toPoint()
    panel.view.repaint()
    image = panel.view.grab().toImage()
    dpr = image.devicePixelRatio()
    assert image.pixelColor(int(point.x() * dpr), int(point.y() * dpr)).lightness() < 200
    qtbot.mouseMove(panel.view, point)
    qtbot.waitUntil(lambda: item.path in panel.readout.text(), timeout=2000)
    model = arch.build_model(cfg, "meta")
    n = sum(p.numel() for p in model.get_submodule(item.path).parameters())
    assert f" · {si(n)} params · " in panel.readout.text(), (n, panel.readout.text())


def test_pin_as_baseline_across_families(qtbot, explorer):
    w = explorer
    pick_preset(qtbot, w, "resnet50")
    bar = w.findChild(QWidget, "mainToolbar")
    qtbot.mouseClick(bar.widgetForAction(w.pin_action), Qt.MouseButton.LeftButton)  # the real button
    base = arch.layer_table(arch.get_preset("resnet50"))
    assert w.baseline is not None and w.baseline.config == base.config
    pick_preset(qtbot, w, "rdnet-tiny")
    table = arch.layer_table(arch.get_preset("rdnet-tiny"))
    delta = label(w, "paramsDelta")
    assert delta.isVisible() and delta.text().startswith(f"{table.params - base.params:+,}")
    assert label(w, "macsDelta").text().startswith(f"{(table.macs - base.macs) / 1e9:+.3f} G")
    assert "resnet50" in label(w, "baselineLabel").text()
    w.select_tab("channels")
    qtbot.waitUntil(w.plots_up_to_date, timeout=2000)
    assert w.channel_panel.x_combo.currentData() == "depth"  # another family: fraction of depth
    # And the other way: an RDNet pinned under a DenseNet.
    w.pin_preset("rdnet-tiny")
    pick_preset(qtbot, w, "densenet121")
    other = arch.layer_table(arch.get_preset("densenet121"))
    assert label(w, "paramsDelta").text().startswith(f"{other.params - table.params:+,}")
    assert "rdnet-tiny" in label(w, "baselineLabel").text()
    w.select_tab("architecture")
    qtbot.waitUntil(w.architecture_panel.is_up_to_date, timeout=5000)
    base_layout = w.architecture_panel.view.baseline
    assert base_layout is not None and base_layout.config == arch.get_preset("rdnet-tiny")
