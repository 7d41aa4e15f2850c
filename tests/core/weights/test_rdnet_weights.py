"""timm's RDNet files: recognised bare, prefixed and inside timm training checkpoints; the
configuration inferred from the shapes alone; damaged and unsupported variants refused in one line;
the reuse ``weights`` cells against mean |w| slices of timm's own modules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from densegui.core.analysis.reuse_run import analyse
from densegui.core.arch.rdnet.config import RDNetConfig
from densegui.core.arch.registry import build_model, expected_shapes, get_preset
from densegui.core.errors import DenseguiError
from densegui.core.weights import infer_rdnet
from densegui.core.weights.checkpoint import CheckpointError, load_checkpoint
from densegui.core.weights.infer import InferenceError
from helpers.corpus import timm_args
from helpers.libraries import timm

timm_lib = timm()
pytestmark = pytest.mark.skipif(timm_lib is None, reason="timm not installed here")

# timm's RDNet arguments of a small net, and the configuration they are.
SMALL = dict(growth_rates=(8, 16, 8), num_blocks_list=(2, 1, 2), block_type=("Block", "BlockESE", "BlockESE"),
             is_downsample_block=(None, True, False), num_init_features=16, patch_size=2, num_classes=5,
             bottleneck_width_ratio=2.0, transition_compression_ratio=0.75)
SMALL_CFG = RDNetConfig(stage_depths=(2, 1, 2), growth_rates=(8, 16, 8), downsample=(0, 1, 0), ese_from=2,
                        width_ratio=2.0, compression=0.75, init_features=16, patch_size=2, num_classes=5)


def small_timm(seed: int = 0, **changes):
    torch.manual_seed(seed)
    model = timm_lib.models.rdnet.RDNet(**{**SMALL, **changes}).eval()
    with torch.no_grad():  # (timm's γ = 1e-6 and zero LayerNorm biases would hide a wrong mapping)
        for name, p in model.named_parameters():
            if name.endswith("gamma") or ".1.bias" in name or "norm" in name:
                p.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize("name", ["rdnet_tiny", "rdnet_small", "rdnet_base", "rdnet_large"])
def test_each_presets_shapes_infer_the_preset(name):
    """Shapes only: timm's model on the meta device (no memory, no initialisation)."""
    sd = timm_lib.create_model(name, num_classes=10, device="meta").state_dict()
    assert infer_rdnet.infer_config(sd) == get_preset(name.replace("_", "-")).replace(num_classes=10)


def test_a_timm_file_is_inferred_and_gives_timms_outputs(tmp_path):
    ref = small_timm()
    torch.save(ref.state_dict(), tmp_path / "r.pth")
    loaded = load_checkpoint(tmp_path / "r.pth")
    assert loaded.inferred and not loaded.notes and loaded.config == SMALL_CFG
    model = build_model(loaded.config).eval()
    model.load_state_dict(loaded.state_dict, strict=True)
    x = torch.randn(2, 3, 20, 20)
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max() <= 1e-5
    assert "RDNet, stages 2,1,2" in loaded.describe() and "inferred from the weights" in loaded.describe()


@pytest.mark.parametrize("changes, fields", [
    (dict(in_chans=1, patch_size=4, is_downsample_block=(None, False, True)), dict(in_channels=1, patch_size=4,
                                                                                  downsample=(0, 0, 1))),
    (dict(block_type=("Block",) * 3, bottleneck_width_ratio=3.0, transition_compression_ratio=1.0),
     dict(ese_from=4, width_ratio=3.0, compression=1.0)),
    (dict(block_type=("BlockESE",) * 3, num_init_features=24), dict(ese_from=1, init_features=24)),
])
def test_variants_of_the_small_net(changes, fields):
    sd = small_timm(**changes).state_dict()
    inferred = infer_rdnet.infer_config(sd)
    # θ shows only through ⌊θ·C/8⌋·8: the simplest θ giving the same transitions stands for timm's
    expected = SMALL_CFG.replace(**fields)
    assert inferred.replace(compression=expected.compression) == expected
    assert expected_shapes(inferred) == {k: tuple(v.shape) for k, v in sd.items()}


def test_a_timm_training_checkpoint_and_its_ema_copy(tmp_path):
    model = small_timm()
    ema = timm_lib.utils.ModelEmaV2(model, decay=0.5)
    with torch.no_grad():
        model.head.fc.weight.add_(1.0)  # the trained weights differ from the EMA copy
    saver = timm_lib.utils.CheckpointSaver(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                                           args=timm_args(), model_ema=ema,
                                           checkpoint_dir=str(tmp_path), recovery_dir=str(tmp_path))
    saver.save_checkpoint(epoch=3, metric=71.25)
    path = tmp_path / "model_best.pth.tar"
    loaded = load_checkpoint(path)
    assert (loaded.candidate, loaded.candidates) == ("state_dict", ("state_dict", "state_dict_ema"))
    assert loaded.config == SMALL_CFG and loaded.metadata.get("epoch") == 3
    assert "The file holds 2 RDNets" in loaded.describe()
    assert torch.equal(loaded.state_dict["head.fc.weight"], model.head.fc.weight)
    averaged = load_checkpoint(path, candidate="state_dict_ema")
    assert torch.equal(averaged.state_dict["head.fc.weight"], ema.module.head.fc.weight)


def test_prefixes_nesting_and_a_headless_net(tmp_path):
    sd = small_timm().state_dict()
    torch.save({"model": {f"module.{k}": v for k, v in sd.items()}, "step": 7}, tmp_path / "p.pt")
    loaded = load_checkpoint(tmp_path / "p.pt")
    assert loaded.candidate == "model/module" and loaded.config == SMALL_CFG
    assert set(loaded.state_dict) == set(sd)
    headless = {k: v for k, v in sd.items() if not k.startswith("head.fc.")}  # timm's num_classes=0
    torch.save(headless, tmp_path / "h.pt")
    loaded = load_checkpoint(tmp_path / "h.pt")
    assert loaded.notes and "no classifier found" in loaded.notes[0]
    blocks = analyse(loaded, ["weights"], noise_seeds=0).measures["weights"]
    assert np.isnan(blocks[-1].matrix[:, -1]).all() and not np.isnan(blocks[-1].matrix[0, :-1]).any()


def _damaged(sd, how):
    sd = dict(sd)
    if how == "missing":
        del sd["dense_stages.1.2.dense_block0.layers.layers.4.bias"]
    elif how == "shape":
        sd["dense_stages.2.2.dense_block1.layers.layers.4.weight"] = torch.zeros(9, 64, 1, 1)
    elif how == "width":
        sd["dense_stages.2.2.dense_block1.layers.layers.2.weight"] = torch.zeros(40, 32, 1, 1)
    elif how == "stage gap":
        sd = {k: v for k, v in sd.items() if not k.startswith("dense_stages.1.")}
    elif how == "no gamma":
        sd = {k: v for k, v in sd.items() if not k.endswith(".gamma")}
    elif how == "ese gap":
        sd = {k: v for k, v in sd.items() if not k.startswith("dense_stages.2.2.dense_block0.layers.layers.5.")}
    elif how == "extra":
        sd["dense_stages.0.0.dense_block0.extra.weight"] = torch.zeros(3)
    return sd


@pytest.mark.parametrize("how, words", [
    ("missing", "the RDNet weights are incomplete: tensor 'dense_stages.1.2.dense_block0.layers.layers.4.bias' "
                "missing"),
    ("shape", "tensor 'dense_stages.2.2.dense_block1.layers.layers.4.weight' has shape 9×64×1×1, expected "
              "8×64×1×1"),
    ("width", "no single width ratio"),
    ("stage gap", "stage 1 is missing"),
    ("no gamma", "without layer scale"),
    ("ese gap", "has no squeeze-excitation"),
    ("extra", "unexpected tensor 'dense_stages.0.0.dense_block0.extra.weight'"),
])
def test_damaged_and_unsupported_files_are_one_line(tmp_path, how, words):
    torch.save(_damaged(small_timm().state_dict(), how), tmp_path / "d.pt")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "d.pt")
    text = str(info.value)
    assert text.startswith("d.pt: ") and words in text and "\n" not in text


def test_the_overlapping_stem_is_refused():
    sd = timm_lib.models.rdnet.RDNet(**{**SMALL, "stem_type": "overlap"}, device="meta").state_dict()
    with pytest.raises(InferenceError, match="overlapping stem"):
        infer_rdnet.find_networks(sd)


def test_fit_ratio_takes_the_simplest_decimal():
    assert infer_rdnet.fit_ratio([(64, 256), (200, 800)], 4.0, 16.0) == 4.0
    assert infer_rdnet.fit_ratio([(256, 128), (100, 48)], 0.5, 1.0) == 0.5
    assert infer_rdnet.fit_ratio([], 0.5, 1.0) == 0.5
    assert infer_rdnet.fit_ratio([(64, 64), (64, 8)], 0.5, 1.0) is None


def _mean_abs(w: torch.Tensor, start: int, end: int) -> float:
    return float(w.detach()[:, start:end].abs().double().mean())


def test_reuse_weights_cells_are_mean_abs_slices_of_timms_modules(tmp_path):
    """Independent of the plan: the channel ranges are counted here from timm's modules, in the
    order DenseStage concatenates them."""
    ref = small_timm(seed=3)
    torch.save(ref.state_dict(), tmp_path / "r.pt")
    blocks = analyse(load_checkpoint(tmp_path / "r.pt"), ["weights"]).measures["weights"]
    assert len(blocks) == len(ref.dense_stages)
    for s, (block, stage) in enumerate(zip(blocks, ref.dense_stages)):
        dense = stage[-1]
        widths = [dense.dense_block0.layers.layers[0].in_channels] + [b.growth_rate for b in dense]
        bounds = np.cumsum([0, *widths])
        targets = [b.layers.layers[2].weight for b in dense]
        targets.append(ref.dense_stages[s + 1][1].weight if s + 1 < len(ref.dense_stages) else ref.head.fc.weight)
        assert block.matrix.shape == (len(widths), len(targets))
        for t, w in enumerate(targets):
            for row in range(len(widths)):
                cell = block.matrix[row, t]
                if row > t:
                    assert math.isnan(cell)
                else:
                    assert cell == pytest.approx(_mean_abs(w, bounds[row], bounds[row + 1]), rel=1e-9)
        assert block.noise["kind"] == "untrained-spread" and block.noise["ratio"] > 1


@pytest.mark.parametrize("measure, prune, words", [
    ("bn-weights", False, "so bn-weights"),
    ("activation", False, "so activation cannot be computed"),
    ("ablation", False, "so ablation cannot be computed"),
    ("weights", True, "so the pruning curve cannot be computed"),
])
def test_measures_that_do_not_carry_over_say_so_in_one_line(tmp_path, measure, prune, words):
    torch.save(small_timm().state_dict(), tmp_path / "r.pt")
    with pytest.raises(DenseguiError) as info:
        analyse(load_checkpoint(tmp_path / "r.pt"), [measure], prune=prune)
    text = str(info.value)
    assert words in text and text.startswith("RDNets have no BatchNorm") and "\n" not in text
