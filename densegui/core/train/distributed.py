"""Training in several processes: torchrun's environment, shards, the launcher and its events.

Under ``torchrun`` (or ``densegui train --nproc N``, which starts ``torch.distributed.run``)
every process runs the same training with DistributedDataParallel: gloo on the CPU, NCCL
on CUDA (one GPU per process, ``cuda:LOCAL_RANK``).

* :class:`DistEnv` reads RANK / WORLD_SIZE / LOCAL_RANK from the launcher's environment.
* :func:`shard` gives each rank a disjoint, equal share of an epoch's order.
* :func:`launch` runs ``python -m torch.distributed.run … -m densegui train --worker-request F``
  as one child process group, streams rank 0's events (JSON lines on stdout) back as
  :class:`Progress`, stops the group on cancel, and turns a failure into one line.

This module never imports torch (the window and the CLI's launcher use :class:`DistEnv`,
:func:`launch` and the event codec); the live process group is :mod:`densegui.core.train.group`.
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
from typing import Any, TypeVar

from densegui.core.train.options import Progress, TrainCancelled, TrainError

T = TypeVar("T")
EVENT = "densegui-train"  # the key that marks a worker's JSON line
STOP_GRACE_S = 10.0  # after SIGTERM, how long the launcher waits before SIGKILL
_NNODES = re.compile(r"^[1-9]\d*(:[1-9]\d*)?$")
_ROOT_CAUSE = re.compile(r"Root Cause.*?rank\s*:\s*(\d+).*?exitcode\s*:\s*(-?\d+)", re.S)


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

