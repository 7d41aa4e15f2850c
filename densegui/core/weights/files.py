"""densegui's checkpoint files: the format, atomic writes and the temporaries of killed writes.

A densegui checkpoint is a ``torch.save`` file of one plain dict that
``torch.load(..., weights_only=True)`` can read back, never arbitrary objects::

    {
      "format": "densegui-checkpoint", "version": 1,
      "config": <the configuration's to_dict()>,
      "state_dict": {name: tensor, ...},        # CPU tensors, torchvision names
      "metadata": {...},                         # JSON-like: dataset, accuracy, seed, versions, date
      "train_state": {...},                      # optional: what `densegui train --resume` needs
    }

Files are written atomically (temporary file in the same folder + rename), so a crash never
leaves a half-written checkpoint under the final name. :func:`read_torch_file` reads one back
safely (:mod:`densegui.core.weights.reading`). Nothing here infers an architecture: the trainer
reads and writes its checkpoints through this module alone.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from densegui.core.weights.reading import CheckpointError, read_torch_file

if TYPE_CHECKING:
    import torch

__all__ = ["FORMAT", "SAFETENSORS_CONFIG_KEY", "VERSION", "CheckpointError", "atomic_torch_save", "read_torch_file",
           "remove_stale_temporaries", "save_checkpoint", "save_safetensors"]

FORMAT = "densegui-checkpoint"
VERSION = 1
SAFETENSORS_CONFIG_KEY = "densegui_config"  # the configuration's key in a .safetensors header

# A temporary is ".NAME.<8 hex>.<pid>.<node>.tmp": the writer's pid, and a hash of its machine's
# name (<node>, 8 hex) that says whether that pid can be looked up here. mkstemp-style names
# without a pid (".NAME.<8 chars>.tmp") are recognised too.
_TEMPORARY = r"\.{name}\.(?:[a-z0-9_]{{8}}|[0-9a-f]{{8}}\.(?P<pid>[1-9][0-9]{{0,9}})\.(?P<node>[0-9a-f]{{8}}))\.tmp"


def _node() -> str:
    import hashlib
    import socket

    return hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def _create_temporary(target: Path) -> tuple[int, Path]:
    """A new, locked temporary next to ``target``, open for writing, named after this process.

    Created with mode 0o666 so that the kernel applies the umask (or the folder's default ACL)
    as to any other file the user writes; mkstemp's 0o600 would stay on the checkpoint.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    tag = f"{os.getpid()}.{_node()}"
    for _ in range(100):
        tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.{tag}.tmp"
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (ImportError, OSError):  # no flock (Windows, some network file systems): the pid tells
            pass
        return fd, tmp
    raise FileExistsError(f"no free temporary name next to {str(target)!r}")


def _lock_state(path: str) -> bool | None:
    """Whether a running save holds ``path``'s flock (True), nobody does (False), or that cannot
    be told (None: no flock here or on that file system; the file cannot be opened)."""
    try:
        import fcntl
    except ImportError:  # Windows
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # ENOLCK and the like: this file system has no flock
        return None
    finally:
        os.close(fd)
    return False


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine is running (a zombie has exited: its locks are gone)."""
    if os.name != "posix":  # (os.kill would terminate it on Windows; there an open file cannot be unlinked)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        pass
    except OSError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def _writer_alive(path: str, pid: int | None, node: str | None) -> bool:
    """Whether the save that created temporary ``path`` may still be running.

    Its flock decides when there is one: held, the writer is running; free, it is gone, however
    recent the file, except while a writer of this machine named in the file is still alive (it
    may have created the file and not locked it yet). Without flock, the writer's pid decides;
    a temporary of another machine, or one without a pid in its name, is then kept.
    """
    locked = _lock_state(path)
    if locked:
        return True
    if pid is not None and node == _node():
        return _pid_alive(pid)
    return locked is None and os.name == "posix"  # (Windows: the unlink of an open file fails instead)


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Delete the temporaries that killed writes of ``path`` left next to it; return them.

    Only regular files named exactly as :func:`atomic_torch_save` names its temporaries for this
    target (``.NAME.<8 hex>.<pid>.<node>.tmp``, or mkstemp-style ``.NAME.<8 chars>.tmp``) are
    candidates, and of those every one whose writer is gone, however recent: a live writer keeps
    an flock on its temporary (a killed one's lock dies with it), and its name holds its pid,
    which decides where there is no flock (:func:`_writer_alive`). Age never decides.
    """
    target = Path(path)
    pattern = re.compile(_TEMPORARY.format(name=re.escape(target.name)))
    try:
        entries = [(e, m) for e in os.scandir(target.parent) if (m := pattern.fullmatch(e.name))]
    except OSError:
        return []
    removed: list[Path] = []
    for entry, match in entries:
        try:
            info = entry.stat(follow_symlinks=False)
            pid = int(match["pid"]) if match["pid"] else None
            if not stat.S_ISREG(info.st_mode) or _writer_alive(entry.path, pid, match["node"]):
                continue
            os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file next to ``path``, then rename over it.

    Stale temporaries of earlier, killed writes are removed first. A new file gets the mode
    the umask gives; a file it replaces keeps its permission bits.
    """
    import torch

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    fd, tmp = _create_temporary(target)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            try:
                mode = stat.S_IMODE(os.stat(target).st_mode) & 0o777
            except OSError:
                mode = None
            if mode is not None and hasattr(os, "fchmod"):
                os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def save_checkpoint(
    path: str | Path,
    state_dict: Mapping[str, torch.Tensor],
    config: Any,
    metadata: Mapping[str, Any] | None = None,
    train_state: Mapping[str, Any] | None = None,
) -> Path:
    """Write a densegui checkpoint atomically; return its path."""
    payload: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "config": config.validate().to_dict(),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in state_dict.items()},
        "metadata": dict(metadata or {}),
    }
    if train_state is not None:
        payload["train_state"] = dict(train_state)
    return atomic_torch_save(payload, path)


def save_safetensors(
    path: str | Path,
    state_dict: Mapping[str, torch.Tensor],
    config: Any = None,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``state_dict`` as ``.safetensors`` (config and metadata as JSON strings in its header)."""
    from safetensors.torch import save_file

    meta = {str(k): json.dumps(v) for k, v in (metadata or {}).items()}
    if config is not None:
        meta[SAFETENSORS_CONFIG_KEY] = config.validate().to_json(indent=None)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    save_file(tensors, str(target), metadata=meta)
    return target
