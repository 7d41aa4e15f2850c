"""The analytic layer table against independent measurements of real models:

* parameters: ``sum(p.numel())`` of the built model, in total and per row;
* MACs: ``torch.utils.flop_counter.FlopCounterMode`` (= 2 × MACs), in total and per row;
* channels / spatial size / output elements: forward hooks on a real forward pass;
* activation memory: the bytes autograd really saves for backward, captured with
  ``torch.autograd.graph.saved_tensors_hooks`` (unique storages, parameters and
  buffers excluded), byte for byte, in both modes, batch > 1, with and without dropout.
"""

from __future__ import annotations

import pytest
import torch
from helpers.configs import MEASURED_SPACE, random_valid_configs
from helpers.reference import saved_bytes
from torch.utils.flop_counter import FlopCounterMode

from densegui.core.arch.densenet.config import PRESETS, DenseNetConfig

from densegui.core.arch.registry import get_preset
from densegui.core.errors import ConfigError
from densegui.core.arch.densenet.model import build_model
from densegui.core.arch.densenet.table import layer_table
from densegui.core.arch.registry import estimate_memory, flops_per_iteration


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def row_modules(model, row):
    """The modules whose parameters one table row accounts for."""
    f = model.features
    if row.kind == "stem":
        return [f.conv0] + ([f.norm0] if hasattr(f, "norm0") else [])
    if row.kind == "head":
        return [f.norm5, model.classifier]
    return [model.get_submodule(row.name)]


# ----------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("name", list(PRESETS))
def test_params_presets(name):
    cfg = get_preset(name)
    model = build_model(cfg, "meta")
    table = layer_table(cfg)
    assert table.params == sum(p.numel() for p in model.parameters())
    for row in table.rows:
        assert row.params == sum(p.numel() for m in row_modules(model, row) for p in m.parameters()), row.name


def test_params_random_configs_total_and_per_row():
    for cfg in random_valid_configs(101, 60, MEASURED_SPACE):
        model = build_model(cfg, "meta")
        table = layer_table(cfg)
        assert table.params == sum(p.numel() for p in model.parameters()), cfg
        seen = set()
        for row in table.rows:
            mods = row_modules(model, row)
            assert row.params == sum(p.numel() for m in mods for p in m.parameters()), (cfg, row.name)
            seen.update(id(p) for m in mods for p in m.parameters())
        assert len(seen) == len(list(model.parameters()))  # rows partition the parameters


def test_rows_cover_every_layer_in_order():
    cfg = DenseNetConfig(growth_rate=3, block_depths=(2, 3, 1), stem="cifar", input_size=16)
    names = [r.name for r in layer_table(cfg).rows]
    assert names == ["features.conv0",
                     "features.denseblock1.denselayer1", "features.denseblock1.denselayer2", "features.transition1",
                     "features.denseblock2.denselayer1", "features.denseblock2.denselayer2",
                     "features.denseblock2.denselayer3", "features.transition2",
                     "features.denseblock3.denselayer1", "classifier"]
    rows = layer_table(cfg).rows
    assert [r.kind for r in rows] == ["stem"] + ["dense"] * 2 + ["transition"] + ["dense"] * 3 + ["transition"] + ["dense", "head"]
    assert [r.block for r in rows] == [None, 1, 1, 1, 2, 2, 2, 2, 3, None]
    assert [r.index for r in rows] == [None, 1, 2, None, 1, 2, 3, None, 1, None]


# ----------------------------------------------------------------------------- MACs
def _flops(model, cfg, device="cpu"):
    x = torch.randn(1, cfg.in_channels, cfg.input_size, cfg.input_size, device=device)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model.eval()(x)
    counts = {k: sum(v.values()) for k, v in fc.get_flop_counts().items()}
    return fc.get_total_flops(), counts


def test_macs_random_configs_against_flop_counter_total_and_per_row():
    for cfg in random_valid_configs(202, 20, MEASURED_SPACE):
        table = layer_table(cfg)
        total, per_module = _flops(build_model(cfg), cfg)
        assert total == 2 * table.macs, cfg
        for row in table.rows:
            key = "DenseNet." + ("features.conv0" if row.kind == "stem" else row.name)
            assert 2 * row.macs == per_module.get(key, 0), (cfg, row.name)


@pytest.mark.parametrize("name", ["densenet121", "densenet-40-k12", "densenet-bc-100-k12"])
def test_macs_presets_against_flop_counter(name):
    cfg = get_preset(name)
    total, _ = _flops(build_model(cfg, "meta"), cfg, device="meta")
    assert total == 2 * layer_table(cfg).macs


def test_densenet121_macs_matches_reference_figure():
    assert round(layer_table(get_preset("densenet121")).macs / 1e9, 2) == 2.83  # REFERENCE.md: ≈2.83 G


# ----------------------------------------------------------------------------- shapes
def test_channels_sizes_and_elements_against_forward_hooks():
    for cfg in random_valid_configs(303, 25, MEASURED_SPACE):
        model = build_model(cfg).eval()
        seen: dict[str, tuple[int, tuple[int, ...]]] = {}

        def hook(name):
            def fn(module, args, output):
                inp = args[0]
                cin = sum(t.shape[1] for t in inp) if isinstance(inp, (list, tuple)) else inp.shape[1]
                seen[name] = (cin, tuple(output.shape))
            return fn

        for row in layer_table(cfg).rows:
            if row.kind == "dense" or row.kind == "transition":
                model.get_submodule(row.name).register_forward_hook(hook(row.name))
        f = model.features
        f.conv0.register_forward_hook(hook("conv0"))
        (f.pool0 if cfg.stem == "imagenet" else f.conv0).register_forward_hook(hook("stem_out"))
        f.norm5.register_forward_hook(hook("norm5"))
        model.classifier.register_forward_hook(hook("classifier"))
        with torch.no_grad():
            model(torch.randn(2, cfg.in_channels, cfg.input_size, cfg.input_size))
        for row in layer_table(cfg).rows:
            if row.kind == "stem":
                cin, out = seen["conv0"][0], seen["stem_out"][1]
            elif row.kind == "head":
                cin, out = seen["norm5"][0], seen["classifier"][1]
            else:
                cin, out = seen[row.name]
            assert row.in_channels == cin, (cfg, row.name)
            assert row.out_channels == out[1], (cfg, row.name)
            assert row.out_elements * 2 == torch.Size(out).numel(), (cfg, row.name)
            assert row.out_size == (out[-1] if len(out) == 4 else 1), (cfg, row.name)


# ----------------------------------------------------------------------------- activation memory
def test_activation_bytes_exact_against_autograd_saved_tensors():
    configs = (random_valid_configs(404, 10, MEASURED_SPACE, drop_rate=0.0)
               + random_valid_configs(405, 8, MEASURED_SPACE, drop_rate=0.3))
    kinds = {(c.stem, c.bottleneck, c.drop_rate > 0) for c in configs}
    assert len(kinds) >= 6  # both stems, both layer kinds, with and without dropout
    for i, cfg in enumerate(configs):
        batch = 2 + i % 3
        table = layer_table(cfg)
        for eff in (False, True):
            got = saved_bytes(cfg.replace(memory_efficient=eff), batch)
            assert table.activation_bytes(batch, efficient=eff) == got, (cfg, eff, batch)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA path: the CPU path is tested above")
def test_activation_bytes_exact_on_cuda():
    configs = (random_valid_configs(406, 6, MEASURED_SPACE, drop_rate=0.0)
               + random_valid_configs(407, 6, MEASURED_SPACE, drop_rate=0.3))
    for cfg in configs:
        table = layer_table(cfg)
        for eff in (False, True):
            got = saved_bytes(cfg.replace(memory_efficient=eff), 3, "cuda")
            assert table.activation_bytes(3, efficient=eff, device="cuda") == got, (cfg, eff)


def test_cuda_dropout_masks_are_one_byte():
    cfg = DenseNetConfig(growth_rate=4, block_depths=(2, 3), stem="cifar", input_size=8, drop_rate=0.2)
    table = layer_table(cfg)
    mask_elements = sum(r.out_elements for r in table.dense_rows())  # one mask per dense layer output
    for eff in (False, True):
        assert table.activation_bytes(5, eff) - table.activation_bytes(5, eff, device="cuda") == 3 * 5 * mask_elements
        no_drop = layer_table(cfg.replace(drop_rate=0.0))
        assert no_drop.activation_bytes(5, eff) == no_drop.activation_bytes(5, eff, device="cuda:0")


def test_activation_bytes_exact_for_a_deep_bc_net():
    cfg = get_preset("densenet-bc-100-k12").replace(block_depths=(6, 6, 6), input_size=16)
    table = layer_table(cfg)
    for eff in (False, True):
        assert table.activation_bytes(3, efficient=eff) == saved_bytes(cfg.replace(memory_efficient=eff), 3)


def test_activation_bytes_linear_in_batch_and_properties():
    table = layer_table(get_preset("densenet121"))
    for eff in (False, True):
        a1, a2, a7 = (table.activation_bytes(b, efficient=eff) for b in (1, 2, 7))
        assert a7 - a1 == 6 * (a2 - a1) and a1 > 0
    assert table.naive_bytes == table.activation_bytes(1) and table.efficient_bytes == table.activation_bytes(1, True)
    assert table.efficient_bytes < table.naive_bytes


def test_naive_memory_is_quadratic_in_depth_and_efficient_linear():
    def dense_bytes(depth, eff):
        cfg = DenseNetConfig(growth_rate=12, block_depths=(depth,), stem="cifar", input_size=32, init_features=24)
        return sum(r.saved_efficient if eff else r.saved_naive for r in layer_table(cfg).dense_rows())

    naive = [dense_bytes(d, False) for d in range(2, 8)]
    eff = [dense_bytes(d, True) for d in range(2, 8)]
    d2n = {naive[i + 2] - 2 * naive[i + 1] + naive[i] for i in range(4)}
    d2e = {eff[i + 2] - 2 * eff[i + 1] + eff[i] for i in range(4)}
    assert d2n == {2 * 12 * 32 * 32 * 4}  # second difference: 2 saved copies of k new channels, float32
    assert d2e == {0}


def test_layer_table_validates_first():
    with pytest.raises(ConfigError, match="growth_rate"):
        layer_table(DenseNetConfig(growth_rate=0))
    with pytest.raises(ConfigError, match="input_size"):
        layer_table(DenseNetConfig(input_size=16))


def test_layer_table_is_cached_per_configuration_and_still_validates():
    """The window and the probe ask for the same table on every change: one computation, and an
    invalid configuration still raises (errors are never cached as results)."""
    import dataclasses

    from densegui.core.errors import ConfigError

    cfg = get_preset("densenet121")
    a = layer_table(cfg)
    assert layer_table(dataclasses.replace(cfg)) is a  # equal configs share the (immutable) table
    other = layer_table(dataclasses.replace(cfg, growth_rate=12))
    assert other is not a and other.params != a.params
    from densegui.core.arch.densenet.table import compute_layer_table

    fresh = compute_layer_table(cfg)
    assert fresh == a and fresh is not a
    bad = dataclasses.replace(cfg, growth_rate=0)
    for _ in range(2):
        with pytest.raises(ConfigError):
            layer_table(bad)


def test_probe_flops_follow_the_convention_of_torchs_flop_counter():
    cfg = DenseNetConfig(growth_rate=4, block_depths=(2, 3), stem="cifar", num_classes=10, input_size=16).validate()
    model = build_model(cfg).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(3, 3, 16, 16))
    assert flops_per_iteration(cfg, 3, "inference") == counter.get_total_flops()
    assert flops_per_iteration(cfg, 3, "training") == 3 * counter.get_total_flops()


def test_memory_estimate_covers_weights_and_saved_activations():
    cfg = get_preset("densenet-bc-100-k12").validate()
    table = layer_table(cfg)
    for efficient in (False, True):
        c = cfg.replace(memory_efficient=efficient).validate()
        train = estimate_memory(c, 8, "training")
        assert train >= 3 * 4 * table.params + table.activation_bytes(8, efficient=efficient)
        assert estimate_memory(c, 16, "training") > train > estimate_memory(c, 8, "inference") > 4 * table.params
    naive, eff = (estimate_memory(cfg.replace(memory_efficient=e).validate(), 64, "training") for e in (False, True))
    assert eff < naive


def test_row_and_table_types_are_the_family_neutral_ones():
    from densegui.core.arch.densenet import table as stats
    from densegui.core.arch import table

    assert stats.LayerRow is table.LayerRow and stats.LayerTable is table.LayerTable
    t = layer_table(get_preset("densenet-bc-100-k12"))
    assert t.family == "densenet" and t.depth == 100
    assert {r.kind: r.weighted_layers for r in t.rows} == {"stem": 1, "dense": 2, "transition": 1, "head": 1}
