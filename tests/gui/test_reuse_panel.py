"""ReusePanel, standalone with pytest-qt (offscreen): loads in the background, plots the right values."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from helpers.corpus import SMALL_BASIC, SMALL_BC, known_state_dict, write_bad, write_good
from helpers.reference import naive_matrices
from PySide6.QtCore import QPointF

from densegui.core.analysis.reuse import DEFAULT_CHECKPOINT
from densegui.gui.heatmap import gap_columns
from densegui.gui.reuse_panel import ReusePanel

TIMEOUT = 20_000


@pytest.fixture
def panel(monkeypatch, tmp_path, make_panel):  # (the patch outlives the panel)
    import densegui.core.resources as resources

    # No shipped checkpoint unless a test puts one there.
    monkeypatch.setattr(resources, "resource_path", lambda name: tmp_path / "resources" / name)
    return make_panel(ReusePanel, size=(1100, 560))


def load(qtbot, panel, path, ok=True):
    with qtbot.waitSignal(panel.loadFinished, timeout=TIMEOUT) as blocker:
        panel.load_checkpoint(str(path))
    assert blocker.args == [ok]
    qtbot.waitUntil(lambda: not panel.is_loading(), timeout=TIMEOUT)


def column_normalised(m: np.ndarray) -> np.ndarray:
    """Per target column: (v − min) / (max − min); a single-source column is 1."""
    out = m.copy()
    for t in range(m.shape[1]):
        values = m[~np.isnan(m[:, t]), t]
        lo, hi = values.min(), values.max()
        out[:, t] = (m[:, t] - lo) / (hi - lo) if hi > lo else np.where(np.isnan(m[:, t]), np.nan, 1.0)
    return out


def test_empty_state_without_shipped_checkpoint(panel):
    assert panel.objectName() == "reusePanel"
    assert panel.stack.currentWidget() is panel.empty_label
    assert "not available" in panel.empty_label.text()
    assert not panel.send_button.isEnabled() and not panel.export_button.isEnabled()


def test_open_checkpoint_plots_the_independent_values(qtbot, panel, tmp_path):
    sd = known_state_dict(SMALL_BC, seed=21)
    path = write_good("legacy", tmp_path / "legacy.pt", sd, SMALL_BC)
    load(qtbot, panel, path)
    assert panel.stack.currentWidget() is panel.view
    assert "inferred from the weights" in panel.info_label.text()
    expected = naive_matrices(sd)
    view = panel.view
    assert len(view.images) == 3 and view.colorbar is not None
    for i, e in enumerate(expected):
        img = view.images[i].image
        depth = e.shape[1] - 1
        gap = gap_columns(depth)
        assert img.shape == (e.shape[0], depth + gap + 1)
        assert np.isnan(img[:, depth:depth + gap]).all()  # the gap that sets the transition/classifier column apart
        shown = np.concatenate([img[:, :depth], img[:, -1:]], axis=1)
        # The default scale: each column ÷ its max (a ratio r between sources is a colour step of 1 − 1/r).
        np.testing.assert_allclose(shown, e / np.nanmax(e, axis=0), rtol=1e-5, atol=1e-6, equal_nan=True)
        np.testing.assert_array_equal(np.isnan(shown), np.isnan(e))  # no connection → NaN → transparent
    assert tuple(view.colorbar.levels()) == (0.0, 1.0)
    # The paper's contrast, per column min–max, is one choice away.
    panel.norm_combo.setCurrentIndex(panel.norm_combo.findData("column"))
    for i, e in enumerate(expected):
        shown = np.delete(view.images[i].image, range(e.shape[1] - 1, e.shape[1] - 1 + gap_columns(e.shape[1] - 1)),
                          axis=1)
        np.testing.assert_allclose(shown, column_normalised(e), rtol=1e-5, atol=1e-6, equal_nan=True)

    # Raw: values are the mean |w| themselves, colour bar spans 0..global max.
    panel.norm_combo.setCurrentIndex(panel.norm_combo.findData("raw"))
    img = view.images[1].image
    e = expected[1]
    np.testing.assert_allclose(np.delete(img, e.shape[1] - 1, axis=1), e, rtol=1e-5, equal_nan=True)  # 1-col gap
    assert view.colorbar.levels()[1] == pytest.approx(max(np.nanmax(m) for m in expected))
    panel.norm_combo.setCurrentIndex(panel.norm_combo.findData("block"))
    e2 = expected[2]
    np.testing.assert_allclose(np.delete(view.images[2].image, e2.shape[1] - 1, axis=1),
                               (e2 - np.nanmin(e2)) / (np.nanmax(e2) - np.nanmin(e2)), rtol=1e-5, atol=1e-9,
                               equal_nan=True)
    panel.norm_combo.setCurrentIndex(panel.norm_combo.findData("column-max"))
    np.testing.assert_allclose(np.delete(view.images[0].image, expected[0].shape[1] - 1, axis=1),
                               expected[0] / np.nanmax(expected[0], axis=0), rtol=1e-5, equal_nan=True)


def test_hover_and_click_details(qtbot, panel, tmp_path):
    sd = known_state_dict(SMALL_BC, seed=2)
    load(qtbot, panel, write_good("densegui", tmp_path / "a.pt", sd, SMALL_BC))
    e = naive_matrices(sd)[1]  # block 2: input 9 channels, k = 4
    view = panel.view
    # Layer 2 → transition 2 (the set-apart column).
    pos = view.scene_pos_of(1, 2, 4)
    assert view.cell_at(pos) == (1, 2, 4)
    view._on_move(pos)
    within = " (within noise)" if view.blocks[1].within_noise[2, 4] else ""
    assert panel.hover_label.text() == f"layer 2 → transition 2: {e[2, 4]:.4g}{within}"
    view.select(*view.cell_at(pos))
    detail = panel.detail_label.text()
    col = e[:, 4]
    rank = int((col > e[2, 4]).sum()) + 1
    assert "input channels 13–16" in detail  # 9 + 4 = 13 … 16
    assert f"{e[2, 4]:.5g}" in detail and f"rank {rank} of 5" in detail
    # A cell with no connection (layer 3 → layer 1) and the gap column are not cells.
    assert view.cell_at(view.scene_pos_of(1, 3, 0)) is None
    depth = len(view.blocks[1].targets) - 1
    gap = view.plots[1].vb.mapViewToScene(QPointF(depth + 0.5, 2.5))
    assert view.cell_at(gap) is None
    view._on_move(view.scene_pos_of(1, 3, 0))
    assert panel.hover_label.text().strip() == ""


def test_error_keeps_previous_heatmap(qtbot, panel, tmp_path):
    sd = known_state_dict(SMALL_BASIC, seed=4)
    load(qtbot, panel, write_good("safetensors", tmp_path / "b.pt", sd, SMALL_BASIC))
    before = [img.image.copy() for img in panel.view.images]
    for name in ("hostile-torch-zip", "nan-weights", "random-bytes"):
        (tmp_path / name).mkdir()
        bad, phrase = write_bad(name, tmp_path / name)
        load(qtbot, panel, bad, ok=False)
        assert panel.message_label.isVisible() and phrase.lower() in panel.message_label.text().lower()
        assert "\n" not in panel.message_label.text()
        assert panel.stack.currentWidget() is panel.view
        for old, img in zip(before, panel.view.images):
            np.testing.assert_array_equal(old, img.image)
    assert not (tmp_path / "hostile-torch-zip" / "MARKER").exists()


def test_stale_result_never_overwrites_newer(qtbot, panel, tmp_path):
    sd_a = known_state_dict(SMALL_BC, seed=1)
    sd_b = known_state_dict(SMALL_BASIC, seed=1)
    a = write_good("state_dict", tmp_path / "a.pt", sd_a, SMALL_BC)
    b = write_good("state_dict", tmp_path / "b.pt", sd_b, SMALL_BASIC)
    with qtbot.waitSignal(panel.loadFinished, timeout=TIMEOUT):
        panel.load_checkpoint(str(a))
        panel.load_checkpoint(str(b))
    qtbot.waitUntil(lambda: not panel.is_loading(), timeout=TIMEOUT)
    qtbot.wait(50)
    assert Path(panel.loaded.path) == b and len(panel.view.images) == 2


def test_send_config_recent_and_exports(qtbot, panel, tmp_path):
    sd = known_state_dict(SMALL_BC, seed=8)
    path = write_good("densegui", tmp_path / "c.pt", sd, SMALL_BC)
    load(qtbot, panel, path)
    with qtbot.waitSignal(panel.configRequested, timeout=1000) as blocker:
        panel.send_button.click()
    assert blocker.args[0] == SMALL_BC
    assert panel.recent_files()[0] == str(path.resolve())
    assert [a.text() for a in panel.recent_menu.actions()][0] == "c.pt"
    png = tmp_path / "out.png"
    panel.export_png(str(png))
    from PySide6.QtGui import QImage

    assert not QImage(str(png)).isNull()
    files = panel.export_csv(str(tmp_path / "csv"))
    assert len(files) == 3
    panel.cmap_combo.setCurrentText("inferno")
    assert panel.view.cmap_name == "inferno"


def test_shipped_default_loads_on_start(qtbot, monkeypatch, tmp_path, widget_leak_check):
    import densegui.core.resources as resources

    folder = tmp_path / "resources"
    folder.mkdir()
    sd = known_state_dict(SMALL_BC, seed=9)
    write_good("densegui", folder / "x.pt", sd, SMALL_BC).rename(folder / DEFAULT_CHECKPOINT)
    monkeypatch.setattr(resources, "resource_path", lambda name: folder / name)
    p = ReusePanel()
    qtbot.addWidget(p)
    try:
        qtbot.wait(50)
        assert p.loaded is None and not p.is_loading()  # construction stays cheap: nothing loads yet
        assert "Loading the shipped checkpoint" in p.empty_label.text()
        p.show()  # the first show loads the shipped checkpoint
        qtbot.waitUntil(lambda: p.loaded is not None, timeout=TIMEOUT)
        assert "stored in the file" in p.info_label.text()
        e = naive_matrices(sd)[0]
        img = p.view.images[0].image
        assert img[0, 0] == 1.0  # layer 1 has one source: the block input
        assert math.isclose(img[0, 1], column_normalised(e)[0, 1], rel_tol=1e-5, abs_tol=1e-6)
        assert p.recent_files() == []  # the shipped default is not a "recent file"
    finally:
        p.shutdown()
        p.close()
        p.deleteLater()


def test_shutdown_during_load_is_clean(qtbot, panel, tmp_path):
    sd = known_state_dict(SMALL_BC, seed=3)
    path = write_good("state_dict", tmp_path / "d.pt", sd, SMALL_BC)
    panel.load_checkpoint(str(path))
    panel.shutdown()
    assert not panel.is_loading()
    qtbot.wait(50)
    assert panel.loaded is None  # the interrupted/stale load never lands


def test_second_checkpoint_reuses_plots_and_updates_values(qtbot, panel, tmp_path):
    sd1, sd2 = known_state_dict(SMALL_BC, seed=30), known_state_dict(SMALL_BC, seed=31)
    load(qtbot, panel, write_good("state_dict", tmp_path / "one.pt", sd1, SMALL_BC))
    plots = list(panel.view.plots)
    load(qtbot, panel, write_good("module-prefix", tmp_path / "two.pt", sd2, SMALL_BC))
    assert panel.view.plots == plots  # same PlotItems: no rebuild for the same layout
    e = naive_matrices(sd2)[2]
    img = panel.view.images[2].image
    np.testing.assert_allclose(np.concatenate([img[:, :2], img[:, -1:]], axis=1), e / np.nanmax(e, axis=0),
                               rtol=1e-5, atol=1e-6, equal_nan=True)


def test_drag_and_drop_and_recent_menu_load(qtbot, panel, tmp_path):
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent

    sd_a, sd_b = known_state_dict(SMALL_BC, seed=40), known_state_dict(SMALL_BASIC, seed=41)
    a = write_good("safetensors-config", tmp_path / "a.pt", sd_a, SMALL_BC)
    b = write_good("wrapped-net", tmp_path / "b.pt", sd_b, SMALL_BASIC)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(a))])
    enter = QDragEnterEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    panel.dragEnterEvent(enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(panel.loadFinished, timeout=TIMEOUT):
        panel.dropEvent(drop)
    assert Path(panel.loaded.path) == a and panel.loaded.config == SMALL_BC
    load(qtbot, panel, b)
    assert [act.text() for act in panel.recent_menu.actions()] == ["b.pt", "a.safetensors"]
    with qtbot.waitSignal(panel.loadFinished, timeout=TIMEOUT):
        panel.recent_menu.actions()[1].trigger()
    qtbot.waitUntil(lambda: not panel.is_loading(), timeout=TIMEOUT)
    assert Path(panel.loaded.path) == a
    # a's heatmaps again (computed from a's weights in the background process, compared with the
    # reference definition applied to the weights written here)
    for got, want in zip(panel.blocks, naive_matrices(sd_a), strict=True):
        np.testing.assert_allclose(got.matrix, want, rtol=1e-5, equal_nan=True)
    assert panel.loaded.state_dict == {}  # the weights stay in the background process


def test_a_file_with_an_ema_copy_lets_the_user_pick_the_weights(qtbot, panel, tmp_path):
    """timm's model_best.pth.tar holds the model and its EMA: the loader's choice is shown, and
    the weights combo reloads the other, whose matrices are the EMA weights' own."""
    import torch
    from helpers.corpus import timm_train_checkpoint

    sd, ema = known_state_dict(SMALL_BC, seed=1), known_state_dict(SMALL_BC, seed=2)
    path = tmp_path / "model_best.pth.tar"
    torch.save(timm_train_checkpoint(sd, ema), path)
    load(qtbot, panel, path)
    combo = panel.candidate_combo
    assert combo.isVisible() and combo.count() == 2
    first = panel.loaded.candidate
    np.testing.assert_allclose(panel.blocks[0].matrix, naive_matrices(sd)[0], rtol=1e-5, equal_nan=True)
    other = next(combo.itemData(i) for i in range(combo.count()) if combo.itemData(i) != first)
    with qtbot.waitSignal(panel.loadFinished, timeout=TIMEOUT) as blocker:
        combo.setCurrentIndex(combo.findData(other))
        combo.activated.emit(combo.currentIndex())
    assert blocker.args == [True] and panel.loaded.candidate == other
    np.testing.assert_allclose(panel.blocks[0].matrix, naive_matrices(ema)[0], rtol=1e-5, equal_nan=True)
    load(qtbot, panel, write_good("state_dict", tmp_path / "plain.pt", sd, SMALL_BC))
    assert not combo.isVisible()  # one DenseNet: nothing to choose


def test_cell_readouts_are_cleared_when_the_checkpoint_changes(qtbot, panel, tmp_path):
    """Issue #26: the hover and click read-outs never outlive the file they describe (another file
    opened, a failed open, training rewriting the checkpoint in place)."""
    sd = known_state_dict(SMALL_BC, seed=2)
    a = write_good("densegui", tmp_path / "a.pt", sd, SMALL_BC)
    b = write_good("state_dict", tmp_path / "b.pt", known_state_dict(SMALL_BC, seed=3), SMALL_BC)
    load(qtbot, panel, a)
    idle = panel.detail_label.text()

    def point_at_a_cell():
        pos = panel.view.scene_pos_of(1, 2, 4)
        panel.view._on_move(pos)
        panel.view.select(*panel.view.cell_at(pos))
        assert "→" in panel.hover_label.text() and "input channels" in panel.detail_label.text()
        assert panel.selected is not None and panel.view._marker is not None

    def cleared():
        return (panel.hover_label.text().strip() == "" and panel.detail_label.text() == idle
                and panel.selected is None and panel.view._marker is None)

    point_at_a_cell()
    panel.load_checkpoint(str(b))
    assert cleared()  # at once, while the new file loads
    qtbot.waitUntil(lambda: not panel.is_loading(), timeout=TIMEOUT)
    assert cleared() and Path(panel.loaded.path) == b

    point_at_a_cell()
    (tmp_path / "bad").mkdir()
    bad, _phrase = write_bad("random-bytes", tmp_path / "bad")
    load(qtbot, panel, bad, ok=False)
    assert cleared() and Path(panel.loaded.path) == b

    point_at_a_cell()  # training saves over the shown file and the window reloads it
    write_good("state_dict", b, known_state_dict(SMALL_BC, seed=4), SMALL_BC)
    load(qtbot, panel, b)
    assert cleared()
