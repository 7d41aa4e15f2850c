"""The RDNet family against timm's own modules (the reference code, ``timm/models/rdnet.py``)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from densegui.core.arch import registry
from densegui.core.arch.rdnet.config import PRESETS, RDNetConfig
from densegui.core.errors import ConfigError
from helpers.libraries import timm

TIMM = {"rdnet-tiny": "rdnet_tiny", "rdnet-small": "rdnet_small", "rdnet-base": "rdnet_base",
        "rdnet-large": "rdnet_large"}


@pytest.fixture(scope="module")
def tm():
    lib = timm()
    assert lib is not None, "timm is installed by the test command (README)"
    return lib


@pytest.mark.parametrize("name", list(PRESETS))
def test_params_and_macs_of_every_preset_equal_timms_module(tm, name):
    cfg = registry.get_preset(name)
    with torch.device("meta"):
        ref = tm.create_model(TIMM[name], pretrained=False)
    table = registry.layer_table(cfg)
    assert table.params == sum(p.numel() for p in ref.parameters()) == PRESETS[name].params
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        ref(torch.empty(1, 3, 224, 224, device="meta"))
    assert table.macs == counter.get_total_flops() // 2
    # and the state dict keys and shapes are timm's, in timm's order
    assert list(registry.expected_shapes(cfg).items()) == [(k, tuple(v.shape)) for k, v in ref.state_dict().items()]


def test_a_timm_rdnet_tiny_state_dict_loads_strictly_and_gives_the_same_outputs(tm):
    torch.manual_seed(0)
    ref = tm.create_model("rdnet_tiny", pretrained=False).eval()
    with torch.no_grad():  # layer scale starts at 1e-6: give every block a real contribution
        for name, p in ref.named_parameters():
            if name.endswith("gamma"):
                p.uniform_(0.5, 1.5)
    ours = registry.build_model(registry.get_preset("rdnet-tiny")).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(1, 3, 96, 96)  # (any size the stem and the three downsamplings allow; 224² is 5× slower)
    with torch.no_grad():
        a, b = ref(x), ours(x)
    assert a.abs().max() > 0.1 and (a - b).abs().max().item() <= 1e-5


@pytest.mark.parametrize("changes, needle", [
    (dict(growth_rates=(64,) * 6), "one value per stage"),
    (dict(downsample=(0, 2, 1, 0, 0, 0, 1)), "0 or 1"),
    (dict(input_size=7), "at least"),
    (dict(width_ratio=0.0), "width_ratio"),
    (dict(compression=0.01), "compression"),
    (dict(stem="imagenet"), "patch"),
])
def test_bad_configurations_get_one_line(changes, needle):
    with pytest.raises(ConfigError) as err:
        RDNetConfig(**changes).validate()
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_the_published_top1_is_in_presets_json(capsys):
    import json

    from densegui.cli import main

    assert main(["presets", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [p["value"] for n in PRESETS for p in data[n]["published"] if p["metric"] == "top-1 accuracy"] == \
        [82.8, 83.7, 84.4, 84.8]
