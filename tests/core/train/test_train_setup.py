"""core.train setup, options, records and types: torch-free types, dataset shapes, and run_training's stages (cancel, resume, errors)."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest
import torch

from densegui.core.arch import registry
from densegui.core.train import data as data_module
from densegui.core.train import loop as train_module
from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.errors import ConfigError
from densegui.core.train.setup import (Progress, TrainCancelled, TrainError, TrainOptions, TrainRequest, TrainResult,
                                       adapt_config, dataset_shape, default_config, run_training)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

TINY = DenseNetConfig(growth_rate=4, block_depths=(1, 1, 1), compression=1.0, bottleneck=False, init_features=8,
                      stem="cifar", in_channels=1, num_classes=10, input_size=8)
OPTS = TrainOptions(epochs=2, batch_size=64, seed=3)


def test_importing_it_loads_no_torch():
    code = "import sys, densegui.core.train.setup, densegui.core.train.types; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_dataset_shapes_known_without_reading_files():
    assert dataset_shape("digits") == dataset_shape(" Digits ") == (1, 10, 8)
    assert dataset_shape("cifar10:/nowhere") == (3, 10, 32)
    assert dataset_shape("cifar100:/nowhere") == (3, 100, 32)
    assert dataset_shape("mnist:/nowhere") == dataset_shape("fashion-mnist:/x") == (1, 10, 28)
    for spec in ("folder:/x", "/some/dir", "C:\\data", "cifar:/x", "digits:/x", ""):
        assert dataset_shape(spec) is None, spec
    known = ("digits", "cifar10", "cifar100", "mnist", "fashion-mnist")
    assert set(known) <= set(data_module.DATASET_KINDS)
    d = data_module.load_dataset("digits")
    assert dataset_shape("digits") == (d.channels, d.num_classes, d.size)


def test_adapt_config_to_a_shape():
    cfg, notes = adapt_config(default_config(), (3, 100, 32))
    assert (cfg.in_channels, cfg.num_classes, cfg.input_size) == (3, 100, 32)
    assert notes == ["in_channels 1 → 3", "num_classes 10 → 100", "input_size 8 → 32"]
    with pytest.raises(ConfigError, match="num_classes is 10 but the dataset has 100"):
        adapt_config(default_config(), (3, 100, 32), keep=("num_classes",))


def test_plain_types_pickle():
    request = TrainRequest(config=TINY, dataset="digits", options=OPTS, out="x.pt", limit_train=100)
    result = TrainResult(TINY, "x.pt", [{"epoch": 1.0}], 0.5, 1.0, ["n"], {"name": "digits"}, OPTS, "cpu")
    for obj in (request, result, Progress("start", 1, 2), OPTS):
        assert repr(pickle.loads(pickle.dumps(obj))) == repr(obj)  # repr: Progress holds NaNs
    err = pickle.loads(pickle.dumps(TrainCancelled("training cancelled before it started.")))
    assert isinstance(err, TrainCancelled) and str(err) == "training cancelled before it started."


def test_request_is_validated():
    with pytest.raises(TrainError, match="threads must be from 1 to 1024"):
        run_training(TrainRequest(threads=0))
    with pytest.raises(TrainError, match="resuming needs"):
        run_training(TrainRequest(resume=True))
    with pytest.raises(TrainError, match="epochs must be"):
        run_training(TrainRequest(options=TrainOptions(epochs=0)))


@pytest.fixture
def recorded(monkeypatch):
    """Counts of dataset loads and model builds during run_training."""
    calls = {"load": 0, "build": 0}
    real_load, real_build = data_module.load_dataset, registry.build_model

    def load(*args, **kwargs):
        calls["load"] += 1
        calls.get("on_load", lambda: None)()
        return real_load(*args, **kwargs)

    def build(*args, **kwargs):
        calls["build"] += 1
        return real_build(*args, **kwargs)

    monkeypatch.setattr(data_module, "load_dataset", load)
    monkeypatch.setattr(registry, "build_model", build)
    return calls


def test_cancel_before_the_call_loads_nothing(tmp_path, recorded):
    with pytest.raises(TrainCancelled, match="before it started"):
        run_training(TrainRequest(config=TINY, options=OPTS, out=str(tmp_path / "c.pt")), cancel=lambda: True)
    assert recorded["load"] == 0 and recorded["build"] == 0
    assert list(tmp_path.iterdir()) == []


def test_cancel_during_dataset_loading_stops_before_the_model_is_built(tmp_path, recorded):
    flag = []
    recorded["on_load"] = lambda: flag.append(True)
    with pytest.raises(TrainCancelled, match="after loading the dataset"):
        run_training(TrainRequest(config=TINY, options=OPTS, out=str(tmp_path / "c.pt")), cancel=lambda: bool(flag))
    assert recorded["load"] == 1 and recorded["build"] == 0
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("polls, message", [
    (4, "before epoch 1"),  # after building the model
    (5, "before epoch 1"),  # after building the optimizer
    (6, "in epoch 1"),  # before the first batch
])
def test_cancel_after_model_and_optimizer(tmp_path, recorded, polls, message):
    seen = []

    def cancel():
        seen.append(True)
        return len(seen) >= polls

    with pytest.raises(TrainCancelled, match=message):
        run_training(TrainRequest(config=TINY, options=OPTS, out=str(tmp_path / "c.pt")), cancel=cancel)
    assert len(seen) == polls and recorded["build"] == 1
    assert list(tmp_path.iterdir()) == []  # no epoch finished: nothing written, no temporary left


def test_run_subset_adapt_interrupt_and_resume(tmp_path):
    logs, events = [], []
    full = run_training(TrainRequest(config=TINY.replace(num_classes=3, input_size=16), options=OPTS,
                                     out=str(tmp_path / "full.pt"), device="cpu", limit_train=200),
                        progress=events.append, log=logs.append)
    assert logs == ["adapted the configuration to digits: num_classes 3 → 10, input_size 16 → 8"]
    assert full.adapted == ["num_classes 3 → 10", "input_size 16 → 8"] and full.config == TINY
    assert full.dataset["num_train"] == 200 and full.dataset["num_test"] == 359
    assert full.options == OPTS and full.device == "cpu" and full.epochs_done == 2
    assert events[0].kind == "start" and events[0].checkpoint == str(tmp_path / "full.pt")

    part = tmp_path / "part.pt"
    done = []
    with pytest.raises(TrainCancelled, match="epoch 2"):
        run_training(TrainRequest(config=TINY, options=OPTS, out=str(part), limit_train=200),
                     progress=lambda p: done.append(p) if p.kind == "epoch" else None, cancel=lambda: bool(done))
    logs.clear()
    # resuming needs nothing but the file: configuration, recipe, data and subset come from it
    resumed = run_training(TrainRequest(out=str(part), resume=True), log=logs.append)
    assert logs == [f"resuming {part} after epoch 1/2"]
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    a = torch.load(tmp_path / "full.pt", map_location="cpu", weights_only=True)["state_dict"]
    b = torch.load(part, map_location="cpu", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(TrainError, match="already finished all 2 epochs"):
        run_training(TrainRequest(out=str(part), resume=True))
    with pytest.raises(TrainError, match="was trained on 'digits', not 'mnist:/x'"):
        run_training(TrainRequest(dataset="mnist:/x", resume=str(part)))


def test_out_of_memory_is_one_line(tmp_path, monkeypatch):
    def oom(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")

    monkeypatch.setattr(train_module, "train", oom)
    with pytest.raises(TrainError, match=r"^out of memory on cpu; use a smaller batch size or model\.$"):
        run_training(TrainRequest(config=TINY, options=OPTS, out=str(tmp_path / "c.pt"), device="cpu"))
