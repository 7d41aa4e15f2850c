"""Safe reading of checkpoint files: tensors and plain data, never arbitrary objects.

Torch files go through ``torch.load(weights_only=True)`` (tensors, plain containers and the few
data types of :func:`_data_globals`), ``.safetensors`` files through the safetensors reader.
Every failure is a :class:`CheckpointError` with a one-line message; a refused pickle's message
says what it would have imported (found by parsing its opcodes, nothing is executed).

torch is imported only inside the functions that read files: :class:`CheckpointError` is
unpickled in the GUI process, which never imports torch.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from densegui.core.errors import DenseguiError, first_line, is_out_of_memory

if TYPE_CHECKING:
    import torch


class CheckpointError(DenseguiError):
    """A checkpoint file that cannot be read, is refused, or is not a DenseNet."""


def display_name(path: Path) -> str:
    """The file name the messages show."""
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


def readable_kind(path: Path) -> str:
    """:func:`_sniff`, with a file that cannot be read or is empty as a CheckpointError (one line)."""
    try:
        kind = _sniff(path)
    except OSError as exc:
        raise CheckpointError(f"cannot read {str(path)!r}: {exc.strerror or type(exc).__name__}.") from None
    if kind == "empty":
        raise CheckpointError(f"{display_name(path)!r} is empty (0 bytes).")
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
    # (torch's own modules count: a pickled nn.Linear is a whole model too, refused as any other)
    culprits = [g for g in dict.fromkeys(([m.group(1)] if m else []) + found)
                if (not g.startswith(_ALLOWED) or g.startswith("torch.nn.modules.")) and g not in _PLAIN]
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


def torch_load(path: Path, kind: str, mmap: bool) -> Any:
    """:func:`read_torch_file` of a file whose :func:`readable_kind` is ``kind``."""
    import pickle
    import warnings

    import torch

    name = display_name(path)
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
    return torch_load(p, readable_kind(p), mmap)


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A ``.safetensors`` file's tensors and its header's metadata strings."""
    from safetensors import safe_open  # (imports torch itself)

    name = display_name(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no items()
    except Exception as exc:  # noqa: BLE001 - SafetensorError, OSError ... on bad files
        detail = first_line(exc, 120) or type(exc).__name__
        raise CheckpointError(f"{name!r} is not a valid safetensors file ({detail}).") from None
    return tensors, meta

