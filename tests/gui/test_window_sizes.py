"""The window on a laptop's screen (issue #26): at 1024×700 every tab is legible, nothing moves
under the cursor, and the sliders have a fine mode."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

from densegui.gui.legibility import clipped_texts, overlapping_siblings, squashed
from densegui.gui.widgets import ClampLabel, FitLabel, FlowLayout, TabPage


@pytest.fixture
def small_window(explorer, qtbot):
    explorer.resize(1024, 700)
    qtbot.waitUntil(explorer.is_up_to_date, timeout=60_000)
    return explorer


def _settle(qtbot, w) -> None:
    qtbot.waitUntil(lambda: w.is_up_to_date() and w.current_tab_ready(), timeout=60_000)
    qtbot.wait(30)


def test_the_window_fits_a_1024x700_screen(small_window):
    hint = small_window.minimumSizeHint()
    assert hint.width() <= 1024 and hint.height() <= 700, hint
    assert small_window.size().width() == 1024 and small_window.size().height() == 700


@pytest.mark.parametrize("tab", ["architecture", "channels", "summary", "reuse", "probe", "train", "design"])
def test_every_tab_at_1024x700_is_legible(small_window, qtbot, tab):
    w = small_window
    w.select_tab(tab)
    _settle(qtbot, w)
    page = w.tabs.currentWidget()
    assert isinstance(page, TabPage)
    # No sideways scrolling at this size: the panel fits the page's width.
    assert page.widget().width() <= page.viewport().width(), (page.widget().width(), page.viewport().width())
    assert clipped_texts(w) == []
    assert squashed(w) == []
    assert overlapping_siblings(w) == []


def test_a_page_smaller_than_its_panel_scrolls_instead_of_squashing(qtbot, widget_leak_check):
    content = QWidget()
    v = QVBoxLayout(content)
    for i in range(12):
        v.addWidget(QPushButton(f"row {i}"))
    wrapped = QLabel("a long sentence that wraps onto several lines when the page is narrow " * 4)
    wrapped.setWordWrap(True)
    v.addWidget(wrapped)
    page = TabPage(content, "testPage")
    page.resize(220, 150)
    page.show()
    qtbot.waitUntil(lambda: wrapped.height() >= wrapped.heightForWidth(wrapped.width()), timeout=2000)
    assert content.height() >= content.minimumSizeHint().height() > page.viewport().height()
    assert page.verticalScrollBar().maximum() > 0
    assert squashed(page) == [] and overlapping_siblings(page) == []
    page.resize(400, 900)  # room enough: the content takes the viewport, no scrolling
    qtbot.waitUntil(lambda: page.verticalScrollBar().maximum() == 0, timeout=2000)
    assert content.size() == page.viewport().size()
    page.close()
    page.deleteLater()


def test_a_page_with_room_enough_never_scrolls_for_qts_own_parts(qtbot, widget_leak_check):
    """A spin box's line edit and a table's header report minimum heights their owners do not give
    them; the page must not grow for those (both once scrolled a page that fit)."""
    from PySide6.QtWidgets import QSpinBox, QTableWidget

    content = QWidget()
    v = QVBoxLayout(content)
    spin = QSpinBox()
    table = QTableWidget(3, 3)
    table.setHorizontalHeaderLabels(["a", "b", "c"])
    v.addWidget(spin)
    v.addWidget(table, 1)
    page = TabPage(content, "testPage")
    page.resize(500, 400)
    page.show()
    qtbot.waitExposed(page)
    qtbot.wait(50)
    assert page.verticalScrollBar().maximum() == 0
    assert content.size() == page.viewport().size()
    page.close()
    page.deleteLater()


def test_a_flow_layout_wraps_instead_of_widening(qtbot, widget_leak_check):
    host = QWidget()
    flow = FlowLayout(host)
    buttons = [QPushButton(f"button number {i}") for i in range(6)]
    for b in buttons:
        flow.addWidget(b)
    widest = max(b.sizeHint().width() for b in buttons)
    assert host.minimumSizeHint().width() == widest  # one button per row at the least
    host.resize(widest + 10, flow.heightForWidth(widest + 10))
    host.show()
    qtbot.waitExposed(host)
    tops = {b.geometry().top() for b in buttons}
    assert len(tops) == 6  # one per row
    assert overlapping_siblings(host) == []
    wide = sum(b.sizeHint().width() for b in buttons) + 6 * flow.spacing()
    host.resize(wide, flow.heightForWidth(wide))
    qtbot.wait(10)
    assert len({b.geometry().top() for b in buttons}) == 1
    buttons[0].hide()  # a hidden widget takes no room
    qtbot.wait(10)
    assert buttons[1].geometry().left() == 0
    host.close()
    host.deleteLater()


def test_elided_labels_keep_their_whole_text_in_the_tooltip(qtbot, widget_leak_check):
    fit = FitLabel("x" * 300)
    clamp = ClampLabel(lines=2)
    clamp.setText("word " * 200)
    for label in (fit, clamp):
        label.resize(200, 40)
        label.show()
    qtbot.wait(10)
    assert not fit.full_text_fits() and fit.text() == "x" * 300 and "x" * 300 in fit.toolTip()
    assert not clamp.full_text_fits() and clamp.height() == 2 * clamp.fontMetrics().lineSpacing() + 1
    assert QLabel.text(clamp).endswith("…") and ("word " * 200).strip() in " ".join(clamp.toolTip().split())
    clamp.setText("short")  # a short text keeps the two lines: nothing below moves
    assert clamp.full_text_fits() and clamp.toolTip() == "" and clamp.height() == 2 * clamp.fontMetrics().lineSpacing() + 1
    shrink = FitLabel("125 MiB → 60.1 MiB", shrink=(20, 13))
    shrink.resize(400, 30)
    shrink.show()
    qtbot.wait(10)
    assert shrink.font().pixelSize() == 20 and shrink.full_text_fits()
    needed_at_14 = shrink.fontMetrics().horizontalAdvance(shrink.text()) * 14 / 20
    shrink.resize(int(needed_at_14) + 4, 30)
    qtbot.wait(10)
    assert 13 <= shrink.font().pixelSize() < 20 and shrink.full_text_fits()  # smaller, but whole
    for label in (fit, clamp, shrink):
        label.close()
        label.deleteLater()


def _tabs_top(w) -> int:
    return w.tabs.mapTo(w, QPoint(0, 0)).y()


def test_nothing_moves_when_a_baseline_is_pinned_an_error_shown_or_the_preset_edited(small_window, qtbot):
    w = small_window
    top, sliders = _tabs_top(w), w.controls.control("growth_rate").mapTo(w, QPoint(0, 0)).y()
    w.pin_baseline()
    qtbot.wait(20)
    assert w.headline.params_card.delta.isVisible() and w.headline.baseline_label.isVisible()
    assert _tabs_top(w) == top
    w.controls.control("growth_rate").setValue(40)  # the first edit: "custom (from densenet121)"
    qtbot.waitUntil(w.is_up_to_date, timeout=30_000)
    assert w.controls.preset_name() is None
    assert w.controls.control("growth_rate").mapTo(w, QPoint(0, 0)).y() == sliders
    w.controls.control("compression").setValue(0.0)  # invalid: the sticky banner
    qtbot.waitUntil(lambda: w.invalid_label.isVisible(), timeout=5000)
    assert _tabs_top(w) == top
    assert "Invalid configuration" in w.invalid_label.text()
    w.select_tab("summary")  # an invalid configuration is a state: it stays across tabs
    assert w.invalid_label.isVisible()
    qtbot.mouseClick(w.banner.close_button, Qt.MouseButton.LeftButton)
    assert not w.invalid_label.isVisible()
    w.clear_baseline()
    assert _tabs_top(w) == top


def test_a_failed_open_says_so_until_dismissed_or_another_tab(small_window, qtbot, tmp_path):
    w = small_window
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert not w.open_config(bad)
    assert w.invalid_label.isVisible() and "Could not open" in w.invalid_label.text()
    banner = w.banner.geometry()
    tabs = w.tabs.geometry()
    assert tabs.contains(banner.topLeft()) and tabs.contains(banner.bottomRight())  # over the tabs, not above them
    w.select_tab("summary")
    assert not w.invalid_label.isVisible()


def _handle_x(slider) -> int:
    from PySide6.QtWidgets import QStyle, QStyleOptionSlider

    opt = QStyleOptionSlider()
    slider.initStyleOption(opt)
    return slider.style().subControlRect(QStyle.ComplexControl.CC_Slider, opt,
                                         QStyle.SubControl.SC_SliderHandle, slider).center().x()


def test_shift_drag_moves_the_growth_rate_one_step_per_few_pixels(small_window, qtbot):
    w = small_window
    labelled = w.controls.control("growth_rate")
    inner = labelled._slider
    assert "Shift+drag" in labelled.toolTip()
    start = labelled.value()
    y = inner.height() // 2
    x = _handle_x(inner)
    qtbot.mousePress(inner, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, QPoint(x, y))
    qtbot.mouseMove(inner, QPoint(x + 30, y))
    qtbot.mouseRelease(inner, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, QPoint(x + 30, y))
    fine = labelled.value() - start
    assert fine == 30 // 6  # FineDrag.PIXELS per step
    qtbot.waitUntil(lambda: w.config.growth_rate == start + fine, timeout=30_000)
    # A plain drag of the same 30 px moves it by the groove's scale: many values.
    x = _handle_x(inner)
    before = labelled.value()
    qtbot.mousePress(inner, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(x, y))
    qtbot.mouseMove(inner, QPoint(x + 30, y))
    qtbot.mouseRelease(inner, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(x + 30, y))
    assert labelled.value() - before > 3 * fine
