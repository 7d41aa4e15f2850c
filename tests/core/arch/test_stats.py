"""The analytic layer table against independent measurements of real models:

The checks every family shares (parameters, MACs, channels, saved bytes against the real module)
are in tests/core/test_family_contract.py; here are the DenseNet-specific ones: row order and
names, the paper's figures, dropout masks on CUDA, deep nets, the quadratic/linear memory laws.
"""

from __future__ import annotations

import pytest
import torch
from helpers.configs import MEASURED_SPACE, random_valid_configs
from helpers.reference import saved_bytes
from torch.utils.flop_counter import FlopCounterMode

from densegui.core.arch.densenet.config import DenseNetConfig

from densegui.core.arch.registry import get_preset
from densegui.core.errors import ConfigError
from densegui.core.arch.densenet.model import build_model
from densegui.core.arch.densenet.table import layer_table
from densegui.core.arch.registry import estimate_memory, flops_per_iteration


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# ----------------------------------------------------------------------------- parameters
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
def test_densenet121_macs_matches_reference_figure():
    assert round(layer_table(get_preset("densenet121")).macs / 1e9, 2) == 2.83  # REFERENCE.md: ≈2.83 G


# ----------------------------------------------------------------------------- shapes
# ----------------------------------------------------------------------------- activation memory
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
