"""Writing a file so that a failure leaves nothing behind (torch- and Qt-free): the figure exports
(``gui/export.py``) and ``densegui graph``'s DOT share these."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from densegui.core.errors import DenseguiError


def check_writable(path: str | os.PathLike) -> None:
    """DenseguiError (one line) unless a file can be written at ``path``: its folder exists and is
    writable, and it is not a folder (the CLI checks this before a long analysis)."""
    target = Path(path)
    folder = target.parent
    if target.is_dir():
        raise DenseguiError(f"cannot write {str(target)!r}: it is a folder.")
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise DenseguiError(f"cannot write {str(target)!r}: the folder {str(folder)!r} {what}.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DenseguiError(f"cannot write {str(target)!r}: the folder {str(folder)!r} is read-only.")


def write_atomic(target: Path, data: bytes) -> None:
    """``data`` into a temporary next to ``target``, then renamed over it (never a partial file).
    A new file gets the mode the umask gives; a file it replaces keeps its permission bits."""
    tmp = None
    try:
        try:
            mode = os.stat(target).st_mode & 0o7777
        except FileNotFoundError:
            mode = None
        while tmp is None:
            candidate = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
            try:
                fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                continue
            tmp = candidate
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise DenseguiError(f"cannot write {str(target)!r}: {exc.strerror or exc}.") from None
        raise
