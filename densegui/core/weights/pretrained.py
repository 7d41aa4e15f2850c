"""torchvision's published ImageNet DenseNets, downloaded once into torch's hub cache.

:data:`PRETRAINED` is literal data copied from torchvision 0.28's ``torchvision/models/densenet.py``
(``DenseNet121_Weights.IMAGENET1K_V1`` … ``DenseNet201_Weights.IMAGENET1K_V1``): file names, URLs
and the published metrics. densegui never imports torchvision; tests/core/weights/test_pretrained.py checks
the table against the installed torchvision. ``DENSEGUI_WEIGHTS_URL`` replaces the base URL
(everything up to the file name), for mirrors and tests; ``file://`` mirrors work too.

:func:`pretrained_path` returns the file in ``torch.hub.get_dir()/checkpoints``, the place
``torch.hub.load_state_dict_from_url`` (and so torchvision) uses, so either side finds what the
other downloaded. A file already there is returned without touching the network.

Why torch.hub's downloader, wrapped, rather than a loop of our own: ``download_url_to_file`` already
writes to a temporary next to the target, checks the SHA-256 prefix (the 8 hex digits in the file
name, exactly as ``load_state_dict_from_url(check_hash=True)`` takes them), renames only on success
and removes the temporary in ``finally``. What it lacks is progress reporting to a caller,
cancellation, a network timeout and a premature-end check; all four live in the one call it makes to
the network, ``torch.hub.urlopen`` (a module global it looks up at call time). So for the duration
of one download that global is replaced by a dispatcher which, *for the downloading thread only*,
opens the URL with a timeout and hands back a response whose ``read()`` polls ``cancel``, reports
progress and notices a body shorter than its Content-Length; every other thread's call passes
straight to the original. The original is put back in ``finally`` when the last download in the
process ends (and only if nobody replaced the global meanwhile). Every failure becomes one line:
:class:`PretrainedError`, or :class:`DownloadCancelled` when ``cancel()`` became true; in both cases
nothing is left in the cache. Temporaries of downloads killed with their process (torch's
``NAME.<32 hex>.partial``) are removed by the next download of that file once they are stale.
"""

from __future__ import annotations

import os
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from densegui.core.errors import DenseguiError, first_line
from densegui.core.units import human_bytes

__all__ = ["BASE_URL", "ENV_BASE_URL", "PRETRAINED", "DownloadCancelled", "PretrainedError", "PretrainedWeights",
           "download_url", "pretrained_names", "pretrained_path"]

BASE_URL = "https://download.pytorch.org/models"
ENV_BASE_URL = "DENSEGUI_WEIGHTS_URL"
TIMEOUT_S = 30.0  # no byte for this long (connecting or reading): the download fails
PROGRESS_INTERVAL_S = 0.1  # at most this often a progress report (the last one, 1.0, always)
STALE_PARTIAL_S = 600.0  # a torch.hub temporary untouched this long belongs to a dead download
_HASH_REGEX = re.compile(r"-([a-f0-9]*)\.")  # torch.hub.HASH_REGEX


class PretrainedError(DenseguiError):
    """An unknown name, or a download that failed; nothing was left in the cache."""


class DownloadCancelled(DenseguiError):
    """``cancel()`` returned True during the download; nothing was left in the cache."""


@dataclass(frozen=True)
class PretrainedWeights:
    """One published weight file (torchvision's ``Weights`` of that DenseNet, IMAGENET1K_V1)."""

    name: str  # densegui's preset of the same architecture
    file: str  # "densenet121-a639ec97.pth": the 8 hex digits are the SHA-256 prefix of its bytes
    top1: float  # ImageNet-1K top-1 accuracy, %
    top5: float
    params: int
    gflops: float  # torchvision's "_ops"
    size_mib: float  # torchvision's "_file_size"
    base_url: str = BASE_URL

    @property
    def url(self) -> str:
        """The published URL (without ``DENSEGUI_WEIGHTS_URL``; see :func:`download_url`)."""
        return f"{self.base_url}/{self.file}"

    @property
    def hash_prefix(self) -> str:
        """The SHA-256 prefix the file name publishes, as torch.hub reads it."""
        match = _HASH_REGEX.search(self.file)
        return match.group(1) if match else ""


PRETRAINED: dict[str, PretrainedWeights] = {
    w.name: w for w in (
        PretrainedWeights("densenet121", "densenet121-a639ec97.pth", 74.434, 91.972, 7_978_856, 2.834, 30.845),
        PretrainedWeights("densenet161", "densenet161-8d451a50.pth", 77.138, 93.560, 28_681_000, 7.728, 110.369),
        PretrainedWeights("densenet169", "densenet169-b2777c0a.pth", 75.600, 92.806, 14_149_480, 3.36, 54.708),
        PretrainedWeights("densenet201", "densenet201-c1103571.pth", 76.896, 93.370, 20_013_928, 4.291, 77.373),
    )
}


def pretrained_names() -> list[str]:
    return list(PRETRAINED)


def _weights(name: str) -> PretrainedWeights:
    key = str(name).strip().lower()
    if key not in PRETRAINED:
        names = list(PRETRAINED)
        listed = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else "".join(names)
        raise PretrainedError(f"no published ImageNet weights for {str(name)!r}; choose {listed}.")
    return PRETRAINED[key]


def download_url(name: str) -> str:
    """Where ``name``'s file is downloaded from: ``$DENSEGUI_WEIGHTS_URL/<file>`` if that is set."""
    w = _weights(name)
    base = os.environ.get(ENV_BASE_URL, "").strip() or w.base_url
    return f"{base.rstrip('/')}/{w.file}"


# --- the urlopen hook (see the module docstring) -------------------------------------------------

_hook_lock = threading.Lock()
_active: dict[int, Callable[..., Any]] = {}  # thread id → that thread's opener, while it downloads
_saved_urlopen: Callable[..., Any] | None = None  # torch.hub.urlopen as it was before the first hook


def _dispatch(url, *args, **kwargs):
    opener = _active.get(threading.get_ident())
    if opener is None:  # another thread's own torch.hub call: untouched
        return _saved_urlopen(url, *args, **kwargs)
    return opener(url)


@contextmanager
def _hooked_urlopen(hub, opener: Callable[..., Any]):
    """``hub.urlopen`` calls from this thread go to ``opener`` inside the block. Thread-safe: the
    dispatcher is installed by the first active download and removed by the last one."""
    global _saved_urlopen
    me = threading.get_ident()
    with _hook_lock:
        if not _active:
            _saved_urlopen = hub.urlopen
            hub.urlopen = _dispatch
        _active[me] = opener
    try:
        yield
    finally:
        with _hook_lock:
            del _active[me]
            if not _active:
                if hub.urlopen is _dispatch:  # (someone who replaced it meanwhile keeps theirs)
                    hub.urlopen = _saved_urlopen
                # _saved_urlopen stays: a thread that looked hub.urlopen up just before is still served


def _host(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return parts.netloc or parts.path or url


class _Response:
    """torch.hub's view of the response: ``info()``, ``read(n)`` and a context manager."""

    def __init__(self, resp, file: str, expected_mib: float, cancel, progress, interrupted):
        self._resp = resp
        self._file = file
        self._cancel = cancel
        self._progress = progress
        self._interrupted = interrupted
        length = resp.info().get("Content-Length")
        self.total = int(length) if length and length.strip().isdigit() else None
        self._estimate = self.total or max(1, int(expected_mib * 2**20))
        self.received = 0
        self._last_report = 0.0
        self._read1 = getattr(resp, "read1", None)

    def info(self):
        return self._resp.info()

    def read(self, amt: int = -1) -> bytes:
        import http.client
        if self._cancel is not None and self._cancel():
            raise DownloadCancelled(f"the download of {self._file} was cancelled; nothing was kept.")
        try:
            # read1: whatever has arrived (≤ amt), so cancel is polled as the bytes come in
            data = self._read1(amt) if self._read1 is not None else self._resp.read(amt)
        except (http.client.IncompleteRead, OSError) as exc:  # (OSError: connection errors and timeouts too)
            raise self._interrupted(self.received, self.total, exc) from None
        if not data:
            if self.total is not None and self.received < self.total:
                raise self._interrupted(self.received, self.total, None)
            self._report(final=True)
            return data
        self.received += len(data)
        self._report()
        return data

    def _report(self, final: bool = False) -> None:
        if self._progress is None:
            return
        now = time.monotonic()
        if not final and now - self._last_report < PROGRESS_INTERVAL_S:
            return
        self._last_report = now
        fraction = 1.0 if final else min(self.received / (self.total or self._estimate), 0.999)
        self._progress(fraction, self.received)

    def close(self) -> None:
        self._resp.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _remove_stale_partials(dst: Path) -> None:
    """Temporaries torch.hub leaves (``NAME.<uuid hex>.partial``) when its process is killed."""
    pattern = re.compile(re.escape(dst.name) + r"\.[0-9a-f]{32}\.partial")
    now = time.time()
    try:
        entries = [e for e in os.scandir(dst.parent) if pattern.fullmatch(e.name)]
    except OSError:
        return
    for entry in entries:
        try:
            if entry.is_file(follow_symlinks=False) and now - entry.stat().st_mtime > STALE_PARTIAL_S:
                os.unlink(entry.path)
        except OSError:
            continue


def pretrained_path(name: str, *, progress: Callable[[float, int], None] | None = None,
                    cancel: Callable[[], bool] | None = None, timeout: float = TIMEOUT_S) -> Path:
    """The published ImageNet weights of ``name`` ("densenet121", …) as a file in torch's hub cache,
    downloaded (hash-checked) the first time.

    ``progress(fraction, bytes_received)`` is called during a download, at most every 0.1 s, and
    with 1.0 once all bytes are in (also right away for a cached file). ``cancel()`` is polled as the
    bytes arrive; once true, :class:`DownloadCancelled`. Anything else that fails:
    :class:`PretrainedError`. After either, nothing of this download is left in the cache.
    """
    import http.client  # (here, not at the top: the window and the CLI parser import this module for its names)
    import urllib.error

    import torch.hub as hub

    w = _weights(name)
    url = download_url(w.name)

    dst = Path(hub.get_dir()) / "checkpoints" / w.file
    if dst.is_file():
        if progress is not None:
            progress(1.0, dst.stat().st_size)
        return dst
    if cancel is not None and cancel():
        raise DownloadCancelled(f"the download of {w.file} was cancelled; nothing was kept.")
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PretrainedError(f"cannot create torch's cache folder {str(dst.parent)!r}: "
                              f"{exc.strerror or first_line(exc)}.") from None
    _remove_stale_partials(dst)
    host = _host(url)

    def interrupted(received: int, total: int | None, exc: BaseException | None) -> PretrainedError:
        of = f" of {human_bytes(total)}" if total is not None else ""
        if isinstance(exc, TimeoutError):  # (socket.timeout is TimeoutError)
            why = f"{host} sent nothing for {timeout:g} s"
        elif exc is None or isinstance(exc, http.client.IncompleteRead):
            why = "the server closed the connection"
        else:
            why = first_line(exc) or type(exc).__name__
        return PretrainedError(f"the download of {w.file} was interrupted after {human_bytes(received)}{of} "
                               f"({why}); nothing was kept.")

    def opener(request):
        try:
            resp = _saved_urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            exc.close()
            reason = first_line(Exception(exc.reason)) if exc.reason else ""
            raise PretrainedError(f"could not download {w.file}: {url} answered HTTP {exc.code}"
                                  f"{' ' + reason if reason else ''}.") from None
        except urllib.error.URLError as exc:
            if urllib.parse.urlsplit(url).scheme == "file":  # a local mirror
                why = getattr(exc.reason, "strerror", None) or first_line(Exception(exc.reason))
                raise PretrainedError(f"could not download {w.file}: cannot read {host} ({why}); "
                                      f"check {ENV_BASE_URL}.") from None
            raise _unreachable(w.file, host, exc.reason, timeout) from None
        except (TimeoutError, ConnectionError) as exc:
            raise _unreachable(w.file, host, exc, timeout) from None
        return _Response(resp, w.file, w.size_mib, cancel, progress, interrupted)

    try:
        with _hooked_urlopen(hub, opener):
            hub.download_url_to_file(url, str(dst), hash_prefix=w.hash_prefix, progress=False)
    except DenseguiError:
        raise
    except RuntimeError as exc:
        text = str(exc)
        if not text.startswith("invalid hash value"):
            raise PretrainedError(f"could not download {w.file}: {first_line(exc)}") from None
        got = re.search(r'got "([0-9a-f]+)"', text)
        seen = f" (its SHA-256 starts {got.group(1)[:len(w.hash_prefix)]})" if got else ""
        raise PretrainedError(f"the download of {w.file} does not match its published hash {w.hash_prefix}{seen}; "
                              f"nothing was kept.") from None
    except OSError as exc:  # writing the temporary or renaming it
        raise PretrainedError(f"could not save {w.file} in {str(dst.parent)!r}: "
                              f"{exc.strerror or first_line(exc)}.") from None
    return dst


def _unreachable(file: str, host: str, reason: Any, timeout: float) -> PretrainedError:
    import socket

    if isinstance(reason, socket.gaierror):
        why = f"cannot resolve {host} (offline?)"
    elif isinstance(reason, ConnectionRefusedError):
        why = f"{host} refused the connection"
    elif isinstance(reason, TimeoutError):
        why = f"{host} did not answer within {timeout:g} s"
    elif isinstance(reason, OSError) and reason.strerror:
        why = f"cannot reach {host} ({reason.strerror})"
    else:
        why = f"cannot reach {host} ({first_line(Exception(reason)) or type(reason).__name__})"
    return PretrainedError(f"could not download {file}: {why}; check the network or {ENV_BASE_URL}.")
