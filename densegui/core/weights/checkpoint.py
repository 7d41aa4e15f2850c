"""densegui's checkpoint format: writing, and safely reading any DenseNet checkpoint.

A densegui checkpoint is a ``torch.save`` file of one plain dict that
``torch.load(..., weights_only=True)`` can read back, never arbitrary objects::

    {
      "format": "densegui-checkpoint", "version": 1,
      "config": DenseNetConfig.to_dict(),
      "state_dict": {name: tensor, ...},        # CPU tensors, torchvision names
      "metadata": {...},                         # JSON-like: dataset, accuracy, seed, versions, date
      "train_state": {...},                      # optional: what `densegui train --resume` needs
    }

Files are written atomically (temporary file in the same folder + rename), so
a crash never leaves a half-written checkpoint under the final name.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from densegui.core.arch.densenet.config import DenseNetConfig
from densegui.core.errors import ConfigError, DenseguiError, first_line, is_out_of_memory
from densegui.core.weights.infer import CHOICE_RULE, Candidate, choose_candidate, find_candidates, infer_config
from densegui.core.weights.statedict import (
    CheckpointError,
    check_finite,
    check_matches,
    has_legacy_keys,
    has_prefixes,
    is_tensor,
    normalize_state_dict,
)

if TYPE_CHECKING:
    import torch

# torch is imported only inside the functions that read or write files: LoadedCheckpoint and
# CheckpointError are unpickled in the GUI process, which never imports torch.

FORMAT = "densegui-checkpoint"
VERSION = 1

# A temporary is ".NAME.<8 hex>.<pid>.<node>.tmp": the writer's pid, and a hash of its machine's
# name (<node>, 8 hex) that says whether that pid can be looked up here. Older versions of this
# writer named it ".NAME.<8 chars>.tmp" (mkstemp's alphabet); their leftovers are recognised too.
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
    a temporary of another machine, or an older writer's (no pid in its name), is then kept.
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
    target (``.NAME.<8 hex>.<pid>.<node>.tmp``, or an older writer's ``.NAME.<8 chars>.tmp``) are
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
    config: DenseNetConfig,
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


# ====================================================================== reading
#
# Everything below reads a checkpoint without ever unpickling arbitrary
# objects: torch files go through ``torch.load(weights_only=True)`` (tensors,
# plain containers and the few data types of _data_globals), ``.safetensors``
# through the safetensors reader. Every failure is a :class:`CheckpointError`
# with a one-line message.

SAFETENSORS_CONFIG_KEY = "densegui_config"


@dataclass
class LoadedCheckpoint:
    """What :func:`load_checkpoint` returns.

    ``state_dict`` has torchvision's key names (whatever names the file used) and, unless
    ``notes`` says a part was not recognised, loads into ``build_model(config)`` with
    ``strict=True``. ``inferred`` is True when ``config`` was inferred from the weights rather
    than read from the file. ``candidate`` names the DenseNet these weights are when the file
    holds several (``candidates``, in the order of :data:`CHOICE_RULE`) or wraps one
    (``"state_dict/model"``: under the key ``state_dict``, keys prefixed ``model.``).
    """

    config: DenseNetConfig
    state_dict: dict[str, torch.Tensor]
    metadata: dict[str, Any] = field(default_factory=dict)
    source_format: str = ""
    inferred: bool = False
    path: str = ""
    candidate: str = ""
    candidates: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for the user: the file, its format, the configuration and, where the
        metadata says, what it was trained on and how well; which DenseNet of the file it is,
        and what was not recognised."""
        cfg = self.config
        name = Path(self.path).name if self.path else "checkpoint"
        origin = "inferred from the weights" if self.inferred else "stored in the file"
        layers = f"bottleneck (bn_size {cfg.bn_size})" if cfg.bottleneck else "basic layers"
        channels = "1 input channel" if cfg.in_channels == 1 else f"{cfg.in_channels} input channels"
        classes = "1 class" if cfg.num_classes == 1 else f"{cfg.num_classes} classes"
        text = (f"{name}{f' ({self.source_format})' if self.source_format else ''} — configuration {origin}: "
                f"k={cfg.growth_rate}, blocks {'-'.join(map(str, cfg.block_depths))}, {layers}, "
                f"θ={cfg.compression:g}, {cfg.stem} stem with {cfg.num_init_features} features, "
                f"{channels}, {classes}, input {cfg.input_size}×{cfg.input_size}.")
        training = self._training()
        if training:
            text += f" {training[0].upper()}{training[1:]}."
        others = [c for c in self.candidates if c != self.candidate]
        if others:
            why = f"chosen by the rule: {CHOICE_RULE}" if self.candidate == self.candidates[0] else "as asked"
            text += (f" The file holds {len(self.candidates)} DenseNets: shown {self.candidate!r} ({why}); "
                     f"also {', '.join(map(repr, others))}.")
        return text + "".join(f" {note[0].upper()}{note[1:]}." for note in self.notes)

    def _training(self) -> str:
        meta = self.metadata or {}
        shown = []
        dataset = meta.get("dataset")
        if isinstance(dataset, Mapping):
            dataset = dataset.get("name")
        if isinstance(dataset, str):
            shown.append(f"trained on {dataset}")
        for key in ("heldout_accuracy", "test_accuracy", "val_accuracy", "accuracy"):
            value = meta.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                label = {"heldout_accuracy": "held-out accuracy"}.get(key, key.replace("_", " "))
                shown.append(f"{label} {value:.2%}" if value <= 1 else f"{label} {value:g}")
                break
        if isinstance(meta.get("epochs"), int) and not isinstance(meta.get("epochs"), bool):
            shown.append(f"{meta['epochs']} epochs")
        return ", ".join(shown)


def _name(path: Path) -> str:
    return path.name or str(path)


def _sniff(path: Path) -> str:
    """'empty', 'zip', 'safetensors', 'pickle' or 'unknown' from the first bytes."""
    size = path.stat().st_size
    if size == 0:
        return "empty"
    with path.open("rb") as fh:
        head = fh.read(16)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if len(head) >= 9:
        n = int.from_bytes(head[:8], "little")
        if 2 <= n <= size - 8 and head[8:9] == b"{":
            return "safetensors"
    if head[:1] == b"\x80":  # pickle PROTO opcode: torch's legacy (pre-1.6) format or a plain pickle
        return "pickle"
    return "unknown"


def _readable_kind(path: Path) -> str:
    """:func:`_sniff`, with a file that cannot be read or is empty as a CheckpointError (one line)."""
    try:
        kind = _sniff(path)
    except OSError as exc:
        raise CheckpointError(f"cannot read {str(path)!r}: {exc.strerror or type(exc).__name__}.") from None
    if kind == "empty":
        raise CheckpointError(f"{_name(path)!r} is empty (0 bytes).")
    return kind


_GLOBAL_RE = re.compile(r"GLOBAL ([\w.]+)")


def _pickle_globals(path: Path, kind: str, limit: int = 200) -> list[str]:
    """Names a pickle (or a torch zip's data.pkl) would import, found by parsing its opcodes
    (nothing is executed)."""
    import io
    import pickletools

    found: list[str] = []
    strings: list[str] = []
    try:
        if kind == "zip":
            with zipfile.ZipFile(path) as archive:
                member = next(i for i in archive.infolist() if i.filename.endswith("data.pkl"))
                if member.file_size > 64 << 20:
                    return []
                fh: Any = io.BytesIO(archive.read(member))
        else:
            fh = path.open("rb")
        with fh:
            for op, arg, _pos in pickletools.genops(fh):
                if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
                    strings = (strings + [arg])[-2:]
                elif op.name in ("GLOBAL", "INST"):
                    found.append(str(arg).replace(" ", "."))
                elif op.name == "STACK_GLOBAL" and len(strings) == 2:
                    found.append(".".join(strings))
                if len(found) >= limit:
                    break
    except Exception:  # noqa: BLE001 - a malformed pickle: report what was seen so far
        pass
    return list(dict.fromkeys(found))


def _data_globals() -> list[Any]:
    """Data types, besides tensors and plain containers, that training checkpoints hold:

    * NumPy scalars, dtypes and arrays (``best_acc=np.float64(…)``): built from raw bytes;
    * ``argparse.Namespace`` (timm's and torchvision's ``args``): a bare attribute holder;
    * paths, read as pure paths (no file system access; a Windows path loads on Linux too).

    None of them runs code when built; anything nested in them still goes through PyTorch's
    restricted unpickler, so an arbitrary class inside an ``args`` is refused all the same.
    """
    import argparse
    import pathlib

    extra: list[Any] = [argparse.Namespace, pathlib.PurePosixPath, pathlib.PureWindowsPath]
    for module in ("pathlib", "pathlib._local"):
        extra += [(pathlib.PurePosixPath, f"{module}.PosixPath"), (pathlib.PureWindowsPath, f"{module}.WindowsPath"),
                  (pathlib.PurePosixPath, f"{module}.PurePosixPath"),
                  (pathlib.PureWindowsPath, f"{module}.PureWindowsPath")]
    try:
        import numpy as np

        multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    except (ImportError, AttributeError):  # pragma: no cover - numpy is a dependency
        return extra
    kinds = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
             np.float16, np.float32, np.float64, np.complex64, np.complex128)
    return [*extra, multiarray.scalar, multiarray._reconstruct, np.ndarray, np.dtype,  # noqa: SLF001
            *{type(np.dtype(k)) for k in kinds}]


_ALLOWED = ("torch.", "collections.OrderedDict", "argparse.Namespace", "pathlib.", "numpy.")
_PLAIN = {f"{module}.{name}" for module in ("builtins", "__builtin__")
          for name in ("set", "frozenset", "bytearray", "slice", "complex")}


def _refusal(name: str, path: Path, kind: str, text: str) -> CheckpointError:
    """The one line for a pickle the safe loader refused: what it would import, and why that is refused."""
    found = _pickle_globals(path, kind)
    m = _GLOBAL_RE.search(text)
    culprits = [g for g in dict.fromkeys(([m.group(1)] if m else []) + found)
                if not g.startswith(_ALLOWED) and g not in _PLAIN]
    if not culprits:
        if kind == "pickle":
            return CheckpointError(f"refused to load {name!r}: it is a pickle that PyTorch's safe loader cannot read "
                                   "as weights (only tensors and plain containers are accepted).")
        return CheckpointError(f"{name!r} is not a PyTorch checkpoint (unreadable pickle data).")
    shown = ", ".join(culprits[:3]) + (f" and {len(culprits) - 3} more" if len(culprits) > 3 else "")
    if any(g.startswith("torch.nn.modules.") for g in found):
        return CheckpointError(
            f"refused to load {name!r}: it is a whole pickled model ({shown}, with torch.nn modules), and unpickling "
            "one runs its code; densegui reads weights only: save model.state_dict() instead.")
    classes = [c for c in culprits if c.rpartition(".")[2][:1].isupper()]
    what = f"create objects of {shown}" if len(classes) == len(culprits) else f"call {shown}"
    return CheckpointError(
        f"refused to load {name!r}: unpickling it would {what}, which could run code; densegui reads tensors, "
        "plain containers, NumPy data, argparse.Namespace and paths only.")


def _torch_load(path: Path, kind: str, mmap: bool) -> Any:
    import pickle
    import warnings

    import torch

    name = _name(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with torch.serialization.safe_globals(_data_globals()):
                return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and kind == "zip")
    except pickle.UnpicklingError as exc:
        raise _refusal(name, path, kind, str(exc)) from None
    except (EOFError, zipfile.BadZipFile):
        raise CheckpointError(f"{name!r} is truncated or corrupt (unexpected end of data).") from None
    except Exception as exc:  # noqa: BLE001 - anything else torch raises on garbage input
        if is_out_of_memory(exc):
            raise CheckpointError(f"not enough memory to load {name!r}.") from None
        if not isinstance(exc, (RuntimeError, OSError)):
            raise CheckpointError(f"{name!r} is not a readable PyTorch checkpoint ({type(exc).__name__}).") from None
        text = str(exc)
        if kind == "zip" or "zip archive" in text or "central directory" in text or "PytorchStreamReader" in text:
            raise CheckpointError(f"{name!r} is truncated or corrupt (its zip archive cannot be read).") from None
        raise CheckpointError(f"cannot read {name!r}: {first_line(exc) or type(exc).__name__}.") from None


def read_torch_file(path: str | Path, *, mmap: bool = False) -> Any:
    """The object in a ``torch.save`` file, unpickled safely (tensors, plain containers and the
    data types of :func:`_data_globals` only); :class:`CheckpointError` (one line) for anything else.

    ``mmap`` maps a zip file's tensors instead of reading them: faster, but they keep the file
    mapped while they live (on Windows it then cannot be replaced).
    """
    p = Path(path)
    return _torch_load(p, _readable_kind(p), mmap)


def _safetensors_load(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open  # (imports torch itself)

    name = _name(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no items()
    except Exception as exc:  # noqa: BLE001 - SafetensorError, OSError ... on bad files
        detail = first_line(exc, 120) or type(exc).__name__
        raise CheckpointError(f"{name!r} is not a valid safetensors file ({detail}).") from None
    return tensors, meta


def _is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and is_tensor(v) for k, v in obj.items())


def _stored_config(data: Any, name: str) -> DenseNetConfig | None:
    if data is None:
        return None
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError:
            raise CheckpointError(f"{name!r}: its stored configuration is not valid JSON.") from None
    if not isinstance(data, Mapping):
        return None
    try:
        return DenseNetConfig.from_dict(dict(data))
    except ConfigError as exc:
        raise CheckpointError(f"{name!r}: its stored configuration is invalid: {exc}") from None
    except TypeError:
        raise CheckpointError(f"{name!r}: its stored configuration is invalid.") from None


def _plain(value: Any) -> Any:
    """Metadata as JSON-friendly values (tensors become numbers or shapes)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if is_tensor(value):
        return value.item() if value.numel() == 1 else f"tensor{list(value.shape)}"
    if hasattr(value, "item") and hasattr(value, "dtype") and getattr(value, "size", 2) == 1:
        return _plain(value.item())  # NumPy scalar or one-element array
    if hasattr(value, "tolist") and hasattr(value, "shape"):
        return value.tolist() if getattr(value, "size", 0) <= 64 else f"array{list(value.shape)}"
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _is_structure(value: Any) -> bool:
    """Nested data (an optimizer state, hyper-parameters, an ``args`` Namespace): not shown as metadata."""
    return (isinstance(value, Mapping) or hasattr(value, "__dict__") and not hasattr(value, "dtype")
            or isinstance(value, (list, tuple)) and any(isinstance(v, (Mapping, list, tuple)) for v in value))


def load_checkpoint(path: str | Path, candidate: str | None = None) -> LoadedCheckpoint:
    """Read a DenseNet checkpoint safely and work out its configuration.

    Accepts densegui checkpoints, ``.safetensors`` files and any torch file holding a DenseNet
    state_dict anywhere inside plain containers: alone, in a training checkpoint (timm, PyTorch
    Lightning, torchvision's references …), with EMA copies, under any prefix, with torchvision's,
    timm's, MONAI's or other names. ``candidate`` picks one DenseNet of a file that holds
    several (see :attr:`LoadedCheckpoint.candidates`; the default follows :data:`CHOICE_RULE`).
    Raises :class:`CheckpointError` (one line) for anything else.
    """
    p = Path(path)
    name = _name(p)
    if not p.exists():
        raise CheckpointError(f"checkpoint {str(p)!r} does not exist.")
    if p.is_dir():
        raise CheckpointError(f"{str(p)!r} is a directory, not a checkpoint file.")
    kind = _readable_kind(p)
    if kind == "unknown" and p.suffix.lower() != ".safetensors":
        raise CheckpointError(f"{name!r} is neither a PyTorch checkpoint nor a safetensors file.")

    stored_cfg_data: Any = None
    metadata: dict[str, Any] = {}
    if kind == "safetensors" or p.suffix.lower() == ".safetensors":
        obj, st_meta = _safetensors_load(p)
        source_format = "safetensors"
        stored_cfg_data = st_meta.pop(SAFETENSORS_CONFIG_KEY, None)
        for k, v in st_meta.items():
            try:
                metadata[k] = json.loads(v)
            except (json.JSONDecodeError, TypeError):
                metadata[k] = v
        if not obj:
            raise CheckpointError(f"{name!r} holds no tensors.")
    else:
        obj = _torch_load(p, kind, mmap=True)
        if isinstance(obj, Mapping) and obj.get("format") == FORMAT:
            source_format = "densegui"
            stored_cfg_data = obj.get("config")
            metadata = _plain(obj.get("metadata") or {})
            if not _is_tensor_dict(obj.get("state_dict")):
                raise CheckpointError(f"{name!r} is a densegui checkpoint without weights (no state_dict).")
        else:
            source_format = "state_dict"
            if isinstance(obj, Mapping):
                cfg_candidate = obj.get("config")
                if isinstance(cfg_candidate, Mapping) and any(_is_tensor_dict(v) for v in obj.values()):
                    try:  # a densegui-style config next to the weights; some other project's: infer instead
                        stored_cfg_data = DenseNetConfig.from_dict(dict(cfg_candidate)).to_dict()
                    except (ConfigError, TypeError):
                        stored_cfg_data = None
                metadata = {str(k): _plain(v) for k, v in obj.items()
                            if k not in ("config", "train_state") and not is_tensor(v) and not _is_structure(v)}

    if source_format == "densegui":
        found = [Candidate("state_dict", obj["state_dict"], None)]
    else:
        found = find_candidates(obj, name)
    chosen = choose_candidate(found, candidate, name)
    stored = _stored_config(stored_cfg_data, name)
    raw_keys = list(chosen.tensors)
    try:
        if chosen.layout is None:  # densegui's own names
            state = normalize_state_dict(chosen.tensors)
        else:
            state = chosen.layout.rename(chosen.tensors)
        if stored is not None and not (chosen.layout and chosen.layout.unrecognised):
            config, inferred = stored, False
            check_matches(state, config, "they do not match the configuration stored in the file")
        elif chosen.layout is None:
            config, inferred = infer_config(state), True
        else:
            config, inferred = chosen.layout.config, True
        check_finite(state)
    except DenseguiError as exc:
        raise type(exc)(f"{name}: {exc}") from None
    if source_format == "state_dict" and chosen.name:
        rooted = chosen.layout is not None and chosen.layout.root
        where, _, prefix = chosen.name.rpartition("/") if rooted else (chosen.name, "", "")
        source_format = f"state_dict under {where!r}" if where else source_format
        if prefix:
            source_format += f", prefix {prefix + '.'!r} stripped"
    elif has_prefixes(raw_keys):
        source_format += ", 'module.' prefix stripped"
    if has_legacy_keys(raw_keys):
        source_format += ", legacy torchvision keys"
    notes = tuple(chosen.layout.notes) if chosen.layout else ()
    return LoadedCheckpoint(config=config, state_dict=state, metadata=metadata, source_format=source_format,
                            inferred=inferred, path=str(p), candidate=chosen.name,
                            candidates=tuple(c.name for c in found), notes=notes)


def save_safetensors(
    path: str | Path,
    state_dict: Mapping[str, torch.Tensor],
    config: DenseNetConfig | None = None,
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
