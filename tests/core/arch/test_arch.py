"""The family registry: presets of both families, configs from dicts and files, the dispatching
table / model / estimate / FLOPs, and depth fractions."""

from __future__ import annotations

import json
import re

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from densegui.cli.summary import summary_json
from densegui.core.arch import registry as arch
from densegui.core.arch.densenet import config
from densegui.core.arch.resnet import table as resnet_table
from densegui.core.arch.resnet import config as resnet_config
from densegui.core.arch.densenet import table as stats
from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.errors import ConfigError
from densegui.core.arch.published import PUBLISHED
from densegui.core.arch.resnet.config import ResNetConfig

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

DENSENETS = ["densenet121", "densenet161", "densenet169", "densenet201", "densenet264", "densenet-40-k12",
             "densenet-100-k12", "densenet-100-k24", "densenet-bc-100-k12", "densenet-bc-250-k24", "densenet-bc-190-k40"]
RESNETS = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet20", "resnet32", "resnet44", "resnet56",
           "resnet110"]
RDNETS = ["rdnet-tiny", "rdnet-small", "rdnet-base", "rdnet-large"]


def test_presets_are_the_union_densenets_first():
    assert list(arch.PRESETS) == DENSENETS + RESNETS + RDNETS
    assert list(config.PRESETS) == DENSENETS  # the DenseNet controls' list is unchanged
    assert arch.preset_names() == DENSENETS + RESNETS + RDNETS
    assert arch.preset_names("densenet") == DENSENETS and arch.preset_names("resnet") == RESNETS
    assert arch.preset_names("rdnet") == RDNETS
    for name, p in arch.PRESETS.items():
        assert p.name == name and p.family == p.config.family == arch.family_of(p.config).name
        assert isinstance(p.config, arch.get_family(p.family).config)
        assert p.published == PUBLISHED[name]
    assert config.PRESETS["densenet121"].published == PUBLISHED["densenet121"]
    with pytest.raises(ConfigError, match="unknown family 'vgg'; valid families: densenet, resnet"):
        arch.preset_names("vgg")


def test_get_preset_and_preset_of_both_families():
    assert arch.get_preset("densenet121") == config.PRESETS["densenet121"].config
    assert arch.get_preset("resnet50") == ResNetConfig()
    with pytest.raises(ConfigError) as info:
        arch.get_preset("resnet51")
    assert "unknown preset 'resnet51'" in str(info.value) and "densenet121" in str(info.value)
    assert "resnet110" in str(info.value)
    for name in DENSENETS + RESNETS:
        cfg = arch.get_preset(name)
        assert arch.preset_of(cfg) == name
        assert arch.preset_of(cfg.replace(input_size=cfg.input_size + 1)) is None
        assert arch.preset_of(cfg.replace(input_size=cfg.input_size + 1), ignore_run_settings=True) == name
    assert arch.preset_of(ResNetConfig(stage_depths=(1, 1, 1, 1))) is None


def test_family_of_refuses_what_is_not_a_configuration():
    assert arch.family_of(DenseNetConfig()).name == "densenet" and arch.family_of(ResNetConfig()).name == "resnet"
    for bad in ({"family": "resnet"}, "resnet50", None):
        with pytest.raises(ConfigError, match="not a network configuration"):
            arch.family_of(bad)


def test_config_from_dict_dispatches_on_family():
    dense = arch.get_preset("densenet-40-k12")
    assert arch.config_from_dict(dense.to_dict()) == dense  # no "family": a DenseNet, as before
    assert arch.config_from_dict({**dense.to_dict(), "family": "densenet"}) == dense
    res = resnet_config.PRESETS["resnet56"].config
    assert arch.config_from_dict(res.to_dict()) == res
    assert isinstance(arch.config_from_dict({"family": "resnet"}), ResNetConfig)
    # No "family": the family whose own fields are used (a hand-written ResNet JSON), else DenseNet.
    bare = {k: v for k, v in res.to_dict().items() if k != "family"}
    assert arch.config_from_dict(bare) == res
    assert arch.config_from_dict({"shortcut": "B"}) == ResNetConfig(shortcut="B")
    assert arch.config_from_dict({"input_size": 64}) == config.DenseNetConfig(input_size=64)  # a shared field
    for bad, needle in [({"family": "vgg"}, "unknown family 'vgg'"), ({"family": 3}, "unknown family 3"),
                        ([1], "must be a JSON object"),
                        ({"growth_rate": 4, "widths": [8], "stage_depths": [1]},
                         r"mixes fields of different families \(densenet: growth_rate; resnet: widths\)"),
                        ({"family": "densenet", "stage_depths": [1]}, "unknown configuration field"),
                        ({"family": "resnet", "growth_rate": 4}, "unknown ResNet configuration field")]:
        with pytest.raises(ConfigError, match=needle):
            arch.config_from_dict(bad)


@pytest.mark.parametrize("name", ["densenet-bc-100-k12", "resnet20"])
def test_config_from_file_takes_a_config_or_a_whole_summary_output(tmp_path, name):
    cfg = arch.get_preset(name)
    path = tmp_path / "net.json"
    path.write_text(json.dumps(cfg.to_dict()), encoding="utf-8")
    assert arch.config_from_file(path) == cfg
    path.write_text(json.dumps(summary_json(cfg)), encoding="utf-8")
    assert arch.config_from_file(path) == cfg
    assert arch.config_from_json(json.dumps(summary_json(cfg))) == cfg
    path.write_text(json.dumps({**summary_json(cfg), "input_size": 3}), encoding="utf-8")  # no silent mix
    with pytest.raises(ConfigError, match="^net.json: unknown"):
        arch.config_from_file(path)
    with pytest.raises(ConfigError, match="does not exist"):
        arch.config_from_file(tmp_path / "none.json")
    path.write_text("{", encoding="utf-8")
    with pytest.raises(ConfigError, match="^net.json: configuration is not valid JSON"):
        arch.config_from_file(path)


def test_layer_table_dispatches_and_is_cached():
    d, r = arch.get_preset("densenet121"), arch.get_preset("resnet50")
    assert arch.layer_table(d) is stats.layer_table(d) and arch.layer_table(d).family == "densenet"
    assert arch.layer_table(r) is resnet_table.resnet_layer_table(r) and arch.layer_table(r).family == "resnet"
    assert arch.layer_table(r.replace()) is arch.layer_table(r)


@pytest.mark.parametrize("name", ["densenet-40-k12", "resnet20"])
def test_build_model_dispatches(name):
    cfg = arch.get_preset(name)
    model = arch.build_model(cfg, "meta")
    assert sum(p.numel() for p in model.parameters()) == arch.layer_table(cfg).params
    assert model.config == cfg and next(model.parameters()).device.type == "meta"


def test_estimate_memory_is_generic():
    cfg = arch.get_preset("resnet50")
    table = arch.layer_table(cfg)
    train = arch.estimate_memory(cfg, 8, "training")
    assert train >= 3 * 4 * table.params + table.activation_bytes(8)
    assert arch.estimate_memory(cfg, 16, "training") > train > arch.estimate_memory(cfg, 8, "inference")
    assert arch.estimate_memory(cfg, 8, "inference") > 4 * table.params + 4 * 8 * 3 * 224 * 224


def test_resnet_flops_per_iteration_against_torchs_flop_counter():
    cfg = ResNetConfig(stage_depths=(1, 1), widths=(4, 8), stem="cifar", stem_width=4, num_classes=3, input_size=12)
    model = arch.build_model(cfg).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(5, 3, 12, 12))
    assert arch.flops_per_iteration(cfg, 5, "inference") == counter.get_total_flops()
    assert arch.flops_per_iteration(cfg, 5, "training") == 3 * counter.get_total_flops()
    dense = arch.get_preset("densenet-40-k12")
    assert arch.flops_per_iteration(dense, 2, "training") == 3 * 2 * 2 * stats.layer_table(dense).macs


@pytest.mark.parametrize("name", DENSENETS + RESNETS)
def test_depth_counts_the_layers_the_names_count(name):
    table = arch.layer_table(arch.get_preset(name))
    digits = re.search(r"(\d+)(-k\d+)?$", name).group(1)  # densenet121, resnet50, densenet-bc-100-k12
    # DenseNet-264's blocks (6, 12, 64, 48) give 1 + 2·130 + 3 + 1 = 265 layers: the paper's name is one short.
    assert table.depth == (265 if name == "densenet264" else int(digits))
    fractions = table.depth_fraction()
    assert len(fractions) == len(table.rows) and fractions[-1] == 1.0
    assert all(0 < a < b for a, b in zip(fractions, fractions[1:]))
    assert fractions[0] == 1 / table.depth  # the stem is one conv


def test_depth_fraction_of_a_small_densenet():
    cfg = DenseNetConfig(growth_rate=3, block_depths=(2, 1), stem="cifar", input_size=8)
    # stem 1, two bottleneck layers (2 each), transition 1, one layer (2), head 1: 9 layers
    assert arch.layer_table(cfg).depth_fraction() == [1 / 9, 3 / 9, 5 / 9, 6 / 9, 8 / 9, 1.0]
    basic = cfg.replace(bottleneck=False)
    assert arch.layer_table(basic).depth_fraction() == [1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1.0]
