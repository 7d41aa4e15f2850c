"""The explorer's channel plots: redrawn once per burst of changes, hover read-out, log scale and PNG
export, block shading and transition lines (as item state and as pixels), y ranges and axis ticks.
"""

from __future__ import annotations

import math

import pytest
import torch
from helpers.explorer import label
from helpers.reference import count_params
from PySide6.QtCore import QPoint, QPointF
from PySide6.QtWidgets import QWidget

from densegui.core.arch.registry import get_preset
from densegui.core.arch.densenet.table import layer_table


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
    ys = w.channel_panel.series("in")[1]
    assert ys.max() == max(r.in_channels for r in layer_table(expected).rows)
    # Back to a configuration already drawn before the timer fires: nothing is redrawn.
    slider.setValue(30)
    slider.setValue(44)
    qtbot.wait(50)
    assert drawn == [expected]


def _near(image, point, rgb, radius=1, tol=40):
    """Whether a pixel within ``radius`` of ``point`` has colour ``rgb`` (± tol per channel)."""
    for dx in range(-radius, radius + 1):
        for dy in range(-radius, radius + 1):
            c = image.pixelColor(round(point.x()) + dx, round(point.y()) + dy)
            if all(abs(a - b) <= tol for a, b in zip((c.red(), c.green(), c.blue()), rgb)):
                return True
    return False


def test_channel_panel_hover_log_and_png_export(qtbot, explorer, tmp_path):
    from PySide6.QtGui import QImage

    w = explorer
    panel = w.channel_panel
    row = w.table.rows[3]
    text = panel.hover_index(3)
    assert row.name in text and f"params {row.params:,}" in text and f"{row.in_channels:,} → {row.out_channels:,}" in text
    assert panel.graphics.cursor == 3.0
    panel.hover_index(None)
    assert panel.graphics.cursor is None

    panel.log_check.setChecked(True)
    assert panel.graphics.log
    for key in ("params", "macs", "activations"):  # decades; powers of two (KiB, MiB) for bytes
        log = math.log2 if key == "activations" else math.log10
        values = [v for v, _label in panel.graphics.y_ticks(key)]
        assert len(values) >= 2 and all(math.isclose(log(v), round(log(v)), abs_tol=1e-9) for v in values), values
    out = panel.export_png("params", tmp_path / "params.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    image = QImage(str(out))
    assert image.width() == 1200 and 500 < image.height() < 1200
    greens = sum(_near(image, QPointF(x, y), (44, 160, 44), radius=0, tol=30)
                 for x in range(0, 1200, 4) for y in range(0, image.height(), 4))
    assert greens > 20  # the parameter curve is in the export
    with pytest.raises(ValueError, match="unknown plot"):
        panel.export_png("nope", tmp_path / "x.png")


def test_export_png_button_confirms_the_saved_file(qtbot, explorer, tmp_path, monkeypatch):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QFileDialog

    from densegui.gui.channel_panel import ChannelPanel

    chosen = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a: (chosen[-1], ""))
    panel = explorer.channel_panel
    chosen.append(str(tmp_path / "params.png"))
    qtbot.mouseClick(panel.export_button, Qt.MouseButton.LeftButton)
    assert (tmp_path / "params.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert explorer.statusBar().currentMessage() == f"Saved {chosen[-1]}"
    chosen.append(str(tmp_path / "missing" / "x.png"))
    qtbot.mouseClick(panel.export_button, Qt.MouseButton.LeftButton)
    assert panel.hover_label.text().startswith(f"Could not export {chosen[-1]}")

    alone = ChannelPanel()  # no window with a status bar: its read-out line says it
    qtbot.addWidget(alone)
    alone.set_table(explorer.table)
    chosen.append(str(tmp_path / "alone.png"))
    qtbot.mouseClick(alone.export_button, Qt.MouseButton.LeftButton)
    assert alone.hover_label.text() == f"Saved {chosen[-1]}" and (tmp_path / "alone.png").exists()


def test_hovering_with_the_mouse_reads_out_the_row_under_it(qtbot, explorer):
    """A real mouse move over a plot selects the nearest row in every plot; leaving clears it."""
    from PySide6.QtTest import QTest

    w = explorer
    w.resize(1400, 900)
    w.select_tab("channels")
    w.show()
    qtbot.waitExposed(w)
    panel = w.channel_panel
    qtbot.waitUntil(w.plots_up_to_date, timeout=2000)
    rows = panel.table.rows
    for key, index in (("params", 10), ("activations", len(rows) - 3)):
        lo, hi = panel.y_range(key)
        point = panel.graphics.map_to_widget(key, index + 0.2, (lo + hi) / 2).toPoint()
        QTest.mouseMove(panel.graphics, point)
        qtbot.waitUntil(lambda index=index: panel.graphics.cursor == float(index), timeout=1000)
        assert panel.hover_label.text().startswith(rows[index].name + "  ·")
    QTest.mouseMove(panel.graphics, panel.graphics.rect().topLeft() + QPoint(2, 2))  # outside every plot
    qtbot.waitUntil(lambda: panel.graphics.cursor is None, timeout=1000)


def test_curves_are_painted_through_their_data_points(qtbot, explorer):
    """Pixels: each curve's colour lies on the screen point of its data."""
    w = explorer
    w.resize(1400, 900)
    panel = w.channel_panel
    qtbot.waitUntil(w.plots_up_to_date, timeout=2000)
    image = panel.graphics.grab().toImage()
    ratio = image.devicePixelRatio()
    colours = {"in": (31, 119, 180), "params": (44, 160, 44), "macs": (148, 103, 189), "naive": (214, 39, 40)}
    plot_of = {"in": "channels", "params": "params", "macs": "macs", "naive": "activations"}
    x, _ = panel.series("in")
    table_rows = panel.table.rows
    rows = []  # the middle dense layer of each block (where no other curve of the plot is near)
    for block in sorted({r.block for r in table_rows if r.kind == "dense"}):
        members = [i for i, r in enumerate(table_rows) if r.kind == "dense" and r.block == block]
        rows.append(members[len(members) // 2])
    for key, rgb in colours.items():
        ys = panel.series(key)[1]
        for i in rows:
            p = panel.graphics.map_to_widget(plot_of[key], x[i], ys[i])
            assert _near(image, QPointF(p.x() * ratio, p.y() * ratio), rgb, radius=2), (key, i)


def test_block_shading_and_transition_lines_follow_the_layout(qtbot, explorer, qt_flush):
    """Shaded spans and dashed lines sit where the table's rows say, after a change that keeps the
    layout (k) and ones that change it (a block's depth, the number of blocks)."""
    w = explorer
    panel = w.channel_panel

    def expected():
        rows = panel.table.rows
        blocks = sorted({r.block for r in rows if r.kind == "dense"})
        spans = [(min(i for i, r in enumerate(rows) if r.kind == "dense" and r.block == b) - 0.5,
                  max(i for i, r in enumerate(rows) if r.kind == "dense" and r.block == b) + 0.5) for b in blocks]
        lines = [float(i) for i, r in enumerate(rows) if r.kind == "transition"]
        return spans, lines

    for change in (lambda: w.findChild(QWidget, "growthRateSlider").setValue(20),
                   lambda: w.findChild(QWidget, "blockDepthSlider2").setValue(3),
                   lambda: w.findChild(QWidget, "blockCountSpin").setValue(3),
                   lambda: w.findChild(QWidget, "growthRateSlider").setValue(40)):
        change()
        qt_flush()
        spans, lines = expected()
        assert [tuple(round(v, 6) for v in s) for s in panel.graphics.spans] == spans
        assert panel.graphics.lines == lines
        assert [t[1:] for t in panel.graphics.ticks] == [(f"block {b}", str(b)) for b in range(1, len(spans) + 1)]


def test_y_ranges_always_show_every_curve_whole(qtbot, explorer, qt_flush):
    """The channel plots keep their y range while the data fit (calm, cheap repaints), but never
    clip a curve and never leave it squashed into less than 40 % of the plot; on a log scale the
    range is whole decades around the data."""
    from densegui.gui.channel_panel import SPECS

    w = explorer
    panel = w.channel_panel
    slider = w.findChild(QWidget, "growthRateSlider")
    w.pin_baseline()

    def shown(spec):
        ys = [panel.series(s.key)[1] for s in spec.series] + [panel.baseline_series(k)[1] for k in spec.baseline]
        return torch.tensor([float(v) for y in ys for v in y if v == v])

    def check():
        qt_flush()
        for spec in SPECS:
            lo, hi = panel.y_range(spec.key)
            vals = shown(spec)
            assert lo <= float(vals.min()) and float(vals.max()) <= hi, spec.key
            if panel.is_log_scale():  # whole decades; whole powers of two on the byte axis
                log = math.log2 if spec.binary else math.log10
                assert math.isclose(log(lo), round(log(lo)), abs_tol=1e-9), (spec.key, lo)
                assert math.isclose(log(hi), round(log(hi)), abs_tol=1e-9), (spec.key, hi)
                assert hi / lo <= 1000 * float(vals.max()) / float(vals.min()), spec.key
            else:
                assert float(vals.max()) - min(0.0, float(vals.min())) > 0.4 * (hi - lo), spec.key

    for k in (1, 2, 8, 64, 63, 12, 32):
        slider.setValue(k)
        check()
    w.clear_baseline()
    check()
    panel.set_log_scale(True)
    check()
    slider.setValue(3)
    check()
    panel.set_log_scale(False)
    check()


def test_y_tick_labels_name_their_values(qtbot, explorer):
    """Every left-axis label read back as a number (K/M/G, KiB/MiB/GiB) is its tick's value."""
    w = explorer
    panel = w.channel_panel
    w.resize(1400, 900)
    w.select_tab("channels")  # (a hidden page keeps its size until shown)
    qtbot.waitUntil(w.plots_up_to_date, timeout=2000)
    scale = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
             "B": 1, "KiB": 2 ** 10, "MiB": 2 ** 20, "GiB": 2 ** 30, "TiB": 2 ** 40}
    for log in (False, True):
        panel.set_log_scale(log)
        for key in ("channels", "params", "macs", "activations"):
            ticks = panel.graphics.y_ticks(key)
            assert len(ticks) >= 3, (key, log)
            for value, text in ticks:
                number, unit = (text.split(" ") + [""])[:2] if " " in text else (text.rstrip("KMGT"), text.lstrip("0123456789."))
                assert math.isclose(float(number) * scale[unit], value, rel_tol=0.01, abs_tol=1e-9), (key, text, value)


def test_nice_ceil_is_the_smallest_round_number_above():
    """Round y-range tops: s × 10ⁿ with s in (1, 1.5, 2, 3, 4, 5, 6, 8), checked by brute force."""
    import math
    import random

    from densegui.gui.layer_plots import nice_ceil

    rng = random.Random(0)
    candidates = sorted(s * 10.0 ** e for e in range(-8, 15) for s in (1, 1.5, 2, 3, 4, 5, 6, 8))
    for value in [rng.uniform(0.001, 1) * 10 ** rng.randint(-3, 12) for _ in range(2000)] + [1.0, 3.0, 150.0, 8e9]:
        expected = min(c for c in candidates if c >= value * (1 - 1e-12))
        assert math.isclose(nice_ceil(value), expected, rel_tol=1e-12), value
        assert value <= nice_ceil(value) * (1 + 1e-12) < 1.5 * value * (1 + 1e-9)
    assert nice_ceil(0.0) == 0.0


def test_block_shading_is_painted_where_the_blocks_are(qtbot, explorer):
    """Pixels, not just state: inside a block every plot's background is that block's tint, the
    stem's row is white, and a transition's dashed line is drawn at its row."""
    from densegui.gui.layer_plots import SHADES

    w = explorer
    w.select_tab("channels")
    w.load_preset("densenet-bc-100-k12")  # 3 blocks of 16 layers: wide spans
    panel = w.channel_panel
    qtbot.waitUntil(w.plots_up_to_date, timeout=2000)
    assert panel.table.config == get_preset("densenet-bc-100-k12")
    image = panel.graphics.grab().toImage()
    ratio = image.devicePixelRatio()
    rows = panel.table.rows
    dense = [i for i, r in enumerate(rows) if r.kind == "dense"]
    transitions = [i for i, r in enumerate(rows) if r.kind == "transition"]
    for key in ("channels", "params", "macs", "activations"):
        lo, hi = panel.y_range(key)

        def pixel(x_data: float, y_frac: float, dx: int = 0, key=key, lo=lo, hi=hi):
            p = panel.graphics.map_to_widget(key, x_data, hi - y_frac * (hi - lo))
            return image.pixelColor(round(p.x() * ratio) + dx, round(p.y() * ratio))

        curves = [panel.series(c)[1] for c in {"channels": ("in", "out"), "params": ("params",), "macs": ("macs",),
                                                 "activations": ("naive", "efficient")}[key]]

        def clear_of_curves(row: int, lo=lo, hi=hi, curves=curves) -> float:
            """A height (fraction from the top, below the legends) far from every curve near ``row``."""
            near = [(hi - float(c[i])) / (hi - lo) for c in curves for i in range(max(0, row - 1), row + 2) if c[i] == c[i]]
            return max((f / 100 for f in range(35, 98)), key=lambda f: min(abs(f - v) for v in near))

        def band_clear_of_curves(row: int, lo=lo, hi=hi, curves=curves) -> list[float]:
            """Heights (fractions from the top, below the legends) at least 8 % away from every curve
            between rows ``row - 1`` and ``row + 1``."""
            near = [(hi - float(c[i])) / (hi - lo) for c in curves for i in range(max(0, row - 1), row + 2) if c[i] == c[i]]
            lows, highs = min(near) - 0.08, max(near) + 0.08
            top = 28 if key in ("channels", "activations") else 3  # (below the legends)
            return [f / 100 for f in range(top, 98) if not lows <= f / 100 <= highs]

        for block in (1, 2, 3):
            xs = [i for i in dense if rows[i].block == block]
            middle = (xs[0] + xs[-1]) // 2
            got = pixel(middle + 0.25, clear_of_curves(middle))
            want = SHADES[(block - 1) % 2]
            assert (got.red(), got.green(), got.blue()) == (want.red(), want.green(), want.blue()), (key, block, got.name())
        stem = pixel(0, clear_of_curves(0))
        assert (stem.red(), stem.green(), stem.blue()) == (255, 255, 255), key  # the stem row is not shaded
        # A 1-pixel dashed line: look along its column (±1 pixel for rounding) above the curves.
        transition, band = max(((t, band_clear_of_curves(t)) for t in transitions), key=lambda tb: len(tb[1]))
        assert len(band) >= 10, key
        grey = [pixel(transition, f, dx) for dx in (-1, 0, 1) for f in band]
        assert sum(c.red() < 200 and abs(c.red() - c.blue()) < 10 for c in grey) >= 5, key
        beside = [pixel(transition + 0.5, f) for f in band]  # between the line and the next row
        assert not any(c.red() < 200 for c in beside), key


def test_byte_axis_ticks_fall_on_round_binary_units():
    """Ticks of a byte axis are 1/2/5 × 10ⁿ of a KiB, MiB or GiB (2 MiB, not 1.91 MiB); count
    axes get 1/2/5 × 10ⁿ; either way a readable number of ticks, all inside the range."""
    import random

    from densegui.gui.layer_plots import linear_ticks, tick_step

    rng = random.Random(1)
    for _ in range(300):
        top = 10 ** rng.uniform(3.2, 11)
        most = rng.randint(3, 10)
        step = tick_step(0.0, top, most, binary=True)
        unit = 1024.0 ** int(math.log(top, 1024))
        mantissa = (step / unit) / 10 ** math.floor(math.log10(step / unit) + 1e-9)
        assert any(math.isclose(mantissa, m, rel_tol=1e-9) for m in (1, 2, 5)), (top, step)
        ticks = linear_ticks(0.0, top, most, binary=True)
        assert 2 <= len(ticks) <= most + 1 and ticks[0] == 0.0 and ticks[-1] <= top
        assert all(math.isclose(b - a, step) for a, b in zip(ticks, ticks[1:]))
    assert tick_step(0.0, 1e7, 5) in (1e6, 2e6, 5e6)


def test_no_ticks_for_an_empty_or_unbounded_range():
    from densegui.gui.layer_plots import linear_ticks

    assert linear_ticks(0.0, math.inf, 5) == [] and linear_ticks(1.0, 1.0, 5) == [] and linear_ticks(0, math.nan, 5) == []


def test_a_larger_font_moves_titles_axes_and_curves_together(qtbot, explorer):
    """The frame (titles, axes) is cached; a font change must redraw it where the curves now go."""
    from PySide6.QtGui import QFont

    w = explorer
    w.resize(1400, 900)
    panel = w.channel_panel
    qtbot.waitUntil(w.plots_up_to_date, timeout=2000)
    top = panel.graphics.data_rect("params").top()
    font = QFont(panel.graphics.font())
    font.setPointSizeF(font.pointSizeF() * 2)
    panel.graphics.setFont(font)
    assert panel.graphics.data_rect("params").top() > top  # taller titles
    image = panel.graphics.grab().toImage()
    ratio = image.devicePixelRatio()
    r = panel.graphics.data_rect("params")
    for y in range(round(r.top() + 4), round(r.bottom() - 4), 3):  # the left axis line, at the data's edge
        darkest = min(image.pixelColor(round(r.left() * ratio) + dx, round(y * ratio)).red() for dx in (-1, 0, 1))
        assert darkest < 120, y


def test_polylines_break_at_nan_and_keep_every_point():
    """The fast NumPy → QPolygonF path gives the same points as building QPointFs one by one,
    and a NaN splits a curve in two (the head row has no output channels)."""
    import numpy as np

    from densegui.gui.layer_plots import polylines

    xs = np.arange(7, dtype=float) * 1.5
    ys = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 6.0, np.nan])
    parts = polylines(xs, ys)
    assert [[(p.x(), p.y()) for p in poly] for poly in parts] == [[(0.0, 1.0), (1.5, 2.0)],
                                                                 [(4.5, 4.0), (6.0, 5.0), (7.5, 6.0)]]
    assert polylines(xs, np.full(7, np.nan)) == []
    big = polylines(np.linspace(0, 1, 1000), np.linspace(5, 6, 1000))
    assert len(big) == 1 and big[0].size() == 1000 and big[0].at(999).y() == 6.0


HIDPI = """
import os, sys
os.environ["QT_QPA_PLATFORM"] = "offscreen"
os.environ["QT_SCALE_FACTOR"] = "2"
from PySide6.QtWidgets import QApplication
from densegui.gui import guard_refcounts
guard_refcounts()
app = QApplication([])
from densegui.core.arch.registry import get_preset
from densegui.core.arch.densenet.table import layer_table
from densegui.gui.channel_panel import ChannelPanel
panel = ChannelPanel()
panel.resize(1000, 700)
panel.show()
app.processEvents()
panel.set_table(layer_table(get_preset("densenet121")))
image = panel.graphics.grab().toImage()
ratio = image.devicePixelRatio()
assert ratio == 2 and image.width() == 2 * panel.graphics.width(), (ratio, image.width(), panel.graphics.width())
x, ys = panel.series("params")
hits = 0
for i in range(5, len(x) - 5, 7):
    p = panel.graphics.map_to_widget("params", x[i], ys[i])
    found = False
    for dx in range(-2, 3):
        for dy in range(-2, 3):
            c = image.pixelColor(round(p.x() * ratio) + dx, round(p.y() * ratio) + dy)
            found |= abs(c.red() - 44) < 40 and abs(c.green() - 160) < 40 and abs(c.blue() - 44) < 40
    hits += found
assert hits >= 0.9 * len(range(5, len(x) - 5, 7)), hits
frame = panel.graphics._frame  # the cached frame: drawn at 2x, not scaled up from 1x
assert frame.devicePixelRatio() == 2 and frame.width() == image.width(), (frame.devicePixelRatio(), frame.width())
panel.close()
print("OK")
"""


def test_the_plots_are_drawn_at_the_screens_pixel_density():
    """On a 2× screen the painted plots are 2× sharp (the cached frame too) and the curves lie
    where the data map to, in device pixels."""
    import os
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", HIDPI], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "DENSEGUI_NO_SETTINGS": "1"})
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stdout + proc.stderr[-2000:]
