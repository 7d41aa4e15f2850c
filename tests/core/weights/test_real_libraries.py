"""Checkpoints written by the real libraries (torchvision, timm, MONAI), where installed: README's
test command installs all three (see helpers/libraries.py). Each file is loaded the way a user's
would be (no configuration given): the architecture is inferred, the weights give the library's
own outputs, and the Figure-5 matrices equal the reference definition. Also: the corpus's mirrored
layouts (tests/helpers/corpus.py, used where the libraries are absent) name the same keys."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from helpers.corpus import timm_args, to_monai, to_timm_deep_stem
from helpers.libraries import monai_nets, timm, torchvision_models
from helpers.reference import naive_matrices

from densegui.core.weights.checkpoint import CheckpointError, load_checkpoint
from densegui.core.arch.registry import get_preset
from densegui.core.arch.densenet.model import build_model
from densegui.core.analysis.reuse_measures import reuse_matrices

tv_models, timm_lib, monai = torchvision_models(), timm(), monai_nets()
needs_torchvision = pytest.mark.skipif(tv_models is None, reason="torchvision not installed here")
needs_timm = pytest.mark.skipif(timm_lib is None, reason="timm not installed here")
needs_monai = pytest.mark.skipif(monai is None, reason="MONAI not installed here")


def randomise_batchnorm(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Running statistics and affine parameters away from their 0/1 initial values, so that a
    mix-up of BatchNorm tensors changes the outputs."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    return model.eval()


def assert_same_network(loaded, reference: torch.nn.Module, in_channels: int = 3) -> None:
    """densegui's model from the loaded file gives the library model's outputs."""
    ours = build_model(loaded.config).eval()
    ours.load_state_dict(loaded.state_dict, strict=True)
    x = torch.randn(2, in_channels, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), atol=1e-4, rtol=1e-4)


def assert_exact_matrices(loaded, torchvision_named: dict) -> None:
    got = reuse_matrices(loaded.state_dict, loaded.config)
    expected = naive_matrices(torchvision_named)
    assert len(got) == len(expected)
    for block, want in zip(got, expected):
        np.testing.assert_allclose(block.matrix, want, rtol=1e-5, equal_nan=True)


@needs_torchvision
def test_a_torchvision_densenet_file_is_inferred_and_loads_exactly(tmp_path):
    torch.manual_seed(0)
    ref = randomise_batchnorm(tv_models.densenet169(weights=None, num_classes=10))
    torch.save(ref.state_dict(), tmp_path / "densenet169.pth")
    loaded = load_checkpoint(tmp_path / "densenet169.pth")
    assert loaded.inferred and not loaded.notes
    assert loaded.config == get_preset("densenet169").replace(num_classes=10)
    assert_same_network(loaded, ref)
    assert_exact_matrices(loaded, ref.state_dict())


@needs_timm
def test_a_timm_densenet_and_its_training_checkpoint(tmp_path):
    """timm's own CheckpointSaver, with an EMA copy and its argparse ``args``: the trained weights
    are chosen, the EMA copy is offered, the architecture is inferred."""
    torch.manual_seed(0)
    model = randomise_batchnorm(timm_lib.create_model("densenet121", num_classes=7))
    assert list(model.state_dict()) == list(build_model(get_preset("densenet121")).state_dict())
    ema = timm_lib.utils.ModelEmaV2(model, decay=0.5)
    with torch.no_grad():
        model.classifier.weight.add_(1.0)  # the trained weights differ from the EMA copy
    args = timm_args()  # an argparse.Namespace, as train.py passes it (model="densenet121")
    saver = timm_lib.utils.CheckpointSaver(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                                           args=args, model_ema=ema, checkpoint_dir=str(tmp_path),
                                           recovery_dir=str(tmp_path))
    saver.save_checkpoint(epoch=3, metric=71.25)
    path = tmp_path / "model_best.pth.tar"
    assert path.exists(), sorted(p.name for p in tmp_path.iterdir())
    loaded = load_checkpoint(path)
    assert (loaded.candidate, loaded.candidates) == ("state_dict", ("state_dict", "state_dict_ema"))
    assert loaded.config == get_preset("densenet121").replace(num_classes=7) and not loaded.notes
    assert loaded.metadata.get("epoch") == 3 and loaded.metadata.get("arch") == "densenet121"
    assert_same_network(loaded, model)
    assert_exact_matrices(loaded, model.state_dict())
    averaged = load_checkpoint(path, candidate="state_dict_ema")
    assert torch.equal(averaged.state_dict["classifier.weight"], ema.module.classifier.weight)


@needs_timm
def test_the_corpus_mirror_of_timms_deep_stem_names_its_keys():
    """``densenetblur121d``'s three-convolution stem: the corpus's mirror (used where timm is absent)
    names the same keys, with the same shapes."""
    torch.manual_seed(0)
    model = timm_lib.create_model("densenetblur121d", num_classes=5).eval()
    state = model.state_dict()
    stem = [k for k in state if k.startswith(("features.conv", "features.norm")) and "block" not in k
            and "transition" not in k and not k.startswith("features.norm5")]
    tv_named = build_model(get_preset("densenet121").replace(num_classes=5)).state_dict()
    mirrored = to_timm_deep_stem(tv_named, width=32)
    assert sorted(stem) == sorted(k for k in mirrored if k.startswith(("features.conv", "features.norm"))
                                  and not k.startswith("features.norm5"))
    assert {k: tuple(v.shape) for k, v in state.items() if k in stem} == \
        {k: tuple(v.shape) for k, v in mirrored.items() if k in stem}


@needs_timm
def test_timm_densenet264d_is_inferred_with_its_deep_stem_and_the_real_parameter_count():
    """The whole densenet264d (on the meta device): its configuration summarises to the module's
    parameters and its state_dict loads into densegui's model as it is."""
    from densegui.core.arch.registry import layer_table
    from densegui.core.weights.infer import infer_config

    with torch.device("meta"):
        model = timm_lib.create_model("densenet264d", pretrained=False)
    cfg = infer_config(model.state_dict())
    assert cfg == get_preset("densenet264").replace(growth_rate=48, stem="deep")
    assert layer_table(cfg).params == sum(p.numel() for p in model.parameters()) == 72_736_216
    build_model(cfg, "meta").load_state_dict(model.state_dict(), strict=True)


@needs_timm
def test_a_small_timm_deep_stem_net_gives_timms_outputs(tmp_path):
    """timm's stem_type="deep" DenseNet, small: the file is inferred with its stem, loads strictly,
    and densegui's model computes what timm's does."""
    torch.manual_seed(0)
    ref = randomise_batchnorm(timm_lib.models.densenet.DenseNet(growth_rate=4, block_config=(2, 3, 2), bn_size=2,
                                                                stem_type="deep", num_classes=5, in_chans=2))
    torch.save(ref.state_dict(), tmp_path / "deep.pth")
    loaded = load_checkpoint(tmp_path / "deep.pth")
    assert loaded.config.stem == "deep" and loaded.config.num_init_features == 8 and loaded.config.in_channels == 2
    assert sum(p.numel() for p in build_model(loaded.config).parameters()) == sum(p.numel() for p in ref.parameters())
    assert_same_network(loaded, ref, in_channels=2)
    assert_exact_matrices(loaded, ref.state_dict())


@needs_timm
def test_densenetblur121d_is_read_with_its_deep_stem_and_a_note_on_its_pooling(tmp_path):
    """Blur pooling leaves nothing in the weights: the file reads as a deep-stem DenseNet-121 whose
    parameters are all there, with a note that its activations are not timm's."""
    torch.manual_seed(0)
    model = timm_lib.create_model("densenetblur121d", num_classes=5).eval()
    torch.save(model.state_dict(), tmp_path / "densenetblur121d.pth")
    loaded = load_checkpoint(tmp_path / "densenetblur121d.pth")
    assert loaded.config == get_preset("densenet121").replace(stem="deep", num_classes=5)
    assert len(loaded.notes) == 1 and "densenetblur121d" in loaded.notes[0] and "blur-pools" in loaded.notes[0]
    ours = build_model(loaded.config)
    ours.load_state_dict(loaded.state_dict, strict=True)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in model.parameters())
    assert_exact_matrices(loaded, model.state_dict())


@needs_monai
def test_a_monai_densenet_file_is_renamed_inferred_and_loads_exactly(tmp_path):
    torch.manual_seed(0)
    ref = randomise_batchnorm(monai.DenseNet121(spatial_dims=2, in_channels=1, out_channels=4))
    state = ref.state_dict()
    tv_named = build_model(get_preset("densenet121").replace(in_channels=1, num_classes=4)).state_dict()
    assert list(to_monai(tv_named)) == list(state)  # the corpus's mirror names MONAI's keys
    torch.save(state, tmp_path / "monai.pt")
    loaded = load_checkpoint(tmp_path / "monai.pt")
    assert loaded.config == get_preset("densenet121").replace(in_channels=1, num_classes=4) and not loaded.notes
    assert_same_network(loaded, ref, in_channels=1)


@needs_monai
def test_a_monai_3d_densenet_is_refused_naming_the_dimension(tmp_path):
    torch.manual_seed(0)
    model = monai.DenseNet121(spatial_dims=3, in_channels=1, out_channels=2)
    torch.save(model.state_dict(), tmp_path / "monai3d.pt")
    with pytest.raises(CheckpointError, match="3-D"):
        load_checkpoint(tmp_path / "monai3d.pt")
