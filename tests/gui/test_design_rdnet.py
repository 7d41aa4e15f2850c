"""The design-space frontier with three families (issue #24): RDNet's points at 100 − its published
top-1 accuracy, in its own colour, against parameters, MACs and (given) latencies; the labels are
placed so that they collide less than all on one side did, and the log axis's labels never overlap."""

from __future__ import annotations

import itertools
import math

import pytest
from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QImage, QPainter

from densegui.core.arch import registry as arch
from densegui.core.arch.published import PUBLISHED
from densegui.gui.design_panel import DesignPanel
from densegui.gui.design_plots import ANCHORS, CURRENT


@pytest.fixture
def panel(make_panel):
    p = make_panel(DesignPanel, size=(1300, 700))
    p.dataset_combo.setCurrentIndex(p.dataset_combo.findData("ImageNet"))
    return p


def rdnet() -> str:
    return arch.family_of(arch.get_preset("rdnet-tiny")).name


def overlaps(rects: list[QRectF]) -> int:
    return sum(1 for a, b in itertools.combinations(rects, 2) if a.intersects(b))


def point_rects(frontier) -> dict[str, QRectF]:
    """Each point's dot in the view's pixels."""
    vb = frontier.getViewBox()
    out = {}
    for name, _family, x, y in frontier.points:
        q = vb.mapViewToScene(QPointF(math.log10(x), y))
        out[name] = QRectF(q.x() - 4, q.y() - 4, 8, 8)
    return out


def axis_texts(frontier) -> list[tuple[QRectF, str]]:
    """The bottom axis's tick labels as it paints them: (rectangle, text)."""
    ax = frontier.getAxis("bottom")
    image = QImage(ax.size().toSize(), QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    if ax.style["tickFont"]:
        painter.setFont(ax.style["tickFont"])
    specs = ax.generateDrawSpecs(painter)[2]
    painter.end()
    return [(spec[0], spec[2]) for spec in specs]


def collisions(frontier) -> int:
    """Label/label and label/other point overlaps."""
    labels, dots = frontier.label_rects(), point_rects(frontier)
    pairs = overlaps(list(labels.values()))
    return pairs + sum(1 for n, r in labels.items() for m, d in dots.items() if m != n and r.intersects(d))


@pytest.mark.parametrize("axis", ["params", "macs"])
def test_three_families_with_rdnet_at_100_minus_its_accuracy(qtbot, panel, axis):
    panel.x_combo.setCurrentIndex(panel.x_combo.findData(axis))
    points = panel.frontier_points()
    assert {p[1] for p in points} == set(arch.families())
    mine = {p[0]: p for p in points if p[1] == rdnet()}
    assert len(mine) == 4
    for name, (_, _, x, y) in mine.items():
        (accuracy,) = [r.value for r in PUBLISHED[name] if r.metric == "top-1 accuracy"]
        assert y == pytest.approx(100 - accuracy)
        table = arch.layer_table(arch.get_preset(name))
        assert x == (table.params if axis == "params" else table.macs)
    assert "100 − top-1 accuracy" in panel.frontier_note.text() and rdnet() in panel.frontier_note.text()
    tip = panel.frontier._tip(0, 0, "rdnet-tiny")  # (the hover text of its point)
    assert tip.startswith("rdnet-tiny: top-1 error 17.2% (100 − top-1 accuracy 82.8 (Kim et al. 2024")
    # Its own colour, drawn where its points are; the current line's colour is no family's.
    scatter = panel.frontier._scatters[rdnet()]
    colours = {f: s.opts["brush"].color().name() for f, s in panel.frontier._scatters.items()}
    assert colours[rdnet()] == arch.get_family(rdnet()).color and len(set(colours.values())) == len(colours)
    assert CURRENT.lower() not in {c.lower() for c in colours.values()}
    xs, ys = scatter.getData()
    assert sorted(10 ** xs) == pytest.approx(sorted(p[2] for p in mine.values()))
    # Pixels: the green of RDNet at the largest RDNet's point.
    frontier = panel.frontier
    qtbot.waitUntil(lambda: frontier.width() > 300, timeout=2000)
    name = max(mine, key=lambda n: mine[n][2])
    centre = point_rects(frontier)[name].center().toPoint()
    image = frontier.grab().toImage()
    dpr = image.devicePixelRatio()
    seen = image.pixelColor(int(centre.x() * dpr), int(centre.y() * dpr))
    want = scatter.opts["brush"].color()
    assert abs(seen.red() - want.red()) + abs(seen.green() - want.green()) + abs(seen.blue() - want.blue()) < 60


def test_labels_never_collide_and_the_axis_labels_not_at_all(qtbot, panel):
    """Each label takes a side where it touches no other label, point or the current line's label;
    one that has none is hidden, and its point's hover text names it."""
    frontier = panel.frontier
    for axis in ("params", "macs"):
        panel.x_combo.setCurrentIndex(panel.x_combo.findData(axis))
        frontier.place_labels()
        labels = frontier.label_rects()
        names = {p[0] for p in frontier.points}
        assert set(labels) <= names and len(labels) >= len(names) // 2, (axis, sorted(names - set(labels)))
        assert {p[0] for p in frontier.points if p[1] == rdnet()} <= set(labels)  # (apart: all shown)
        assert collisions(frontier) == 0, axis
        current = frontier._current.label
        line = current.mapRectToScene(current.boundingRect())
        assert not any(line.intersects(r) for r in labels.values())
        for name in names - set(labels):
            assert frontier._tip(0, 0, name).startswith(f"{name}: ")
        for text in frontier._labels.values():  # all right-above, as before: they did collide
            text.setAnchor(ANCHORS[0])
            text.show()
        assert collisions(frontier) > 0, axis
        frontier.place_labels()
        # The x axis: every drawn tick label clear of its neighbours.
        texts = axis_texts(frontier)
        assert len(texts) >= 2
        rects = sorted((r for r, _ in texts), key=lambda r: r.left())
        assert not any(a.intersects(b) for a, b in zip(rects, rects[1:])), [t for _, t in texts]
        assert all(t[-1] in "kMG" for _, t in texts)  # SI prefixes on counts


def test_latency_frontier_of_three_families(qtbot, panel):
    panel.x_combo.setCurrentIndex(panel.x_combo.findData("latency"))
    assert panel.frontier_points() == []
    # (as a "Measure presets" run leaves them: preset → ms)
    panel.latency_ms = {n: 10.0 + 3 * arch.layer_table(arch.get_preset(n)).macs / 1e9 for n in arch.PRESETS}
    panel.update_frontier()
    points = panel.frontier_points()
    assert {p[1] for p in points} == set(arch.families())
    assert all(p[2] == panel.latency_ms[p[0]] for p in points)
    texts = [t for _, t in axis_texts(panel.frontier)]
    assert texts and all(t[-1].isdigit() for t in texts)  # milliseconds: plain numbers
