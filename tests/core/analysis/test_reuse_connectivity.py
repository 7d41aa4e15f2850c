"""The reuse measures of sparse dense blocks (issue #23: ``log`` and ``window:W`` connectivity).

Each dense layer reads only its chosen sources, so its column holds cells only there and the
slices of its first conv are those sources' channels in *its* input. Everything is checked against
computations written here: the sources from the issue's rule, the slices from the channel counts,
a functional float64 forward that concatenates just those sources (torch.nn.functional only)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from densegui.cli import main
from densegui.core.analysis.reuse import MEASURES
from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.arch.densenet.model import build_model
from densegui.core.train.data import load_digits
from densegui.core.weights.checkpoint import load_checkpoint, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

BASE = DenseNetConfig(growth_rate=4, block_depths=(4, 5), stem="cifar", in_channels=1, num_classes=10, input_size=8,
                      bottleneck=False, init_features=8)
SPECS = ("log", "window:2")
IMAGES = 12
NORMALIZE = {"mean": [0.3], "std": [0.4], "scale": 16.0}
EPS = 1e-5


# ------------------------------------------------------------------ what the issue says a layer reads
def layer_sources(spec: str, i: int) -> list[int]:
    """Sources of layer i (1-based): log i−1, i−2, i−4, … ≥ 0; window:W the W latest."""
    if spec == "log":
        return sorted({i - 2 ** m for m in range(i.bit_length() + 1) if i - 2 ** m >= 0})
    w = int(spec.split(":")[1])
    return list(range(max(0, i - w), i))


def block_inputs(cfg: DenseNetConfig) -> list[int]:
    """k0 of each block: the stem's features, then each transition's ⌊θ·(k0 + depth·k)⌋."""
    out, k0 = [], cfg.num_init_features
    for depth in cfg.block_depths:
        out.append(k0)
        k0 = int(math.floor(cfg.compression * (k0 + depth * cfg.growth_rate) + 1e-9))
    return out


def reads(cfg: DenseNetConfig, spec: str, b: int, t: int) -> list[tuple[int, int, int]]:
    """(source row, start, end) of each source target t (0-based; t = depth: transition/classifier)
    of block b reads, its channels laid out in increasing source order in that target's input."""
    depth, k0, k = cfg.block_depths[b - 1], block_inputs(cfg)[b - 1], cfg.growth_rate
    rows = layer_sources(spec, t + 1) if t < depth else list(range(depth + 1))
    out, start = [], 0
    for r in rows:
        width = k0 if r == 0 else k
        out.append((r, start, start + width))
        start += width
    return out


def connected(cfg: DenseNetConfig, spec: str, b: int) -> np.ndarray:
    depth = cfg.block_depths[b - 1]
    mask = np.zeros((depth + 1, depth + 1), dtype=bool)
    for t in range(depth + 1):
        for r, _, _ in reads(cfg, spec, b, t):
            mask[r, t] = True
    return mask


def target_key(cfg: DenseNetConfig, b: int, t: int) -> str:
    if t < cfg.block_depths[b - 1]:
        return f"features.denseblock{b}.denselayer{t + 1}.conv1.weight"
    return f"features.transition{b}.conv.weight" if b < cfg.num_blocks else "classifier.weight"


def norm_prefix(key: str) -> str:
    if key == "classifier.weight":
        return "features.norm5"
    return key.replace(".conv1.weight", ".norm1").replace(".conv.weight", ".norm")


def _bn(w, prefix, x):
    return F.batch_norm(x, w[f"{prefix}.running_mean"], w[f"{prefix}.running_var"], w[f"{prefix}.weight"],
                        w[f"{prefix}.bias"], training=False, eps=EPS)


def forward(sd, cfg: DenseNetConfig, spec: str, x, hook=None):
    """Eval-mode float64 logits of the basic-layer, CIFAR-stem DenseNet ``sd`` whose layers read
    ``layer_sources``; ``hook(target, a, w, padding)`` sees each target's first op's input and weight."""
    w = {k: v.double() for k, v in sd.items() if v.is_floating_point()}
    h = F.conv2d(x, w["features.conv0.weight"], padding=1)
    for b in range(1, cfg.num_blocks + 1):
        feats, depth = [h], cfg.block_depths[b - 1]
        for i in range(1, depth + 1):
            p = f"features.denseblock{b}.denselayer{i}"
            a = F.relu(_bn(w, f"{p}.norm1", torch.cat([feats[j] for j in layer_sources(spec, i)], 1)))
            if hook:
                hook((b, i - 1), a, w[f"{p}.conv1.weight"], 1)
            feats.append(F.conv2d(a, w[f"{p}.conv1.weight"], padding=1))
        h = torch.cat(feats, 1)
        if b < cfg.num_blocks:
            p = f"features.transition{b}"
            a = F.relu(_bn(w, f"{p}.norm", h))
            if hook:
                hook((b, depth), a, w[f"{p}.conv.weight"], 0)
            h = F.avg_pool2d(F.conv2d(a, w[f"{p}.conv.weight"]), 2)
    pooled = F.relu(_bn(w, "features.norm5", h)).mean((2, 3))
    if hook:
        hook((cfg.num_blocks, cfg.block_depths[-1]), pooled, w["classifier.weight"], None)
    return F.linear(pooled, w["classifier.weight"], w["classifier.bias"])


# ------------------------------------------------------------------ the tiny sparse checkpoints
class Net:
    def __init__(self, spec, cfg, sd, loaded, data) -> None:
        self.spec, self.cfg, self.sd, self.loaded, self.data = spec, cfg, sd, loaded, data
        scale, mean, std = NORMALIZE["scale"], NORMALIZE["mean"][0], NORMALIZE["std"][0]
        self.x = (data.split.images.double() / scale - mean) / std
        self.y = data.split.labels.clone()


@pytest.fixture(scope="module", params=SPECS)
def net(request, tmp_path_factory):
    """build_model's weights with random BatchNorms (γ of both signs) and classifier bias, saved and loaded."""
    from densegui.core.analysis.reuse_images import resolve_data

    spec = request.param
    cfg = BASE.replace(connectivity=spec)
    torch.manual_seed(4)
    sd = {k: v.clone() for k, v in build_model(cfg).state_dict().items()}
    g = torch.Generator().manual_seed(5)
    for key in [k for k in sd if k.endswith(".running_mean")]:
        p, c = key[: -len(".running_mean")], sd[key].shape[0]
        sd[f"{p}.running_mean"] = 0.5 * torch.randn(c, generator=g)
        sd[f"{p}.running_var"] = torch.rand(c, generator=g) * 1.5 + 0.3
        sd[f"{p}.weight"] = torch.randn(c, generator=g)
        sd[f"{p}.bias"] = 0.3 * torch.randn(c, generator=g)
    sd["classifier.bias"] = 0.1 * torch.randn(10, generator=g)
    metadata = {"dataset": load_digits().to_metadata(), "normalize": NORMALIZE}
    path = save_checkpoint(tmp_path_factory.mktemp("sparse") / "tiny.pt", sd, cfg, metadata)
    loaded = load_checkpoint(path)
    assert loaded.config.connectivity == spec
    return Net(spec, cfg, sd, loaded, resolve_data(loaded.config, loaded.metadata, None, IMAGES))


@pytest.fixture(scope="module")
def analysis(net):
    from densegui.core.analysis.reuse_run import analyse

    return analyse(net.loaded, MEASURES, max_images=IMAGES, prune=True)


def expected(net, b, value) -> np.ndarray:
    depth = net.cfg.block_depths[b - 1]
    m = np.full((depth + 1, depth + 1), np.nan)
    for t in range(depth + 1):
        for r, lo, hi in reads(net.cfg, net.spec, b, t):
            m[r, t] = value(t, r, lo, hi)
    return m


def se(values) -> float:
    v = np.asarray(values, dtype=np.float64)
    return float(v.std(ddof=1) / math.sqrt(v.size))


# ------------------------------------------------------------------ the tests
def test_the_sparse_pattern_is_the_issues(net):
    """The cases the test's rule must agree with, written out (block 1, depth 4)."""
    want = {"log": [[0], [0, 1], [1, 2], [0, 2, 3]], "window:2": [[0], [0, 1], [1, 2], [2, 3]]}[net.spec]
    assert [layer_sources(net.spec, i) for i in range(1, 5)] == want


def test_weight_cells_are_exactly_the_connections(net, analysis):
    """Every weights and bn-weights cell against the target's conv weight sliced by source channels;
    NaN exactly where the layer does not read the source; the noise floor over real cells only."""
    sd, cfg = net.sd, net.cfg
    for measure in ("weights", "bn-weights"):
        for block in analysis.measures[measure]:
            b = block.block
            mask = connected(cfg, net.spec, b)
            np.testing.assert_array_equal(~np.isnan(block.matrix), mask)
            assert mask.sum() < mask.shape[1] * (mask.shape[1] + 1) // 2  # (sparser than dense)

            def value(t, r, lo, hi, b=b):
                key = target_key(cfg, b, t)
                w = sd[key].numpy().astype(np.float64)
                assert w.shape[1] == reads(cfg, net.spec, b, t)[-1][2]  # the conv reads just those channels
                if measure == "weights":
                    return np.abs(w[:, lo:hi]).mean()
                p = norm_prefix(key)
                gamma, var = (sd[f"{p}.{n}"].numpy().astype(np.float64) for n in ("weight", "running_var"))
                per_channel = np.abs(gamma) / np.sqrt(var + EPS) * np.abs(w.reshape(w.shape[0], w.shape[1], -1)).mean(
                    axis=(0, 2))
                return per_channel[lo:hi].mean()

            np.testing.assert_allclose(block.matrix, expected(net, b, value), rtol=1e-6, equal_nan=True)
            for t in range(mask.shape[1]):
                for r in range(mask.shape[0]):
                    want = next(((lo, hi) for rr, lo, hi in reads(cfg, net.spec, b, t) if rr == r), None)
                    assert block.channels(r, t) == want
            assert not block.within_noise[~mask].any()
            assert block.noise["cells"] == int(mask.sum())
            floor = np.array([np.nan if v is None else v for v in block.noise["column_ratio"]])
            assert np.isnan(floor[mask.sum(0) < 2]).all() and not np.isnan(floor[mask.sum(0) >= 2]).any()
    payload = json.loads(json.dumps(analysis.to_dict("weights")))
    for block in payload["blocks"]:
        cells = np.array([[v is not None for v in row] for row in block["matrix"]])
        np.testing.assert_array_equal(cells, connected(cfg, net.spec, block["block"]))


def test_activation_cell_by_cell(net, analysis):
    cfg, per_image = net.cfg, {}

    def hook(target, a, w, pad):
        b, t = target
        assert a.shape[1] == reads(cfg, net.spec, b, t)[-1][2]
        for r, lo, hi in reads(cfg, net.spec, b, t):
            piece = a[:, lo:hi] @ w[:, lo:hi].T if pad is None else F.conv2d(a[:, lo:hi], w[:, lo:hi], padding=pad)
            per_image[(b, t, r)] = piece.abs().flatten(1).mean(1).numpy()

    with torch.no_grad():
        forward(net.sd, cfg, net.spec, net.x, hook)
    for block in analysis.measures["activation"]:
        b = block.block
        np.testing.assert_array_equal(np.isfinite(block.matrix), connected(cfg, net.spec, b))
        np.testing.assert_allclose(block.matrix, expected(net, b, lambda t, r, lo, hi: per_image[(b, t, r)].mean()),
                                   rtol=1e-4, equal_nan=True)
        np.testing.assert_allclose(block.extra["stderr"], expected(net, b, lambda t, r, lo, hi: se(per_image[(b, t, r)])),
                                   rtol=1e-3, atol=1e-9, equal_nan=True)
        assert block.noise["cells"] == int(connected(cfg, net.spec, b).sum())


def test_ablation_cell_by_cell(net, analysis):
    """Each real connection cut (its slice of the target's first weight zeroed) against the forward
    written here; the incremental re-run inside the block must follow the sparse reads."""
    cfg, sd = net.cfg, net.sd
    with torch.no_grad():
        clean = forward(sd, cfg, net.spec, net.x)
        clean_loss = F.cross_entropy(clean, net.y, reduction="none")
        assert analysis.baseline["loss"] == pytest.approx(float(clean_loss.mean()), rel=1e-5)
        for block in analysis.measures["ablation"]:
            b = block.block

            def value(t, r, lo, hi, b=b):
                key = target_key(cfg, b, t)
                cut = dict(sd)
                cut[key] = sd[key].clone()
                cut[key][:, lo:hi] = 0
                return float((F.cross_entropy(forward(cut, cfg, net.spec, net.x), net.y, reduction="none")
                              - clean_loss).mean())

            want = expected(net, b, value)
            np.testing.assert_array_equal(np.isfinite(block.matrix), connected(cfg, net.spec, b))
            np.testing.assert_allclose(block.matrix, want, rtol=1e-4, atol=1e-6, equal_nan=True)
            for name in ("delta_accuracy", "stderr", "stderr_accuracy"):
                np.testing.assert_array_equal(~np.isnan(block.extra[name]), connected(cfg, net.spec, b))
            assert np.nanmax(np.abs(want)) > 1e-3  # (the cuts do change the loss)


def test_pruning_curve_orders_only_the_real_connections(net, analysis):
    from densegui.core.analysis.reuse_prune import slice_cost
    from densegui.core.arch import registry

    cfg, prune = net.cfg, analysis.prune
    real = sum(int(connected(cfg, net.spec, b).sum()) for b in range(1, cfg.num_blocks + 1))
    assert prune["connections"] == real
    assert set(prune["curves"]) == {*MEASURES, "random"}  # every measure orders every real connection
    for name, curve in prune["curves"].items():
        assert len(curve["accuracy"]) == len(prune["fractions"])
        assert curve["accuracy"][0] == pytest.approx(analysis.baseline["accuracy"])
    # 90 % removed by weights: the savings are those of the weakest real cells (per column ÷ max)
    plan = {u.mixer: u for u in registry.plan(cfg).units if u.mixer}
    scored = []
    for block in analysis.measures["weights"]:
        m = block.matrix / np.nanmax(block.matrix, axis=0)
        for t in range(m.shape[1]):
            for r, lo, hi in reads(cfg, net.spec, block.block, t):
                unit = plan[target_key(cfg, block.block, t).rsplit(".", 1)[0]]
                scored.append((m[r, t], slice_cost(unit, hi - lo)))
    scored.sort(key=lambda c: c[0])
    n_cut = int(round(prune["fractions"][-1] * real))
    assert prune["curves"]["weights"]["params_saved"][-1] == sum(c[1][0] for c in scored[:n_cut])


def test_a_trained_log_net_from_a_bare_state_dict(tmp_path, capsys):
    """Train a log net on the digits, keep only ``model.state_dict()``, and let the reuse CLI infer
    the rest: connectivity log, cells exactly at the connections, in JSON and in the PNG's pixels."""
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QImage

    from densegui.core.analysis.reuse import BlockReuse
    from densegui.core.train.loop import train
    from densegui.core.train.setup import TrainOptions
    from densegui.gui.heatmap import HeatmapFigure, column_of, figure_title

    cfg = BASE.replace(connectivity="log")
    result = train(cfg, load_digits().subset(192, 48, seed=0), TrainOptions(epochs=1, batch_size=32, seed=0),
                   tmp_path / "log.pt")
    assert len(result.history) == 1
    loaded = load_checkpoint(tmp_path / "log.pt")
    model = build_model(loaded.config)
    model.load_state_dict(loaded.state_dict)
    bare = tmp_path / "bare.pt"
    torch.save(model.state_dict(), bare)

    assert main(["reuse", str(bare), "--json", "--noise-seeds", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["inferred"] is True and out["config"]["connectivity"] == "log"
    assert tuple(out["config"]["block_depths"]) == cfg.block_depths and out["config"]["growth_rate"] == 4
    blocks = []
    for block in out["blocks"]:
        cells = np.array([[v is not None for v in row] for row in block["matrix"]])
        np.testing.assert_array_equal(cells, connected(cfg, "log", block["block"]))
        m = np.array([[np.nan if v is None else v for v in row] for row in block["matrix"]])
        assert (m[cells] > 0).all()
        blocks.append(BlockReuse(block["block"], block["sources"], block["targets"], m, []))

    png = tmp_path / "log.png"
    assert main(["reuse", str(bare), "--png", str(png), "--noise-seeds", "0"]) == 0
    image = QImage(str(png))
    figure = HeatmapFigure(blocks, title=figure_title(bare.name, "weights", "column-max"))
    w, h = figure.size()
    assert (image.width(), image.height()) == (2 * w, 2 * h)  # (2 pixels per unit)
    background = image.pixelColor(1, 1)
    for (grid, cell), block in zip(figure.grids(QRectF(0, 0, w, h)), blocks):
        for t in range(len(block.targets)):
            for r in range(len(block.sources)):
                x, y = grid.left() + (column_of(block, t) + 0.5) * cell, grid.top() + (r + 0.5) * cell
                painted = image.pixelColor(round(2 * x), round(2 * y)) != background
                assert painted == connected(cfg, "log", block.block)[r, t], (block.block, r, t)
