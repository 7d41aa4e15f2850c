"""Architecture inference from weights alone."""

from __future__ import annotations

import pytest
import torch
from helpers.corpus import SMALL_BASIC, SMALL_BC, synth_state_dict, to_monai, to_pytorch_cifar, to_timm_deep_stem

from densegui.core.arch.densenet.config import PRESETS, DenseNetConfig
from densegui.core.weights.infer import InferenceError, NotADenseNet, find_networks, fit_compression, infer_config
from densegui.core.arch.densenet.model import build_model


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
    with pytest.raises(InferenceError, match=r"'features.denseblock2.denselayer2' holds 1 convolution \(1×1\), "
                                             r"while .* is a bottleneck layer"):
        infer_config(sd)
    # A basic layer (one 3×3 convolution of k outputs) among bottleneck layers.
    sd["features.denseblock2.denselayer2.conv1.weight"] = torch.zeros(4, sd["features.denseblock2.denselayer2."
                                                                             "conv1.weight"].shape[1], 3, 3)
    with pytest.raises(InferenceError, match=r"holds a basic layer \(one 3×3 convolution\), while .* is a bottleneck"):
        infer_config(sd)


def test_unrecognised_stem_is_a_note_not_a_refusal():
    cfg = DenseNetConfig(growth_rate=4, block_depths=(2, 2), stem="cifar", input_size=32)
    sd = meta_state_dict(cfg)
    sd["features.conv0.weight"] = torch.zeros(8, 3, 5, 5)
    with pytest.raises(InferenceError, match=r"stem not recognised \(1 convolution \(5×5\), no BatchNorm"):
        infer_config(sd)  # strict: the config would not rebuild this stem
    (layout,) = find_networks(sd)
    assert layout.unrecognised == ("stem",) and "summary cannot rebuild the file's stem" in layout.notes[0]
    assert layout.config == cfg  # one 3×3-free conv, no BatchNorm: shown as the cifar stem
    assert not any(k.startswith("features.conv0") for k in layout.names)


# ------------------------------------------------------------------ other libraries' names
def test_timm_deep_stem_densenet264d_is_inferred_with_its_stem():
    """timm's densenet264d: k=48, blocks 6-12-64-48, three 3×3 stem convolutions (k, k, 2k channels),
    timm's names (densegui's too): the configuration summarises to the real module's 72,736,216."""
    from densegui.core.arch.registry import layer_table

    cfg = DenseNetConfig(growth_rate=48, block_depths=(6, 12, 64, 48), stem="deep")
    sd = to_timm_deep_stem(meta_state_dict(cfg.replace(stem="imagenet")), width=48)
    assert sd["features.conv2.weight"].shape == (96, 48, 3, 3) and "features.norm2.running_var" in sd
    assert {k: v.shape for k, v in sd.items()} == {k: v.shape for k, v in meta_state_dict(cfg).items()}
    (layout,) = find_networks(sd)
    assert layout.config == cfg and layout.unrecognised == ()
    assert len(layout.notes) == 1 and "densenetblur121d" in layout.notes[0]  # what the weights cannot tell
    assert set(layout.names) == set(sd) and all(layout.names[k] == k for k in sd)
    assert infer_config(sd) == cfg
    assert layer_table(cfg).params == 72_736_216 and layer_table(cfg.replace(stem="imagenet")).params == 72_686_632


def test_a_deep_stem_is_found_by_the_plans_shapes_whatever_its_names():
    """A deep stem under other names and with init_features ≠ 2k; its first two convolutions must be k
    wide (timm's "deep"), so a tiered one (other widths) stays an unrecognised stem."""
    cfg = DenseNetConfig(growth_rate=4, block_depths=(2, 3), bn_size=2, init_features=6, stem="deep", in_channels=2,
                         num_classes=3)
    sd = {k.replace("features.conv", "stem.c").replace("features.norm", "stem.n")
          if k.startswith(("features.conv", "features.norm")) and "norm5" not in k else k: v
          for k, v in meta_state_dict(cfg).items()}
    (layout,) = find_networks(sd)
    assert layout.config == cfg and layout.unrecognised == ()
    assert layout.names["features.conv1.weight"] == "stem.c1.weight" and layout.names["features.norm2.bias"] == "stem.n2.bias"
    tiered = to_timm_deep_stem(meta_state_dict(cfg.replace(stem="imagenet")), width=3)
    (layout,) = find_networks(tiered)
    assert layout.unrecognised == ("stem",) and layout.config == cfg.replace(stem="imagenet")
    assert layout.notes[0].startswith("stem not recognised (3 convolutions (3×3, 3×3, 3×3) and 3 BatchNorms")


def test_monai_names():
    cfg = PRESETS["densenet121"].config.replace(num_classes=2, in_channels=1)
    sd = to_monai(meta_state_dict(cfg))
    assert "features.denseblock1.denselayer1.layers.conv1.weight" in sd and "class_layers.out.weight" in sd
    (layout,) = find_networks(sd)
    assert layout.config == cfg and not layout.notes
    assert layout.names["classifier.weight"] == "class_layers.out.weight"
    assert layout.names["features.denseblock4.denselayer16.norm2.running_mean"] == \
        "features.denseblock4.denselayer16.layers.norm2.running_mean"
    assert infer_config(sd) == cfg


def test_monai_3d_is_refused_naming_the_dimension():
    sd = {k: (torch.empty(*v.shape, 3, device="meta") if v.dim() == 4 else v)
          for k, v in to_monai(meta_state_dict(SMALL_BC)).items()}
    with pytest.raises(NotADenseNet, match="convolutions are 3-D .*densegui handles 2-D DenseNets"):
        find_networks(sd)


def test_pytorch_cifar_names_numbered_from_zero():
    cfg = PRESETS["densenet-bc-100-k12"].config
    sd = to_pytorch_cifar(meta_state_dict(cfg))
    assert "dense1.0.conv1.weight" in sd and "trans2.bn.running_var" in sd and "linear.bias" in sd
    (layout,) = find_networks(sd)
    assert layout.config == cfg and not layout.notes and layout.root == ""
    assert layout.names["features.denseblock3.denselayer16.conv2.weight"] == "dense3.15.conv2.weight"
    assert layout.names["features.norm5.weight"] == "bn.weight"


def test_two_networks_in_one_state_dict_and_a_missing_head():
    small = meta_state_dict(SMALL_BC)
    sd = {**{f"student.{k}": v for k, v in small.items()},
          **{f"teacher.{k}": v for k, v in meta_state_dict(SMALL_BASIC).items() if not k.startswith("classifier")}}
    student, teacher = find_networks(sd)
    assert (student.root, teacher.root) == ("student", "teacher")
    assert student.config == SMALL_BC.replace(input_size=32) and not student.notes
    assert teacher.unrecognised == ("classifier",) and "classifier column stays empty" in teacher.notes[0]
    assert teacher.config.block_depths == SMALL_BASIC.block_depths
    with pytest.raises(InferenceError, match="holds 2 DenseNets"):
        infer_config(sd)


def test_a_lone_numbered_conv_is_no_densenet():
    sd = {"layer1.0.conv1.weight": torch.zeros(64, 64, 3, 3), "fc.weight": torch.zeros(10, 64)}
    with pytest.raises(NotADenseNet, match="no dense block found .* found 2 tensors: 'layer1.0.conv1.weight'"):
        find_networks(sd)


def test_layers_are_checked_by_shape_whatever_their_names():
    # Block 2 takes ⌊0.5·(6 + 3·4)⌋ = 9 channels, so its second layer (numbered 1 here) takes 9 + 4 = 13.
    sd = to_pytorch_cifar(meta_state_dict(SMALL_BC))
    sd["dense2.1.conv1.weight"] = torch.empty(8, 11, 1, 1, device="meta")
    with pytest.raises(InferenceError, match=r"'dense2.1.conv1.weight' has shape 8×11×1×1, expected 8×13×1×1"):
        find_networks(sd)
    del sd["dense2.1.bn1.running_var"]
    sd["dense2.1.conv1.weight"] = torch.empty(8, 13, 1, 1, device="meta")
    with pytest.raises(InferenceError, match=r"incomplete: tensor 'dense2.1.bn1.running_var' missing"):
        find_networks(sd)


def test_third_party_libraries_when_installed():
    """The real timm/MONAI/torchvision models, where they import (they are not dependencies)."""
    ran = 0
    for make, want in _third_party_models():
        (layout,) = find_networks(make().state_dict())
        assert (layout.config.growth_rate, layout.config.block_depths) == want
        ran += 1
    if not ran:
        pytest.skip("none of timm, monai, torchvision imports here")


def _third_party_models():
    import importlib

    def lib(name):
        try:
            return importlib.import_module(name)
        except Exception:  # noqa: BLE001 - not installed, or a CUDA build that does not import
            return None

    if timm := lib("timm"):
        yield (lambda: timm.create_model("densenetblur121d", pretrained=False)), (32, (6, 12, 24, 16))
        yield (lambda: timm.create_model("densenet264d", pretrained=False)), (48, (6, 12, 64, 48))
    if monai := lib("monai.networks.nets"):
        yield (lambda: monai.DenseNet121(spatial_dims=2, in_channels=1, out_channels=3)), (32, (6, 12, 24, 16))
    if torchvision := lib("torchvision.models"):
        yield (lambda: torchvision.densenet161()), (48, (6, 12, 36, 24))


@pytest.mark.parametrize("name", ["densenet121", "densenet161", "densenet-40-k12", "densenet-bc-100-k12"])
def test_expected_shapes_agree_with_the_model(name):
    from densegui.core.arch.registry import expected_shapes

    for cfg in (PRESETS[name].config, PRESETS[name].config.replace(compression=0.3, in_channels=1, num_classes=7)):
        meta = {k: tuple(v.shape) for k, v in meta_state_dict(cfg).items()}
        assert expected_shapes(cfg) == meta
        assert list(expected_shapes(cfg)) == list(meta)


def test_prefixed_and_legacy_keys_are_accepted_directly():
    from helpers.corpus import to_legacy

    cfg = PRESETS["densenet121"].config
    sd = meta_state_dict(cfg)
    assert infer_config({f"module.{k}": v for k, v in to_legacy(sd).items()}) == cfg
