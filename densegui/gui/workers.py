"""Background workers for the explorer: "latest wins" job threads.

:class:`LatestJobThread` runs one function on one long-lived ``QThread``.
``submit(generation, *args)`` replaces any job that has not started yet, so
while the user drags a slider only the newest configuration is ever
computed after the current one; the receiver compares the generation of a
result with its own latest generation and drops stale ones. ``shutdown()``
stops the loop and waits for the thread, so no thread outlives the
QApplication.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QThread, Signal

from densegui.core.errors import DenseguiError


class LatestJobThread(QThread):
    """Runs ``fn(*args)`` for the most recently submitted job, one at a time.

    Signals (delivered in the receiver's thread):
    ``started_job(generation)``, ``finished_job(generation, result, seconds)``,
    ``failed_job(generation, message)``.
    """

    started_job = Signal(int)
    finished_job = Signal(int, object, float)
    failed_job = Signal(int, str)

    def __init__(self, fn: Callable[..., Any], warmup: Callable[[], Any] | None = None, parent=None, *,
                 interrupt: Callable[[], None] | None = None) -> None:
        super().__init__(parent)
        self._fn = fn
        self._warmup = warmup
        self._interrupt = interrupt  # aborts a running fn (e.g. kills its child process) on shutdown
        self._cond = threading.Condition()
        self._pending: tuple[int, tuple] | None = None
        self._stopping = False
        self._busy = False

    # ------------------------------------------------------------- main thread
    def submit(self, generation: int, *args: Any) -> None:
        """Queue a job; a job queued earlier that has not started is dropped."""
        with self._cond:
            self._pending = (generation, args)
            self._cond.notify()
        if not self.isRunning() and not self._stopping:
            self.start()

    def is_idle(self) -> bool:
        with self._cond:
            return self._pending is None and not self._busy

    def shutdown(self, timeout_ms: int = 30_000) -> None:
        """Drop the pending job, stop the loop and wait for the thread."""
        with self._cond:
            self._stopping = True
            self._pending = None
            self._cond.notify_all()
        if self.isRunning():
            self.requestInterruption()
            if self._busy and self._interrupt is not None:
                self._interrupt()
            self.wait(timeout_ms)

    # ----------------------------------------------------------- worker thread
    def run(self) -> None:  # noqa: D401 - QThread API
        if self._warmup is not None:
            try:
                self._warmup()
            except Exception:  # noqa: BLE001 - warm-up is best effort
                pass
        while True:
            with self._cond:
                while self._pending is None and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                generation, args = self._pending
                self._pending = None
                self._busy = True
            self.started_job.emit(generation)
            t0 = time.perf_counter()
            try:
                result = self._fn(*args)
            except DenseguiError as exc:
                self._emit_failed(generation, str(exc))
            except MemoryError:
                self._emit_failed(generation, "not enough memory to compute this summary.")
            except Exception as exc:  # noqa: BLE001 - the GUI must keep working
                first = str(exc).splitlines()[0] if str(exc) else ""
                self._emit_failed(generation, f"{type(exc).__name__}: {first}")
            else:
                with self._cond:
                    self._busy = False
                    stopping = self._stopping
                if not stopping:
                    self.finished_job.emit(generation, result, time.perf_counter() - t0)
                continue
            finally:
                with self._cond:
                    self._busy = False

    def _emit_failed(self, generation: int, message: str) -> None:
        with self._cond:
            self._busy = False
            stopping = self._stopping
        if not stopping:
            self.failed_job.emit(generation, message)
