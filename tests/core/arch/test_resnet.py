"""ResNets: configuration, presets, the analytic table and the model, against independent references.

* parameters: torchvision's published integers, a state_dict written from torchvision's naming
  scheme and shape formulas (helpers.resnets);
* REFERENCE.md's GMACs per preset; saved activations of presets and on CUDA;
* He et al.'s CIFAR counts (Table 6), option A being parameter-free.

The checks every family shares (the module's parameters, MACs against ``FlopCounterMode``, channels
by forward hooks, saved bytes against autograd) are in tests/core/test_family_contract.py.
"""

from __future__ import annotations

import json

import pytest
import torch
from helpers.libraries import torchvision_models
from helpers.reference import saved_bytes
from helpers.resnets import TORCHVISION_LAYOUT, random_resnet_configs, torchvision_resnet_state_dict

from densegui.core.errors import ConfigError
from densegui.core.arch.resnet.config import OPTION_B_EXTRA, PRESETS, ResNetConfig
from densegui.core.arch.resnet.table import compute_resnet_layer_table, resnet_layer_table
from densegui.core.arch.resnet.model import Bottleneck, ShortcutA, build_model

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

TORCHVISION = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032, "resnet101": 44_549_160,
               "resnet152": 60_192_808}
GMACS = {"resnet18": 1.81, "resnet34": 3.66, "resnet50": 4.09, "resnet101": 7.80, "resnet152": 11.51}  # REFERENCE.md
HE_TABLE6_M = {"resnet20": 0.27, "resnet32": 0.46, "resnet44": 0.66, "resnet56": 0.85, "resnet110": 1.7}
# A stride-2 stage on a 1×1 map keeps size and channels but still gets torchvision's projection.
EDGE = [ResNetConfig(stage_depths=(1, 1, 1), widths=(3, 3, 3), block=b, stem="imagenet", stem_width=3 * e,
                     input_size=7, shortcut=s, num_classes=4) for b, e in (("basic", 1), ("bottleneck", 4)) for s in "AB"]


# ----------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("name", list(TORCHVISION))
def test_torchvision_presets_have_exact_published_params(name):
    cfg = PRESETS[name].config
    table = resnet_layer_table(cfg)
    assert table.params == TORCHVISION[name] == PRESETS[name].params and PRESETS[name].exact
    depth = int(name[len("resnet"):])
    # the torchvision-style state_dict (written from torchvision's shapes) has the published count too
    state = torchvision_resnet_state_dict(depth)
    assert sum(t.numel() for k, t in state.items()
               if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))) == TORCHVISION[name]
    assert (cfg.block, list(cfg.stage_depths)) == (TORCHVISION_LAYOUT[depth][0], TORCHVISION_LAYOUT[depth][1])
    assert table.depth == depth == cfg.depth  # the name counts conv + fc layers on the main path


@pytest.mark.parametrize("name", list(HE_TABLE6_M))
def test_cifar_presets_round_to_he_et_al_table6_with_option_a(name):
    cfg = PRESETS[name].config
    table = resnet_layer_table(cfg)
    assert round(table.params / 1e6, 2 if table.params < 1e6 else 1) == HE_TABLE6_M[name]
    assert (cfg.shortcut, cfg.stem, cfg.widths, cfg.block) == ("A", "cifar", (16, 32, 64), "basic")
    assert table.depth == int(name[len("resnet"):]) == 6 * cfg.stage_depths[0] + 2
    # option B's two projections (1×1 conv + BN, 16→32 and 32→64): the figure the descriptions give
    b = resnet_layer_table(cfg.replace(shortcut="B"))
    assert b.params - table.params == OPTION_B_EXTRA == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    assert f"option B would add {OPTION_B_EXTRA:,} params" in PRESETS[name].description


def test_option_a_shortcut_is_parameter_free_zero_padding():
    cfg = PRESETS["resnet20"].config
    model = build_model(cfg)
    shortcuts = [m for m in model.modules() if isinstance(m, ShortcutA)]
    assert len(shortcuts) == 2 and all(not list(m.parameters()) and not list(m.buffers()) for m in shortcuts)
    assert not any("downsample" in k for k in model.state_dict())
    x = torch.randn(2, 16, 7, 7)
    y = shortcuts[0](x)
    assert y.shape == (2, 32, 4, 4)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2]) and torch.equal(y[:, 16:], torch.zeros(2, 16, 4, 4))


# ----------------------------------------------------------------------------- MACs
@pytest.mark.parametrize("name", list(GMACS))
def test_macs_presets_match_the_reference_figures(name):
    # (the MACs themselves are checked against FlopCounterMode in tests/core/test_family_contract.py)
    macs = resnet_layer_table(PRESETS[name].config).macs
    assert round(macs / 1e9, 2) == GMACS[name]


# ----------------------------------------------------------------------------- shapes
# ----------------------------------------------------------------------------- saved activations
@pytest.mark.parametrize("name", ["resnet20", "resnet18"])
def test_activation_bytes_exact_for_presets(name):
    cfg = PRESETS[name].config
    if name == "resnet18":
        cfg = cfg.replace(input_size=64)  # the same layout, a quicker step
    assert resnet_layer_table(cfg).activation_bytes(2) == saved_bytes(cfg, 2)


def test_bottleneck_preset_activation_bytes_exact_at_small_width():
    cfg = PRESETS["resnet50"].config.replace(widths=(4, 8, 8, 16), stem_width=8, input_size=48)
    assert resnet_layer_table(cfg).activation_bytes(3) == saved_bytes(cfg, 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA path: the CPU path is tested above")
def test_activation_bytes_exact_on_cuda():
    for cfg in random_resnet_configs(45, 8) + [PRESETS["resnet50"].config.replace(input_size=64)]:
        assert resnet_layer_table(cfg).activation_bytes(3, device="cuda") == saved_bytes(cfg, 3, "cuda"), cfg


# ----------------------------------------------------------------------------- torchvision state_dicts
@pytest.mark.parametrize("depth", [18, 50])
def test_torchvision_state_dict_loads_strict(depth):
    state = torchvision_resnet_state_dict(depth)
    model = build_model(PRESETS[f"resnet{depth}"].config, "meta" if depth == 50 else "cpu")
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == [(k, tuple(v.shape)) for k, v in state.items()]
    result = model.load_state_dict(state, strict=True, assign=depth == 50)  # meta: assign, as strict and faster
    assert not result.missing_keys and not result.unexpected_keys
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    with pytest.raises(RuntimeError):
        build_model(PRESETS["resnet34"].config, "meta").load_state_dict(state, strict=True, assign=True)


tv_models = torchvision_models()  # (installed by README's test command; see helpers/libraries.py)


@pytest.mark.skipif(tv_models is None, reason="torchvision not installed here")
@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_real_torchvision_resnet_loads_and_gives_same_outputs(name):
    torch.manual_seed(0)
    ref = getattr(tv_models, name)(weights=None).eval()
    ours = build_model(PRESETS[name].config).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    assert list(ours.state_dict()) == list(ref.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-4)


def test_initialisation_is_torchvisions_and_bottleneck_strides_on_the_3x3():
    model = build_model(PRESETS["resnet50"].config.replace(input_size=32))
    block = model.layer2[0]
    assert isinstance(block, Bottleneck) and block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)
    assert block.downsample[0].stride == (2, 2)
    assert all(float(m.weight.detach().std()) > 0 for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    bn = model.layer1[0].bn1
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    w = model.layer4[0].conv2.weight  # kaiming normal, fan_out: std = sqrt(2 / (out · 3 · 3))
    assert float(w.detach().std()) == pytest.approx((2 / (512 * 9)) ** 0.5, rel=0.05)


# ----------------------------------------------------------------------------- configuration
def test_defaults_are_resnet50_and_json_round_trip(tmp_path):
    assert ResNetConfig() == PRESETS["resnet50"].config
    for preset in PRESETS.values():
        cfg = preset.config
        d = cfg.to_dict()
        assert d["family"] == "resnet" and list(d)[0] == "family"
        assert ResNetConfig.from_dict(json.loads(json.dumps(d))) == cfg
        assert ResNetConfig.from_json(cfg.to_json()) == cfg
        path = tmp_path / f"{preset.name}.json"
        path.write_text(json.dumps({"config": d, "params": 1}), encoding="utf-8")  # a whole summary output
        assert ResNetConfig.from_file(path) == cfg
    assert ResNetConfig.from_dict({"stage_depths": [1, 1], "widths": [2, 4]}).stage_depths == (1, 1)


@pytest.mark.parametrize("changes,needle", [
    (dict(stage_depths=()), "stage_depths must list 1 to 8"),
    (dict(stage_depths=(1,) * 9, widths=(1,) * 9), "stage_depths must list 1 to 8 stages, got 9"),
    (dict(stage_depths=(3, 0, 6, 3)), "stage_depths (stage 2) must be from 1 to 256, got 0"),
    (dict(stage_depths=(3, 4.0, 6, 3)), "stage_depths (stage 2) must be an integer"),
    (dict(stage_depths=[3, 4, 6, 3]), None),
    (dict(widths=(64, 128, 256)), "widths must list one width per stage (4 stages), got 3"),
    (dict(widths=(64, 128, 256, 4097)), "widths (stage 4) must be from 1 to 4096"),
    (dict(block="wide"), "block must be one of basic, bottleneck"),
    (dict(stem="tiny"), "stem must be one of imagenet, cifar"),
    (dict(stem_width=0), "stem_width must be from 1 to 2048"),
    (dict(shortcut="C"), "shortcut must be A (zero-padded identity) or B"),
    (dict(in_channels=65), "in_channels must be from 1 to 64"),
    (dict(num_classes=True), "num_classes must be an integer"),
    (dict(input_size=0), "input_size must be from 1 to 2048"),
    (dict(memory_efficient=True), "memory_efficient must be false for a ResNet"),
    (dict(shortcut="A", stem_width=300), "shortcut A cannot reduce channels, but stage 1 maps 300 to 256"),
    (dict(shortcut="A", block="basic"), None),
])
def test_validation_names_the_field(changes, needle):
    cfg = ResNetConfig().replace(**changes)
    if needle is None:
        assert cfg.validate() is cfg
        return
    with pytest.raises(ConfigError) as info:
        cfg.validate()
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_validation_accepts_what_builds_and_runs_at_tiny_inputs():
    for cfg in [ResNetConfig(stage_depths=(1,) * 6, widths=(2,) * 6, input_size=1, block="basic"),
                ResNetConfig(stage_depths=(1, 1), widths=(1, 2), stem="cifar", stem_width=1, shortcut="A", input_size=1)]:
        out = build_model(cfg.validate()).eval()(torch.randn(1, cfg.in_channels, 1, 1))
        assert out.shape == (1, cfg.num_classes)


@pytest.mark.parametrize("data,needle", [
    ([1, 2], "must be a JSON object"),
    ({"family": "densenet"}, "family must be 'resnet'"),
    ({"growth_rate": 12}, "unknown ResNet configuration field 'growth_rate'"),
    ({"widths": "64"}, "widths must be a list"),
])
def test_from_dict_errors(data, needle):
    with pytest.raises(ConfigError, match=needle):
        ResNetConfig.from_dict(data)


def test_from_json_and_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not valid JSON"):
        ResNetConfig.from_json("{")
    with pytest.raises(ConfigError, match="does not exist"):
        ResNetConfig.from_file(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text('{"block": "x"}', encoding="utf-8")
    with pytest.raises(ConfigError, match="^bad.json: block must be"):
        ResNetConfig.from_file(tmp_path / "bad.json")


def test_describing_a_configuration():
    cfg = PRESETS["resnet50"].config
    assert cfg.label() == "resnet50" and cfg.replace(input_size=64).label() == "resnet50"
    custom = cfg.replace(stage_depths=(1, 1, 1, 1))
    assert custom.label() == "ResNet-14 bottleneck stages 1,1,1,1 imagenet"
    assert cfg.variant == "ResNet (bottleneck)"
    assert cfg.describe().startswith("ResNet-50, bottleneck blocks, stages 3,4,6,3, widths 64,128,256,512")
    assert "shortcut A (zero-padded identity)" in PRESETS["resnet20"].config.describe()
    for c in (PRESETS["resnet20"].config, custom):
        namespace: dict = {}
        exec(c.python_snippet(), namespace)  # noqa: S102 - our own generated code
        assert namespace["cfg"] == c
        assert sum(p.numel() for p in namespace["model"].parameters()) == resnet_layer_table(c).params


def test_layer_table_rows_names_kinds_and_depth_fractions():
    cfg = ResNetConfig(stage_depths=(2, 1), widths=(4, 8), block="basic", stem="cifar", stem_width=4, input_size=8)
    table = resnet_layer_table(cfg)
    assert [r.name for r in table.rows] == ["conv1", "layer1.0", "layer1.1", "layer2.0", "fc"]
    assert [r.kind for r in table.rows] == ["stem", "residual", "residual", "residual", "head"]
    assert [r.block for r in table.rows] == [None, 1, 1, 2, None]
    assert [r.index for r in table.rows] == [None, 1, 2, 1, None]
    assert table.family == "resnet" and table.depth == 8 == cfg.depth
    assert table.depth_fraction() == [1 / 8, 3 / 8, 5 / 8, 7 / 8, 1.0]


def test_layer_table_is_cached_and_validates_first():
    cfg = PRESETS["resnet18"].config
    assert resnet_layer_table(cfg.replace()) is resnet_layer_table(cfg)
    assert compute_resnet_layer_table(cfg) == resnet_layer_table(cfg)
    for _ in range(2):
        with pytest.raises(ConfigError, match="block"):
            resnet_layer_table(cfg.replace(block="x"))
