"""``densegui train`` on the command line: a real (tiny) run, resume, and one-line errors."""

from __future__ import annotations

import json

import pytest
import torch

from densegui.cli import main

TINY_FLAGS = ["--growth-rate", "4", "--blocks", "1,1,1", "--init-features", "8", "--batch-size", "256",
              "--threads", "1"]


@pytest.fixture(autouse=True)
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _one_line_error(capsys, argv, pattern):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.startswith("densegui: error:") or "error:" in err
    import re

    assert re.search(pattern, err), err


def test_train_run_writes_checkpoint_and_json(tmp_path, capsys):
    out = tmp_path / "run.pt"
    # a preset for 3-channel 32×32 CIFAR is adapted to the 1-channel 8×8 digits, and the user is told
    assert main(["train", "--preset", "densenet-40-k12", *TINY_FLAGS, "--epochs", "2", "--out", str(out),
                 "--json"]) == 0
    cap = capsys.readouterr()
    summary = json.loads(cap.out)
    assert "adapted the configuration to digits: in_channels 3 → 1, input_size 32 → 8" in cap.err
    assert "epoch 2/2" in cap.err and "held-out" in cap.err and "img/s" in cap.err
    assert summary["config"]["in_channels"] == 1 and summary["config"]["block_depths"] == [1, 1, 1]
    assert len(summary["history"]) == 2 and summary["history"][1]["lr"] == pytest.approx(0.001)
    ck = torch.load(out, map_location="cpu", weights_only=True)
    assert ck["metadata"]["heldout_accuracy"] == summary["heldout_accuracy"]
    assert ck["metadata"]["dataset"]["num_test"] == 359


def test_resume_continues_the_stored_run(tmp_path, capsys):
    from densegui.core.train.data import load_dataset
    from densegui.core.train.loop import train
    from densegui.core.train.setup import TrainCancelled, TrainOptions

    data = load_dataset("digits")
    from densegui.core.arch.densenet.config import DenseNetConfig

    cfg = DenseNetConfig(growth_rate=4, block_depths=(1, 1, 1), compression=1.0, bottleneck=False,
                         init_features=8, stem="cifar", in_channels=1, num_classes=10, input_size=8)
    seen = []
    with pytest.raises(TrainCancelled):
        train(cfg, data, TrainOptions(epochs=2, batch_size=256, seed=5), tmp_path / "p.pt",
              progress=lambda p: seen.append(p.epoch) if p.kind == "epoch" else None,
              cancel=lambda: bool(seen))
    _one_line_error(capsys, ["train", "--resume", str(tmp_path / "p.pt"), "--epochs", "3"],
                    r"--epochs 3 differs from the resumed run's 2")
    _one_line_error(capsys, ["train", "--resume", str(tmp_path / "p.pt"), "--growth-rate", "8"],
                    r"--growth-rate cannot be combined with --resume")
    assert main(["train", "--resume", str(tmp_path / "p.pt"), "--threads", "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [h["epoch"] for h in summary["history"]] == [1, 2]
    _one_line_error(capsys, ["train", "--resume", str(tmp_path / "p.pt")], "already finished all 2 epochs")


def test_bad_input_is_one_line_exit_2(tmp_path, capsys):
    _one_line_error(capsys, ["train", "--dataset", str(tmp_path / "missing")], "does not exist")
    _one_line_error(capsys, ["train", "--dataset", f"mnist:{tmp_path}"], "lacks train-images-idx3-ubyte")
    _one_line_error(capsys, ["train", "--epochs", "0"], "epochs must be")
    _one_line_error(capsys, ["train", "--lr", "-1"], "learning rate")
    _one_line_error(capsys, ["train", "--num-classes", "3"], "num_classes is 3 but the dataset digits has 10")
    _one_line_error(capsys, ["train", "--device", "tpu"], "no such device")
    if not torch.cuda.is_available():
        _one_line_error(capsys, ["train", "--device", "cuda"], "not available")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    _one_line_error(capsys, ["train", "--resume", str(bad)], "'bad.pt' is not a checkpoint written by densegui train")
    _one_line_error(capsys, ["train", "--resume", str(tmp_path / "nope.pt")], "does not exist")
    _one_line_error(capsys, ["train", "--out", str(tmp_path), *TINY_FLAGS], "is a folder")


def test_progress_bar_on_a_terminal_is_one_carriage_return_line_per_epoch():
    import io

    from densegui.cli.train import _Bar
    from densegui.core.train.setup import Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    bar = _Bar(stream)
    for b in range(1, 4):
        bar(Progress("batch", 1, 2, b, 3, 0.5, 0.75, 1234.0, 0.1))
    bar(Progress("epoch", 1, 2, 3, 3, 0.5, 0.75, 1234.0, 0.1, 0.4, 0.8, 1.5, "x.pt"))
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.startswith("\repoch 1/2 [")
    assert "loss 0.5000 acc  75.0%" in text and "1234 img/s" in text
    assert text.rstrip().endswith("→ x.pt") and "held-out loss 0.4000 acc 80.00%" in text


def test_process_and_speed_flags_are_refused_in_one_line_before_anything_starts(tmp_path, capsys, monkeypatch):
    from densegui.core.train import distributed

    def no_launch(*args, **kwargs):
        raise AssertionError("launched")

    monkeypatch.setattr(distributed, "launch", no_launch)
    _one_line_error(capsys, ["train", "--nproc", "2", "--batch-size", "63"],
                    r"the batch size 63 does not divide among 2 processes; use a multiple of 2")
    _one_line_error(capsys, ["train", "--nproc", "2", "--nnodes", "2", "--rdzv-endpoint", "h:1", "--batch-size", "6"],
                    r"does not divide among 4 processes")
    _one_line_error(capsys, ["train", "--nnodes", "2"], r"needs --rdzv-endpoint HOST:PORT")
    _one_line_error(capsys, ["train", "--nproc", "2", "--device", "cuda:1"], r"auto, cpu or cuda")
    _one_line_error(capsys, ["train", "--nproc", "0"], r"from 1 to 1024")
    _one_line_error(capsys, ["train", "--workers", "-2"], r"workers must be from 0 to 256")
    _one_line_error(capsys, ["train", *TINY_FLAGS, "--sync-bn", "--device", "cpu", "--out", str(tmp_path / "s.pt")],
                    r"--sync-bn needs CUDA GPUs")
    # under torchrun every process refuses: each says which rank it is, and none launches another group
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    _one_line_error(capsys, ["train", "--nproc", "2"], r"^densegui: error: rank 1: this process already runs under "
                                                      r"torchrun; leave out --nproc")


def test_nproc_goes_through_the_launcher_with_the_whole_request(tmp_path, capsys, monkeypatch):
    from densegui.core.train import distributed
    from densegui.core.train.setup import TrainRequest, TrainResult, default_config

    seen = {}

    def fake_launch(request, **kwargs):
        seen.update(request=TrainRequest.from_dict(request), **kwargs)
        return TrainResult(default_config(), str(tmp_path / "x.pt"), [{"epoch": 1}], 0.5, 1.0,
                           dataset={"num_test": 359}, options=seen["request"].options, world_size=4).to_dict()

    monkeypatch.setattr(distributed, "launch", fake_launch)
    assert main(["train", "--nproc", "2", "--nnodes", "2", "--rdzv-endpoint", "node0:29400", "--precision", "bf16",
                 "--channels-last", "--epochs", "3", "--batch-size", "128", "--out", str(tmp_path / "x.pt"),
                 "--json"]) == 0
    req = seen["request"]
    assert (seen["nproc"], seen["nnodes"], seen["rdzv_endpoint"]) == (2, "2", "node0:29400")
    assert (req.options.epochs, req.options.batch_size, req.settings.precision, req.settings.channels_last) == \
        (3, 128, "bf16", True)
    assert json.loads(capsys.readouterr().out)["world_size"] == 4


def test_bf16_run_and_memory_efficient_resume(tmp_path, capsys):
    out = tmp_path / "r.pt"
    assert main(["train", *TINY_FLAGS, "--epochs", "2", "--precision", "bf16", "--channels-last",
                 "--out", str(out)]) == 0
    meta = torch.load(out, map_location="cpu", weights_only=True)["metadata"]
    assert (meta["precision"], meta["channels_last"], meta["world_size"], meta["per_rank_batch"]) == \
        ("bf16", True, 1, 256)
    capsys.readouterr()
    # --memory-efficient changes how, not what, so a resumed run may switch it (this one is finished)
    _one_line_error(capsys, ["train", "--resume", str(out), "--memory-efficient"], "already finished all 2 epochs")


_KILLED_DURING_A_CHECKPOINT = """
import io, sys, time
import torch
from densegui.cli import main

real_save, calls = torch.save, []

def second_write_hangs_half_way(obj, fh, *args, **kwargs):
    calls.append(1)
    if len(calls) < 2:
        return real_save(obj, fh, *args, **kwargs)
    buf = io.BytesIO()
    real_save(obj, buf)
    fh.write(buf.getvalue()[: len(buf.getvalue()) // 2])
    fh.flush()
    print("half written", flush=True)
    time.sleep(600)

torch.save = second_write_hangs_half_way
main(sys.argv[1:])
"""


@pytest.mark.skipif(not hasattr(__import__("signal"), "SIGKILL"), reason="SIGKILL")
def test_kill_9_during_a_checkpoint_write_then_resume_leaves_no_temporary(tmp_path, capsys):
    """Issue #25: the killed write's temporary is recent and unlocked; the resumed run removes it
    (its writer is dead) and completes."""
    import subprocess
    import sys

    out = tmp_path / "run.pt"
    argv = ["train", "--preset", "densenet-40-k12", *TINY_FLAGS, "--epochs", "2", "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_DURING_A_CHECKPOINT, *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line == "half written", proc.stderr.read()[-3000:]
        assert len(list(tmp_path.glob(".run.pt.*.tmp"))) == 1
    finally:
        proc.kill()  # SIGKILL
        proc.wait(timeout=60)
        proc.stdout.close()
        proc.stderr.close()
    assert main(["train", "--resume", str(out), "--threads", "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [h["epoch"] for h in summary["history"]] == [1, 2]
    assert list(tmp_path.glob(".*.tmp")) == [], list(tmp_path.iterdir())
    assert torch.load(out, map_location="cpu", weights_only=True)["train_state"]["epoch"] == 2
