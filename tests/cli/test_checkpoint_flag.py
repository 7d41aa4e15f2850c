"""``--checkpoint FILE`` of ``summary``, ``probe`` and ``graph`` (any family: a densegui checkpoint's
stored configuration, else the one inferred from the weights), ``densegui reuse`` of a timm RDNet
file, and the bad files (one line on stderr, exit 2)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from helpers.cli import run
from helpers.corpus import SMALL_BC, known_state_dict, timm_train_checkpoint
from helpers.libraries import timm

from densegui.core.analysis.reuse import default_checkpoint_path
from densegui.core.arch import registry
from densegui.core.weights.files import save_checkpoint

timm_lib = timm()
pytestmark = [pytest.mark.skipif(timm_lib is None, reason="timm not installed here"),
              pytest.mark.usefixtures("one_thread")]

RDNET = dict(growth_rates=(8, 16), num_blocks_list=(3, 2), block_type=("Block", "BlockESE"),
             is_downsample_block=(None, True), num_init_features=16, patch_size=2, num_classes=6)


@pytest.fixture(scope="module")
def timm_net():
    torch.manual_seed(1)
    return timm_lib.models.rdnet.RDNet(**RDNET).eval()


@pytest.fixture
def timm_file(tmp_path, timm_net):
    path = tmp_path / "rdnet.pth"
    torch.save(timm_net.state_dict(), path)
    return path


def summary(path, capsys, *more):
    code, out, err = run(["summary", "--checkpoint", str(path), "--json", *more], capsys)
    assert code == 0, err
    return json.loads(out)


def test_summary_of_a_timm_rdnet_has_timms_parameter_count(timm_file, timm_net, capsys):
    got = summary(timm_file, capsys)
    assert got["family"] == registry.family_of(registry.get_preset("rdnet-tiny")).name
    assert got["params"] == sum(p.numel() for p in timm_net.parameters())
    assert got["config"]["stage_depths"] == [3, 2] and got["config"]["num_classes"] == 6
    # field flags still apply on top (a run setting here)
    assert summary(timm_file, capsys, "--input-size", "64")["config"]["input_size"] == 64


def test_summary_of_a_timm_training_checkpoint(tmp_path, timm_net, capsys):
    sd = timm_net.state_dict()
    torch.save(timm_train_checkpoint(sd, ema={k: v.clone() for k, v in sd.items()}), tmp_path / "best.pth.tar")
    assert summary(tmp_path / "best.pth.tar", capsys)["params"] == sum(p.numel() for p in timm_net.parameters())


def test_graph_of_a_checkpoint(timm_file, capsys):
    code, out, err = run(["graph", "--checkpoint", str(timm_file), "--dot", "-"], capsys)
    assert code == 0, err
    into: dict[str, int] = {}
    for _source, target in re.findall(r'^\s*"([^"]+)" -> "([^"]+)"', out, re.MULTILINE):
        into[target] = into.get(target, 0) + 1
    for s, depth in enumerate(RDNET["num_blocks_list"]):
        stage = f"dense_stages.{s}.{2 if s else 0}"
        for j in range(depth):  # block j reads the stage input and the j blocks before it
            assert into[f"{stage}.dense_block{j}"] == j + 1
    assert into["dense_stages.1.1"] == 1 + RDNET["num_blocks_list"][0] and into["head"] == 1 + 2


def test_probe_of_a_checkpoint(timm_file, capsys):
    code, out, err = run(["probe", "--checkpoint", str(timm_file), "--input-size", "16", "--repeats", "1",
                          "--no-breakdown", "--device", "cpu", "--json"], capsys)
    assert code == 0, err
    got = json.loads(out)
    assert got["input_size"] == 16 and got["median_ms"] > 0


def test_densegui_checkpoints_of_any_family_give_their_stored_configuration(tmp_path, capsys):
    small = save_checkpoint(tmp_path / "dn.pt", known_state_dict(SMALL_BC), SMALL_BC)
    assert summary(small, capsys)["config"] == SMALL_BC.to_dict()
    resnet = registry.get_preset("resnet20")
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "rn.pt", registry.build_model(resnet).state_dict(), resnet)
    got = summary(tmp_path / "rn.pt", capsys)
    assert got["config"] == resnet.to_dict() and got["family"] == registry.family_of(resnet).name
    rd = registry.get_preset("rdnet-tiny").replace(stage_depths=(1, 1), growth_rates=(8, 8), downsample=(0, 1),
                                                   init_features=8, num_classes=3)
    state = {k: torch.randn(v) for k, v in registry.expected_shapes(rd).items()}
    save_checkpoint(tmp_path / "rd.pt", state, rd.replace(input_size=40))  # (inference would say 224)
    assert summary(tmp_path / "rd.pt", capsys)["config"] == rd.replace(input_size=40).to_dict()


def test_the_shipped_checkpoint(capsys):
    path = default_checkpoint_path()
    stored = torch.load(path, weights_only=True)
    got = summary(path, capsys)
    assert got["config"] == registry.config_from_dict(stored["config"]).to_dict()
    params = sum(v.numel() for k, v in stored["state_dict"].items()
                 if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    assert got["params"] == params


def test_reuse_of_a_timm_rdnet(timm_file, timm_net, capsys):
    code, out, err = run(["reuse", str(timm_file), "--json", "--noise-seeds", "1"], capsys)
    assert code == 0, err
    blocks = json.loads(out)["blocks"]
    assert [len(b["targets"]) for b in blocks] == [4, 3]
    # stage 2, block 2 reads the stage input (16 channels: the transition's) and block 1 (16)
    w = timm_net.dense_stages[1][2].dense_block1.layers.layers[2].weight.detach().double().abs()
    assert blocks[1]["matrix"][0][1] == pytest.approx(float(w[:, :16].mean()), rel=1e-9)
    assert blocks[1]["matrix"][1][1] == pytest.approx(float(w[:, 16:32].mean()), rel=1e-9)
    assert blocks[1]["matrix"][2][1] is None and not np.isnan(blocks[1]["matrix"][2][2])
    code, out, err = run(["reuse", str(timm_file), "--measure", "bn-weights"], capsys)
    assert code == 2 and not out and err.count("\n") == 1 and "so bn-weights (mean |w|" in err
    code, out, err = run(["reuse", str(timm_file), "--measure", "activation"], capsys)
    assert code == 2 and err.count("\n") == 1 and "so activation cannot be computed" in err


def _bad(kind: str, tmp_path):
    path = tmp_path / f"{kind}.pt"
    if kind == "text":
        path.write_text("not a checkpoint\n")
    elif kind == "resnet":
        torch.save(registry.build_model(registry.get_preset("resnet20"), device="meta").state_dict(), path)
    elif kind == "pickled object":
        torch.save(torch.nn.Linear(2, 2), path)
    elif kind == "damaged rdnet":
        sd = timm_lib.models.rdnet.RDNet(**RDNET).state_dict()
        del sd["head.norm.weight"]
        torch.save(sd, path)
    return path


@pytest.mark.parametrize("kind, words", [
    ("missing", "does not exist"),
    ("text", "is neither a PyTorch checkpoint nor a safetensors file"),
    ("resnet", "not a DenseNet state_dict: no dense block found"),
    ("pickled object", "refused to load"),
    ("damaged rdnet", "the RDNet weights are incomplete: tensor 'head.norm.weight' missing"),
])
@pytest.mark.parametrize("command", ["summary", "graph"])
def test_bad_files_are_one_line(tmp_path, capsys, kind, words, command):
    path = _bad(kind, tmp_path)
    code, out, err = run([command, "--checkpoint", str(path), *(["--dot", "-"] if command == "graph" else [])],
                         capsys)
    assert code == 2 and not out and err.count("\n") == 1 and words in err, err


def test_checkpoint_excludes_preset_and_config(timm_file, capsys):
    code, _out, err = run(["summary", "--checkpoint", str(timm_file), "--preset", "densenet121"], capsys)
    assert code == 2 and "not allowed with argument" in err and err.count("\n") == 1
