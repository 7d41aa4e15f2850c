"""The torchinfo summary, computed in a child process (no Qt in here).

Why a process and not just a thread: torchinfo and module construction are
Python-heavy and keep the GIL busy, while PySide6 releases and re-takes the
GIL around every C++ call. Painting a plot makes hundreds of such calls, so
with a busy Python worker thread every re-take waits up to the interpreter's
switch interval and the event loop stalls for hundreds of milliseconds
(measured by ``benchmarks/ui_latency.py``). A child process has its own GIL.

:class:`SummaryServer` is a lazily started child (``spawn``) shared by all
callers in a process; ``call`` is used from one worker thread at a time
(serialised by a lock) and blocks without holding the GIL. ``interrupt``
kills a running computation (the child restarts on the next call).
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import threading
from typing import Any

from densegui.core.errors import DenseguiError


def _serve(conn) -> None:  # pragma: no cover - runs in the child process
    from densegui.core.config import DenseNetConfig, get_preset
    from densegui.core.summary import summarize

    try:  # warm-up: torch's and torchinfo's first call is much slower than the next ones
        summarize(get_preset("densenet-40-k12"), depth=1)
    except Exception:  # noqa: BLE001
        pass
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        data, depth = job
        try:
            result = summarize(DenseNetConfig.from_dict(data), depth=depth)
        except DenseguiError as exc:
            conn.send(("error", str(exc)))
        except MemoryError:
            conn.send(("error", "not enough memory to compute this summary."))
        except Exception as exc:  # noqa: BLE001 - report in one line, keep serving
            first = str(exc).splitlines()[0] if str(exc) else ""
            conn.send(("error", f"{type(exc).__name__}: {first}"))
        else:
            conn.send(("ok", result))


class SummaryServer:
    """A child process that computes ``summarize(cfg, depth)`` on request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one call at a time
        self._state = threading.Lock()  # guards _proc/_conn against interrupt()
        self._proc = None
        self._conn = None

    def start(self) -> None:
        with self._state:
            if self._proc is not None and self._proc.is_alive():
                return
            ctx = mp.get_context("spawn")
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(child,), name="densegui-summary", daemon=True)
            proc.start()
            child.close()
            self._proc, self._conn = proc, parent

    def call(self, cfg, depth: int) -> Any:
        """The SummaryResult of ``cfg`` (DenseguiError with a one-line reason on failure)."""
        with self._lock:
            self.start()
            conn = self._conn
            try:
                conn.send((cfg.to_dict(), int(depth)))
                kind, payload = conn.recv()
            except (EOFError, OSError, BrokenPipeError):
                self._discard()
                raise DenseguiError("the summary process stopped (interrupted or out of memory); "
                                    "it restarts on the next change.") from None
            if kind == "error":
                raise DenseguiError(payload)
            return payload

    def interrupt(self) -> None:
        """Kill the child if it is computing (next call starts a new one)."""
        if self._lock.locked():
            self._discard(kill=True)

    def close(self) -> None:
        """Stop the child and wait for it."""
        with self._state:
            proc, conn = self._proc, self._conn
            self._proc = self._conn = None
        if proc is None:
            return
        if not self._lock.locked():
            try:
                conn.send(None)
            except (OSError, BrokenPipeError):
                pass
            proc.join(2)
        if proc.is_alive():
            proc.kill()
            proc.join(2)
        conn.close()

    def _discard(self, kill: bool = False) -> None:
        with self._state:
            proc, conn = self._proc, self._conn
            self._proc = self._conn = None
        if proc is not None:
            if kill or not proc.is_alive():
                proc.kill()
            proc.join(2)
        if conn is not None:
            conn.close()


_server: SummaryServer | None = None
_server_lock = threading.Lock()


def server() -> SummaryServer:
    """The process-wide summary server (started on first use, stopped at exit)."""
    global _server
    with _server_lock:
        if _server is None:
            _server = SummaryServer()
            atexit.register(_server.close)
        return _server
