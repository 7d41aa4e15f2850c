"""The Figure 5 metric against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers.corpus import SMALL_BASIC, SMALL_BC, known_state_dict, synth_state_dict
from helpers.reference import naive_matrices

from densegui.core.errors import DenseguiError
from densegui.core.weights.infer import infer_config
from densegui.core.analysis.reuse import column_rank, normalise, write_csv
from densegui.core.analysis.reuse_measures import reuse_matrices


@pytest.mark.parametrize("cfg", [SMALL_BC, SMALL_BASIC], ids=["bc", "basic"])
def test_matrices_match_the_naive_definition(cfg):
    sd = known_state_dict(cfg, seed=11)
    blocks = reuse_matrices(sd, cfg)
    expected = naive_matrices(sd)
    assert len(blocks) == len(expected) == cfg.num_blocks
    for b, e in zip(blocks, expected):
        assert b.matrix.shape == e.shape == (cfg.block_depths[b.block - 1] + 1,) * 2
        np.testing.assert_array_equal(np.isnan(b.matrix), np.isnan(e))
        np.testing.assert_allclose(b.matrix, e, rtol=1e-5, equal_nan=True)


def test_closed_form_with_structured_weights():
    """|w| = s_t · (c + 1) on input channel c of target t, signs alternating: the cell over
    channels [a, b) is s_t · (a + b + 1) / 2 exactly."""
    sd = synth_state_dict(init=5, k=3, depths=(4, 2), transition_outs=(8,), bn_size=2, classes=6)
    cfg = infer_config(sd)
    keys = {
        1: [f"features.denseblock1.denselayer{t}.conv1.weight" for t in range(1, 5)] + ["features.transition1.conv.weight"],
        2: [f"features.denseblock2.denselayer{t}.conv1.weight" for t in range(1, 3)] + ["classifier.weight"],
    }
    scale = {}
    for block, names in keys.items():
        for t, key in enumerate(names):
            w = sd[key]
            s_t = 0.01 * (block * 10 + t + 1)
            c = torch.arange(w.shape[1], dtype=torch.float64) + 1
            shape = [1, -1] + [1] * (w.dim() - 2)
            signs = torch.where(torch.arange(w.numel()).reshape(w.shape) % 2 == 0, 1.0, -1.0).double()
            sd[key] = (signs * s_t * c.reshape(shape)).float()
            scale[key] = s_t
    blocks = reuse_matrices(sd, cfg)
    # Block 1: input 5 channels, k = 3; block 2: input 8 channels.
    for b, k0 in ((blocks[0], 5), (blocks[1], 8)):
        depth = len(b.targets) - 1
        for t, key in enumerate(keys[b.block]):
            for s in range(depth + 1):
                lo, hi = (0, k0) if s == 0 else (k0 + (s - 1) * 3, k0 + s * 3)
                if s > t and t < depth:
                    assert math.isnan(b.matrix[s, t])
                else:
                    assert b.matrix[s, t] == pytest.approx(scale[key] * (lo + hi + 1) / 2, rel=1e-5)
                    assert b.source_channels[s] == (lo, hi)


def test_labels_and_json_nulls():
    sd = known_state_dict(SMALL_BC)
    blocks = reuse_matrices(sd, SMALL_BC)
    assert blocks[0].sources == ["input", "layer 1", "layer 2", "layer 3"]
    assert blocks[0].targets == ["layer 1", "layer 2", "layer 3", "transition 1"]
    assert blocks[-1].targets[-1] == "classifier"
    d = blocks[1].to_dict()
    assert d["block"] == 2 and len(d["matrix"]) == 5 and all(len(r) == 5 for r in d["matrix"])
    assert d["matrix"][1][0] is None and d["matrix"][4][3] is None  # layer 1 → layer 1, layer 4 → layer 4
    assert all(v is not None for v in (row[-1] for row in d["matrix"]))  # transition sees every source
    assert all(d["matrix"][s][t] is not None for t in range(4) for s in range(t + 1))


def test_normalisations():
    m = np.array([[2.0, 1.0, 4.0], [np.nan, 3.0, 2.0], [np.nan, np.nan, 8.0]])
    # Column min–max: column 0 has one source (→ 1); column 1: (1, 3) → (0, 1); column 2: (4, 2, 8) over [2, 8].
    np.testing.assert_allclose(normalise(m, "column"),
                               [[1.0, 0.0, 2 / 6], [np.nan, 1.0, 0.0], [np.nan, np.nan, 1.0]])
    np.testing.assert_allclose(normalise(m, "column-max"),
                               [[1.0, 1 / 3, 0.5], [np.nan, 1.0, 0.25], [np.nan, np.nan, 1.0]])
    np.testing.assert_allclose(normalise(m, "block"), (m - 1.0) / 7.0)
    np.testing.assert_allclose(normalise(m, "raw"), m)
    flat = normalise(np.array([[0.5, np.nan], [0.5, 0.5]]), "column")
    assert flat[0, 0] == 1.0 and flat[1, 0] == 1.0 and math.isnan(flat[0, 1])
    for mode in ("column", "column-max", "block"):
        out = normalise(m, mode)
        assert np.nanmax(out) == 1.0 and np.nanmin(out) >= 0.0
        np.testing.assert_array_equal(np.isnan(out), np.isnan(m))
    with pytest.raises(DenseguiError):
        normalise(m, "log")


def test_column_rank():
    m = np.array([[2.0, 1.0, 4.0], [np.nan, 3.0, 2.0], [np.nan, np.nan, 8.0]])
    assert column_rank(m, 0, 2) == (2, 3)
    assert column_rank(m, 2, 2) == (1, 3)
    assert column_rank(m, 0, 0) == (1, 1)
    assert column_rank(m, 1, 0) == (0, 1)


def test_csv_round_trip(tmp_path):
    sd = known_state_dict(SMALL_BC)
    blocks = reuse_matrices(sd, SMALL_BC)
    files = write_csv(blocks, tmp_path / "out")
    assert [f.name for f in files] == ["block1.csv", "block2.csv", "block3.csv"]
    import csv

    for b, f in zip(blocks, files):
        rows = list(csv.reader(f.open()))
        assert rows[0][1:] == b.targets
        assert [r[0] for r in rows[1:]] == b.sources
        for s, row in enumerate(rows[1:]):
            for t, cell in enumerate(row[1:]):
                if math.isnan(b.matrix[s, t]):
                    assert cell == ""
                else:
                    assert float(cell) == b.matrix[s, t]


def test_densenet264_sized_matrices_are_consistent():
    """Shape-only check on the largest preset (meta weights would not compute; use tiny real ones)."""
    sd = synth_state_dict(init=8, k=2, depths=(6, 12, 64, 48), transition_outs=(10, 17, 72), bn_size=4, classes=3)
    cfg = infer_config(sd)
    blocks = reuse_matrices(sd, cfg)
    assert [b.matrix.shape for b in blocks] == [(7, 7), (13, 13), (65, 65), (49, 49)]
    for b, e in zip(blocks, naive_matrices(sd)):
        np.testing.assert_allclose(b.matrix, e, rtol=1e-5, equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_half_and_double_precision_checkpoints(tmp_path, dtype):
    from densegui.core.weights.checkpoint import load_checkpoint

    sd = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in known_state_dict(SMALL_BC, seed=7).items()}
    torch.save(sd, tmp_path / "half.pt")
    loaded = load_checkpoint(tmp_path / "half.pt")
    assert loaded.state_dict["classifier.weight"].dtype == dtype
    for b, e in zip(reuse_matrices(loaded.state_dict, loaded.config), naive_matrices(sd)):
        np.testing.assert_allclose(b.matrix, e, rtol=1e-5, equal_nan=True)
    sd["features.denseblock1.denselayer1.conv1.weight"][0, 0, 0, 0] = float("nan")
    torch.save(sd, tmp_path / "bad.pt")
    with pytest.raises(DenseguiError, match="NaN"):
        load_checkpoint(tmp_path / "bad.pt")


@pytest.mark.parametrize("cfg", [SMALL_BC, SMALL_BASIC, "densenet121", "densenet-40-k12"])
def test_blocks_from_the_plan_are_the_papers(cfg):
    """The layouts read from the plan: source slices [0, k0), [k0 + (j−1)k, k0 + jk), each target's
    first conv (torchvision's names) and the BatchNorm before it, as the paper and the module state them."""
    from densegui.core.arch.registry import get_preset
    from densegui.core.analysis.reuse_measures import layouts

    cfg = get_preset(cfg) if isinstance(cfg, str) else cfg
    got = layouts(cfg)
    assert len(got) == cfg.num_blocks
    k = cfg.growth_rate
    for b, layout in enumerate(got, 1):
        k0 = cfg.block_channels()[b - 1][0]
        depth = cfg.block_depths[b - 1]
        last = b == cfg.num_blocks
        assert layout.block == b
        assert layout.sources == ["input"] + [f"layer {j}" for j in range(1, depth + 1)]
        assert layout.targets == [f"layer {j}" for j in range(1, depth + 1)] + ["classifier" if last else f"transition {b}"]
        assert layout.ranges == [(0, k0)] + [(k0 + (j - 1) * k, k0 + j * k) for j in range(1, depth + 1)]
        layers = [f"features.denseblock{b}.denselayer{j}" for j in range(1, depth + 1)]
        assert layout.keys == [f"{p}.conv1.weight" for p in layers] + [
            "classifier.weight" if last else f"features.transition{b}.conv.weight"]
        assert layout.norms == [f"{p}.norm1" for p in layers] + ["features.norm5" if last else f"features.transition{b}.norm"]


def test_a_family_without_dense_blocks_is_refused_in_one_line():
    from types import SimpleNamespace

    from densegui.core.arch.registry import build_model, get_preset
    from densegui.core.analysis.reuse_measures import weight_measure_with_noise
    from densegui.core.analysis.reuse_run import analyse
    from densegui.core.analysis.reuse_walk import network

    cfg = get_preset("resnet18")
    sd = build_model(cfg, "meta").state_dict()
    message = r"^the feature-reuse measures need dense blocks; a ResNet has none\.$"
    loaded = SimpleNamespace(config=cfg, state_dict=sd, metadata={})
    for measure in (lambda: reuse_matrices(sd, cfg), lambda: weight_measure_with_noise(sd, cfg, "bn-weights"),
                    lambda: network(cfg, sd), lambda: analyse(loaded, ["activation"], prune=True)):
        with pytest.raises(DenseguiError, match=message):
            measure()
