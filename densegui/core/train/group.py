"""The live process group of a distributed run (torch.distributed): joining it, its collectives,
and telling a failed collective from other errors.

:func:`open_group` starts the group torchrun set up, with a timeout, so a stuck or vanished peer
fails a collective instead of hanging it; :class:`Group` holds the collectives training needs
(sums, rank 0's value shared with every rank, rank 0's buffers). Imports torch only when a
function needs it (the environment, shards and the launcher are in
:mod:`densegui.core.train.distributed`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from densegui.core.errors import DenseguiError, first_line, user_message
from densegui.core.train.options import TrainError

if TYPE_CHECKING:
    import torch

    from densegui.core.train.distributed import DistEnv

T = TypeVar("T")


class GroupLost(TrainError):
    """A collective failed: another rank died, or did not answer within the timeout."""


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


def lost_contact(rank: int, exc: BaseException) -> GroupLost:
    """The one-line error of a rank whose collective failed (gloo's text starts with a source path)."""
    reason = re.sub(r"^\[[^\]]*\]\s*", "", first_line(exc, 400)).split(". ")[0][:100]
    return GroupLost(f"rank {rank} lost contact with the other processes ({reason}); the job stops.")
