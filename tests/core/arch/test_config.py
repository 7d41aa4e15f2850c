"""DenseNetConfig: presets, JSON round trip, validation (every field, every combination).

Independent references: torchvision's published parameter counts and the paper's
Table 2 (REFERENCE.md), a real model build + forward pass for "can it run".
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import re

import pytest
import torch
from helpers.configs import LIMITS_SPACE, random_config
from helpers.reference import count_params

from densegui.core.arch.densenet.config import LIMITS, PRESETS, DenseNetConfig

from densegui.core.arch.registry import get_preset, preset_names
from densegui.core.errors import ConfigError, DenseguiError
from densegui.core.arch.densenet.model import build_model

PRESET_NAMES = [
    "densenet121", "densenet161", "densenet169", "densenet201", "densenet264",
    "densenet-40-k12", "densenet-100-k12", "densenet-100-k24",
    "densenet-bc-100-k12", "densenet-bc-250-k24", "densenet-bc-190-k40",
]
# torchvision's published num_params (exact) and the paper's rounded figures (millions).
TORCHVISION = {"densenet121": 7_978_856, "densenet161": 28_681_000, "densenet169": 14_149_480,
               "densenet201": 20_013_928}
PAPER_M = {"densenet264": 33.3, "densenet-40-k12": 1.0, "densenet-100-k12": 7.0, "densenet-100-k24": 27.2,
           "densenet-bc-100-k12": 0.8, "densenet-bc-250-k24": 15.3, "densenet-bc-190-k40": 25.6}
FIELDS = ["growth_rate", "block_depths", "compression", "bottleneck", "bn_size", "init_features", "stem",
          "in_channels", "num_classes", "drop_rate", "connectivity", "input_size", "memory_efficient"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def one_line(msg: str) -> bool:
    return "\n" not in msg and 0 < len(msg) <= 300


# ----------------------------------------------------------------------------- presets
def test_preset_names_exact():
    assert preset_names("densenet") == PRESET_NAMES
    assert list(PRESETS) == PRESET_NAMES


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_torchvision_presets_have_exact_published_params(name):
    assert count_params(get_preset(name)) == TORCHVISION[name]
    assert PRESETS[name].params == TORCHVISION[name] and PRESETS[name].exact


@pytest.mark.parametrize("name", list(PAPER_M))
def test_paper_presets_round_to_table(name):
    n = count_params(get_preset(name))
    assert round(n / 1e6, 1) == PAPER_M[name]
    assert not PRESETS[name].exact


def test_preset_architecture_facts():
    # REFERENCE.md: stem width 2k (96 for densenet161), 16 for basic CIFAR nets;
    # (L-4)/3 basic or (L-4)/6 bottleneck layers per CIFAR block.
    assert get_preset("densenet161").num_init_features == 96
    assert get_preset("densenet121").num_init_features == 64
    for name in ("densenet-40-k12", "densenet-100-k12", "densenet-100-k24"):
        c = get_preset(name)
        depth = int(name.split("-")[1])
        assert c.num_init_features == 16 and not c.bottleneck and c.compression == 1.0
        assert c.block_depths == ((depth - 4) // 3,) * 3 and c.stem == "cifar" and c.num_classes == 10
    for name in ("densenet-bc-100-k12", "densenet-bc-250-k24", "densenet-bc-190-k40"):
        c = get_preset(name)
        depth, k = int(name.split("-")[2]), int(name.split("-k")[1])
        assert c.growth_rate == k and c.num_init_features == 2 * k and c.bottleneck and c.compression == 0.5
        assert c.block_depths == ((depth - 4) // 6,) * 3 and c.input_size == 32
    assert get_preset("densenet121").final_channels == 1024  # torchvision classifier [1000, 1024]
    assert get_preset("densenet161").final_channels == 2208


def test_unknown_preset_lists_valid_ones():
    with pytest.raises(ConfigError) as info:
        get_preset("densenet122")
    msg = str(info.value)
    assert "\n" not in msg and "densenet122" in msg
    for name in PRESET_NAMES:
        assert name in msg


# ----------------------------------------------------------------------------- serialisation
def test_frozen():
    cfg = DenseNetConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.growth_rate = 12  # type: ignore[misc]


def test_field_names_are_the_same_everywhere():
    assert [f.name for f in dataclasses.fields(DenseNetConfig)] == FIELDS
    assert list(DenseNetConfig().to_dict()) == FIELDS
    assert list(json.loads(DenseNetConfig().to_json())) == FIELDS


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_json_round_trip_presets(name):
    cfg = get_preset(name)
    again = DenseNetConfig.from_json(cfg.to_json())
    assert again == cfg and hash(again) == hash(cfg)
    assert DenseNetConfig.from_dict(json.loads(cfg.to_json(indent=None))) == cfg


def test_json_round_trip_random(tmp_path):
    rng = random.Random(2024)
    done = 0
    while done < 40:
        cfg = random_config(rng, LIMITS_SPACE, memory_efficient=rng.random() < 0.5)
        try:
            cfg.validate()
        except ConfigError:
            continue
        path = tmp_path / f"c{done}.json"
        path.write_text(cfg.to_json(), encoding="utf-8")
        assert DenseNetConfig.from_file(path) == cfg
        done += 1


def test_from_dict_missing_fields_take_defaults_and_ints_accepted_for_floats():
    cfg = DenseNetConfig.from_dict({"growth_rate": 12, "compression": 1, "block_depths": [2, 3]})
    assert cfg.compression == 1.0 and isinstance(cfg.compression, float)
    assert cfg.block_depths == (2, 3) and cfg.num_classes == DenseNetConfig().num_classes


def test_transition_out_is_exact_floor():
    # θ·m in binary floating point: 0.1·30 = 3.0000000000000004 or 2.9999999999999996.
    for theta, m, want in [(0.1, 30, 3), (0.5, 1024, 512), (0.5, 7, 3), (0.3, 10, 3), (0.7, 10, 7), (1.0, 13, 13)]:
        assert DenseNetConfig(compression=theta).transition_out(m) == want
    rng = random.Random(5)
    for _ in range(500):
        num, den = rng.randint(1, 100), 100
        m = rng.randint(1, 4000)
        assert DenseNetConfig(compression=num / den).transition_out(m) == (num * m) // den


# ----------------------------------------------------------------------------- validation: fields
BAD_VALUES = {
    "growth_rate": [0, -1, 257, 3.0, "32", True, None],
    "block_depths": [(), (0,), (6, 129), (1,) * 9, (6, 12.0), (6, "12"), (True,), "6,12", None],
    "compression": [0.0, -0.5, 1.01, float("nan"), float("inf"), "0.5", True, None],
    "bottleneck": [1, "yes", None],
    "bn_size": [0, 17, 4.0, False],
    "init_features": [0, 2049, 64.0, "64"],
    "stem": ["ImageNet", "", "resnet", None, 1],
    "in_channels": [0, 65, 3.5],
    "num_classes": [0, 100_001, "10"],
    "drop_rate": [-0.1, 1.0, 1.5, float("nan"), "0.2", None],
    "input_size": [0, 2049, 224.0, "224"],
    "memory_efficient": [0, "false", None],
}


@pytest.mark.parametrize("field,value", [(f, v) for f, vs in BAD_VALUES.items() for v in vs])
def test_bad_field_value_is_rejected_naming_the_field(field, value):
    cfg = DenseNetConfig(block_depths=(6, 12, 24, 16)).replace(**{field: value})
    with pytest.raises(ConfigError) as info:
        cfg.validate()
    msg = str(info.value)
    assert one_line(msg) and field in msg, msg
    assert isinstance(info.value, DenseguiError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("field", [f for f in LIMITS if f not in ("num_blocks", "block_depth")])
def test_limits_are_inclusive_and_named(field):
    lo, hi = LIMITS[field]
    base = DenseNetConfig(growth_rate=4, block_depths=(2,), stem="cifar", input_size=8, init_features=4)
    for ok in (lo, hi):
        base.replace(**{field: int(ok)}).validate()
    for bad in (lo - 1, hi + 1):
        with pytest.raises(ConfigError, match=rf"^{field} must be from {int(lo)} to {int(hi)}"):
            base.replace(**{field: int(bad)}).validate()


def test_huge_values_give_short_messages():
    with pytest.raises(ConfigError) as info:
        DenseNetConfig(growth_rate=10**5000).validate()
    assert one_line(str(info.value)) and "growth_rate" in str(info.value)
    with pytest.raises(ConfigError) as info:
        DenseNetConfig(stem="x" * 100_000).validate()
    assert one_line(str(info.value)) and "stem" in str(info.value)
    # an integer too large for a float in a float field (from JSON) is rejected, not an OverflowError
    with pytest.raises(ConfigError, match="compression"):
        DenseNetConfig.from_json('{"compression": 1' + "0" * 400 + "}")


# ----------------------------------------------------------------------------- validation: combinations
def test_zero_channels_after_transition_names_field_and_minimum():
    cfg = DenseNetConfig(growth_rate=1, block_depths=(1, 1), init_features=2, compression=0.2, stem="cifar",
                         input_size=8)  # 3 channels into transition 1, ⌊0.6⌋ = 0
    with pytest.raises(ConfigError) as info:
        cfg.validate()
    msg = str(info.value)
    assert one_line(msg) and "compression" in msg and "transition 1" in msg and "0 channels" in msg
    need = float(re.search(r"at least ([0-9.e+-]+) here", msg).group(1))
    cfg.replace(compression=need).validate()  # the suggested minimum really works
    assert need < 0.34


def test_suggested_minimum_compression_is_sufficient_and_tight():
    for m in range(2, 2049, 7):
        cfg = DenseNetConfig(growth_rate=1, block_depths=(1, 1), init_features=m - 1, compression=1e-6,
                             stem="cifar", input_size=4)
        with pytest.raises(ConfigError) as info:
            cfg.validate()
        need = float(re.search(r"at least ([0-9.e+-]+) here", str(info.value)).group(1))
        assert cfg.replace(compression=need).transition_out(m) >= 1
        assert need <= 1.0 / m * 1.01 + 1e-12  # 3 significant digits, rounded up


def test_too_small_input_names_field_and_minimum():
    cfg = DenseNetConfig(input_size=28)  # imagenet stem (/4) + 3 transitions (/8): needs 32-ish
    with pytest.raises(ConfigError) as info:
        cfg.validate()
    msg = str(info.value)
    assert one_line(msg) and "input_size" in msg
    need = int(re.search(r"at least (\d+)", msg).group(1))
    assert need == cfg.min_input_size()
    cfg.replace(input_size=need).validate()
    with pytest.raises(ConfigError):
        cfg.replace(input_size=need - 1).validate()


def _runs(cfg: DenseNetConfig) -> bool:
    """Independent check: build on CPU and run one training step (batch 2)."""
    try:
        model = build_model(cfg).train()
        x = torch.randn(2, cfg.in_channels, cfg.input_size, cfg.input_size)
        out = model(x)
        out.sum().backward()
        return tuple(out.shape) == (2, cfg.num_classes)
    except (RuntimeError, ValueError):
        return False


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_validation_accepts_exactly_what_builds_and_runs():
    """Within the field limits, validate() passes iff a real model builds and trains."""
    rng = random.Random(7)
    accepted = rejected = 0
    reasons: set[str] = set()
    for _ in range(120):
        cfg = random_config(rng, LIMITS_SPACE, compression=rng.choice([1.0, 0.5, 0.3, 0.1, 0.02]),
                            input_size=rng.choice([1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32]))
        try:
            cfg.validate()
            ok = True
        except ConfigError as exc:
            ok = False
            assert one_line(str(exc))
            reasons.add("channels" if "0 channels after transition" in str(exc) else
                        "size" if "too small" in str(exc) else str(exc))
        if ok:
            # a valid config must build and train; a rejected one must be unbuildable (the
            # model constructor itself validates, so rejected ones are probed with plain layers)
            assert _runs(cfg), cfg
            accepted += 1
        else:
            assert not _runs_unvalidated(cfg), cfg
            rejected += 1
    assert accepted > 20 and rejected > 20  # both sides exercised
    assert reasons == {"channels", "size"}  # nothing else is rejected within the limits


def _runs_unvalidated(cfg: DenseNetConfig) -> bool:
    """The spatial/channel skeleton of the same network in plain torch layers (no validation):
    False if a transition keeps 0 channels (the issue calls that unbuildable: the next block
    would see no input features) or if the pooling chain cannot produce a 1×1 map."""
    from torch import nn

    layers: list[nn.Module] = []
    c = cfg.num_init_features
    try:
        if cfg.stem == "imagenet":
            layers += [nn.Conv2d(cfg.in_channels, c, 7, 2, 3), nn.MaxPool2d(3, 2, 1)]
        else:
            layers += [nn.Conv2d(cfg.in_channels, c, 3, 1, 1)]
        for i, depth in enumerate(cfg.block_depths):
            c += depth * cfg.growth_rate
            if i < len(cfg.block_depths) - 1:
                out = int(math.floor(cfg.compression * c + 1e-9))
                if out < 1:
                    return False
                layers += [nn.Conv2d(c, out, 1), nn.AvgPool2d(2, 2)]
                c = out
        net = nn.Sequential(*layers)
        y = net(torch.randn(1, cfg.in_channels, cfg.input_size, cfg.input_size))
        return y.numel() > 0 and min(y.shape[-2:]) >= 1
    except (RuntimeError, ValueError):
        return False


# ----------------------------------------------------------------------------- config files / JSON
def test_from_dict_rejects_non_objects_unknown_fields_and_bad_types():
    for data in ([], "x", 3, None):
        with pytest.raises(ConfigError, match="JSON object"):
            DenseNetConfig.from_dict(data)
    with pytest.raises(ConfigError) as info:
        DenseNetConfig.from_dict({"growth_rte": 12})
    assert "growth_rte" in str(info.value) and "growth_rate" in str(info.value)
    with pytest.raises(ConfigError, match="block_depths"):
        DenseNetConfig.from_dict({"block_depths": "6,12,24,16"})
    with pytest.raises(ConfigError, match="block_depths"):
        DenseNetConfig.from_dict({"block_depths": {"a": 1}})
    with pytest.raises(ConfigError, match="growth_rate"):
        DenseNetConfig.from_dict({"growth_rate": "32"})
    with pytest.raises(ConfigError, match="init_features"):
        DenseNetConfig.from_dict({"init_features": [64]})


@pytest.mark.parametrize("text,needle", [
    ("", "not valid JSON"),
    ("{", "not valid JSON"),
    ("{'growth_rate': 12}", "not valid JSON"),
    ('{"growth_rate": 1' + "0" * 5000 + "}", "not usable JSON"),
    ("[" * 200_000 + "]" * 200_000, "not usable JSON"),
    ("[1, 2]", "JSON object"),
    ('{"stem": "cifar", "input_size": 32, "block_depths": [1, 1], "growth_rate": 1, "init_features": 1, '
     '"compression": 0.1}', "compression"),
])
def test_from_json_errors_are_config_errors(text, needle):
    with pytest.raises(ConfigError) as info:
        DenseNetConfig.from_json(text)
    assert needle in str(info.value) and one_line(str(info.value))


def test_from_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        DenseNetConfig.from_file(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="is a directory"):
        DenseNetConfig.from_file(tmp_path)
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00{")
    with pytest.raises(ConfigError, match="cannot read"):
        DenseNetConfig.from_file(binary)
    bad = tmp_path / "bad.json"
    bad.write_text('{"growth_rate": 0}', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        DenseNetConfig.from_file(bad)
    assert str(info.value).startswith("bad.json: growth_rate")


def test_derived_quantities():
    cfg = get_preset("densenet121")
    assert cfg.block_channels() == [(64, 256), (128, 512), (256, 1024), (512, 1024)]
    assert cfg.spatial_sizes() == [56, 28, 14, 7]
    c = get_preset("densenet-40-k12")
    assert c.block_channels() == [(16, 160), (160, 304), (304, 448)] and c.spatial_sizes() == [32, 16, 8]
    assert DenseNetConfig(block_depths=(1,), stem="cifar").min_input_size() == 1
    assert DenseNetConfig(block_depths=(1, 1, 1, 1)).min_input_size() == 29


def test_family_is_a_class_constant_not_a_field_and_presets_carry_published_results():
    from densegui.core.arch.published import PUBLISHED

    cfg = get_preset("densenet121")
    assert DenseNetConfig.family == cfg.family == "densenet"
    assert "family" not in cfg.to_dict() and "family" not in {f.name for f in dataclasses.fields(cfg)}
    for name, preset in PRESETS.items():
        assert preset.family == "densenet" and preset.published == PUBLISHED[name] and preset.published


# ----------------------------------------------------------------------------- timm's deep stem
def test_deep_stem_is_a_densenet_stem_only():
    """``stem: "deep"`` validates, round-trips through JSON and is a choice of the DenseNet field and
    flag; a ResNet refuses it (its stems are the shared two); the profiler counts its modules as stem."""
    from densegui.core.arch import registry
    from densegui.core.arch.densenet.config import STEMS
    from densegui.core.arch.resnet.config import STEMS as RESNET_STEMS
    from densegui.core.arch.resnet.config import ResNetConfig

    assert STEMS == ("imagenet", "cifar", "deep") and RESNET_STEMS == ("imagenet", "cifar")
    cfg = get_preset("densenet121").replace(stem="deep").validate()
    assert DenseNetConfig.from_json(cfg.to_json()) == cfg and registry.config_from_dict(cfg.to_dict()) == cfg
    densenet, resnet = registry.get_family("densenet"), registry.get_family("resnet")
    assert densenet.field("stem").choices == STEMS and resnet.field("stem").choices == RESNET_STEMS
    with pytest.raises(ConfigError, match=r"^stem must be one of imagenet, cifar, deep, got 'tiny'\.$"):
        DenseNetConfig(stem="tiny").validate()
    with pytest.raises(ConfigError, match=r"^stem must be one of imagenet, cifar, got 'deep'\.$"):
        ResNetConfig(stem="deep").validate()
    for path in ("features.conv0", "features.norm1", "features.relu2", "features.conv2", "features.pool0"):
        assert densenet.profile_kind(path) == "stem", path
    assert densenet.profile_kind("features.norm5") == "head"
