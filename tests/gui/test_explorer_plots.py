"""The explorer's channel plots: redrawn once per burst of changes, hover read-out, log scale and PNG
export, block shading and transition lines (as item state and as pixels), y ranges and axis ticks.
"""

from __future__ import annotations

import torch
from helpers.explorer import label
from helpers.reference import count_params
from PySide6.QtWidgets import QWidget

from densegui.core.config import get_preset
from densegui.core.stats import layer_table


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
    ys = w.channel_panel.curves["in"].getData()[1]
    assert ys.max() == max(r.in_channels for r in layer_table(expected).rows)
    # Back to a configuration already drawn before the timer fires: nothing is redrawn.
    slider.setValue(30)
    slider.setValue(44)
    qtbot.wait(50)
    assert drawn == [expected]


def test_channel_panel_hover_log_and_png_export(qtbot, explorer, tmp_path):
    w = explorer
    panel = w.channel_panel
    row = w.table.rows[3]
    text = panel.hover_index(3)
    assert row.name in text and f"params {row.params:,}" in text and f"{row.in_channels:,} → {row.out_channels:,}" in text
    assert panel.cursors[0].isVisible()
    panel.hover_index(None)
    assert not panel.cursors[0].isVisible()

    panel.log_check.setChecked(True)
    assert all(p.ctrl.logYCheck.isChecked() for p in panel.plots.values())
    out = panel.export_png("params", tmp_path / "params.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


def test_block_shading_and_transition_lines_follow_the_layout(qtbot, explorer, qt_flush):
    """Regions and dashed lines sit where the table's rows say, also after a change that keeps the
    layout (k: the panel then skips redrawing them) and one that changes it (a block's depth)."""
    w = explorer
    panel = w.channel_panel

    def expected():
        rows = panel.table.rows
        blocks = sorted({r.block for r in rows if r.kind == "dense"})
        spans = [(min(i for i, r in enumerate(rows) if r.kind == "dense" and r.block == b) - 0.5,
                  max(i for i, r in enumerate(rows) if r.kind == "dense" and r.block == b) + 0.5) for b in blocks]
        lines = [float(i) for i, r in enumerate(rows) if r.kind == "transition"]
        return spans, lines

    def drawn(i):
        shading = panel.shadings[i]
        return ([tuple(round(v, 6) for v in span) for span in shading.spans], [float(x) for x in shading.lines])

    for change in (lambda: w.findChild(QWidget, "growthRateSlider").setValue(20),
                   lambda: w.findChild(QWidget, "blockDepthSlider2").setValue(3),
                   lambda: w.findChild(QWidget, "blockCountSpin").setValue(3),
                   lambda: w.findChild(QWidget, "growthRateSlider").setValue(40)):
        change()
        qt_flush()
        spans, lines = expected()
        for i in range(len(panel.plots)):
            assert drawn(i) == ([tuple(round(v, 6) for v in s) for s in spans], lines)


def test_y_ranges_always_show_every_curve_whole(qtbot, explorer, qt_flush):
    """The channel plots keep their y range while the data fit (cheap repaints), but never clip a
    curve and never leave it squashed into less than 40 % of the plot."""
    w = explorer
    panel = w.channel_panel
    slider = w.findChild(QWidget, "growthRateSlider")
    w.pin_baseline()

    def check():
        qt_flush()
        for key in panel.plots:
            lo, hi = panel.y_range(key)
            ys = [c.getData()[1] for c in panel._plot_curves[key] if c.getData()[1] is not None]
            vals = torch.tensor([float(v) for y in ys for v in y if v == v])
            assert lo <= float(vals.min()) and float(vals.max()) <= hi, key
            assert float(vals.max()) - min(0.0, float(vals.min())) > 0.4 * (hi - lo), key

    for k in (1, 2, 8, 64, 63, 12, 32):
        slider.setValue(k)
        check()
    w.clear_baseline()
    check()
    panel.set_log_scale(True)
    assert all(p.vb.autoRangeEnabled()[1] for p in panel.plots.values())
    panel.set_log_scale(False)
    check()


def test_nice_ceil_is_the_smallest_round_number_above():
    """Round y-range tops: s × 10ⁿ with s in (1, 1.5, 2, 3, 4, 5, 6, 8), checked by brute force."""
    import math
    import random

    from densegui.gui.channel_panel import nice_ceil

    rng = random.Random(0)
    candidates = sorted(s * 10.0 ** e for e in range(-8, 15) for s in (1, 1.5, 2, 3, 4, 5, 6, 8))
    for value in [rng.uniform(0.001, 1) * 10 ** rng.randint(-3, 12) for _ in range(2000)] + [1.0, 3.0, 150.0, 8e9]:
        expected = min(c for c in candidates if c >= value * (1 - 1e-12))
        assert math.isclose(nice_ceil(value), expected, rel_tol=1e-12), value
        assert value <= nice_ceil(value) * (1 + 1e-12) < 1.5 * value * (1 + 1e-9)
    assert nice_ceil(0.0) == 0.0


def test_block_shading_is_painted_where_the_blocks_are(qtbot, explorer):
    """Pixels, not just item state: inside a block the background is that block's tint, between
    blocks it is white, and a transition's dashed line is drawn at its row."""
    from PySide6.QtCore import QPointF

    from densegui.gui.channel_panel import SHADES

    w = explorer
    w.load_preset("densenet-bc-100-k12")  # 3 blocks of 16 layers: wide spans
    panel = w.channel_panel
    qtbot.waitUntil(w.plots_up_to_date, timeout=2000)
    assert panel.table.config == get_preset("densenet-bc-100-k12")
    plot = panel.plots["params"]
    image = panel.graphics.grab().toImage()
    rows = panel.table.rows

    def point(x_data: float, y_frac: float):
        lo, hi = plot.vb.viewRange()[1]
        return panel.graphics.mapFromScene(plot.vb.mapViewToScene(QPointF(x_data, hi - y_frac * (hi - lo))))

    def pixel(x_data: float, y_frac: float, dx: int = 0):
        p = point(x_data, y_frac)
        return image.pixelColor(p.x() + dx, p.y())

    def blend(shade):  # the tint over the white background
        a = shade.alpha() / 255
        return tuple(round(255 * (1 - a) + c * a) for c in (shade.red(), shade.green(), shade.blue()))

    dense = [i for i, r in enumerate(rows) if r.kind == "dense"]
    for block in (1, 2, 3):
        xs = [i for i in dense if rows[i].block == block]
        got = pixel((xs[0] + xs[-1]) / 2 + 0.25, 0.03)  # near the top: above every curve
        want = blend(SHADES[(block - 1) % 2])
        assert all(abs(g - e) <= 3 for g, e in zip((got.red(), got.green(), got.blue()), want)), (block, got.name())
    stem = pixel(0, 0.03)
    assert (stem.red(), stem.green(), stem.blue()) == (255, 255, 255)  # the stem row is not shaded
    transition = next(i for i, r in enumerate(rows) if r.kind == "transition")
    # A 1-pixel dashed line: look along its column (±1 pixel for rounding) above the curves.
    grey = [pixel(transition, f / 100, dx) for dx in (-1, 0, 1) for f in range(1, 30)]
    assert sum(c.red() < 200 and abs(c.red() - c.blue()) < 10 for c in grey) >= 5, [c.name() for c in grey]
    beside = [pixel(transition + 0.5, f / 100) for f in range(1, 30)]  # between the line and the next row
    assert not any(c.red() < 200 for c in beside)


def test_byte_axis_ticks_fall_on_round_binary_units(qtbot):
    """Ticks of the activations axis are 1/2/5 × 10ⁿ of a KiB, MiB or GiB (2 MiB, not 1.91 MiB);
    the count axes keep pyqtgraph's decimal ticks."""
    import math
    import random

    from densegui.gui.channel_panel import CountAxis

    binary, decimal = CountAxis(orientation="left", binary=True), CountAxis(orientation="left")
    rng = random.Random(1)
    for _ in range(300):
        top = 10 ** rng.uniform(3.2, 11)
        levels = binary.tickSpacing(0.0, top, rng.uniform(150, 600))
        unit = 1024.0 ** int(math.log(top, 1024))
        major = levels[0][0] / unit
        mantissa = major / 10 ** math.floor(math.log10(major) + 1e-9)
        assert any(math.isclose(mantissa, m, rel_tol=1e-9) for m in (1, 2, 5)), (top, major)
        assert 2 <= top / levels[0][0] <= 12  # a readable number of ticks
    assert decimal.tickSpacing(0.0, 1e7, 300)[0][0] in (1e6, 2e6, 5e6)
