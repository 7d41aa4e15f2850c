"""The checkpoint corpus: every supported checkpoint format and every kind of bad input, generated.

Shared by the tests of loading (tests/core/weights/test_checkpoint_corpus.py), writing, inference, the
reuse metric, ``densegui reuse`` and the reuse panel.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import pickle
import random
import re
import zipfile
from pathlib import Path

import torch

from densegui.core.weights.checkpoint import save_checkpoint, save_safetensors
from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.arch.densenet.model import build_model

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


# ------------------------------------------------------------------ other libraries' layouts
# Each mirrors the naming of the code that writes it (quoted in its docstring); the tensors are
# those of a torchvision-named state_dict, so the renamed file must give back exactly them.

def to_monai(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """MONAI's ``monai.networks.nets.DenseNet`` (2-D): each dense layer keeps its modules in a
    ``self.layers`` Sequential (``…denselayer1.layers.conv1.weight``); the classifier is
    ``class_layers.out`` (``class_layers`` = relu, pool, flatten, out)."""
    out = {}
    for key, value in sd.items():
        key = re.sub(r"(denselayer\d+)\.", r"\1.layers.", key)
        out[re.sub(r"^classifier\.", "class_layers.out.", key)] = value
    return out


def to_pytorch_cifar(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """kuangliu/pytorch-cifar's ``models/densenet.py``: ``conv1`` stem, ``dense1.0.bn1/conv1/bn2/conv2``
    (layers numbered from 0), ``trans1.bn/conv``, a final ``bn`` and ``linear``."""
    out = {}
    for key, value in sd.items():
        m = re.match(r"features\.denseblock(\d+)\.denselayer(\d+)\.(norm|conv)([12])\.(.*)$", key)
        if m:
            b, ell, kind, i, param = m.groups()
            key = f"dense{b}.{int(ell) - 1}.{'bn' if kind == 'norm' else 'conv'}{i}.{param}"
        else:
            key = re.sub(r"^features\.transition(\d+)\.norm\.", r"trans\1.bn.", key)
            key = re.sub(r"^features\.transition(\d+)\.conv\.", r"trans\1.conv.", key)
            for old, new in (("features.conv0.", "conv1."), ("features.norm0.", "bn0."), ("features.norm5.", "bn."),
                             ("classifier.", "linear.")):
                key = key.replace(old, new, 1) if key.startswith(old) else key
        out[key] = value
    return out


def to_timm_deep_stem(sd: dict[str, torch.Tensor], width: int | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
    """timm's ``stem_type='deep'`` (``densenetblur121d``, ``densenet264d``): ``features.conv0`` 3×3 →
    ``norm0`` → ``conv1`` 3×3 → ``norm1`` → ``conv2`` 3×3 → ``norm2`` (BatchNormAct2d: BatchNorm2d's
    keys), then max pool and, for the blur variant, a BlurPool2d whose filter is not saved. ``width``:
    the first two convolutions' channels (timm: the growth rate)."""
    gen = torch.Generator().manual_seed(seed)
    c0, in_ch = sd["features.conv0.weight"].shape[:2]
    width = width or max(1, c0 // 2)
    out: dict[str, torch.Tensor] = {}
    for i, (c_in, c_out) in enumerate(((in_ch, width), (width, width), (width, c0))):
        out[f"features.conv{i}.weight"] = torch.randn(c_out, c_in, 3, 3, generator=gen)
        out[f"features.norm{i}.weight"] = torch.rand(c_out, generator=gen) + 0.5
        out[f"features.norm{i}.bias"] = torch.randn(c_out, generator=gen)
        out[f"features.norm{i}.running_mean"] = torch.randn(c_out, generator=gen)
        out[f"features.norm{i}.running_var"] = torch.rand(c_out, generator=gen) + 0.5
        out[f"features.norm{i}.num_batches_tracked"] = torch.tensor(3)
    out.update((k, v) for k, v in sd.items() if not k.startswith(("features.conv0.", "features.norm0.")))
    return out


def lightning_checkpoint(sd: dict[str, torch.Tensor], attr: str = "model",
                         ema: dict[str, torch.Tensor] | None = None) -> dict:
    """What PyTorch Lightning's ``Trainer.save_checkpoint`` writes for a LightningModule holding the
    network as ``self.<attr>`` (and, with ``ema``, timm's ``ModelEmaV2`` as ``self.ema_model``): every
    key of ``state_dict`` starts with the attribute's name; a loss's buffer sits beside it."""
    state = {f"{attr}.{k}": v for k, v in sd.items()}
    state["loss_fn.pos_weight"] = torch.ones(3)
    if ema is not None:
        state.update({f"ema_model.module.{k}": v for k, v in ema.items()})
    return {
        "epoch": 3, "global_step": 120, "pytorch-lightning_version": "2.4.0", "state_dict": state,
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 4, "completed": 3}}}},
        "callbacks": {"ModelCheckpoint{'monitor': 'val_acc', 'mode': 'max'}": {
            "best_model_score": torch.tensor(0.91), "best_model_path": "/runs/epoch=3.ckpt", "dirpath": "/runs"}},
        "optimizer_states": [{"state": {0: {"momentum_buffer": torch.zeros(3)}},
                              "param_groups": [{"lr": 0.1, "momentum": 0.9, "params": [0]}]}],
        "lr_schedulers": [], "hparams_name": "kwargs", "hyper_parameters": {"lr": 0.1, "arch": "densenet121"},
    }


def timm_args(**extra) -> argparse.Namespace:
    """A few of the options timm's train.py parses; its checkpoints store them as ``args``."""
    return argparse.Namespace(model="densenet121", data_dir="/data/imagenet", dataset="", epochs=3, lr=0.1,
                              sched="cosine", model_ema=True, model_ema_decay=0.9998, mean=None, input_size=None,
                              output=pathlib.PurePosixPath("/runs/densenet"), **extra)


def timm_train_checkpoint(sd: dict[str, torch.Tensor], ema: dict[str, torch.Tensor] | None = None,
                          ema_first: bool = False) -> dict:
    """timm's ``CheckpointSaver`` (``model_best.pth.tar``): epoch, arch, state_dict, optimizer,
    version, ``args`` (an argparse.Namespace), ``state_dict_ema`` with model EMA, metric."""
    ckpt = {"epoch": 3, "arch": "densenet121", "state_dict": sd,
            "optimizer": {"state": {0: {"momentum_buffer": torch.zeros(2)}}, "param_groups": [{"lr": 0.1}]},
            "version": 2, "args": timm_args(), "metric": 71.25}
    if ema is not None:
        ckpt["state_dict_ema"] = ema
        if ema_first:
            ckpt = {"state_dict_ema": ema, **ckpt}
    return ckpt


def torchvision_reference_checkpoint(sd: dict[str, torch.Tensor], ema: dict[str, torch.Tensor]) -> dict:
    """torchvision's references/classification/train.py: model, optimizer, lr_scheduler, epoch,
    ``args`` and ``model_ema``, an AveragedModel's state_dict (``n_averaged``, then ``module.…``)."""
    return {"model": sd, "optimizer": {"state": {}, "param_groups": [{"lr": 0.5}]},
            "lr_scheduler": {"last_epoch": 3}, "epoch": 3, "args": timm_args(),
            "model_ema": {"n_averaged": torch.tensor(40), **{f"module.{k}": v for k, v in ema.items()}}}


WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net")
GOOD_FORMATS = (
    "densegui", "densegui-train-state", "state_dict", "state_dict-no-bn-counters", "legacy", "legacy-with-counters",
    "module-prefix", *(f"wrapped-{k}" for k in WRAPPER_KEYS), "wrapped-ddp", "safetensors", "safetensors-config",
    "lightning", "timm-train", "torchvision-reference", "monai", "pytorch-cifar", "nested-deep",
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
    elif fmt == "legacy-with-counters":  # num_batches_tracked renamed along with the rest
        torch.save(to_legacy(sd), path)
    elif fmt == "lightning":
        torch.save(lightning_checkpoint(sd), path)
    elif fmt == "timm-train":
        torch.save(timm_train_checkpoint(sd), path)
    elif fmt == "torchvision-reference":
        torch.save({k: v for k, v in torchvision_reference_checkpoint(sd, sd).items() if k != "model_ema"}, path)
    elif fmt == "monai":
        torch.save(to_monai(sd), path)
    elif fmt == "pytorch-cifar":
        torch.save({"net": {f"module.{k}": v for k, v in to_pytorch_cifar(sd).items()}, "acc": 93.1, "epoch": 3}, path)
    elif fmt == "nested-deep":  # any wrapper, any attribute name
        torch.save({"run": {"checkpoints": [{"epoch": 3, "weights": {f"backbone.{k}": v for k, v in sd.items()}}]}},
                   path)
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


class TrainerState:
    """Some project's own class, stored next to the weights: refused (unpickling it imports its module)."""

    def __init__(self) -> None:
        self.step = 3


def rewrite_pickle(path: Path, old: bytes, new: bytes) -> Path:
    """Replace ``old`` by ``new`` in a torch.save zip's data.pkl (protocol 2 names globals as text)."""
    data = path.read_bytes()
    out = path.with_name(f"rewritten-{path.name}")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            content = src.read(info)
            if info.filename.endswith("data.pkl"):
                assert old in content, (old, content[:200])
                content = content.replace(old, new)
            dst.writestr(info, content)
    assert data  # the source stays as it was
    return out


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
