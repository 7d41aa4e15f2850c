"""Meta builds skip parameter initialisation, on their own thread only."""

from __future__ import annotations

import threading

import torch
from torch import nn

from densegui.core.arch.registry import get_preset
from densegui.core.arch.layers import layers, meta_build
from densegui.core.arch.densenet.model import build_model


def test_a_meta_model_holds_torchs_own_classes_and_can_be_materialised():
    """The uninitialised layers exist only while building: the meta model pickles, and
    ``to_empty`` + ``reset_parameters`` give it torch's initial values."""
    import io
    import pickle

    cfg = get_preset("densenet121").replace(block_depths=(2, 2, 2, 2))
    with meta_build():
        assert type(layers().Conv2d(3, 4, 1)) is not nn.Conv2d  # (inside: the uninitialised ones)
    model = build_model(cfg, "meta")
    assert layers() is nn
    assert all(p.is_meta for p in model.parameters())
    typed = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))]
    assert typed and all(type(m) in (nn.Conv2d, nn.BatchNorm2d, nn.Linear) for m in typed)
    pickle.loads(pickle.dumps(model))
    torch.save(model, io.BytesIO())
    real = model.to_empty(device="cpu")
    for m in real.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    norm = real.features.norm5
    assert torch.equal(norm.running_var, torch.ones_like(norm.running_var)) and int(norm.num_batches_tracked) == 0
    assert real.features.conv0.weight.abs().max() > 0


def test_a_real_build_on_another_thread_during_a_meta_build_is_initialised():
    """meta_build is per thread: a CPU model built meanwhile elsewhere gets torch's layers and values."""
    built = {}
    inside = threading.Event()
    done = threading.Event()

    def other() -> None:
        inside.wait(10)
        torch.manual_seed(0)
        built["model"] = build_model(get_preset("densenet121").replace(block_depths=(1, 1, 1, 1)))
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    with meta_build():
        assert layers() is not nn
        inside.set()
        assert done.wait(60)
    thread.join()
    model = built["model"]
    conv = model.features.conv0
    assert type(conv) is nn.Conv2d and not conv.weight.is_meta
    std = conv.weight.std().item()  # He-normal: std = sqrt(2 / fan_in) = sqrt(2 / (3·7·7))
    assert abs(std - (2 / (3 * 7 * 7)) ** 0.5) < 0.02
    assert torch.equal(model.features.norm0.weight, torch.ones_like(model.features.norm0.weight))
