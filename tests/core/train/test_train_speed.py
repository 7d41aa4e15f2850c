"""Training at GPU speed, checked where it runs here: autocast, channels-last, memory-efficient mode,
torch.compile, and ImageNet-style folders read by DataLoader workers. CUDA-only paths skip without CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from densegui.core.arch.densenet import model as model_module
from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.train.data import DataError, FileSplit, detect_kind, load_dataset
from densegui.core.train.batches import evaluate
from densegui.core.train.loop import train
from densegui.core.train.setup import RunSettings, TrainError, TrainOptions, TrainRequest, run_training

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

TINY = DenseNetConfig(growth_rate=4, block_depths=(1, 1, 1), compression=1.0, bottleneck=False, init_features=8,
                      stem="cifar", in_channels=1, num_classes=10, input_size=8)
OPTS = TrainOptions(epochs=2, batch_size=64, seed=2)


@pytest.fixture(scope="module")
def small():
    return load_dataset("digits").subset(192, 96, seed=0)


def _params(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_bf16_channels_last_trains_and_is_recorded(tmp_path, small):
    plain = train(TINY, small, OPTS, tmp_path / "a.pt")
    fast = train(TINY, small, OPTS, tmp_path / "b.pt", settings=RunSettings(precision="bf16", channels_last=True))
    ck = _params(tmp_path / "b.pt")
    meta = ck["metadata"]
    assert (meta["precision"], meta["channels_last"], meta["world_size"], meta["backend"]) == ("bf16", True, 1, "none")
    assert all(v.is_contiguous() for v in ck["state_dict"].values())  # a plain NCHW model loads it
    assert fast.history[-1]["loss"] < fast.history[0]["loss"] * 1.05  # it still learns
    # bf16 really ran: the same seed in fp32 gives different numbers
    assert fast.history[0]["loss"] != plain.history[0]["loss"]
    assert abs(fast.history[0]["loss"] - plain.history[0]["loss"]) < 0.1


def test_fp16_keeps_its_gradient_scaler_for_resume(tmp_path, small):
    train(TINY, small, OPTS, tmp_path / "c.pt", settings=RunSettings(precision="fp16"), keep_optimizer_at_end=True)
    state = _params(tmp_path / "c.pt")["train_state"]
    assert state["scaler"]["scale"] > 0 and "optimizer" in state


def test_memory_efficient_mode_is_used_and_computes_the_same(tmp_path, small, monkeypatch):
    calls = []
    real = model_module.cp.checkpoint

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(model_module.cp, "checkpoint", counting)
    opts = TrainOptions(epochs=1, batch_size=64, seed=4, augment=False)
    train(TINY, small, opts, tmp_path / "plain.pt")
    assert not calls
    train(TINY.replace(memory_efficient=True), small, opts, tmp_path / "eff.pt")
    assert len(calls) >= 3 * 3  # every dense layer of every batch recomputes
    a, b = _params(tmp_path / "plain.pt")["state_dict"], _params(tmp_path / "eff.pt")["state_dict"]
    weights = [k for k in a if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in weights)


def test_compile_wraps_the_model(tmp_path, small, monkeypatch):
    compiled = []

    def fake_compile(module, *args, **kwargs):
        compiled.append(module)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    train(TINY, small, TrainOptions(epochs=1, batch_size=96), tmp_path / "d.pt", settings=RunSettings(compile=True))
    assert len(compiled) == 1 and isinstance(compiled[0], torch.nn.Module)


def test_settings_are_validated_in_one_line(tmp_path, small):
    with pytest.raises(TrainError, match="SyncBatchNorm does not run on the CPU"):
        train(TINY, small, OPTS, tmp_path / "e.pt", device="cpu", settings=RunSettings(sync_bn=True))
    with pytest.raises(TrainError, match="workers must be from 0 to 256"):
        run_training(TrainRequest(settings=RunSettings(workers=-1)))
    with pytest.raises(TrainError, match="timeout must be"):
        run_training(TrainRequest(settings=RunSettings(dist_timeout=0)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fp16_and_channels_last_on_cuda(tmp_path, small):  # pragma: no cover - GPU machines only
    result = train(TINY, small, OPTS, tmp_path / "g.pt", device="cuda",
                   settings=RunSettings(precision="fp16", channels_last=True))
    assert result.device.startswith("cuda") and result.history[-1]["loss"] < result.history[0]["loss"] * 1.05


# ------------------------------------------------------ ImageNet-style folders
def _write_layout(root, per_class=(8, 3), size=(20, 14)):
    from PIL import Image

    rng = np.random.default_rng(0)
    for sub, n in zip(("train", "val"), per_class):
        for c, name in enumerate(("cat", "dog")):
            d = root / sub / name
            d.mkdir(parents=True)
            for i in range(n):
                base = np.full((size[1], size[0], 3), 60 + 120 * c, np.uint8)
                noise = rng.integers(0, 60, base.shape, dtype=np.uint8)
                Image.fromarray(base + noise).save(d / f"{i}.png")
    return root


def test_imagenet_layout_is_detected_and_read_per_image(tmp_path):
    root = _write_layout(tmp_path / "inet")
    assert detect_kind(root) == "imagenet"
    data = load_dataset(str(root), size=8)
    assert data.name == "imagenet" and data.classes == ["cat", "dog"]
    assert isinstance(data.train, FileSplit) and (len(data.train), len(data.test)) == (16, 6)
    assert (data.channels, data.size, data.num_classes) == (3, 8, 2)
    img, label = data.train[(3, 7)]
    assert img.dtype == torch.uint8 and img.shape == (3, 8, 8) and label == 0
    assert torch.equal(img, data.train[(3, 7)][0])  # the same key draws the same crop
    assert any(not torch.equal(data.train[(i, 1)][0], data.train[(i, 2)][0]) for i in range(16))
    centre = data.test[0][0]
    assert torch.equal(centre, data.test[(0, 99)][0])  # held-out images are not augmented
    sub = data.subset(4, None, seed=0)
    assert isinstance(sub.train, FileSplit) and len(sub.train) == 4 and len(sub.test) == 6


def test_imagenet_training_gives_the_same_weights_with_or_without_workers(tmp_path):
    root = _write_layout(tmp_path / "inet")
    data = load_dataset(f"imagenet:{root}", size=8)
    cfg = TINY.replace(in_channels=3, num_classes=2)
    opts = TrainOptions(epochs=2, batch_size=8, seed=0)
    a = train(cfg, data, opts, tmp_path / "w0.pt", settings=RunSettings(workers=0))
    b = train(cfg, data, opts, tmp_path / "w1.pt", settings=RunSettings(workers=1))
    sa, sb = _params(tmp_path / "w0.pt")["state_dict"], _params(tmp_path / "w1.pt")["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa) and a.history[0]["loss"] == b.history[0]["loss"]
    meta = _params(tmp_path / "w0.pt")["metadata"]
    assert meta["dataset"]["name"] == "imagenet" and meta["dataset"]["augment"] == "resized-crop-flip"
    assert len(meta["normalize"]["mean"]) == 3 and a.dataset["num_test"] == 6
    model = model_module.build_model(cfg)
    model.load_state_dict(sa)
    norm = meta["normalize"]
    assert evaluate(model, data.test, 255.0, norm["mean"], norm["std"])[1] == meta["heldout_accuracy"]


def test_imagenet_layout_errors_are_one_line(tmp_path):
    root = _write_layout(tmp_path / "inet")
    (root / "train" / "dog" / "3.png").write_bytes(b"\x89PNG broken")
    data = load_dataset(f"imagenet:{root}", size=8)
    cfg = TINY.replace(in_channels=3, num_classes=2)
    with pytest.raises(DataError, match=r"^'3\.png' is not a readable image \(\w+\)\.$"):
        train(cfg, data, TrainOptions(epochs=1, batch_size=16), tmp_path / "x.pt", settings=RunSettings(workers=1))
    empty = tmp_path / "empty"
    (empty / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="lacks val/"):
        load_dataset(f"imagenet:{empty}")
