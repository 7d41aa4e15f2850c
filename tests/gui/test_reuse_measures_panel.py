"""The Feature reuse tab's measures: the Measure menu, noise floors on screen, data measures with
progress and cancel, the pruning curve and Open pretrained (offscreen, real background processes)."""

from __future__ import annotations

import hashlib
import http.server
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from densegui.core.weights.checkpoint import save_checkpoint
from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.train.data import load_digits
from densegui.core.arch.densenet.model import build_model
from densegui.core.analysis.reuse import default_checkpoint_path
from densegui.core.train.loop import channel_stats
from densegui.gui.reuse_panel import ReusePanel

TIMEOUT = 60_000
TINY = DenseNetConfig(growth_rate=4, block_depths=(3, 2), compression=0.5, bottleneck=False, init_features=6,
                      stem="cifar", in_channels=1, num_classes=10, input_size=8)


def tiny_checkpoint(path: Path, seed: int = 0, metadata: bool = True) -> Path:
    """A tiny digits-shaped net with random weights and non-trivial BatchNorm statistics."""
    torch.manual_seed(seed)
    model = build_model(TINY)
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data = torch.rand(m.num_features, generator=g) + 0.2
            m.running_var = torch.rand(m.num_features, generator=g) + 0.3
    meta = {}
    if metadata:
        data = load_digits()
        mean, std = channel_stats(data.train, data.scale)
        meta = {"dataset": data.to_metadata(), "normalize": {"mean": mean, "std": std, "scale": data.scale}}
    return save_checkpoint(path, model.state_dict(), TINY, meta)


@pytest.fixture
def panel(make_panel):
    return make_panel(lambda: ReusePanel(load_default=False), size=(1200, 700))


def load(qtbot, panel, path, ok=True):
    with qtbot.waitSignal(panel.loadFinished, timeout=TIMEOUT) as blocker:
        panel.load_checkpoint(str(path))
    assert blocker.args == [ok]
    qtbot.waitUntil(lambda: not panel.is_loading(), timeout=TIMEOUT)


def choose(qtbot, panel, measure, ok=True):
    with qtbot.waitSignal(panel.loadFinished, timeout=TIMEOUT) as blocker:
        panel.measure_combo.setCurrentIndex(panel.measure_combo.findData(measure))
    assert blocker.args == [ok]
    qtbot.waitUntil(lambda: not panel.is_loading(), timeout=TIMEOUT)


def bn_weights_reference(sd, key, norm, ranges):
    """|γ|/√(var+ε) × mean_{out, kh, kw} |W[:, c]|, averaged per source (independent of densegui)."""
    w = sd[key].double().abs()
    per_channel = w.mean(dim=(0, 2, 3)) if w.dim() == 4 else w.mean(dim=0)
    scale = sd[f"{norm}.weight"].double().abs() / torch.sqrt(sd[f"{norm}.running_var"].double() + 1e-5)
    v = (scale * per_channel).numpy()
    return [v[s:e].mean() for s, e in ranges if e <= v.size]


class _Files(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def do_GET(self):  # noqa: N802 - http.server's name
        body = self.files.get(self.path.rsplit("/", 1)[-1])
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A loopback mirror of torchvision's weights and an empty torch hub cache, both seen by a fresh
    background process (it inherits the environment when it starts)."""
    from densegui.gui.jobs import REUSE, shared_pool

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("DENSEGUI_WEIGHTS_URL", f"http://127.0.0.1:{server.server_address[1]}/models")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    if shared_pool().get(REUSE).pid is not None:  # (first in this file: usually not started yet)
        shared_pool().get(REUSE).kill()  # the next job starts a new child, with this environment
    yield tmp_path / "torch" / "hub" / "checkpoints"
    # (The process keeps this environment for later tests: a dead mirror and an empty cache in a
    # removed folder matter only to downloads, which only this file makes; a restart costs 2 s.)
    server.shutdown()
    server.server_close()


def test_open_pretrained_refuses_a_wrong_hash_and_opens_a_cached_file(qtbot, panel, tmp_path, mirror):
    # A download whose bytes do not match the hash in torchvision's file name: one line, nothing kept.
    _Files.files = {"densenet121-a639ec97.pth": tiny_checkpoint(tmp_path / "src.pt").read_bytes()}
    with qtbot.waitSignal(panel.loadFinished, timeout=TIMEOUT) as blocker:
        panel.open_pretrained("densenet121")
    assert blocker.args == [False]
    message = panel.message_label.text()
    assert "\n" not in message and "does not match its published hash" in message
    assert not mirror.exists() or not any(mirror.iterdir())  # nothing left in the cache
    assert not panel.progress.isVisible()
    # A file already in torch's hub cache opens without a request (the mirror serves nothing now).
    mirror.mkdir(parents=True, exist_ok=True)
    tiny_checkpoint(mirror / "densenet169-b2777c0a.pth")
    _Files.files = {}
    with qtbot.waitSignal(panel.loadFinished, timeout=TIMEOUT) as blocker:
        panel.open_pretrained("densenet169")
    assert blocker.args == [True], panel.message_label.text()
    assert "densenet169-b2777c0a.pth" in panel.info_label.text()
    assert panel.blocks and panel.blocks[0].noise is not None and not panel.message_label.isVisible()


def test_measure_menu_shows_bn_weights_and_their_noise_floor(qtbot, panel, tmp_path):
    path = tiny_checkpoint(tmp_path / "tiny.pt")
    load(qtbot, panel, path)
    assert panel.measure_combo.currentData() == "weights"
    choose(qtbot, panel, "bn-weights")
    sd = torch.load(path, weights_only=True)["state_dict"]
    b1 = panel.blocks[0]
    assert b1.measure == "bn-weights"
    ranges = [(0, 6), (6, 10), (10, 14), (14, 18)]
    expected = bn_weights_reference(sd, "features.denseblock1.denselayer3.conv1.weight",
                                    "features.denseblock1.denselayer3.norm1", ranges)
    np.testing.assert_allclose(b1.matrix[:3, 2], expected, rtol=1e-6)
    expected_t = bn_weights_reference(sd, "features.transition1.conv.weight", "features.transition1.norm", ranges)
    np.testing.assert_allclose(b1.matrix[:, 3], expected_t, rtol=1e-6)
    # The noise floor is on screen, per block, and the dots are exactly the cells within it.
    text = panel.noise_label.text()
    assert "Block 1:" in text and "Block 2:" in text and "untrained nets" in text
    for i, b in enumerate(panel.blocks):
        dots = panel.view.plots[i].noise_dots.getData()
        flagged = {(r, t) for r, t in zip(*np.nonzero(b.within_noise))}
        shown = {(round(y - 0.5), panel.view.column_to_target(i, round(x - 0.5))) for x, y in zip(*dots)}
        assert shown == flagged
    panel.noise_check.setChecked(False)
    assert len(panel.view.plots[0].noise_dots.getData()[0]) == 0
    # The detail line names the measure's unit and the verdict.
    panel.view.select(0, 1, 2)
    assert "mean |γ/σ·w|" in panel.detail_label.text() and "noise floor" in panel.detail_label.text()
    # Read-outs of what was shown do not outlive it: another file, or a failed open, clears them.
    panel.view._on_move(panel.view.scene_pos_of(0, 1, 2))
    assert "layer 1 → layer 3" in panel.hover_label.text()
    load(qtbot, panel, tiny_checkpoint(tmp_path / "other.pt", seed=1))
    assert panel.hover_label.text().strip() == "" and panel.detail_label.text() == "Click a cell for its details."
    panel.view._on_move(panel.view.scene_pos_of(0, 1, 2))
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    load(qtbot, panel, tmp_path / "broken.pt", ok=False)
    assert panel.hover_label.text().strip() == ""


def test_default_view_of_the_shipped_net_keeps_init_sized_differences_small(qtbot, panel):
    path = default_checkpoint_path()
    load(qtbot, panel, path)
    assert panel.view.normalisation == "column-max"
    for i, b in enumerate(panel.blocks):
        ratio = b.noise["ratio"]
        shown = panel.view.displayed(i)
        for t in range(shown.shape[1]):
            col = shown[~np.isnan(shown[:, t]), t]
            trained = b.matrix[~np.isnan(b.matrix[:, t]), t]
            if col.size < 2:
                continue
            # ÷ max: a max/min ratio r is a colour step of 1 − 1/r; the paper's min–max would make it 1.
            assert col.max() - col.min() == pytest.approx(1 - trained.min() / trained.max(), abs=1e-9)
            if trained.max() / trained.min() <= ratio:
                assert col.max() - col.min() <= 1 - 1 / ratio + 1e-9


def test_data_measure_without_data_is_one_line_and_keeps_the_heatmaps(qtbot, panel, tmp_path):
    path = tiny_checkpoint(tmp_path / "nodata.pt", metadata=False)
    load(qtbot, panel, path)
    before = panel.blocks
    choose(qtbot, panel, "activation", ok=False)
    message = panel.message_label.text()
    assert "\n" not in message and "needs images" in message
    assert panel.blocks is before and panel.measure_combo.currentData() == "weights"
    # A new file opened while a data measure is chosen that cannot run on it: it opens with weights,
    # and the message says why.
    path2 = tiny_checkpoint(tmp_path / "withdata.pt")
    choose(qtbot, panel, "activation", ok=False)  # (the shown file has no data: refused, weights stay)
    load(qtbot, panel, path2)
    choose(qtbot, panel, "activation")
    load(qtbot, panel, path)  # no data recorded in this one
    assert panel.loaded.path.endswith("nodata.pt") and panel.blocks[0].measure == "weights"
    assert panel.measure_combo.currentData() == "weights"
    assert panel.message_label.isVisible() and "Showing weights instead" in panel.message_label.text()
    # A folder that is not there: one line too.
    panel.data_edit.setText(str(tmp_path / "missing"))
    choose(qtbot, panel, "activation", ok=False)
    assert "\n" not in panel.message_label.text() and "missing" in panel.message_label.text()


def test_activation_on_data_then_cancelled_ablation(qtbot, panel, tmp_path):
    path = tiny_checkpoint(tmp_path / "tiny.pt")
    load(qtbot, panel, path)
    choose(qtbot, panel, "activation")
    assert panel.blocks[0].measure == "activation"
    assert "359 images" in panel.noise_label.text() and "standard error" in panel.noise_label.text()
    shown = panel.blocks
    panel.measure_combo.setCurrentIndex(panel.measure_combo.findData("ablation"))
    assert panel.cancel_button.isVisible()
    qtbot.waitUntil(lambda: panel.progress.value() > 0, timeout=TIMEOUT)
    t0 = time.perf_counter()
    panel.cancel_button.click()
    assert not panel.is_loading()
    waited = time.perf_counter() - t0
    assert waited < 1.0  # (the benchmark measures cancel → idle properly)
    assert not panel.progress.isVisible() and not panel.cancel_button.isVisible()
    assert panel.blocks is shown and panel.measure_combo.currentData() == "activation"
    assert not panel.message_label.isVisible()


def test_pruning_curve_and_agreement_in_the_tab(qtbot, panel, tmp_path):
    path = tiny_checkpoint(tmp_path / "tiny.pt")
    load(qtbot, panel, path)
    with qtbot.waitSignal(panel.loadFinished, timeout=120_000) as blocker:
        panel.run_prune_curve()
    assert blocker.args == [True]
    prune = panel.prune.prune
    assert set(prune["curves"]) == {"weights", "bn-weights", "activation", "ablation", "random"}
    assert len(prune["fractions"]) == 10 and prune["fractions"][0] == 0
    assert panel.views.currentWidget() is panel.prune_page
    items = [i for i in panel.prune_view.plotItem.listDataItems() if i.name()]
    assert len(items) == 5
    # Each point's evaluation noise is in the title: one binomial standard error at most, 0.5/√images.
    title = panel.prune_view.plotItem.titleLabel.text
    assert f"± ≤ {50 / prune['images'] ** 0.5:.1f} points" in title and f"{prune['images']} images" in title
    # The random baseline's band (min–max of its orders) is a filled path, not an empty one.
    import pyqtgraph as pg

    bands = [i for i in panel.prune_view.plotItem.items if isinstance(i, pg.FillBetweenItem)]
    assert len(bands) == 1 and not bands[0].path().isEmpty()
    clean = panel.prune.baseline["accuracy"]
    for c in prune["curves"].values():
        assert c["accuracy"][0] == pytest.approx(clean)  # nothing removed: the uncut accuracy
    text = panel.agreement_label.text()
    assert "Spearman" in text and "block 2:" in text
    # The run computed all four measures: choosing another one shows it at once, without a job.
    panel.views.setCurrentIndex(0)
    panel.measure_combo.setCurrentIndex(panel.measure_combo.findData("ablation"))
    assert not panel.is_loading() and panel.blocks[0].measure == "ablation"
    assert panel.views.currentIndex() == 0
    i = prune["fractions"].index(0.5)
    share = prune["curves"]["weights"]["params_saved"][i] / prune["network_params"]
    assert f"weights {prune['curves']['weights']['accuracy'][i]:.1%} accuracy, {share:.1%} of parameters" in text


def test_what_a_measure_change_applies_to_while_a_file_is_opening(qtbot, panel, tmp_path):
    a, b = tiny_checkpoint(tmp_path / "a.pt"), tiny_checkpoint(tmp_path / "b.pt", seed=1)
    # The first file is still loading when a measure is chosen: it opens with that measure.
    with qtbot.waitSignal(panel.loadFinished, timeout=TIMEOUT):
        panel.load_checkpoint(str(a))
        panel.measure_combo.setCurrentIndex(panel.measure_combo.findData("bn-weights"))
    qtbot.waitUntil(lambda: not panel.is_loading(), timeout=TIMEOUT)
    assert panel.blocks[0].measure == "bn-weights" == panel.measure_combo.currentData()
    # Another file is opening when the measure changes: that file opens, not the one shown.
    with qtbot.waitSignal(panel.loadFinished, timeout=TIMEOUT):
        panel.load_checkpoint(str(b))
        panel.measure_combo.setCurrentIndex(panel.measure_combo.findData("weights"))
    qtbot.waitUntil(lambda: not panel.is_loading(), timeout=TIMEOUT)
    assert panel.loaded.path.endswith("b.pt") and panel.blocks[0].measure == "weights"
    assert str(Path(b).resolve()) in panel.recent_files()  # (still remembered as opened)


def test_a_broken_or_missing_file_with_a_data_measure_chosen(qtbot, panel, tmp_path):
    good = tiny_checkpoint(tmp_path / "good.pt")
    load(qtbot, panel, good)
    choose(qtbot, panel, "activation")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    load(qtbot, panel, tmp_path / "bad.pt", ok=False)
    message = panel.message_label.text()
    assert "Showing weights" not in message and "\n" not in message and panel.loaded.path.endswith("good.pt")
    load(qtbot, panel, tmp_path / "gone.pt", ok=False)
    assert "does not exist" in panel.message_label.text()  # the loader's words, not an OS error
    load(qtbot, panel, good)
    assert not panel.message_label.isVisible()  # no stale fallback message
