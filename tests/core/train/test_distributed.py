"""Training in several processes: two gloo ranks on the CPU, the launcher, and the plain helpers.

The two-rank runs fork this process (torch is already imported: each rank starts in well under
a second) and set the variables torchrun would; the launcher test goes through the real
``torch.distributed.run``. NCCL paths run only where CUDA GPUs exist.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from densegui.core.arch import registry
from densegui.core.arch.densenet import model as model_module
from densegui.core.train import distributed
from densegui.core.train import group as group_module
from densegui.core.train import loop as train_module
from densegui.core.train import records as records_module
from densegui.core.weights.checkpoint import load_checkpoint
from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.train.data import load_dataset
from densegui.core.train.distributed import DistEnv, per_rank_batch, shard, torchrun_command
from densegui.core.train.batches import channel_stats, evaluate
from densegui.core.train.setup import (Progress, RunSettings, TrainCancelled, TrainError, TrainOptions, TrainRequest,
                                       run_training)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

TINY = DenseNetConfig(growth_rate=4, block_depths=(1, 1, 1), compression=1.0, bottleneck=False, init_features=8,
                      stem="cifar", in_channels=1, num_classes=10, input_size=8)
NOAUG = TrainOptions(epochs=1, batch_size=40, seed=3, augment=False)
LIMIT = 200
RANK_TIMEOUT_S = 120  # a safety net against a hung rank, far above a run's few seconds


# ------------------------------------------------------------------ harness
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, body, out: Path) -> None:  # pragma: no cover - child
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    try:
        record = {"status": "ok", **body(rank)}
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        record = {"status": f"{type(exc).__name__}: {exc}"}
    torch.save(record, out / f"rank{rank}.pt")


def run_ranks(body, where: Path, world: int = 2, check: bool = True) -> list[dict | None]:
    """``body(rank)`` in ``world`` forked processes set up as torchrun would; their returned dicts
    (None for a rank that died; with ``check``, all must have succeeded)."""
    import torch._dynamo  # noqa: F401 - DDP imports it (seconds): once here, not once per forked rank

    ctx = mp.get_context("fork")
    port = _free_port()
    procs = [ctx.Process(target=_rank_main, args=(r, world, port, body, where)) for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(RANK_TIMEOUT_S)
    hung = [p for p in procs if p.is_alive()]
    for p in hung:
        p.kill()
    assert not hung, "a rank hung"
    records = [torch.load(where / f"rank{r}.pt", weights_only=False) if (where / f"rank{r}.pt").exists() else None
               for r in range(world)]
    if check:
        assert [r and r["status"] for r in records] == ["ok"] * world, records
    return records


def _recording_build(inputs: list, models: list):
    """build_model that keeps the model and the inputs of its training forwards."""
    real = model_module.build_model

    def build(cfg):
        m = real(cfg)
        m.register_forward_pre_hook(lambda mod, args: inputs.append(args[0].detach().clone()) if mod.training else None)
        models.append(m)
        return m

    return build


@pytest.fixture(scope="module")
def digits_subset():
    """The training subset run_training draws for LIMIT images, and its image → index map."""
    data = load_dataset("digits").subset(LIMIT, None, seed=NOAUG.seed)
    index = {bytes(row.tolist()): i for i, row in enumerate(data.train.images.flatten(1))}
    assert len(index) == LIMIT  # every image distinct: an input names its image
    return data, index


def _indices(batch: torch.Tensor, data, index) -> list[int]:
    mean, std = channel_stats(data.train, data.scale)
    raw = ((batch * std[0] + mean[0]) * data.scale).round().to(torch.uint8).flatten(1)
    return [index[bytes(r.tolist())] for r in raw]


# ------------------------------------------------------------- two gloo ranks
def test_two_ranks_share_the_data_and_the_weights_and_write_one_checkpoint(tmp_path, digits_subset, monkeypatch):
    data, index = digits_subset
    ckdir = tmp_path / "ck"
    ckdir.mkdir()

    def body(rank):
        inputs, models, lrs = [], [], []
        registry.build_model = _recording_build(inputs, models)  # this forked rank only
        register_optimizer_step_pre_hook(lambda opt, args, kwargs: lrs.append(opt.param_groups[0]["lr"]))
        result = run_training(TrainRequest(config=TINY, options=NOAUG, out=str(ckdir / "run.pt"), device="cpu",
                                           limit_train=LIMIT, threads=1))
        return {"inputs": inputs, "state": models[0].state_dict(), "world": result.world_size,
                "rank": result.rank, "acc": result.val_accuracy, "lrs": lrs}

    ranks = run_ranks(body, tmp_path)
    # the single-process run of the same global batch, for its batches
    inputs, models, lrs = [], [], []
    monkeypatch.setattr(registry, "build_model", _recording_build(inputs, models))
    hook = register_optimizer_step_pre_hook(lambda opt, args, kwargs: lrs.append(opt.param_groups[0]["lr"]))
    try:
        run_training(TrainRequest(config=TINY, options=NOAUG, out=str(tmp_path / "one.pt"), device="cpu",
                                  limit_train=LIMIT, threads=1))
    finally:
        hook.remove()
    # 5 steps: ÷10 from the first step at or past 50 % (step 3 of 0..4) and 75 % (step 4), on every rank
    assert lrs == ranks[0]["lrs"] == ranks[1]["lrs"] == pytest.approx([0.1, 0.1, 0.1, 0.01, 0.001])

    seen = [[_indices(b, data, index) for b in r["inputs"]] for r in ranks]
    assert [len(s) for s in seen] == [5, 5] and all(len(b) == 20 for s in seen for b in s)  # 40 / 2 per rank
    halves = [{i for b in s for i in b} for s in seen]
    assert len(halves[0]) == len(halves[1]) == LIMIT // 2
    assert not halves[0] & halves[1] and halves[0] | halves[1] == set(range(LIMIT))
    single = [_indices(b, data, index) for b in inputs]
    assert [set(a) | set(b) for a, b in zip(*seen)] == [set(b) for b in single]  # batch b is the same images

    a, b = ranks[0]["state"], ranks[1]["state"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # identical after the steps
    assert [r["world"] for r in ranks] == [2, 2] and [r["rank"] for r in ranks] == [0, 1]

    assert sorted(p.name for p in ckdir.iterdir()) == ["run.pt"]  # rank 0 alone wrote, no temporaries
    ck = torch.load(ckdir / "run.pt", map_location="cpu", weights_only=True)
    meta = ck["metadata"]
    assert (meta["world_size"], meta["backend"], meta["per_rank_batch"]) == (2, "gloo", 20)
    assert all(torch.equal(ck["state_dict"][k], a[k]) for k in a)
    # the gathered held-out accuracy is exact: the whole split, re-measured from the checkpoint
    model = model_module.build_model(TINY)
    model.load_state_dict(ck["state_dict"])
    norm = meta["normalize"]
    assert evaluate(model, data.test, data.scale, norm["mean"], norm["std"])[1] == meta["heldout_accuracy"]
    assert ranks[0]["acc"] == ranks[1]["acc"] == meta["heldout_accuracy"]


def test_resume_under_torchrun_starts_every_rank_from_rank_0s_file(tmp_path):
    part = tmp_path / "part.pt"
    opts = TrainOptions(epochs=2, batch_size=40, seed=5)
    epochs = []
    with pytest.raises(TrainCancelled):
        run_training(TrainRequest(config=TINY, options=opts, out=str(part), device="cpu", limit_train=LIMIT,
                                  threads=1),
                     progress=lambda p: epochs.append(p) if p.kind == "epoch" else None, cancel=lambda: bool(epochs))
    first = torch.load(part, map_location="cpu", weights_only=True)["train_state"]["history"]

    def body(rank):
        if rank != 0:  # only rank 0 may read the file
            def refuse(path):
                raise AssertionError(f"rank {rank} read {path}")

            records_module.read_train_checkpoint = refuse
        logs = []
        result = run_training(TrainRequest(out=str(part), resume=True, threads=1), log=logs.append)
        return {"history": result.history, "logs": logs}

    ranks = run_ranks(body, tmp_path)
    def learned(history):  # what the ranks agree on (their clocks differ)
        return [{k: v for k, v in h.items() if k not in ("seconds", "images_per_s")} for h in history]

    assert [len(r["history"]) for r in ranks] == [2, 2]
    assert learned(ranks[0]["history"]) == learned(ranks[1]["history"])
    assert ranks[0]["history"][0] == ranks[1]["history"][0] == first[0]  # epoch 1 came from rank 0's file
    assert any("trained by 1 process(es), now 2" in line for line in ranks[0]["logs"]) and not ranks[1]["logs"]
    ck = torch.load(part, map_location="cpu", weights_only=True)
    assert ck["metadata"]["complete"] is True and ck["metadata"]["world_size"] == 2


def test_a_dead_rank_ends_the_others_promptly_without_a_launcher(tmp_path):
    """No torchrun agent to stop them: rank 0's next collective fails, in one line, instead of hanging."""
    out = tmp_path / "ck" / "run.pt"

    def body(rank):
        if rank == 1:
            real = train_module.epoch_seed

            def die_in_epoch_2(seed, epoch):
                if epoch == 1:
                    os.kill(os.getpid(), signal.SIGKILL)
                return real(seed, epoch)

            train_module.epoch_seed = die_in_epoch_2
        run_training(TrainRequest(config=TINY, options=TrainOptions(epochs=3, batch_size=40, seed=1), out=str(out),
                                  device="cpu", limit_train=LIMIT, threads=1,
                                  settings=RunSettings(dist_timeout=RANK_TIMEOUT_S)))
        return {}

    rank0, rank1 = run_ranks(body, tmp_path, check=False)  # run_ranks fails the test if rank 0 hangs
    assert rank1 is None
    assert rank0["status"].startswith("GroupLost: rank 0 lost contact with the other processes (")
    assert "\n" not in rank0["status"] and rank0["status"].endswith("); the job stops.")
    assert sorted(p.name for p in out.parent.iterdir()) == ["run.pt"]
    assert load_checkpoint(out).metadata["epochs_done"] == 1  # the last complete epoch stays


# ------------------------------------------------------- the launcher, for real
def _rank_pid(tag: str, rank: int) -> int | None:
    """The pid of the process whose environment carries ``tag`` and RANK=rank (Linux /proc)."""
    want = {f"DENSEGUI_TEST_RUN={tag}".encode(), f"RANK={rank}".encode()}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                env = set(Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"))
            except OSError:
                continue
            if want <= env:
                return int(entry)
    return None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the rank through /proc")
def test_a_killed_rank_fails_the_launched_job_in_one_line(tmp_path, monkeypatch):
    tag = uuid.uuid4().hex
    monkeypatch.setenv("DENSEGUI_TEST_RUN", tag)
    out = tmp_path / "run.pt"
    killed, events = [], []

    def progress(p: Progress) -> None:
        events.append(p)
        if p.kind == "epoch" and not killed:
            pid = _rank_pid(tag, 1)
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    start = time.monotonic()
    request = TrainRequest(config=TINY, options=TrainOptions(epochs=100, batch_size=64, seed=0), out=str(out),
                           device="cpu", threads=1, nproc=2,
                           settings=RunSettings(dist_timeout=RANK_TIMEOUT_S))
    with pytest.raises(TrainError) as info:
        # the safety net cancels after RANK_TIMEOUT_S: a TrainCancelled would mean the job hung
        run_training(request, progress=progress, cancel=lambda: time.monotonic() - start > RANK_TIMEOUT_S)
    message = str(info.value)
    assert killed and not isinstance(info.value, TrainCancelled)
    assert "\n" not in message and message.startswith("rank 1 was killed by SIGKILL"), message
    kept = max(e.epoch for e in events if e.kind == "epoch")  # the ranks may finish one more before the kill
    assert message.endswith(f"The checkpoint of epoch {kept} is kept ({out})."), message
    assert events[0].kind == "start" and "× 2 processes (gloo)" in events[0].message
    assert _rank_pid(tag, 0) is None  # rank 0 was stopped with the group
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]
    loaded = load_checkpoint(out)  # what `densegui reuse` opens
    assert loaded.metadata["world_size"] == 2 and loaded.metadata["complete"] is False


# ------------------------------------------------- the launcher's protocol, faked
def _fake(script: str) -> list[str]:
    return [sys.executable, "-c", "import sys, time, json\n" + script]


def _event(kind: str, /, **fields) -> str:
    return f"print({distributed.encode_event(kind, **fields)!r}, flush=True)\n"


def test_launcher_streams_rank_0_and_returns_its_result():
    p1 = Progress("epoch", 1, 1, 3, 3, 0.5, 0.75, 100.0, 0.1, 0.4, 0.8, 1.0, "x.pt").to_dict()
    result = {"config": TINY.to_dict(), "checkpoint": "x.pt", "history": [{"epoch": 1}], "val_accuracy": 0.8,
              "seconds": 1.0, "adapted": [], "dataset": {}, "options": NOAUG.to_dict(), "device": "cpu",
              "world_size": 2, "rank": 0}
    script = ("assert json.load(open(sys.argv[-1]))['nproc'] == 2\n" + "print('noise from a library')\n"
              + _event("log", text="hello") + _event("progress", **p1) + _event("result", **result))
    got, logs = [], []
    done = distributed.launch(TrainRequest(nproc=2).to_dict(), nproc=2, progress=got.append, log=logs.append,
                              command=_fake(script))
    assert logs == ["hello"] and len(got) == 1 and got[0].val_accuracy == 0.8 and got[0].kind == "epoch"
    from densegui.core.train.records import TrainResult

    assert TrainResult.from_dict(done).world_size == 2 and TrainResult.from_dict(done).config == TINY


def test_cancel_stops_the_launched_group(tmp_path):
    p1 = Progress("epoch", 1, 9, 3, 3, checkpoint="x.pt").to_dict()
    pidfile = tmp_path / "pid"
    script = f"import os; open({str(pidfile)!r}, 'w').write(str(os.getpid()))\n" + _event("progress", **p1) + \
        "time.sleep(60)\n"
    seen = []
    with pytest.raises(TrainCancelled, match=r"all 2 processes were stopped; the checkpoint of epoch 1 is kept"):
        distributed.launch({}, nproc=2, progress=seen.append, cancel=lambda: bool(seen), command=_fake(script))
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # already reaped: stopped, not left running


@pytest.mark.parametrize("script, expected", [
    (_event("error", rank=1, message="the dataset is missing.", kind="user")
     + _event("error", rank=0, message="rank 0 lost contact", kind="lost") + "sys.exit(1)",
     "rank 1: the dataset is missing."),
    ("sys.stderr.write('Root Cause (first observed failure):\\n[0]:\\n  rank      : 1 (local_rank: 1)\\n"
     "  exitcode  : -9 (pid: 7)\\n')\n" + _event("error", rank=0, message="rank 0 lost contact", kind="lost")
     + "sys.exit(1)", "rank 1 was killed by SIGKILL; the other processes were stopped."),
    ("sys.stderr.write('something broke\\n'); sys.exit(3)",
     "the training processes failed (torch.distributed.run exited with 3): something broke"),
    ("pass", "the training processes ended without a result."),
])
def test_a_failed_group_is_one_line(script, expected):
    with pytest.raises(TrainError) as info:
        distributed.launch({}, nproc=2, command=_fake(script))
    assert str(info.value) == expected


# ------------------------------------------------------------- plain helpers
def test_environment_shards_and_batches():
    assert DistEnv.from_environ({}) == DistEnv() and not DistEnv().distributed
    env = DistEnv.from_environ({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
                                "MASTER_ADDR": "h", "MASTER_PORT": "1"})
    assert (env.rank, env.world_size, env.local_rank, env.local_world_size, env.distributed) == (3, 4, 1, 2, True)
    with pytest.raises(TrainError, match="RANK='x' is not a whole number"):
        DistEnv.from_environ({"RANK": "x", "WORLD_SIZE": "2"})
    with pytest.raises(TrainError, match="MASTER_ADDR"):
        DistEnv.from_environ({"RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(TrainError, match="do not fit"):
        DistEnv.from_environ({"RANK": "2", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1"})
    assert per_rank_batch(64, 4) == 16
    with pytest.raises(TrainError, match="the batch size 64 does not divide among 3 processes"):
        per_rank_batch(64, 3)
    order = list(range(11))
    parts = [shard(order, 3, r) for r in range(3)]
    assert parts == [[0, 3, 6], [1, 4, 7], [2, 5, 8]] and shard(order, 1, 0) is order


def test_torchrun_commands():
    single = torchrun_command(["train", "--epochs", "2"], 2, python="py")
    assert single == ["py", "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone",
                      "--max-restarts", "0", "-m", "densegui", "train", "--epochs", "2"]
    multi = torchrun_command(["train"], 4, "2", "node0:29400", python="py")
    assert multi[5:13] == ["--nnodes", "2", "--rdzv-backend", "c10d", "--rdzv-endpoint", "node0:29400",
                           "--rdzv-id", "densegui-train"]
    for args, message in [((["x"], 2, "2"), "needs --rdzv-endpoint"), ((["x"], 0), "from 1 to 1024"),
                          ((["x"], 2, "two", "h:1"), "--nnodes must be"), ((["x"], 2, "2", "a b"), "HOST:PORT")]:
        with pytest.raises(TrainError, match=message):
            torchrun_command(*args)


def test_request_round_trip_and_launch_refusals():
    req = TrainRequest(config=TINY, dataset="digits", options=NOAUG, out="x.pt", limit_train=9, threads=1,
                       keep=("input_size",), settings=RunSettings(precision="bf16", workers=2), nproc=2,
                       nnodes="1:2", rdzv_endpoint="h:1")
    assert TrainRequest.from_dict(req.to_dict()) == req and req.launches and not TrainRequest().launches
    for bad, message in [(TrainRequest(options=TrainOptions(batch_size=63), nproc=2), "does not divide among 2"),
                         (TrainRequest(nproc=2, device="cuda:1"), "auto, cpu or cuda"),
                         (TrainRequest(settings=RunSettings(precision="fp8")), "precision must be"),
                         (TrainRequest(nnodes="2"), "--rdzv-endpoint")]:
        with pytest.raises(TrainError, match=message):
            run_training(bad)


def test_importing_it_loads_no_torch():
    code = "import sys, densegui.core.train.distributed; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# ----------------------------------------------------------------------- NCCL
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL across processes needs two CUDA GPUs")
def test_two_gpus_train_with_nccl(tmp_path):  # pragma: no cover - GPU machines only
    out = tmp_path / "run.pt"
    result = run_training(TrainRequest(config=TINY, options=TrainOptions(epochs=1, batch_size=64), out=str(out),
                                       device="cuda", nproc=2, settings=RunSettings(precision="bf16")))
    meta = torch.load(out, map_location="cpu", weights_only=True)["metadata"]
    assert result.world_size == 2 and (meta["backend"], meta["world_size"], meta["precision"]) == ("nccl", 2, "bf16")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_each_rank_takes_the_gpu_of_its_local_rank():  # pragma: no cover - GPU machines only
    env = DistEnv(rank=0, world_size=2, local_rank=0, local_world_size=2)
    assert group_module.group_device(env, "auto") == torch.device("cuda", 0)
    with pytest.raises(TrainError, match="has no GPU"):
        group_module.group_device(DistEnv(1, 2, torch.cuda.device_count(), 2), "cuda")
