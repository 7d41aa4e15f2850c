"""The reuse measures beyond |w| (core/analysis/reuse_measures.py, reuse_data.py, reuse_prune.py) checked cell by cell
against computations written here: a functional float64 forward from the raw state_dict
(torch.nn.functional only, not densegui's Walk or model), NumPy means, SciPy's Spearman."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from densegui.core.weights.checkpoint import load_checkpoint, save_checkpoint
from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.train.data import load_digits
from densegui.core.arch.densenet.model import build_model
from densegui.core.analysis.reuse import MEASURES, BlockReuse
from densegui.core.analysis.reuse_prune import RANDOM_ORDERS
from densegui.core.analysis.reuse_measures import (
    column_ratios,
    rank,
    spearman,
    untrained_targets,
    weight_measure_with_noise,
    within_ratio,
)

pytestmark = pytest.mark.usefixtures("one_thread")

BASIC = DenseNetConfig(growth_rate=4, block_depths=(3, 2), compression=1.0, bottleneck=False, init_features=6,
                       stem="cifar", in_channels=1, num_classes=10, input_size=8)
BC = DenseNetConfig(growth_rate=4, block_depths=(3, 2), compression=0.5, bottleneck=True, bn_size=2,
                    init_features=6, stem="cifar", in_channels=1, num_classes=10, input_size=8)
IMAGES = 40
NORMALIZE = {"mean": [0.3], "std": [0.4], "scale": 16.0}
EPS = 1e-5


# ------------------------------------------------------------------ the tiny checkpoints
def _state_dict(cfg: DenseNetConfig, seed: int) -> dict[str, torch.Tensor]:
    """build_model's weights, with every BatchNorm's γ, β, running mean and variance random
    (γ of both signs, so |γ| matters) and a random classifier bias."""
    torch.manual_seed(seed)
    sd = {k: v.clone() for k, v in build_model(cfg).state_dict().items()}
    g = torch.Generator().manual_seed(seed + 100)
    for key in list(sd):
        if key.endswith(".running_mean"):
            p = key[: -len(".running_mean")]
            c = sd[key].shape[0]
            sd[f"{p}.running_mean"] = 0.5 * torch.randn(c, generator=g)
            sd[f"{p}.running_var"] = torch.rand(c, generator=g) * 1.5 + 0.3
            sd[f"{p}.weight"] = torch.randn(c, generator=g)
            sd[f"{p}.bias"] = 0.3 * torch.randn(c, generator=g)
    sd["classifier.bias"] = 0.1 * torch.randn(sd["classifier.bias"].shape, generator=g)
    return sd


class Net:
    """A tiny checkpoint on disk, its raw state_dict, and the images the data measures use."""

    def __init__(self, cfg: DenseNetConfig, sd: dict[str, torch.Tensor], path, loaded, data) -> None:
        self.cfg, self.sd, self.path, self.loaded, self.data = cfg, sd, path, loaded, data
        images, labels = data.split.images, data.split.labels
        scale, mean, std = NORMALIZE["scale"], NORMALIZE["mean"][0], NORMALIZE["std"][0]
        self.x = (images.double() / scale - mean) / std  # independent of densegui's to_input
        self.y = labels.clone()


@pytest.fixture(scope="module", params=[BASIC, BC], ids=["basic", "bottleneck"])
def net(request, tmp_path_factory):
    from densegui.core.analysis.reuse_images import resolve_data

    cfg = request.param
    sd = _state_dict(cfg, seed=3 if cfg.bottleneck else 2)
    metadata = {"dataset": load_digits().to_metadata(), "normalize": NORMALIZE}
    path = save_checkpoint(tmp_path_factory.mktemp("reuse") / "tiny.pt", sd, cfg, metadata)
    loaded = load_checkpoint(path)
    data = resolve_data(loaded.config, loaded.metadata, None, IMAGES)
    assert len(data) == IMAGES and data.mean == NORMALIZE["mean"] and data.std == NORMALIZE["std"]
    return Net(cfg, sd, path, loaded, data)


@pytest.fixture(scope="module")
def analysis(net):
    """Every measure, their agreement and the pruning curve, once per network."""
    from densegui.core.analysis.reuse_run import analyse

    return analyse(net.loaded, MEASURES, max_images=IMAGES, prune=True)


# ------------------------------------------------------------------ the independent forward
def _bn(sd, prefix, x):
    return F.batch_norm(x, sd[f"{prefix}.running_mean"].double(), sd[f"{prefix}.running_var"].double(),
                        sd[f"{prefix}.weight"].double(), sd[f"{prefix}.bias"].double(), training=False, eps=EPS)


def forward(sd, cfg: DenseNetConfig, x, hook=None):
    """Logits of the DenseNet ``sd`` (CIFAR stem) in eval mode, float64.

    ``hook(target, a, w, padding)`` sees what each target's first op receives: a = ReLU(BN(input))
    and the first weight, target = (1-based block, 0-based target index)."""
    w = {k: v.double() for k, v in sd.items() if v.is_floating_point()}
    h = F.conv2d(x, w["features.conv0.weight"], padding=1)
    for b in range(1, cfg.num_blocks + 1):
        feats = [h]
        depth = cfg.block_depths[b - 1]
        for ell in range(1, depth + 1):
            p = f"features.denseblock{b}.denselayer{ell}"
            a = F.relu(_bn(w, f"{p}.norm1", torch.cat(feats, 1)))
            w1 = w[f"{p}.conv1.weight"]
            pad = 0 if cfg.bottleneck else 1
            if hook:
                hook((b, ell - 1), a, w1, pad)
            out = F.conv2d(a, w1, padding=pad)
            if cfg.bottleneck:
                out = F.conv2d(F.relu(_bn(w, f"{p}.norm2", out)), w[f"{p}.conv2.weight"], padding=1)
            feats.append(out)
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


def target_key(cfg: DenseNetConfig, b: int, t: int) -> str:
    depth = cfg.block_depths[b - 1]
    if t < depth:
        return f"features.denseblock{b}.denselayer{t + 1}.conv1.weight"
    return f"features.transition{b}.conv.weight" if b < cfg.num_blocks else "classifier.weight"


def norm_prefix(key: str) -> str:
    if key == "classifier.weight":
        return "features.norm5"
    return key.replace(".conv1.weight", ".norm1").replace(".conv.weight", ".norm")


def slices(cfg: DenseNetConfig, b: int) -> list[tuple[int, int]]:
    """[start, end) of each source of block b: the block input, then each layer's k channels."""
    k0 = cfg.num_init_features
    for i in range(b - 1):
        k0 = int(math.floor(cfg.compression * (k0 + cfg.block_depths[i] * cfg.growth_rate) + 1e-9))
    k = cfg.growth_rate
    return [(0, k0)] + [(k0 + j * k, k0 + (j + 1) * k) for j in range(cfg.block_depths[b - 1])]


def cells(cfg: DenseNetConfig):
    """Every connection (block, target, source); target t (a layer) has sources 0..t, the last target all."""
    for b in range(1, cfg.num_blocks + 1):
        depth = cfg.block_depths[b - 1]
        for t in range(depth + 1):
            for s in range(min(t, depth) + 1):
                yield b, t, s


def expected_matrix(cfg: DenseNetConfig, b: int, value) -> np.ndarray:
    depth = cfg.block_depths[b - 1]
    m = np.full((depth + 1, depth + 1), np.nan)
    for bb, t, s in cells(cfg):
        if bb == b:
            m[s, t] = value(t, s)
    return m


def matrix_of(block: dict) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in row] for row in block["matrix"]], dtype=np.float64)


def losses(logits, y):
    return F.cross_entropy(logits, y, reduction="none"), (logits.argmax(1) == y).double()


def se(values) -> float:
    v = np.asarray(values, dtype=np.float64)
    return float(v.std(ddof=1) / math.sqrt(v.size))


# ------------------------------------------------------------------ weights and bn-weights
def test_weights_cell_by_cell(net, analysis):
    sd, cfg = net.sd, net.cfg
    for block in analysis.measures["weights"]:
        def value(t, s, b=block.block):
            w = np.abs(sd[target_key(cfg, b, t)].numpy().astype(np.float64))
            lo, hi = slices(cfg, b)[s]
            return w[:, lo:hi].mean()

        np.testing.assert_allclose(block.matrix, expected_matrix(cfg, block.block, value), rtol=1e-6, equal_nan=True)
        assert block.source_channels == slices(cfg, block.block)


def test_bn_weights_cell_by_cell(net, analysis):
    sd, cfg = net.sd, net.cfg
    for block in analysis.measures["bn-weights"]:
        def value(t, s, b=block.block):
            key = target_key(cfg, b, t)
            w = sd[key].numpy().astype(np.float64)
            w = w.reshape(w.shape[0], w.shape[1], -1)
            p = norm_prefix(key)
            gamma, var = (sd[f"{p}.{n}"].numpy().astype(np.float64) for n in ("weight", "running_var"))
            per_channel = np.abs(gamma) / np.sqrt(var + 1e-5) * np.abs(w).mean(axis=(0, 2))
            lo, hi = slices(cfg, b)[s]
            return per_channel[lo:hi].mean()

        np.testing.assert_allclose(block.matrix, expected_matrix(cfg, block.block, value), rtol=1e-6, equal_nan=True)
    # The random BatchNorms do matter: bn-weights is not a rescaled weights matrix.
    w, bw = analysis.measures["weights"][0].matrix, analysis.measures["bn-weights"][0].matrix
    ratio = bw / w
    assert np.nanmax(ratio) / np.nanmin(ratio) > 1.5


# ------------------------------------------------------------------ activation
def test_activation_cell_by_cell_with_stderr(net, analysis):
    cfg = net.cfg
    per_image: dict[tuple[int, int, int], np.ndarray] = {}

    def hook(target, a, w, pad):
        b, t = target
        for s, (lo, hi) in enumerate(slices(cfg, b)[: min(t, cfg.block_depths[b - 1]) + 1]):
            if pad is None:  # the classifier: pooled features times W's slice, no bias
                piece = a[:, lo:hi] @ w[:, lo:hi].T
            else:
                piece = F.conv2d(a[:, lo:hi], w[:, lo:hi], padding=pad)
            per_image[(b, t, s)] = piece.abs().flatten(1).mean(1).numpy()

    with torch.no_grad():
        forward(net.sd, cfg, net.x, hook)
    assert set(per_image) == set(cells(cfg))
    for block in analysis.measures["activation"]:
        b = block.block
        mean = expected_matrix(cfg, b, lambda t, s: per_image[(b, t, s)].mean())
        err = expected_matrix(cfg, b, lambda t, s: se(per_image[(b, t, s)]))
        np.testing.assert_allclose(block.matrix, mean, rtol=1e-4, equal_nan=True)
        np.testing.assert_allclose(block.extra["stderr"], err, rtol=1e-3, atol=1e-9, equal_nan=True)
        assert block.noise["kind"] == "standard-error" and block.noise["images"] == IMAGES
        # within noise: |cell − its column's median cell| ≤ 2 SE of the difference (lower median)
        for t in range(mean.shape[1]):
            rows = [s for s in range(mean.shape[0]) if not math.isnan(mean[s, t])]
            ref = sorted(rows, key=lambda s: mean[s, t])[(len(rows) - 1) // 2]
            for s in rows:
                spread = math.hypot(err[s, t], err[ref, t])
                want = len(rows) < 2 or abs(mean[s, t] - mean[ref, t]) <= 2 * spread
                assert block.within_noise[s, t] == want, (b, s, t)


# ------------------------------------------------------------------ ablation
def test_ablation_cell_by_cell(net, analysis):
    """Every cut (a layer, a transition, the classifier; the bottleneck net's 1×1 conv1s) against
    the forward with that slice zeroed: Δ mean cross-entropy, Δ accuracy, paired standard errors."""
    cfg, sd = net.cfg, net.sd
    with torch.no_grad():
        clean_loss, clean_acc = losses(forward(sd, cfg, net.x), net.y)
        expected = {}
        for b, t, s in cells(cfg):
            cut = dict(sd)
            key = target_key(cfg, b, t)
            lo, hi = slices(cfg, b)[s]
            w = sd[key].clone()
            w[:, lo:hi] = 0
            cut[key] = w
            loss, acc = losses(forward(cut, cfg, net.x), net.y)
            d, da = (loss - clean_loss).numpy(), (acc - clean_acc).numpy()
            expected[(b, t, s)] = (d.mean(), da.mean(), se(d), se(da))
    assert analysis.baseline["loss"] == pytest.approx(float(clean_loss.mean()), rel=1e-5)
    assert analysis.baseline["accuracy"] == pytest.approx(float(clean_acc.mean()), abs=1e-12)
    assert analysis.baseline["images"] == IMAGES
    for block in analysis.measures["ablation"]:
        b = block.block
        for name, i, tol in (("matrix", 0, 1e-5), ("delta_accuracy", 1, 1e-12), ("stderr", 2, 1e-5),
                             ("stderr_accuracy", 3, 1e-12)):
            got = block.matrix if name == "matrix" else block.extra[name]
            want = expected_matrix(cfg, b, lambda t, s: expected[(b, t, s)][i])
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=tol, equal_nan=True, err_msg=f"block {b} {name}")
        flags = np.abs(block.matrix) <= 2 * block.extra["stderr"]
        np.testing.assert_array_equal(block.within_noise, flags & ~np.isnan(block.matrix))
    # Some cuts change the predictions (the comparison above is not all zeros).
    assert any(abs(v[1]) > 0 for v in expected.values())
    assert any(abs(v[0]) > 1e-3 for v in expected.values())


def test_batches_accumulate(net, analysis, monkeypatch):
    """Several batches (16 + 16 + 8 images) give what one batch of 40 gives."""
    from densegui.core.analysis import reuse_data as rd
    from densegui.core.analysis.reuse_images import EvalData

    batches = EvalData.batches
    monkeypatch.setattr(EvalData, "batches", lambda self, batch_size=16: batches(self, 16))
    assert [len(y) for _, y in net.data.batches()] == [16, 16, 8]
    for got, want in zip(rd.activation_blocks(net.cfg, net.loaded.state_dict, net.data),
                         analysis.measures["activation"]):
        np.testing.assert_allclose(got.matrix, want.matrix, rtol=1e-5, equal_nan=True)
        np.testing.assert_allclose(got.extra["stderr"], want.extra["stderr"], rtol=1e-4, atol=1e-9, equal_nan=True)
    blocks, baseline = rd.ablation_blocks(net.cfg, net.loaded.state_dict, net.data)
    assert baseline["loss"] == pytest.approx(analysis.baseline["loss"], rel=1e-6)
    assert baseline["accuracy"] == analysis.baseline["accuracy"]
    for got, want in zip(blocks, analysis.measures["ablation"]):
        np.testing.assert_allclose(got.matrix, want.matrix, rtol=1e-4, atol=1e-6, equal_nan=True)
        for name in ("delta_accuracy", "stderr", "stderr_accuracy"):
            np.testing.assert_allclose(got.extra[name], want.extra[name], rtol=1e-4, atol=1e-6, equal_nan=True)


def test_cancel_stops_ablation(net):
    from densegui.core.analysis.reuse_data import ablation_blocks
    from densegui.core.analysis.reuse_walk import ReuseCancelled

    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(ReuseCancelled):
        ablation_blocks(net.cfg, net.loaded.state_dict, net.data, cancel=cancel)
    assert len(calls) == 4


# ------------------------------------------------------------------ noise floors
def _untrained_config() -> DenseNetConfig:
    # Wide enough that each target tensor's std is estimated to a few per cent.
    return DenseNetConfig(growth_rate=12, block_depths=(4, 3), compression=0.5, bottleneck=True, bn_size=4,
                          init_features=24, stem="cifar", in_channels=1, num_classes=10, input_size=8)


def test_untrained_targets_have_build_models_distribution():
    cfg = _untrained_config()
    drawn = untrained_targets(cfg, seed=0)
    torch.manual_seed(0)
    built = build_model(cfg).state_dict()
    weight_keys = [target_key(cfg, b, t) for b in (1, 2) for t in range(cfg.block_depths[b - 1] + 1)]
    assert set(drawn) == set(weight_keys) | {f"{norm_prefix(k)}.{n}" for k in weight_keys
                                             for n in ("weight", "running_var")}
    standardised = {"drawn": [], "built": []}
    for key in weight_keys:
        for name, tensors in (("drawn", drawn), ("built", built)):
            w = tensors[key].double()
            assert w.shape == built[key].shape, key
            fan_in = math.prod(w.shape[1:])
            n = w.numel()
            if key == "classifier.weight":
                bound = 1 / math.sqrt(fan_in)
                assert float(w.abs().max()) <= bound
                assert float(w.abs().max()) > 0.9 * bound
                expected_std = bound / math.sqrt(3)
            else:
                expected_std = math.sqrt(2 / fan_in)
            tol = 5 / math.sqrt(2 * n)  # 5 standard errors of a sample std
            assert float(w.std()) / expected_std == pytest.approx(1, abs=tol), (name, key)
            assert abs(float(w.mean())) < 5 * expected_std / math.sqrt(n), (name, key)
            if key != "classifier.weight":
                standardised[name].append((w / expected_std).flatten())
        assert torch.equal(drawn[f"{norm_prefix(key)}.weight"], built[f"{norm_prefix(key)}.weight"])
        assert torch.equal(drawn[f"{norm_prefix(key)}.running_var"], built[f"{norm_prefix(key)}.running_var"])
        drawn_std, built_std = float(drawn[key].std()), float(built[key].std())
        assert drawn_std / built_std == pytest.approx(1, abs=10 / math.sqrt(2 * drawn[key].numel()))
    # The convolutions' shape: normal (excess kurtosis ≈ 0) on both sides, not uniform (−1.2).
    for name, parts in standardised.items():
        z = torch.cat(parts)
        kurtosis = float(((z - z.mean()) ** 4).mean() / z.var() ** 2) - 3
        assert abs(kurtosis) < 0.25, (name, kurtosis)
        assert float(z.std()) == pytest.approx(1, abs=0.03), name
    # The classifier: uniform on both sides (excess kurtosis ≈ −1.2).
    for tensors in (drawn, built):
        c = tensors["classifier.weight"].double().flatten()
        kurtosis = float(((c - c.mean()) ** 4).mean() / c.var() ** 2) - 3
        assert kurtosis < -0.9
    # Seeded and reproducible; other seeds differ.
    again = untrained_targets(cfg, seed=0)
    assert all(torch.equal(drawn[k], again[k]) for k in drawn)
    assert not torch.equal(drawn[weight_keys[0]], untrained_targets(cfg, seed=1)[weight_keys[0]])


def _mean_abs_matrix(tensors, cfg, b) -> np.ndarray:
    def value(t, s):
        w = np.abs(tensors[target_key(cfg, b, t)].numpy().astype(np.float64))
        lo, hi = slices(cfg, b)[s]
        return w[:, lo:hi].mean()

    return expected_matrix(cfg, b, value)


def test_ratio_noise_is_the_largest_untrained_column_ratio(net):
    cfg, seeds = net.cfg, (0, 1, 2)
    blocks = weight_measure_with_noise(net.sd, cfg, "weights", seeds)
    untrained = [untrained_targets(cfg, s) for s in seeds]
    for block in blocks:
        b = block.block
        per_seed = []
        for tensors in untrained:
            m = _mean_abs_matrix(tensors, cfg, b)
            ratios = []
            for t in range(m.shape[1]):
                col = m[:, t][~np.isnan(m[:, t])]
                ratios.append(col.max() / col.min() if col.size >= 2 else None)
            per_seed.append(ratios)
        floor = [None if per_seed[0][t] is None else max(r[t] for r in per_seed) for t in range(len(per_seed[0]))]
        got = block.noise["column_ratio"]
        assert [v is None for v in got] == [v is None for v in floor]
        np.testing.assert_allclose([v for v in got if v is not None], [v for v in floor if v is not None], rtol=1e-9)
        assert got[0] is None  # layer 1 reads the block input only
        assert block.noise["ratio"] == pytest.approx(max(v for v in floor if v is not None))
        assert block.noise["seeds"] == list(seeds) and block.noise["kind"] == "untrained-spread"
        # within noise: |log(m / column median)| ≤ log(floor); a single-source column is within noise
        for t in range(block.matrix.shape[1]):
            col = block.matrix[:, t]
            ok = ~np.isnan(col)
            if floor[t] is None:
                assert block.within_noise[ok, t].all()
            else:
                median = np.median(col[ok])
                want = np.abs(np.log(col[ok] / median)) <= math.log(floor[t]) + 1e-12
                np.testing.assert_array_equal(block.within_noise[ok, t], want)
            assert not block.within_noise[~ok, t].any()
        assert block.noise["cells"] == int((~np.isnan(block.matrix)).sum())
        assert block.noise["cells_within_noise"] == int(block.within_noise.sum())


def test_within_ratio_on_a_hand_made_matrix():
    nan = math.nan
    m = np.array([[1.0, 2.0, 1.0, nan],
                  [nan, 3.0, 1.1, 5.0],
                  [nan, nan, 4.0, nan]])
    ratios = np.array([nan, 1.3, 1.5, nan])
    flags = within_ratio(m, ratios)
    # Columns 0 and 3 have a single source: within noise. Column 1: median 2.5, |log(2/2.5)| = 0.223 and
    # |log(3/2.5)| = 0.182 ≤ log 1.3 = 0.262. Column 2: median 1.1; 4.0 is ×3.6 > ×1.5. NaN: False.
    expected = np.array([[True, True, True, False],
                         [False, True, True, True],
                         [False, False, False, False]])
    np.testing.assert_array_equal(flags, expected)
    assert not within_ratio(m, np.array([nan, 1.2, 1.5, nan]))[0, 1]  # log 1.2 = 0.182 < 0.223
    assert within_ratio(m, np.array([nan, 1.2, 1.5, nan]))[1, 1]
    np.testing.assert_array_equal(column_ratios(m), [nan, 1.5, 4.0, nan])
    block = BlockReuse(1, ["input", "layer 1", "layer 2"], ["layer 1", "layer 2", "layer 3", "x"], m,
                       [(0, 1), (1, 2), (2, 3)], noise={"kind": "untrained-spread"}, within_noise=flags)
    within = block.to_dict()["noise_floor"]["within_noise"]
    assert within == [[True, True, True, None],
                      [None, True, True, True],
                      [None, None, False, None]]


def test_noise_floor_in_every_blocks_json(analysis):
    assert set(analysis.measures) == set(MEASURES)
    for measure, blocks in analysis.measures.items():
        for block in blocks:
            d = block.to_dict()
            assert d["measure"] == measure
            floor = d["noise_floor"]
            assert floor["kind"] in ("untrained-spread", "standard-error")
            assert "description" in floor and floor["cells"] == sum(v is not None for r in d["matrix"] for v in r)
            assert [[v is None for v in row] for row in floor["within_noise"]] == \
                   [[v is None for v in row] for row in d["matrix"]]
    json_of = analysis.to_dict("ablation")
    assert all("noise_floor" in b and "delta_accuracy" in b and "stderr" in b for b in json_of["blocks"])


# ------------------------------------------------------------------ rank agreement
def test_rank_averages_ties():
    np.testing.assert_array_equal(rank(np.array([3.0, 1.0, 3.0, 2.0, 3.0])), [4.0, 1.0, 4.0, 2.0, 4.0])
    np.testing.assert_array_equal(rank(np.array([0.5, 0.5])), [1.5, 1.5])


def test_spearman_against_scipy_or_by_hand():
    nan = math.nan
    a = np.array([[1.0, 2.0, 2.0], [nan, 5.0, 3.0], [4.0, 4.0, nan], [0.5, 7.0, 7.0]])
    b = np.array([[2.0, 1.0, 3.0], [1.0, 6.0, 3.0], [9.0, nan, 2.0], [0.1, 8.0, 8.0]])
    ok = ~(np.isnan(a) | np.isnan(b))
    try:
        from scipy.stats import spearmanr
    except ImportError:
        spearmanr = None
    if spearmanr is not None:
        want = float(spearmanr(a[ok], b[ok]).statistic)
        rng = np.random.default_rng(4)
        for _ in range(5):
            x, y = rng.integers(0, 5, 12).astype(float), rng.normal(size=12)
            x[rng.integers(0, 12)] = nan
            keep = ~np.isnan(x)
            assert spearman(x, y) == pytest.approx(float(spearmanr(x[keep], y[keep]).statistic), abs=1e-12)
    else:
        # Pairs (by hand): a = 1, 2, 2, 5, 3, 4, 0.5, 7, 7; b = 2, 1, 3, 6, 3, 9, 0.1, 8, 8.
        ra = np.array([2, 3.5, 3.5, 7, 5, 6, 1, 8.5, 8.5])
        rb = np.array([3, 2, 4.5, 6, 4.5, 9, 1, 7.5, 7.5])
        ra, rb = ra - ra.mean(), rb - rb.mean()
        want = float((ra * rb).sum() / math.sqrt((ra * ra).sum() * (rb * rb).sum()))
    assert spearman(a, b) == pytest.approx(want, abs=1e-12)
    assert spearman(np.array([1.0, 2.0]), np.array([2.0, 1.0])) is None  # fewer than 3 cells
    assert spearman(np.array([1.0, 2.0, nan, 4.0]), np.array([1.0, nan, 3.0, 2.0])) is None  # 2 shared cells
    assert spearman(np.array([1.0, 1.0, 1.0]), np.array([1.0, 2.0, 3.0])) is None  # constant side
    assert spearman(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])) == pytest.approx(-1.0)


def test_agreement_is_spearman_of_the_pruning_scores(analysis):
    from densegui.core.analysis.reuse import normalise

    assert [a["block"] for a in analysis.agreement] == [1, 2]
    for i, a in enumerate(analysis.agreement):
        ref = analysis.measures["ablation"][i].matrix
        assert set(a["spearman"]) == {"weights", "bn-weights", "activation"}
        for name, rho in a["spearman"].items():
            assert rho == pytest.approx(spearman(normalise(analysis.measures[name][i].matrix, "column-max"), ref),
                                        abs=1e-12)


# ------------------------------------------------------------------ pruning curve
def test_prune_curve(net, analysis):
    cfg, sd = net.cfg, net.sd
    curve = analysis.prune
    all_cells = list(cells(cfg))
    assert curve["connections"] == len(all_cells) and curve["images"] == IMAGES
    assert curve["fractions"] == pytest.approx([i / 10 for i in range(10)])
    with torch.no_grad():
        clean = float(losses(forward(sd, cfg, net.x), net.y)[1].mean())
    for name, entry in curve["curves"].items():
        assert entry["accuracy"][0] == pytest.approx(clean, abs=1e-12), name
        assert len(entry["accuracy"]) == len(entry["loss"]) == 10
    random = curve["curves"]["random"]
    assert random["orders"] == RANDOM_ORDERS == 3
    assert random["accuracy_min"][0] == random["accuracy_max"][0] == pytest.approx(clean, abs=1e-12)
    assert all(lo <= m + 1e-12 and m <= hi + 1e-12
               for lo, m, hi in zip(random["accuracy_min"], random["accuracy"], random["accuracy_max"]))
    assert "params_saved" not in random
    assert set(curve["curves"]) == {*MEASURES, "random"}

    # The weights order, independently: each target's least |w| sources (÷ its column's max) first.
    matrix = {b.block: b.matrix for b in analysis.measures["weights"]}
    score = {(b, t, s): matrix[b][s, t] / np.nanmax(matrix[b][:, t]) for b, t, s in all_cells}
    order = sorted(all_cells, key=lambda c: score[c])
    sides = {1: cfg.input_size, 2: cfg.input_size // 2}

    def cost(c):
        b, t, s = c
        shape = sd[target_key(cfg, b, t)].shape
        lo, hi = slices(cfg, b)[s]
        kernel = shape[2] * shape[3] if len(shape) == 4 else 1
        side = 1 if len(shape) == 2 else sides[b]
        return shape[0] * (hi - lo) * kernel + 2 * (hi - lo), shape[0] * (hi - lo) * kernel * side * side

    entry = curve["curves"]["weights"]
    for i, f in enumerate(curve["fractions"]):
        removed = order[: int(round(f * len(order)))]
        assert entry["params_saved"][i] == sum(cost(c)[0] for c in removed), f
        assert entry["macs_saved"][i] == sum(cost(c)[1] for c in removed), f
    assert entry["params_saved"][0] == 0 and entry["params_saved"][-1] > 0
    # The accuracy at 50 % removed by weights, against the forward with those slices zeroed.
    pruned = dict(sd)
    for b, t, s in order[: int(round(0.5 * len(order)))]:
        key = target_key(cfg, b, t)
        lo, hi = slices(cfg, b)[s]
        pruned[key] = pruned[key].clone()
        pruned[key][:, lo:hi] = 0
    with torch.no_grad():
        loss, acc = losses(forward(pruned, cfg, net.x), net.y)
    assert entry["accuracy"][5] == pytest.approx(float(acc.mean()), abs=1e-12)
    assert entry["loss"][5] == pytest.approx(float(loss.mean()), rel=1e-5)


def test_the_forward_here_is_the_model(net):
    """A guard on the reference itself: it gives build_model's logits."""
    model = build_model(net.cfg)
    model.load_state_dict(net.sd)
    model.eval()
    with torch.no_grad():
        ours = forward(net.sd, net.cfg, net.x)
        theirs = model(net.x.float()).double()
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-4)


def test_data_measures_of_a_headless_file_use_no_made_up_classifier(tmp_path):
    """A file without ``classifier.*`` loads with the note "the classifier column stays empty, the
    1000 classes are a placeholder"; the weight measures keep that column empty. The data measures
    must not fill it (nor compute losses) from a classifier initialised at random: they refuse, or
    (activation) leave the column empty. (The network loads the state_dict with strict=False into a
    freshly initialised model, so otherwise the column and every Δ loss would come from a random head
    that changes with torch's global seed; reachable from the CLI with 1000-class data.)"""
    from densegui.core.train.data import Split
    from densegui.core.errors import DenseguiError
    from densegui.core.analysis.reuse_data import ablation_blocks, activation_blocks
    from densegui.core.analysis.reuse_images import EvalData

    sd = _state_dict(BASIC, seed=2)
    torch.save({k: v for k, v in sd.items() if not k.startswith("classifier.")}, tmp_path / "headless.pt")
    loaded = load_checkpoint(tmp_path / "headless.pt")
    assert loaded.config.num_classes == 1000 and any("no classifier" in n for n in loaded.notes)
    g = torch.Generator().manual_seed(0)
    data = EvalData("x", "1000 classes", Split(torch.randint(0, 17, (8, 1, 8, 8), dtype=torch.uint8, generator=g),
                                               torch.randint(0, 1000, (8,), generator=g)), 16.0, [0.3], [0.4])
    try:
        blocks = activation_blocks(loaded.config, loaded.state_dict, data)
    except DenseguiError:
        pass
    else:
        assert np.isnan(blocks[-1].matrix[:, -1]).all(), blocks[-1].matrix[:, -1]
    with pytest.raises(DenseguiError):
        ablation_blocks(loaded.config, loaded.state_dict, data)
