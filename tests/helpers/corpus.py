"""The checkpoint corpus: every supported checkpoint format and every kind of bad input, generated.

Shared by the tests of loading (tests/core/test_checkpoint_corpus.py), writing, inference, the
reuse metric, ``densegui reuse`` and the reuse panel.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import zipfile
from pathlib import Path

import torch

from densegui.core.checkpoint import save_checkpoint, save_safetensors
from densegui.core.config import DenseNetConfig
from densegui.core.model import build_model

# Small but complete: bottleneck with bn_size 2, θ = 0.5, cifar stem with init ≠ 2k,
# one input channel, 5 classes, three blocks of different depth.
SMALL_BC = DenseNetConfig(growth_rate=4, block_depths=(3, 4, 2), compression=0.5, bottleneck=True, bn_size=2,
                          init_features=6, stem="cifar", in_channels=1, num_classes=5, input_size=8)
# Basic layers, θ = 0.3, imagenet stem, 2 blocks.
SMALL_BASIC = DenseNetConfig(growth_rate=3, block_depths=(2, 3), compression=0.3, bottleneck=False,
                             init_features=5, stem="imagenet", in_channels=3, num_classes=4, input_size=32)


def known_state_dict(cfg: DenseNetConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state_dict for ``cfg`` with seeded random values everywhere (running_var positive)."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for key, value in build_model(cfg, device="meta").state_dict().items():
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            sd[key] = torch.rand(value.shape, generator=gen) + 0.5
        else:
            sd[key] = torch.randn(value.shape, generator=gen)
    return sd


def to_legacy(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision's released-file key style: ``denselayer1.norm1.weight`` → ``denselayer1.norm.1.weight``."""
    return {re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", k): v for k, v in sd.items()}


def synth_state_dict(init: int, k: int, depths: tuple[int, ...], transition_outs: tuple[int, ...],
                     bn_size: int | None = 4, classes: int = 10, in_ch: int = 3, stem: str = "cifar",
                     seed: int = 0) -> dict[str, torch.Tensor]:
    """A torchvision-named DenseNet state_dict written out by hand from the channel arithmetic
    (independent of densegui's model code); any transition outputs, even ones no single θ gives."""
    gen = torch.Generator().manual_seed(seed)

    def bn(prefix: str, c: int) -> None:
        sd[f"{prefix}.weight"] = torch.rand(c, generator=gen) + 0.5
        sd[f"{prefix}.bias"] = torch.randn(c, generator=gen)
        sd[f"{prefix}.running_mean"] = torch.randn(c, generator=gen)
        sd[f"{prefix}.running_var"] = torch.rand(c, generator=gen) + 0.5

    sd: dict[str, torch.Tensor] = {}
    ks = 7 if stem == "imagenet" else 3
    sd["features.conv0.weight"] = torch.randn(init, in_ch, ks, ks, generator=gen)
    if stem == "imagenet":
        bn("features.norm0", init)
    c = init
    for b, depth in enumerate(depths, 1):
        for ell in range(1, depth + 1):
            p = f"features.denseblock{b}.denselayer{ell}"
            c_in = c + (ell - 1) * k
            bn(f"{p}.norm1", c_in)
            if bn_size:
                sd[f"{p}.conv1.weight"] = torch.randn(bn_size * k, c_in, 1, 1, generator=gen)
                bn(f"{p}.norm2", bn_size * k)
                sd[f"{p}.conv2.weight"] = torch.randn(k, bn_size * k, 3, 3, generator=gen)
            else:
                sd[f"{p}.conv1.weight"] = torch.randn(k, c_in, 3, 3, generator=gen)
        c += depth * k
        if b < len(depths):
            bn(f"features.transition{b}.norm", c)
            sd[f"features.transition{b}.conv.weight"] = torch.randn(transition_outs[b - 1], c, 1, 1, generator=gen)
            c = transition_outs[b - 1]
    bn("features.norm5", c)
    sd["classifier.weight"] = torch.randn(classes, c, generator=gen)
    sd["classifier.bias"] = torch.randn(classes, generator=gen)
    return sd


WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net")
GOOD_FORMATS = (
    "densegui", "densegui-train-state", "state_dict", "state_dict-no-bn-counters", "legacy", "module-prefix",
    *(f"wrapped-{k}" for k in WRAPPER_KEYS), "wrapped-ddp", "safetensors", "safetensors-config",
)


def write_good(fmt: str, path: Path, sd: dict[str, torch.Tensor], cfg: DenseNetConfig) -> Path:
    """Write ``sd`` in format ``fmt``; return the file written."""
    if fmt == "densegui":
        return save_checkpoint(path, sd, cfg, {"dataset": "unit-test"})
    if fmt == "densegui-train-state":
        opt = {"state": {0: {"momentum_buffer": torch.ones(3)}}, "param_groups": [{"lr": 0.1, "params": [0]}]}
        return save_checkpoint(path, sd, cfg, {"dataset": "unit-test"}, train_state={"epoch": 2, "optimizer": opt})
    if fmt == "state_dict":
        torch.save(sd, path)
    elif fmt == "state_dict-no-bn-counters":  # like torchvision's released files
        torch.save({k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}, path)
    elif fmt == "legacy":
        torch.save(to_legacy({k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}), path)
    elif fmt == "module-prefix":
        torch.save({f"module.{k}": v for k, v in sd.items()}, path)
    elif fmt.startswith("wrapped-") and fmt != "wrapped-ddp":
        torch.save({"epoch": 3, "best_acc": 0.5, fmt.removeprefix("wrapped-"): sd, "optimizer": {"lr": 0.1}}, path)
    elif fmt == "wrapped-ddp":
        torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in sd.items()}}, path)
    elif fmt == "safetensors":
        from safetensors.torch import save_file

        path = path.with_suffix(".safetensors")
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    elif fmt == "safetensors-config":
        path = path.with_suffix(".safetensors")
        save_safetensors(path, sd, cfg, {"dataset": "unit-test"})
    else:  # pragma: no cover
        raise AssertionError(fmt)
    return path


class Hostile:
    """Unpickling this would create a file: the marker must never appear."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _hostile_zip(path: Path, marker: Path, tmp: Path) -> None:
    """A torch.save zip whose data.pkl is replaced by a code-running pickle."""
    good = tmp / "good-for-hostile.pt"
    torch.save({"w": torch.zeros(2)}, good)
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as out:
        for name in src.namelist():
            data = src.read(name)
            if name.endswith("data.pkl"):
                data = pickle.dumps({"w": Hostile(marker)}, protocol=2)
            out.writestr(name, data)


def write_bad(name: str, tmp: Path) -> tuple[Path, str]:
    """Write bad input ``name`` under ``tmp``; return (path, a phrase the one-line message must contain)."""
    path = tmp / f"{name}.pt"
    sd = known_state_dict(SMALL_BC)
    if name == "missing":
        return tmp / "no-such-file.pt", "does not exist"
    if name == "directory":
        path.mkdir()
        return path, "directory"
    if name == "empty":
        path.write_bytes(b"")
        return path, "empty"
    if name == "truncated":
        save_checkpoint(path, sd, SMALL_BC)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path, "truncated or corrupt"
    if name == "random-bytes":
        path.write_bytes(b"\x13" + random.Random(0).randbytes(4096))
        return path, "neither a PyTorch checkpoint nor a safetensors"
    if name == "pickle-garbage":
        path.write_bytes(b"\x80\x02" + random.Random(1).randbytes(4096))
        return path, "refused"
    if name == "truncated-safetensors":
        path = path.with_suffix(".safetensors")
        save_safetensors(path, sd)
        path.write_bytes(path.read_bytes()[:200])
        return path, "not a valid safetensors"
    if name == "text-file":
        path.write_text("hello, I am not a checkpoint\n")
        return path, "neither a PyTorch checkpoint nor a safetensors"
    if name == "resnet":
        torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "bn1.weight": torch.ones(64),
                    "layer1.0.conv1.weight": torch.zeros(64, 64, 3, 3), "fc.weight": torch.zeros(1000, 512),
                    "fc.bias": torch.zeros(1000)}, path)
        return path, "not a DenseNet state_dict"
    if name == "list-of-tensors":
        torch.save([torch.zeros(2), torch.ones(3)], path)
        return path, "holds no state_dict"
    if name == "missing-bn-stat":
        del sd["features.denseblock2.denselayer3.norm2.running_var"]
        torch.save(sd, path)
        return path, "denselayer3.norm2.running_var"
    if name == "missing-layer":
        sd = {k: v for k, v in sd.items() if ".denseblock2.denselayer2." not in k}
        torch.save(sd, path)
        return path, "block 2's dense layer 2 is missing"
    if name == "missing-classifier":
        del sd["classifier.weight"]
        torch.save(sd, path)
        return path, "classifier.weight"
    if name == "inconsistent-shape":
        sd["features.denseblock1.denselayer3.conv1.weight"] = torch.zeros(8, 13, 1, 1)
        torch.save(sd, path)
        return path, "inconsistent"
    if name == "inconsistent-bn":
        sd["features.denseblock1.denselayer2.norm1.weight"] = torch.zeros(11)
        torch.save(sd, path)
        return path, "norm1.weight"
    if name == "no-single-theta":
        # Transition 1 keeps 9 of 18 channels (θ = 0.5), transition 2 keeps all 25 (θ = 1).
        torch.save(synth_state_dict(init=6, k=4, depths=(3, 4, 2), transition_outs=(9, 25), bn_size=2), path)
        return path, "no single compression"
    if name == "nan-weights":
        sd["features.denseblock2.denselayer1.conv2.weight"][0, 0, 0, 0] = float("nan")
        torch.save(sd, path)
        return path, "NaN"
    if name == "inf-weights":
        sd["classifier.bias"][1] = float("inf")
        torch.save(sd, path)
        return path, "infinite"
    if name == "stored-config-mismatch":
        save_checkpoint(path, sd, SMALL_BC.replace(growth_rate=5))
        return path, "do not match the configuration stored"
    if name == "densegui-without-weights":
        torch.save({"format": "densegui-checkpoint", "version": 1, "config": SMALL_BC.to_dict(), "metadata": {}}, path)
        return path, "without weights"
    if name == "hostile-pickle":
        path.write_bytes(pickle.dumps({"w": Hostile(tmp / "MARKER")}, protocol=2))
        return path, "refused"
    if name == "hostile-pickle-proto5":
        path.write_bytes(pickle.dumps({"w": Hostile(tmp / "MARKER")}, protocol=5))
        return path, "refused"
    if name == "hostile-torch-zip":
        _hostile_zip(path, tmp / "MARKER", tmp)
        return path, "refused"
    raise AssertionError(name)  # pragma: no cover


BAD_INPUTS = (
    "missing", "directory", "empty", "truncated", "random-bytes", "pickle-garbage", "truncated-safetensors",
    "text-file", "resnet", "list-of-tensors", "missing-bn-stat", "missing-layer", "missing-classifier",
    "inconsistent-shape", "inconsistent-bn", "no-single-theta", "nan-weights", "inf-weights",
    "stored-config-mismatch", "densegui-without-weights", "hostile-pickle", "hostile-pickle-proto5",
    "hostile-torch-zip",
)
