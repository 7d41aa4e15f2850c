"""Training in several processes: torchrun's environment, the process group, shards, the launcher.

Under ``torchrun`` (or ``densegui train --nproc N``, which starts ``torch.distributed.run``)
every process runs the same training with DistributedDataParallel: gloo on the CPU, NCCL
on CUDA (one GPU per process, ``cuda:LOCAL_RANK``).

* :class:`DistEnv` reads RANK / WORLD_SIZE / LOCAL_RANK from the launcher's environment.
* :func:`open_group` starts the process group with a timeout, so a stuck or vanished peer
  fails a collective instead of hanging it; :class:`Group` holds the collectives training
  needs (sums, rank 0's value shared with every rank, rank 0's buffers).
* :func:`shard` gives each rank a disjoint, equal share of an epoch's order.
* :func:`launch` runs ``python -m torch.distributed.run … -m densegui train --worker-request F``
  as one child process group, streams rank 0's events (JSON lines on stdout) back as
  :class:`Progress`, stops the group on cancel, and turns a failure into one line.

Importing this module does not import torch (the window and the CLI's launcher use
:class:`DistEnv`, :func:`launch` and the event codec); the group functions import it.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from densegui.core.errors import DenseguiError, first_line, user_message
from densegui.core.train.types import Progress, TrainCancelled, TrainError

if TYPE_CHECKING:
    import torch

T = TypeVar("T")
EVENT = "densegui-train"  # the key that marks a worker's JSON line
STOP_GRACE_S = 10.0  # after SIGTERM, how long the launcher waits before SIGKILL
_NNODES = re.compile(r"^[1-9]\d*(:[1-9]\d*)?$")
_ROOT_CAUSE = re.compile(r"Root Cause.*?rank\s*:\s*(\d+).*?exitcode\s*:\s*(-?\d+)", re.S)


class GroupLost(TrainError):
    """A collective failed: another rank died, or did not answer within the timeout."""


# ---------------------------------------------------------------- environment
@dataclass(frozen=True)
class DistEnv:
    """Where this process stands in a torchrun job (world_size 1: not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> DistEnv:
        env = os.environ if environ is None else environ
        if "RANK" not in env or "WORLD_SIZE" not in env:
            return cls()
        values = {}
        for key, default in (("RANK", None), ("WORLD_SIZE", None), ("LOCAL_RANK", "RANK"),
                             ("LOCAL_WORLD_SIZE", "WORLD_SIZE")):
            text = env.get(key, env.get(default or key, ""))
            try:
                values[key] = int(text)
            except ValueError:
                raise TrainError(f"{key}={text!r} is not a whole number (torchrun sets it).") from None
        out = cls(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"], values["LOCAL_WORLD_SIZE"])
        if not (0 <= out.rank < out.world_size and 0 <= out.local_rank < max(out.local_world_size, 1)):
            raise TrainError(f"RANK={out.rank}, WORLD_SIZE={out.world_size}, LOCAL_RANK={out.local_rank} "
                             "do not fit together.")
        if out.distributed and not (env.get("MASTER_ADDR") and env.get("MASTER_PORT")):
            raise TrainError("WORLD_SIZE is set but MASTER_ADDR / MASTER_PORT are not; start the run with torchrun.")
        return out


def per_rank_batch(batch_size: int, world_size: int) -> int:
    """The batch of one rank (``batch_size`` is the global batch); TrainError unless it divides."""
    if batch_size % world_size:
        raise TrainError(f"the batch size {batch_size} does not divide among {world_size} processes; "
                         f"use a multiple of {world_size} (it is the global batch).")
    return batch_size // world_size


def shard(order: Sequence[T], world_size: int, rank: int) -> Sequence[T]:
    """This rank's share of ``order``: every world_size-th item from ``rank``, after dropping the
    last ``len % world_size`` so all ranks get as many (a different few each epoch)."""
    if world_size <= 1:
        return order
    return order[: len(order) - len(order) % world_size][rank::world_size]


# ---------------------------------------------------------------------- group
@dataclass
class Group:
    """A live process group and this rank's device."""

    env: DistEnv
    device: torch.device
    backend: str
    timeout: float

    @property
    def rank(self) -> int:
        return self.env.rank

    @property
    def world_size(self) -> int:
        return self.env.world_size

    def all_sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sums over all ranks (float64)."""
        import torch
        import torch.distributed as dist

        t = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return [float(v) for v in t.cpu()]

    def share(self, fn: Callable[[], T]) -> T:
        """``fn()`` computed on rank 0 and sent to every rank. If it raises there, every rank
        raises the same one-line error (the others never wait for a value that will not come)."""
        import torch.distributed as dist

        box: list[Any] = [None]
        failure: BaseException | None = None
        if self.rank == 0:
            try:
                box[0] = ("ok", fn())
            except Exception as exc:  # noqa: BLE001 - every rank must learn of it
                failure = exc
                box[0] = ("error", user_message(exc))
        dist.broadcast_object_list(box, src=0)
        kind, value = box[0]
        if kind == "error":
            if failure is not None and isinstance(failure, DenseguiError):
                raise failure
            raise TrainError(value)
        return value

    def sync_buffers(self, module: torch.nn.Module) -> None:
        """Rank 0's buffers (BatchNorm running statistics) on every rank, as in its checkpoint."""
        import torch.distributed as dist

        for buf in module.buffers():
            dist.broadcast(buf, src=0)

    def wrap(self, model: torch.nn.Module, sync_bn: bool = False) -> torch.nn.Module:
        import torch

        if sync_bn:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def barrier(self) -> None:
        """Wait until every rank is here (a rank that died makes it fail after the timeout)."""
        import torch.distributed as dist

        dist.barrier()

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def group_device(env: DistEnv, spec: str) -> torch.device:
    """This rank's device: ``cuda:LOCAL_RANK`` for auto (with CUDA) or cuda, else the CPU."""
    import torch

    text = (spec or "auto").strip().lower()
    if text not in ("auto", "cpu", "cuda"):
        raise TrainError(f"device {spec!r} cannot be shared by {env.world_size} processes; use auto, cpu or cuda "
                         "(each process takes cuda:LOCAL_RANK).")
    if text == "cpu" or (text == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise TrainError("device 'cuda' is not available: no CUDA GPU is present.")
    if env.local_rank >= torch.cuda.device_count():
        raise TrainError(f"local rank {env.local_rank} has no GPU: this machine has {torch.cuda.device_count()}; "
                         f"start at most {torch.cuda.device_count()} processes per machine.")
    return torch.device("cuda", env.local_rank)


def open_group(env: DistEnv, device: str = "auto", timeout: float = 300.0) -> Group:
    """Join the process group torchrun set up (env://): NCCL on CUDA, gloo on the CPU."""
    import datetime

    import torch
    import torch.distributed as dist

    dev = group_device(env, device)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    try:
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout), rank=env.rank,
                                world_size=env.world_size)
    except Exception as exc:  # noqa: BLE001 - rendezvous failures are many kinds of exception
        raise GroupLost(f"rank {env.rank} could not join the process group: {first_line(exc)}") from None
    return Group(env, dev, backend, float(timeout))


def is_comm_error(exc: BaseException) -> bool:
    """True for a failed collective (a peer that died, a timeout), as gloo and NCCL report them."""
    try:
        import torch.distributed as dist

        if isinstance(exc, getattr(dist, "DistError", ())):
            return True
    except ImportError:  # pragma: no cover
        pass
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(
        k in text for k in ("connection closed by peer", "connection reset", "gloo", "nccl", "timed out",
                            "broken pipe", "socket"))


# ----------------------------------------------------------------- the events
def encode_event(kind: str, /, **fields: Any) -> str:
    return json.dumps({EVENT: kind, **fields})


def decode_event(line: str) -> tuple[str, dict[str, Any]] | None:
    """(kind, fields) of a worker's event line, None for any other output."""
    start = line.find("{")
    if start < 0 or EVENT not in line:
        return None
    try:
        obj = json.loads(line[start:])
    except ValueError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get(EVENT), str):
        return None
    kind = obj.pop(EVENT)
    return kind, obj


def emit(kind: str, /, **fields: Any) -> None:
    """One event line on stdout, written in one call (lines of several ranks do not interleave)."""
    data = (encode_event(kind, **fields) + "\n").encode()
    sys.stdout.flush()
    os.write(sys.stdout.fileno(), data)


def die_with_parent(sig: int = getattr(signal, "SIGKILL", 9)) -> None:
    """Linux: ``sig`` reaches this process when its parent dies (no orphaned ranks keep training)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(sig))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


# -------------------------------------------------------------------- launcher
def torchrun_command(worker_args: Sequence[str], nproc: int, nnodes: str = "1", rdzv_endpoint: str = "",
                     python: str | None = None) -> list[str]:
    """``python -m torch.distributed.run …`` that starts ``nproc`` processes of ``-m densegui
    <worker_args>`` here: standalone on one machine, c10d rendezvous at ``rdzv_endpoint`` otherwise."""
    if not isinstance(nproc, int) or not 1 <= nproc <= 1024:
        raise TrainError(f"the number of processes must be from 1 to 1024, got {nproc!r}.")
    nnodes = str(nnodes).strip()
    if not _NNODES.match(nnodes):
        raise TrainError(f"--nnodes must be N or MIN:MAX, got {nnodes!r}.")
    if nnodes != "1" and not rdzv_endpoint:
        raise TrainError("training on several machines needs --rdzv-endpoint HOST:PORT (the same on every machine).")
    if rdzv_endpoint and not re.match(r"^[^\s:]+(:\d+)?$|^\[[0-9a-fA-F:]+\](:\d+)?$", rdzv_endpoint):
        raise TrainError(f"--rdzv-endpoint must be HOST or HOST:PORT, got {rdzv_endpoint!r}.")
    cmd = [python or sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc)]
    if rdzv_endpoint:
        cmd += ["--nnodes", nnodes, "--rdzv-backend", "c10d", "--rdzv-endpoint", rdzv_endpoint,
                "--rdzv-id", "densegui-train"]
    else:
        cmd += ["--standalone"]
    return cmd + ["--max-restarts", "0", "-m", "densegui", *worker_args]


def lost_contact(rank: int, exc: BaseException) -> GroupLost:
    """The one-line error of a rank whose collective failed (gloo's text starts with a source path)."""
    reason = re.sub(r"^\[[^\]]*\]\s*", "", first_line(exc, 400)).split(". ")[0][:100]
    return GroupLost(f"rank {rank} lost contact with the other processes ({reason}); the job stops.")


def _failure(errors: list[dict[str, Any]], stderr: str, code: int) -> str:
    """One line for a group that failed: a rank's own error first (a refusal, then a crash), else
    which rank died and how, else a rank that lost the others."""
    order = {"user": 0, "internal": 1}
    errors = sorted(errors, key=lambda e: (order.get(e.get("kind"), 2), int(e.get("rank", 0))))
    if errors and errors[0].get("kind") in order:
        e = errors[0]
        return e["message"] if int(e.get("rank", 0)) == 0 else f"rank {e['rank']}: {e['message']}"
    m = _ROOT_CAUSE.search(stderr)
    if m:
        rank, exitcode = int(m.group(1)), int(m.group(2))
        if exitcode < 0:
            try:
                how = f"was killed by {signal.Signals(-exitcode).name}"
            except ValueError:
                how = f"was killed by signal {-exitcode}"
        else:
            how = f"exited with code {exitcode}"
        return f"rank {rank} {how}; the other processes were stopped."
    if errors:
        return errors[0]["message"]
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    return f"the training processes failed (torch.distributed.run exited with {code})" + (
        f": {lines[-1][:200]}" if lines else ".")


def _pump(stream, sink: Callable[[str], None]) -> None:
    for line in iter(stream.readline, ""):
        sink(line)
    stream.close()


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to torch.distributed.run (its agent stops the ranks), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    try:
        proc.terminate()
        proc.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    except ProcessLookupError:  # pragma: no cover - it ended in between
        pass


def launch(request: Mapping[str, Any], *, nproc: int, nnodes: str = "1", rdzv_endpoint: str = "",
           threads: int | None = None, progress: Callable[[Progress], None] | None = None,
           cancel: Callable[[], bool] | None = None, log: Callable[[str], None] | None = None,
           poll_s: float = 0.1, command: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the training ``request`` (a ``TrainRequest.to_dict()``) in ``nproc`` processes per machine
    through ``torch.distributed.run`` and return rank 0's result dict (``TrainResult.to_dict()``).

    Rank 0's progress and log lines arrive through ``progress`` / ``log`` as they happen;
    ``cancel()`` is polled every ``poll_s`` and stops the whole group (TrainCancelled); a failed
    rank fails the run with one line (TrainError). ``command`` replaces the launcher (tests): it
    gets the request file's path as its last argument."""
    stop = cancel or (lambda: False)
    with tempfile.TemporaryDirectory(prefix="densegui-train-") as tmp:
        path = Path(tmp) / "request.json"
        path.write_text(json.dumps(dict(request)), encoding="utf-8")
        cmd = (torchrun_command(["train", "--worker-request", str(path)], nproc, nnodes, rdzv_endpoint)
               if command is None else [*command, str(path)])
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])  # densegui importable by the ranks, installed or not
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
        env["OMP_NUM_THREADS"] = str(threads or max(1, (os.cpu_count() or 1) // max(nproc, 1)))
        env["PYTHONUNBUFFERED"] = "1"
        lines: queue.Queue[str] = queue.Queue()
        tail: collections.deque[str] = collections.deque(maxlen=400)
        # its own session: a Ctrl-C reaches the launcher, which stops the group once; it ends with us
        posix = {"start_new_session": True, "preexec_fn": lambda: die_with_parent(signal.SIGTERM)} \
            if os.name == "posix" else {}
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, bufsize=1, env=env, **posix)
        except OSError as exc:
            raise TrainError(f"cannot start torch.distributed.run: {exc.strerror or exc}.") from None
        readers = [threading.Thread(target=_pump, args=(proc.stdout, lines.put), daemon=True),
                   threading.Thread(target=_pump, args=(proc.stderr, tail.append), daemon=True)]
        for r in readers:
            r.start()
        result: dict[str, Any] | None = None
        errors: list[dict[str, Any]] = []
        last_epoch: Progress | None = None
        try:
            while True:
                try:
                    line = lines.get(timeout=poll_s)
                except queue.Empty:
                    line = None
                event = decode_event(line) if line is not None else None
                if event is not None:
                    kind, fields = event
                    if kind == "progress":
                        p = Progress.from_dict(fields)
                        last_epoch = p if p.kind == "epoch" else last_epoch
                        if progress:
                            progress(p)
                    elif kind == "log" and log:
                        log(str(fields.get("text", "")))
                    elif kind == "error":
                        errors.append(fields)
                    elif kind == "result" and result is None:
                        result = fields
                if stop():
                    _stop(proc)
                    kept = (f"; the checkpoint of epoch {last_epoch.epoch} is kept ({last_epoch.checkpoint})"
                            if last_epoch else "")
                    raise TrainCancelled(f"training cancelled; all {nproc} processes were stopped{kept}.")
                if line is None and proc.poll() is not None and not readers[0].is_alive() and lines.empty():
                    break  # the reader has ended, so every line is in the queue
        except BaseException:
            _stop(proc)  # KeyboardInterrupt, a failing callback: never leave the group running
            raise
        for r in readers:
            r.join(5.0)
        code = proc.wait()
        if code == 0 and result is None:
            raise TrainError("the training processes ended without a result.")
        if code != 0 or result is None:
            kept = (f" The checkpoint of epoch {last_epoch.epoch} is kept ({last_epoch.checkpoint})."
                    if last_epoch and code != 0 else "")
            raise TrainError(_failure(errors, "".join(tail), code) + kept)
        return result

