"""Checkpoint corpus: every supported format and every kind of bad input (built by tests/helpers/corpus.py)."""

from __future__ import annotations

import pickle

import pytest
import torch
from helpers.corpus import BAD_INPUTS, GOOD_FORMATS, SMALL_BASIC, SMALL_BC, known_state_dict, write_bad, write_good

from densegui.core.weights.checkpoint import CheckpointError, load_checkpoint, save_safetensors
from densegui.core.errors import DenseguiError
from densegui.core.arch.densenet.model import build_model


@pytest.mark.parametrize("cfg", [SMALL_BC, SMALL_BASIC], ids=["bc", "basic"])
@pytest.mark.parametrize("fmt", GOOD_FORMATS)
def test_every_format_loads_with_the_exact_weights(tmp_path, fmt, cfg):
    sd = known_state_dict(cfg, seed=3)
    path = write_good(fmt, tmp_path / "ckpt.pt", sd, cfg)
    loaded = load_checkpoint(path)
    stored = fmt in ("densegui", "densegui-train-state", "safetensors-config")
    assert loaded.inferred is (not stored)
    # The stored config wins (input_size 8 is not what inference would pick); inference gives the rest.
    expected_cfg = cfg if stored else cfg.replace(input_size=32 if cfg.stem == "cifar" else 224)
    assert loaded.config == expected_cfg
    assert set(loaded.state_dict) <= set(sd)
    for key, value in loaded.state_dict.items():
        assert torch.equal(value, sd[key]), key
    model = build_model(loaded.config)
    model.load_state_dict(loaded.state_dict, strict=True)
    assert torch.equal(model.features.conv0.weight, sd["features.conv0.weight"])
    if stored or fmt.startswith("wrapped-") or fmt in ("lightning", "timm-train", "torchvision-reference",
                                                       "pytorch-cifar"):
        assert loaded.metadata.get("dataset") == "unit-test" or loaded.metadata.get("epoch") == 3


def test_source_format_mentions_prefix_and_legacy_keys(tmp_path):
    sd = known_state_dict(SMALL_BC)
    assert "legacy" in load_checkpoint(write_good("legacy", tmp_path / "a.pt", sd, SMALL_BC)).source_format
    assert "prefix" in load_checkpoint(write_good("wrapped-ddp", tmp_path / "b.pt", sd, SMALL_BC)).source_format
    assert "'model'" in load_checkpoint(write_good("wrapped-model", tmp_path / "c.pt", sd, SMALL_BC)).source_format


def test_safetensors_detected_by_content_not_extension(tmp_path):
    sd = known_state_dict(SMALL_BC)
    st = save_safetensors(tmp_path / "x.safetensors", sd, SMALL_BC)
    renamed = tmp_path / "x.bin"
    renamed.write_bytes(st.read_bytes())
    loaded = load_checkpoint(renamed)
    assert loaded.source_format == "safetensors" and loaded.config == SMALL_BC


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input_gets_one_clear_line(tmp_path, name):
    path, phrase = write_bad(name, tmp_path)
    with pytest.raises(DenseguiError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message and len(message) < 400, message
    assert phrase.lower() in message.lower(), message
    assert not (tmp_path / "MARKER").exists()


@pytest.mark.parametrize("name", ["hostile-pickle", "hostile-pickle-proto5", "hostile-torch-zip"])
def test_hostile_pickle_is_refused_without_running_code(tmp_path, name):
    path, _ = write_bad(name, tmp_path)
    marker = tmp_path / "MARKER"
    # Sanity: the file really would run code if unpickled naively (done on a copy of the payload).
    if name != "hostile-torch-zip":
        pickle.loads(path.read_bytes())
        assert marker.exists()
        marker.unlink()
    with pytest.raises(CheckpointError, match="refused") as info:
        load_checkpoint(path)
    assert "system" in str(info.value)  # names what it would have run
    assert not marker.exists()


def test_numpy_metadata_next_to_the_weights_is_data_not_code(tmp_path):
    import numpy as np

    sd = known_state_dict(SMALL_BC, seed=12)
    torch.save({"model_state_dict": sd, "best_acc": np.float64(0.875), "epoch": np.int64(12),
                "per_class": np.array([0.5, 0.25])}, tmp_path / "np.pt")
    loaded = load_checkpoint(tmp_path / "np.pt")
    assert loaded.metadata == {"best_acc": 0.875, "epoch": 12, "per_class": [0.5, 0.25]}
    assert torch.equal(loaded.state_dict["classifier.weight"], sd["classifier.weight"])


def test_whole_pickled_model_is_refused_with_a_hint(tmp_path):
    model = build_model(SMALL_BC)
    torch.save(model, tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match=r"refused.*DenseNet.*state_dict\(\) instead"):
        load_checkpoint(tmp_path / "model.pt")
