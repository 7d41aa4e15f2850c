"""The on-disk formats behind :mod:`densegui.core.train.data`: one file in, plain arrays out.

* CIFAR "python version" batches -- pickles, read with a restricted unpickler that only rebuilds builtins
  and numpy arrays (:func:`safe_unpickle`); anything else is refused;
* IDX files (MNIST, Fashion-MNIST), optionally gzipped (:func:`read_idx`);
* image files in any format Pillow reads (:func:`read_image`; Pillow comes with the ``train`` extra).

Nothing here builds a :class:`~densegui.core.train.data.Dataset` (``data`` imports this module, never the other
way round). Every problem with a file is a :class:`DataError` with a one-line message.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from densegui.core.errors import DenseguiError


class DataError(DenseguiError):
    """A dataset that is missing, malformed or refused."""


def _name(path: Path) -> str:
    return path.name or str(path)


# ---------------------------------------------------------------------- CIFAR
class _RestrictedUnpickler(pickle.Unpickler):
    """Rebuilds only builtins containers/scalars and numpy arrays; refuses every other global."""

    _RECONSTRUCT = np.ndarray((0,)).__reduce__()[0]  # numpy.(_)core.multiarray._reconstruct
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    }
    _BUILTINS = {"dict", "list", "tuple", "bytes", "bytearray", "str", "int", "float", "bool", "set", "frozenset"}

    def find_class(self, module: str, name: str) -> Any:
        import builtins

        if module in ("builtins", "__builtin__") and name in self._BUILTINS:
            return getattr(builtins, name)
        if (module, name) == ("_codecs", "encode"):  # how protocol-2 pickles written by Python 3 store bytes
            return _latin1_encode
        if (module, name) in self._ALLOWED:
            if name == "_reconstruct":
                return self._RECONSTRUCT
            if name == "ndarray":
                return np.ndarray
            if name == "dtype":
                return np.dtype
            return _numpy_scalar()
        raise pickle.UnpicklingError(f"{module}.{name}")


def _latin1_encode(text: Any, encoding: str = "utf-8") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode")
    return text.encode("latin1")


def _numpy_scalar():
    try:
        from numpy._core.multiarray import scalar  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import scalar
    return scalar


def safe_unpickle(path: Path) -> Any:
    """Unpickle ``path`` allowing only builtins and numpy arrays (DataError otherwise)."""
    name = _name(path)
    try:
        with path.open("rb") as fh:
            return _RestrictedUnpickler(fh, encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "." in text and " " not in text:
            raise DataError(f"refused to read {name!r}: it would create a {text} object, which could run code; "
                            "CIFAR batches hold only arrays and lists.") from None
        raise DataError(f"{name!r} is not a readable pickle ({text or 'malformed data'}).") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, struct.error) as exc:
        raise DataError(f"{name!r} is truncated or malformed ({type(exc).__name__}).") from None
    except OSError as exc:
        raise DataError(f"cannot read {name!r}: {exc.strerror or type(exc).__name__}.") from None


def _get(d: dict, key: str) -> Any:
    if key in d:
        return d[key]
    return d.get(key.encode())


def _cifar_batch(path: Path, label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    obj = safe_unpickle(path)
    name = _name(path)
    if not isinstance(obj, dict):
        raise DataError(f"{name!r} is not a CIFAR batch (expected a dict, found a {type(obj).__name__}).")
    data, labels = _get(obj, "data"), _get(obj, label_key)
    if data is None or labels is None:
        raise DataError(f"{name!r} is not a CIFAR batch (no 'data' or '{label_key}' entry).")
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{name!r}: 'data' must be uint8 N×3072, got {data.dtype} {'×'.join(map(str, data.shape))}.")
    try:
        labels_np = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        raise DataError(f"{name!r}: '{label_key}' is not a list of integers.") from None
    if labels_np.shape[0] != data.shape[0]:
        raise DataError(f"{name!r}: {data.shape[0]} images but {labels_np.shape[0]} labels.")
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return images, torch.from_numpy(labels_np)


def _label_names(path: Path, key: str, n: int) -> list[str]:
    if path.exists():
        meta = safe_unpickle(path)
        names = _get(meta, key) if isinstance(meta, dict) else None
        if isinstance(names, list) and len(names) == n:
            return [x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x) for x in names]
    return [str(i) for i in range(n)]


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (MNIST's format: 0, 0, type, ndim, big-endian dims, data), optionally gzipped."""
    p = Path(path)
    name = _name(p)
    try:
        raw = p.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except OSError as exc:
        raise DataError(f"cannot read {name!r}: {getattr(exc, 'strerror', None) or type(exc).__name__}.") from None
    except (EOFError, zlib.error):
        raise DataError(f"{name!r} is a truncated or corrupt gzip file.") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{name!r} is not an IDX file (bad magic number).")
    ndim = raw[3]
    if not 1 <= ndim <= 4 or len(raw) < 4 + 4 * ndim:
        raise DataError(f"{name!r} is not an IDX file (bad dimension count {ndim}).")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    need = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    body = raw[4 + 4 * ndim:]
    if len(body) != need:
        raise DataError(f"{name!r} is truncated or malformed: header says {'×'.join(map(str, dims))} "
                        f"({need} bytes), file holds {len(body)}.")
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def _find_idx(root: Path, prefix: str, kind: str) -> Path:
    for stem in (f"{prefix}-{kind}-ubyte", f"{prefix}-{kind.replace('-', '.')}-ubyte"):
        for suffix in ("", ".gz"):
            p = root / f"{stem}{suffix}"
            if p.is_file():
                return p
    raise DataError(f"{str(root)!r} lacks {prefix}-{kind}-ubyte[.gz] (MNIST IDX files).")


# ---------------------------------------------------------------- image files
def _pillow():
    """PIL.Image, or a DataError naming the extra that brings it."""
    try:
        from PIL import Image
    except ImportError:
        raise DataError("image-folder datasets need Pillow: pip install 'densegui[train]' "
                        "(or pip install Pillow).") from None
    return Image


def read_image(path: Path) -> np.ndarray:
    """An image file as uint8 H×W×C: C = 1 for grey images, else 3 (alpha dropped)."""
    Image = _pillow()
    name = _name(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {name!r}: {exc.strerror or type(exc).__name__}.") from None
    try:
        with Image.open(io.BytesIO(data)) as im:
            im = im.convert("L" if im.mode in ("1", "L", "I;16", "I", "F", "LA") else "RGB")
            arr = np.asarray(im, dtype=np.uint8)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated, corrupt, unknown or hostile: one line
        raise DataError(f"{name!r} is not a readable image ({type(exc).__name__}).") from None
    return arr[..., None] if arr.ndim == 2 else arr
