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
