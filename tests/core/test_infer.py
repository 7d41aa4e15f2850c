"""Architecture inference from weights alone."""

from __future__ import annotations

import pytest
import torch
from helpers.corpus import synth_state_dict

from densegui.core.config import PRESETS, DenseNetConfig
from densegui.core.infer import InferenceError, fit_compression, infer_config
from densegui.core.model import build_model


def meta_state_dict(cfg: DenseNetConfig) -> dict[str, torch.Tensor]:
    return dict(build_model(cfg, device="meta").state_dict())


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_is_recovered_from_its_weight_shapes(name):
    cfg = PRESETS[name].config
    assert infer_config(meta_state_dict(cfg)) == cfg


@pytest.mark.parametrize(
    "cfg",
    [
        DenseNetConfig(growth_rate=5, block_depths=(2, 3, 1, 2), compression=0.3, bn_size=3, init_features=7,
                       num_classes=3, in_channels=1),
        DenseNetConfig(growth_rate=4, block_depths=(3,), bottleneck=False, stem="cifar", init_features=9,
                       num_classes=2, input_size=32),
        DenseNetConfig(growth_rate=6, block_depths=(1, 1, 1, 1, 1), compression=0.75, stem="cifar", input_size=32,
                       num_classes=7),
        DenseNetConfig(growth_rate=12, block_depths=(4, 4, 4), compression=1.0, bottleneck=False, stem="cifar",
                       init_features=16, num_classes=10, input_size=32),
        DenseNetConfig(growth_rate=3, block_depths=(2, 2), compression=0.1, init_features=30, num_classes=4),
    ],
    ids=["theta0.3-bn3", "one-block-basic", "five-blocks-0.75", "basic-theta1", "theta0.1"],
)
def test_custom_configs_are_recovered_and_load_strictly(cfg):
    model = build_model(cfg)
    inferred = infer_config(model.state_dict())
    assert inferred.to_dict() | {"compression": 0} == cfg.to_dict() | {"compression": 0}
    # θ itself may differ when several values give the same channels, but the channels must agree.
    assert inferred.block_channels() == cfg.block_channels()
    build_model(inferred).load_state_dict(model.state_dict(), strict=True)


def test_inference_reads_hand_written_shapes():
    """A state_dict written from channel arithmetic alone (not densegui's model)."""
    sd = synth_state_dict(init=10, k=6, depths=(2, 5, 3), transition_outs=(11, 20), bn_size=3, classes=8,
                          in_ch=2, stem="imagenet")
    cfg = infer_config(sd)
    assert (cfg.growth_rate, cfg.block_depths, cfg.bn_size, cfg.bottleneck) == (6, (2, 5, 3), 3, True)
    assert (cfg.num_init_features, cfg.in_channels, cfg.num_classes, cfg.stem) == (10, 2, 8, "imagenet")
    # 10 + 2·6 = 22 → 11 and 11 + 5·6 = 41 → 20: θ = 0.5 gives both.
    assert cfg.compression == 0.5 and cfg.input_size == 224
    assert [c for c, _ in cfg.block_channels()] == [10, 11, 20]
    build_model(cfg).load_state_dict(sd, strict=True)


def test_basic_layers_and_cifar_stem_from_hand_written_shapes():
    sd = synth_state_dict(init=16, k=12, depths=(3, 3, 3), transition_outs=(52, 88), bn_size=None, classes=10)
    cfg = infer_config(sd)
    assert cfg.bottleneck is False and cfg.stem == "cifar" and cfg.compression == 1.0 and cfg.input_size == 32
    build_model(cfg).load_state_dict(sd, strict=True)


def test_input_size_grows_when_the_default_is_too_small():
    cfg = DenseNetConfig(growth_rate=2, block_depths=(1,) * 8, stem="cifar", num_classes=2, input_size=128)
    inferred = infer_config(meta_state_dict(cfg))
    assert inferred.input_size == 128 == inferred.min_input_size()  # 32 would vanish after 7 transitions
    assert infer_config(meta_state_dict(cfg), input_size=300).input_size == 300


@pytest.mark.parametrize(
    ("pairs", "theta"),
    [([(64, 32)], 0.5), ([(30, 9), (40, 12)], 0.3), ([(10, 10)], 1.0), ([(7, 2), (11, 3)], 0.3)],
)
def test_fit_compression_reproduces_every_transition(pairs, theta):
    got = fit_compression(pairs)
    assert got == pytest.approx(theta)
    cfg = DenseNetConfig(compression=got)
    assert all(cfg.transition_out(m) == o for m, o in pairs)


def test_fit_compression_prefers_the_shortest_decimal():
    # ⌊θ·100⌋ = 33 for θ in [0.33, 0.34): 0.33 is the simplest.
    assert fit_compression([(100, 33)]) == 0.33
    # 7 of 9 channels: θ in [0.777…, 0.888…): 0.8
    assert fit_compression([(9, 7)]) == 0.8


def test_no_single_theta_is_one_clear_line():
    with pytest.raises(InferenceError, match="no single compression θ") as info:
        fit_compression([(18, 9), (25, 25)])
    assert "\n" not in str(info.value) and "18→9" in str(info.value)


def test_resnet_is_not_a_densenet():
    sd = {"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(10, 512)}
    with pytest.raises(InferenceError, match="not a DenseNet"):
        infer_config(sd)


def test_mixed_layer_kinds_are_rejected():
    sd = meta_state_dict(DenseNetConfig(growth_rate=4, block_depths=(2, 2), stem="cifar", input_size=32))
    for key in [k for k in sd if "denseblock2.denselayer2.conv2" in k or "denseblock2.denselayer2.norm2" in k]:
        del sd[key]
    with pytest.raises(InferenceError, match="basic layer"):
        infer_config(sd)


def test_unrecognised_stem():
    sd = meta_state_dict(DenseNetConfig(growth_rate=4, block_depths=(2, 2), stem="cifar", input_size=32))
    sd["features.conv0.weight"] = torch.zeros(8, 3, 5, 5)
    with pytest.raises(InferenceError, match="unrecognised stem"):
        infer_config(sd)


@pytest.mark.parametrize("name", ["densenet121", "densenet161", "densenet-40-k12", "densenet-bc-100-k12"])
def test_expected_shapes_agree_with_the_model(name):
    from densegui.core.statedict import expected_shapes

    for cfg in (PRESETS[name].config, PRESETS[name].config.replace(compression=0.3, in_channels=1, num_classes=7)):
        meta = {k: tuple(v.shape) for k, v in meta_state_dict(cfg).items()}
        assert expected_shapes(cfg) == meta
        assert list(expected_shapes(cfg)) == list(meta)


def test_prefixed_and_legacy_keys_are_accepted_directly():
    from helpers.corpus import to_legacy

    cfg = PRESETS["densenet121"].config
    sd = meta_state_dict(cfg)
    assert infer_config({f"module.{k}": v for k, v in to_legacy(sd).items()}) == cfg
