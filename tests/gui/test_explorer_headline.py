"""The explorer's headline figures against independent computations (tests/helpers/reference.py):
presets, invalid input, the pinned baseline's deltas, and figures that never resize the window (FitLabel).
"""

from __future__ import annotations

import pytest
from helpers.explorer import label, wait_summary
from helpers.reference import count_params, final_channels
from PySide6.QtWidgets import QWidget

from densegui.core.arch.registry import get_preset


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
    x, y = w.channel_panel.baseline_series("in")
    assert len(x) == len(w.baseline.rows) and y.max() == 1024  # the baseline's own channel curve
    w.clear_baseline()
    assert not delta.isVisible()
    assert len(w.channel_panel.baseline_series("in")[0]) == 0


@pytest.mark.parametrize("name", ["densenet-40-k12", "densenet264"])
def test_preset_parameter_counts_match_the_model(qtbot, explorer, name):
    explorer.load_preset(name)
    assert label(explorer, "paramsLabel").text() == f"{count_params(get_preset(name)):,}"


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
