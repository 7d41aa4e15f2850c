"""Legends sit where the curves are not (issue #26 item 9: in log scale the saved-activations
legend covered both curves)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF


def _covered(graphics, key: str, box: QRectF) -> int:
    """Curve samples of plot ``key`` inside ``box``: the plotted values mapped one by one with
    map_to_widget (the public mapping, not the placement's arrays)."""
    plot = graphics.plots[key]
    count = 0
    for series in plot.spec.series:
        values = graphics.values(series.key)
        for x, y in zip(graphics.x, values):
            if np.isfinite(y) and box.contains(graphics.map_to_widget(key, float(x), float(y))):
                count += 1
    return count


def test_the_legend_leaves_the_curves_in_log_and_linear_scale(explorer, qtbot):
    w = explorer
    w.resize(1400, 900)
    w.select_tab("channels")
    qtbot.waitUntil(w.is_up_to_date, timeout=60_000)
    panel = w.channel_panel
    graphics = panel.graphics
    for log in (False, True):
        graphics.set_log(log)
        qtbot.wait(20)
        graphics._layout()
        for key in ("channels", "activations"):
            plot = graphics.plots[key]
            box = graphics.legend_box(plot, 150, 40)
            r = plot.rect
            assert r.contains(box), (key, log)
            corners = [QRectF(r.left() + 8, r.top() + 8, 150, 40), QRectF(r.right() - 158, r.top() + 8, 150, 40),
                       QRectF(r.right() - 158, r.bottom() - 48, 150, 40), QRectF(r.left() + 8, r.bottom() - 48, 150, 40)]
            assert _covered(graphics, key, box) == min(_covered(graphics, key, c) for c in corners), (key, log)
    graphics.set_log(True)
    qtbot.wait(20)
    plot = graphics.plots["activations"]
    top_left = QRectF(plot.rect.left() + 8, plot.rect.top() + 8, 150, 40)
    assert _covered(graphics, "activations", top_left) > 0  # where it sat: over the curves
    assert _covered(graphics, "activations", graphics.legend_box(plot, 150, 40)) == 0
