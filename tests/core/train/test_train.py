"""Training core: learning, exact resume, checkpoint contents, recipe, augmentation."""

from __future__ import annotations

import math

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.train.data import load_dataset
from densegui.core.errors import ConfigError
from densegui.core.train.batches import evaluate
from densegui.core.train.loop import augment_batch, epoch_seed, train
from densegui.core.train.setup import TrainCancelled, TrainError, TrainOptions, adapt_config, default_config

TINY = DenseNetConfig(growth_rate=4, block_depths=(2, 2, 2), compression=1.0, bottleneck=False, init_features=8,
                      stem="cifar", in_channels=1, num_classes=10, input_size=8, drop_rate=0.2)


# single-threaded: bit-exact runs, and tiny models gain nothing from more threads
pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def small(digits):
    return digits.subset(256, 120, seed=0)


def test_short_run_learns_above_chance(tmp_path, small):
    from densegui.core.arch.densenet.model import build_model

    torch.manual_seed(0)
    untrained = build_model(TINY)
    mean = [float((small.train.images.float() / 16).mean())]
    std = [float((small.train.images.float() / 16).std())]
    _, before = evaluate(untrained, small.test, 16.0, mean, std)
    events = []
    result = train(TINY, small, TrainOptions(epochs=8, batch_size=32, seed=0), tmp_path / "c.pt",
                   progress=events.append)
    # chance is 10 %; eight short epochs on 256 images must do far better
    assert result.val_accuracy > 0.5 > before + 0.2
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    batches = [e for e in events if e.kind == "batch"]
    epochs = [e for e in events if e.kind == "epoch"]
    assert events[0].kind == "start" and len(epochs) == 8 and len(batches) == 8 * 8
    assert all(e.images_per_s > 0 for e in batches)
    assert epochs[-1].val_accuracy == result.val_accuracy
    # the accuracy the progress reports is the one evaluate() re-measures from the checkpoint
    ck = torch.load(tmp_path / "c.pt", map_location="cpu", weights_only=True)
    model = build_model(TINY)
    model.load_state_dict(ck["state_dict"])
    norm = ck["metadata"]["normalize"]
    assert evaluate(model, small.test, 16.0, norm["mean"], norm["std"])[1] == result.val_accuracy


def test_resume_after_interruption_is_bit_identical(tmp_path, small):
    opts = TrainOptions(epochs=4, batch_size=64, seed=7)
    full = train(TINY, small, opts, tmp_path / "full.pt")

    started = []

    def cancel_in_epoch_3():
        return len(started) >= 3

    def progress(p):
        if p.kind == "batch" and p.batch == 1:
            started.append(p.epoch)

    with pytest.raises(TrainCancelled, match="epoch 3"):
        train(TINY, small, opts, tmp_path / "part.pt", progress=progress, cancel=cancel_in_epoch_3)
    part = torch.load(tmp_path / "part.pt", map_location="cpu", weights_only=True)
    assert part["train_state"]["epoch"] == 2 and "optimizer" in part["train_state"]
    assert part["metadata"]["complete"] is False

    resumed = train(TINY, small, opts, tmp_path / "part.pt", resume=tmp_path / "part.pt")
    a = torch.load(tmp_path / "full.pt", map_location="cpu", weights_only=True)
    b = torch.load(tmp_path / "part.pt", map_location="cpu", weights_only=True)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert [h["loss"] for h in full.history] == [h["loss"] for h in resumed.history]
    assert b["metadata"]["complete"] is True and "optimizer" not in b["train_state"]
    # a different seed really gives different weights (the comparison above can fail)
    other = train(TINY, small, TrainOptions(epochs=1, batch_size=64, seed=8), tmp_path / "o.pt")
    assert other.history[0]["loss"] != full.history[0]["loss"]
    with pytest.raises(TrainError, match="already finished"):
        train(TINY, small, opts, tmp_path / "x.pt", resume=tmp_path / "part.pt")
    with pytest.raises(TrainError, match="different recipe"):
        train(TINY, small, TrainOptions(epochs=5, batch_size=64, seed=7), tmp_path / "x.pt",
              resume=tmp_path / "part.pt")


def test_cancel_is_polled_before_every_batch(tmp_path, small):
    batches = []
    with pytest.raises(TrainCancelled, match="epoch 1"):
        train(TINY, small, TrainOptions(epochs=3, batch_size=16, seed=0), tmp_path / "c.pt",
              progress=lambda p: batches.append(p.batch) if p.kind == "batch" else None,
              cancel=lambda: len(batches) >= 3)
    assert batches == [1, 2, 3]  # stopped at the very next batch
    assert not (tmp_path / "c.pt").exists()  # no epoch finished, nothing written


def test_checkpoint_contents_and_atomic_write(tmp_path, small):
    from densegui.core.weights.checkpoint import load_checkpoint

    train(TINY, small, TrainOptions(epochs=1, batch_size=128, seed=3), tmp_path / "c.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]  # no temporary file left behind
    ck = torch.load(tmp_path / "c.pt", map_location="cpu", weights_only=True)
    meta = ck["metadata"]
    for key in ("dataset", "epochs", "heldout_accuracy", "seed", "densegui_version", "torch_version", "date",
                "recipe", "normalize", "history", "train_seconds"):
        assert key in meta, key
    assert meta["dataset"]["name"] == "digits" and meta["dataset"]["num_test"] == 120
    assert meta["seed"] == 3 and meta["epochs"] == 1 and meta["torch_version"] == str(torch.__version__)
    assert meta["recipe"]["nesterov"] is True and meta["recipe"]["momentum"] == 0.9
    assert meta["recipe"]["weight_decay"] == 1e-4
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert loaded.config == TINY and not loaded.inferred
    assert loaded.metadata["heldout_accuracy"] == meta["heldout_accuracy"]


def _expected_lrs(lr: float, epochs: int, batches: int) -> list[float]:
    """The paper's ÷10 at 50 % and 75 % of training, by step, counted in whole steps: step i of
    n = epochs·batches is past a milestone m once i ≥ m·n, i.e. 2i ≥ n and 4i ≥ 3n."""
    n = epochs * batches
    return [lr if 2 * i < n else lr / 10 if 4 * i < 3 * n else lr / 100 for i in range(n)]


@pytest.mark.parametrize("epochs", [1, 2, 3, 30])
def test_lr_schedule_drops_by_step_never_early(epochs):
    o = TrainOptions(epochs=epochs, lr=0.2)
    for batches in (1, 4, 23):  # 23: the digits' 1438 training images in batches of 64
        n = epochs * batches
        got = [o.lr_at(e, b, batches) for e in range(epochs) for b in range(batches)]
        assert got == pytest.approx(_expected_lrs(0.2, epochs, batches))
        drops = [round(math.log10(0.2 / x)) for x in got]
        assert drops == sorted(drops)
        for k, m in ((1, 0.5), (2, 0.75)):  # each drop comes at the first step at or past its fraction
            if k in drops:
                first = drops.index(k)
                assert first / n >= m > (first - 1) / n
        if n >= 4:  # every run of 4 steps or more sees all three rates
            assert set(drops) == {0, 1, 2}
    # without batches: the rate of the epoch's first step (the old per-epoch rule dropped at epoch 22 of 30)
    per_epoch = [o.lr_at(e) for e in range(epochs)]
    assert per_epoch == pytest.approx(_expected_lrs(0.2, epochs, 1))
    if epochs == 30:
        assert per_epoch.index(pytest.approx(0.02)) == 15 and per_epoch.index(pytest.approx(0.002)) == 23


def _record_steps(lrs):
    """Every SGD step's learning rates, read from the optimizer just before it steps."""
    return register_optimizer_step_pre_hook(
        lambda opt, args, kwargs: lrs.append([g["lr"] for g in opt.param_groups]))


@pytest.mark.parametrize("epochs", [1, 2])
def test_a_run_steps_at_the_scheduled_rates(tmp_path, small, epochs):
    steps, events = [], []
    hook = _record_steps(steps)
    try:  # 256 images in batches of 64: 4 steps an epoch
        train(TINY, small, TrainOptions(epochs=epochs, batch_size=64, seed=0), tmp_path / "c.pt",
              progress=events.append)
    finally:
        hook.remove()
    expected = _expected_lrs(0.1, epochs, 4)
    assert len(steps) == 4 * epochs and all(len(set(s)) == 1 for s in steps)
    assert [s[0] for s in steps] == pytest.approx(expected)
    assert [e.lr for e in events if e.kind == "batch"] == pytest.approx(expected)  # progress shows the step's
    if epochs == 1:  # a 1-epoch run goes through all three rates, in order
        assert [s[0] for s in steps] == pytest.approx([0.1, 0.1, 0.01, 0.001])
    ends = [e.lr for e in events if e.kind == "epoch"]
    assert ends == pytest.approx(expected[3::4])  # an epoch reports the rate it ended at


def test_a_resumed_run_steps_at_the_uninterrupted_runs_rates(tmp_path, small):
    opts = TrainOptions(epochs=3, batch_size=64, seed=1)  # 12 steps: drops at steps 6 and 9, mid-epoch
    full, part, resumed = [], [], []
    hook = _record_steps(full)
    try:
        train(TINY, small, opts, tmp_path / "full.pt")
    finally:
        hook.remove()
    hook = _record_steps(part)
    try:
        with pytest.raises(TrainCancelled, match="epoch 2"):
            train(TINY, small, opts, tmp_path / "part.pt", cancel=lambda: len(part) >= 5)
    finally:
        hook.remove()
    hook = _record_steps(resumed)
    try:
        train(TINY, small, opts, tmp_path / "part.pt", resume=tmp_path / "part.pt")
    finally:
        hook.remove()
    assert [s[0] for s in full] == pytest.approx(_expected_lrs(0.1, 3, 4))
    assert resumed == full[4:]  # from epoch 2's first step on, step for step


def test_epoch_seeds_and_recipe_checks():
    seeds = {epoch_seed(s, e) for s in range(5) for e in range(50)}
    assert len(seeds) == 250 and all(0 <= x < 2**63 for x in seeds)
    with pytest.raises(TrainError, match="epochs"):
        TrainOptions(epochs=0).validate()
    with pytest.raises(TrainError, match="learning rate"):
        TrainOptions(lr=math.nan).validate()


def test_augmentation_shifts_and_flips_match_a_direct_computation():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5) + 1
    g = torch.Generator().manual_seed(11)
    out = augment_batch(x, "shift", 1, g)
    g = torch.Generator().manual_seed(11)
    dy = torch.randint(0, 3, (2,), generator=g) - 1
    dx = torch.randint(0, 3, (2,), generator=g) - 1
    for i in range(2):
        expect = torch.zeros(3, 5, 5)
        for r in range(5):
            for c in range(5):
                sr, sc = r + int(dy[i]), c + int(dx[i])
                if 0 <= sr < 5 and 0 <= sc < 5:
                    expect[:, r, c] = x[i, :, sr, sc]
        assert torch.equal(out[i], expect)
    flips = augment_batch(x.repeat(16, 1, 1, 1), "crop-flip", 0, torch.Generator().manual_seed(0))
    flipped = [bool(torch.equal(f, x[i % 2].flip(2))) for i, f in enumerate(flips)]
    kept = [bool(torch.equal(f, x[i % 2])) for i, f in enumerate(flips)]
    assert all(a or b for a, b in zip(flipped, kept)) and any(flipped) and any(kept)


def test_config_adapts_to_the_dataset(small):
    cfg, notes = adapt_config(default_config().replace(in_channels=3, num_classes=100, input_size=32), small)
    assert (cfg.in_channels, cfg.num_classes, cfg.input_size) == (1, 10, 8)
    assert notes == ["in_channels 3 → 1", "num_classes 100 → 10", "input_size 32 → 8"]
    with pytest.raises(ConfigError, match="num_classes is 100 but the dataset digits has 10"):
        adapt_config(default_config().replace(num_classes=100), small, keep=("num_classes",))
    with pytest.raises(ConfigError, match="does not match the dataset"):
        train(default_config().replace(num_classes=5), small, TrainOptions(epochs=1), "unused.pt")


def test_default_is_the_shipped_architecture():
    cfg = default_config()
    assert (cfg.growth_rate, cfg.compression, cfg.bottleneck, cfg.stem, cfg.num_blocks) == (12, 1.0, False, "cifar", 3)
    assert cfg.spatial_sizes() == [8, 4, 2]
