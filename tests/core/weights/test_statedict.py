"""State-dict key arithmetic shared by loading, inference and the model."""

from __future__ import annotations

from collections import OrderedDict

from densegui.core.weights.statedict import has_legacy_keys, has_prefixes, normalize_state_dict, strip_prefixes


def test_prefixes_are_stripped_repeated_and_mixed():
    assert strip_prefixes("module._orig_mod.module.features.conv0.weight") == "features.conv0.weight"
    assert strip_prefixes("features.module.x") == "features.module.x"  # only leading ones
    assert has_prefixes(["a", "_orig_mod.b"]) and not has_prefixes(["features.a"])


def test_normalize_renames_legacy_keys_and_keeps_order():
    sd = OrderedDict([("module.features.denseblock1.denselayer2.norm.1.weight", 1),
                      ("module.features.denseblock1.denselayer2.conv.2.weight", 2),
                      ("module.classifier.bias", 3)])
    assert has_legacy_keys(sd) and not has_legacy_keys(["features.denseblock1.denselayer2.norm1.weight"])
    out = normalize_state_dict(sd)
    assert list(out.items()) == [("features.denseblock1.denselayer2.norm1.weight", 1),
                                 ("features.denseblock1.denselayer2.conv2.weight", 2), ("classifier.bias", 3)]


def test_a_resnet_state_dict_gets_the_same_strict_checks_from_its_plan():
    """check_matches reads the plan of the configuration's own family: a ResNet's keys and shapes."""
    import pytest
    import torch

    from densegui.core.arch.registry import build_model, get_preset
    from densegui.core.weights.statedict import CheckpointError, check_matches

    cfg = get_preset("resnet18").replace(num_classes=7)
    sd = build_model(cfg, "meta").state_dict()
    check_matches(sd, cfg)
    check_matches({k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}, cfg)
    with pytest.raises(CheckpointError, match=r"^the ResNet weights are incomplete: tensor 'fc.bias' missing\.$"):
        check_matches({k: v for k, v in sd.items() if k != "fc.bias"}, cfg)
    with pytest.raises(CheckpointError, match=r"^unexpected tensor 'extra.weight' for this ResNet configuration\.$"):
        check_matches({**sd, "extra.weight": torch.empty(1, device="meta")}, cfg)
    bad = {**sd, "layer1.0.conv1.weight": torch.empty(64, 64, 1, 1, device="meta")}
    with pytest.raises(CheckpointError, match=r"'layer1.0.conv1.weight' has shape 64×64×1×1, expected 64×64×3×3"):
        check_matches(bad, cfg)
