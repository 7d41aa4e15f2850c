"""Checkpoints as other libraries write them: the DenseNet found by structure, the choice among
several, training checkpoints' harmless extras, and exact Figure-5 matrices for each."""

from __future__ import annotations

import math
import pathlib

import numpy as np
import pytest
import torch
from helpers.corpus import (
    SMALL_BASIC,
    SMALL_BC,
    Hostile,
    TrainerState,
    known_state_dict,
    lightning_checkpoint,
    rewrite_pickle,
    timm_args,
    timm_train_checkpoint,
    to_monai,
    to_timm_deep_stem,
    torchvision_reference_checkpoint,
    write_good,
)
from helpers.reference import naive_matrices

from densegui.core.weights.checkpoint import CHOICE_RULE, CheckpointError, load_checkpoint
from densegui.core.arch.densenet.model import build_model
from densegui.core.analysis.reuse_measures import reuse_matrices

THIRD_PARTY = ("legacy-with-counters", "lightning", "timm-train", "torchvision-reference", "monai", "pytorch-cifar",
               "nested-deep")


def assert_exact_matrices(loaded, sd) -> None:
    """Figure 5 of the loaded file equals the reference definition on the torchvision-named source."""
    got = reuse_matrices(loaded.state_dict, loaded.config)
    expected = naive_matrices(sd)
    assert len(got) == len(expected)
    for b, e in zip(got, expected):
        np.testing.assert_allclose(b.matrix, e, rtol=1e-6, equal_nan=True)


@pytest.mark.parametrize("cfg", [SMALL_BC, SMALL_BASIC], ids=["bc", "basic"])
@pytest.mark.parametrize("fmt", THIRD_PARTY)
def test_third_party_layouts_give_exact_matrices(tmp_path, fmt, cfg):
    sd = known_state_dict(cfg, seed=21)
    loaded = load_checkpoint(write_good(fmt, tmp_path / "ckpt.pt", sd, cfg))
    assert loaded.inferred and not loaded.notes
    assert loaded.config == cfg.replace(input_size=32 if cfg.stem == "cifar" else 224)
    build_model(loaded.config).load_state_dict(loaded.state_dict, strict=True)
    assert_exact_matrices(loaded, sd)


def test_where_the_weights_were_is_said(tmp_path):
    sd = known_state_dict(SMALL_BC)
    lightning = load_checkpoint(write_good("lightning", tmp_path / "a.ckpt", sd, SMALL_BC))
    assert lightning.candidate == "state_dict/model" and lightning.candidates == ("state_dict/model",)
    assert lightning.source_format == "state_dict under 'state_dict', prefix 'model.' stripped"
    assert lightning.metadata["pytorch-lightning_version"] == "2.4.0" and lightning.metadata["epoch"] == 3
    nested = load_checkpoint(write_good("nested-deep", tmp_path / "b.pt", sd, SMALL_BC))
    assert nested.candidate == "run/checkpoints/0/weights/backbone"
    legacy = load_checkpoint(write_good("legacy-with-counters", tmp_path / "c.pt", sd, SMALL_BC))
    assert "legacy torchvision keys" in legacy.source_format
    assert torch.equal(legacy.state_dict["features.denseblock1.denselayer1.norm2.num_batches_tracked"], torch.tensor(7))


@pytest.mark.parametrize("ema_first", [False, True], ids=["ema-last", "ema-first"])
def test_timm_training_checkpoint_with_ema(tmp_path, ema_first):
    sd, ema = known_state_dict(SMALL_BC, seed=1), known_state_dict(SMALL_BC, seed=2)
    path = tmp_path / "model_best.pth.tar"
    torch.save(timm_train_checkpoint(sd, ema, ema_first=ema_first), path)
    loaded = load_checkpoint(path)
    # The rule: the trained weights before the EMA copy, wherever it sits in the file.
    assert (loaded.candidate, loaded.candidates) == ("state_dict", ("state_dict", "state_dict_ema"))
    assert torch.equal(loaded.state_dict["classifier.weight"], sd["classifier.weight"])
    assert loaded.metadata == {"epoch": 3, "arch": "densenet121", "version": 2, "metric": 71.25}
    text = loaded.describe()
    assert f"holds 2 DenseNets: shown 'state_dict' (chosen by the rule: {CHOICE_RULE}); also 'state_dict_ema'." in text
    assert_exact_matrices(loaded, sd)

    other = load_checkpoint(path, candidate="state_dict_ema")
    assert other.candidate == "state_dict_ema" and other.candidates == loaded.candidates
    assert torch.equal(other.state_dict["classifier.weight"], ema["classifier.weight"])
    assert "shown 'state_dict_ema' (as asked); also 'state_dict'." in other.describe()
    assert_exact_matrices(other, ema)

    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, candidate="model_ema")
    assert str(info.value) == ("'model_best.pth.tar' holds no DenseNet 'model_ema'; "
                               "it holds 'state_dict', 'state_dict_ema'.")


def test_lightning_and_torchvision_reference_ema_copies(tmp_path):
    sd, ema = known_state_dict(SMALL_BASIC, seed=3), known_state_dict(SMALL_BASIC, seed=4)
    torch.save(lightning_checkpoint(sd, ema=ema), tmp_path / "last.ckpt")
    loaded = load_checkpoint(tmp_path / "last.ckpt")
    assert loaded.candidates == ("state_dict/model", "state_dict/ema_model.module") and not loaded.notes
    chosen = load_checkpoint(tmp_path / "last.ckpt", candidate="state_dict/ema_model.module")
    assert torch.equal(chosen.state_dict["features.conv0.weight"], ema["features.conv0.weight"])
    assert chosen.source_format == "state_dict under 'state_dict', prefix 'ema_model.module.' stripped"

    torch.save(torchvision_reference_checkpoint(sd, ema), tmp_path / "checkpoint.pth")
    ref = load_checkpoint(tmp_path / "checkpoint.pth")
    assert ref.candidates == ("model", "model_ema/module") and not ref.notes  # n_averaged is no part of it
    assert_exact_matrices(load_checkpoint(tmp_path / "checkpoint.pth", candidate="model_ema/module"), ema)


def test_timm_deep_stem_loads_strictly_with_its_stem_and_exact_matrices(tmp_path):
    sd = to_timm_deep_stem(known_state_dict(SMALL_BASIC, seed=5), width=3)  # k = 3: timm's widths
    torch.save(sd, tmp_path / "densenet-deep.pth")
    loaded = load_checkpoint(tmp_path / "densenet-deep.pth")
    assert loaded.config == SMALL_BASIC.replace(stem="deep", input_size=224)  # stem, blocks, θ, head: all from the file
    assert len(loaded.notes) == 1 and "blur-pools" in loaded.notes[0]
    assert "deep stem with 5 features" in loaded.describe()
    build_model(loaded.config).load_state_dict(loaded.state_dict, strict=True)
    assert all(torch.equal(loaded.state_dict[k], v) for k, v in sd.items())
    assert_exact_matrices(loaded, sd)


def test_a_tiered_deep_stem_loads_with_a_note_and_exact_matrices(tmp_path):
    """First convolutions of another width than k (timm's "deep_tiered"): densegui has no such stem."""
    sd = known_state_dict(SMALL_BASIC, seed=5)
    torch.save(to_timm_deep_stem(sd, width=2), tmp_path / "densenet-tiered.pth")
    loaded = load_checkpoint(tmp_path / "densenet-tiered.pth")
    assert loaded.config == SMALL_BASIC.replace(input_size=224)  # blocks, θ, head: all from the file
    assert len(loaded.notes) == 1 and loaded.notes[0].startswith("stem not recognised (3 convolutions (3×3, 3×3, 3×3)")
    assert "summary cannot rebuild the file's stem" in loaded.describe()
    assert not any(k.startswith(("features.conv0", "features.norm0")) for k in loaded.state_dict)
    assert_exact_matrices(loaded, sd)


def test_monai_file_renamed_to_torchvision_names(tmp_path):
    sd = known_state_dict(SMALL_BC, seed=6)
    torch.save(to_monai(sd), tmp_path / "monai.pt")
    loaded = load_checkpoint(tmp_path / "monai.pt")
    assert set(loaded.state_dict) == set(sd)
    assert all(torch.equal(v, sd[k]) for k, v in loaded.state_dict.items())


def test_a_network_without_classifier_keeps_its_heatmaps(tmp_path):
    sd = known_state_dict(SMALL_BC, seed=8)
    torch.save({k: v for k, v in sd.items() if not k.startswith("classifier.")}, tmp_path / "features.pt")
    loaded = load_checkpoint(tmp_path / "features.pt")
    assert loaded.notes and loaded.notes[0].startswith("no classifier found (a weight matrix N×20 after the last block)")
    blocks, expected = reuse_matrices(loaded.state_dict, loaded.config), naive_matrices(sd)
    assert blocks[-1].targets[-1] == "classifier" and all(math.isnan(v) for v in blocks[-1].matrix[:, -1])
    np.testing.assert_allclose(blocks[-1].matrix[:, :-1], expected[-1][:, :-1], rtol=1e-6, equal_nan=True)
    for b, e in zip(blocks[:-1], expected[:-1]):
        np.testing.assert_allclose(b.matrix, e, rtol=1e-6, equal_nan=True)


# ------------------------------------------------------------------ training checkpoints' extras
def test_namespace_and_paths_are_data(tmp_path):
    sd = known_state_dict(SMALL_BC, seed=9)
    path = tmp_path / "w.pth.tar"
    torch.save(timm_train_checkpoint(sd) | {"args": timm_args(resume=pathlib.PureWindowsPath(r"C:\runs\a.pth"))}, path)
    # As written on Windows: the path class is pathlib.WindowsPath, which cannot be built on Linux.
    windows = rewrite_pickle(path, b"pathlib\nPureWindowsPath\n", b"pathlib\nWindowsPath\n")
    for p in (path, windows):
        loaded = load_checkpoint(p)
        assert torch.equal(loaded.state_dict["classifier.weight"], sd["classifier.weight"])


def test_a_hostile_object_inside_args_is_still_refused(tmp_path):
    path = tmp_path / "args.pth"
    torch.save({"state_dict": known_state_dict(SMALL_BC), "args": timm_args(hook=Hostile(tmp_path / "MARKER"))}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(info.value).startswith("refused to load 'args.pth': unpickling it would call posix.system")
    assert not (tmp_path / "MARKER").exists()


def test_an_unknown_class_is_refused_without_blaming_a_whole_model(tmp_path):
    torch.save({"state_dict": known_state_dict(SMALL_BC), "trainer": TrainerState()}, tmp_path / "t.pth")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "t.pth")
    message = str(info.value)
    assert message == ("refused to load 't.pth': unpickling it would create objects of helpers.corpus.TrainerState, "
                       "which could run code; densegui reads tensors, plain containers, NumPy data, argparse.Namespace "
                       "and paths only.")


def test_what_was_found_and_what_was_needed(tmp_path):
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "a.pt")
    with pytest.raises(CheckpointError, match=r"'a.pt' holds no state_dict: found a dict with keys 'epoch', 'lr'; "
                                              r"needed a mapping of names to tensors"):
        load_checkpoint(tmp_path / "a.pt")
    torch.save({"model": {"fc.weight": torch.zeros(2, 3)}, "args": timm_args()}, tmp_path / "b.pt")
    with pytest.raises(CheckpointError, match=r"b.pt: not a DenseNet state_dict: no dense block found .*"
                                              r"found 1 tensor: 'fc.weight'\.$"):
        load_checkpoint(tmp_path / "b.pt")
