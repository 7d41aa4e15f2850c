"""The one way panels run background work: a latest-wins task runner.

Each panel owns a :class:`TaskRunner` and connects to its three signals once
(``progress(object)``, ``done(object)``, ``failed(str)``, delivered on the GUI
thread). ``runner.start(fn, *args)`` cancels the owner's previous task and
starts ``fn(*args, cancel=..., progress=...)`` on a worker thread; only the
current task's signals ever reach the panel, so a stale result can never be
shown (the spirit of Orange3's ``ConcurrentWidgetMixin`` and superqt's
``thread_worker``). ``runner.start_job(lane, name, *args)`` runs a registered
job (:mod:`densegui.gui.jobs`) in that lane's background process instead, the
back end for everything that needs torch. ``shutdown()`` cancels and awaits.

A failed task reports one line (:func:`densegui.core.errors.user_message`); a
cancelled one reports nothing unless ``report_cancel`` is set.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from densegui.core.errors import user_message
from densegui.gui.background import BackgroundProcess, CancelToken, JobCancelled, ProcessPool
from densegui.gui.jobs import close_shared_pool, shared_pool

__all__ = ["Task", "TaskRunner", "close_shared_pool", "shared_pool"]  # (the pool lives in jobs: no Qt there)

CANCELLED_TEXT = "cancelled."


class Task(QObject):
    """One run of a function on a worker thread. Its signals go to its runner only."""

    _progress = Signal(object, object)  # (task, payload)
    _finished = Signal(object, str, object)  # (task, "done" | "failed" | "cancelled", result or message)

    _ids = itertools.count(1)

    def __init__(self, fn: Callable[..., Any], args: tuple) -> None:
        super().__init__()
        self.id = next(Task._ids)
        self._fn, self._args = fn, args
        self._cancel = CancelToken()
        self.thread: threading.Thread | None = None
        self.process: BackgroundProcess | None = None  # set for start_job(): killed if it will not stop
        self.started_at = time.perf_counter()
        self.seconds: float | None = None

    def cancel(self) -> None:
        self._cancel.cancel()

    def is_cancelled(self) -> bool:
        return self._cancel()

    def is_alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def _run(self) -> None:
        try:
            result = self._fn(*self._args, cancel=self._cancel, progress=self._report)
        except JobCancelled:
            outcome, value = "cancelled", CANCELLED_TEXT
        except BaseException as exc:  # noqa: BLE001 - one line for the panel, never a dead thread
            outcome, value = ("cancelled", CANCELLED_TEXT) if self._cancel() else ("failed", user_message(exc))
        else:
            outcome, value = "done", result
        self.seconds = time.perf_counter() - self.started_at
        self._finished.emit(self, outcome, value)

    def _report(self, payload: Any) -> None:
        if not self._cancel():
            self._progress.emit(self, payload)


class TaskRunner(QObject):
    """Runs at most one current task for its owner; a new start() makes the previous one stale."""

    progress = Signal(object)
    done = Signal(object)
    failed = Signal(str)
    cancelled = Signal()  # only with report_cancel: the current task stopped on request

    def __init__(self, parent: QObject | None = None, *, pool: ProcessPool | None = None,
                 report_cancel: bool = False) -> None:
        super().__init__(parent)
        self._pool = pool
        self._report_cancel = report_cancel
        self._current: Task | None = None
        self._tasks: set[Task] = set()  # still running, current or stale: awaited by shutdown()
        self._closed = False
        self.last_seconds: float | None = None

    # ------------------------------------------------------------------ start
    def start(self, fn: Callable[..., Any], *args: Any) -> Task | None:
        """Run ``fn(*args, cancel=, progress=)`` on a worker thread; the previous task is cancelled."""
        if self._closed:
            return None
        self._drop_current()
        task = Task(fn, args)
        task._progress.connect(self._on_progress)
        task._finished.connect(self._on_finished)
        self._current = task
        self._tasks.add(task)
        task.thread = threading.Thread(target=task._run, name=f"densegui-task-{task.id}", daemon=True)
        task.thread.start()
        return task

    def start_job(self, lane: str, name: str, *args: Any) -> Task | None:
        """Run the registered job ``name`` in the background process of ``lane``."""
        proc = self.process(lane)
        task = self.start(_run_in, proc, name, *args)
        if task is not None:
            task.process = proc
        return task

    def process(self, lane: str) -> BackgroundProcess:
        return (self._pool or shared_pool()).get(lane)

    # ------------------------------------------------------------------ state
    def is_busy(self) -> bool:
        return self._current is not None

    def current(self) -> Task | None:
        return self._current

    def threads_alive(self) -> int:
        """Worker threads of this runner still running (stale ones included)."""
        return sum(t.is_alive() for t in self._tasks)

    def cancel(self) -> None:
        """Stop the current task; nothing it still reports reaches the owner (except ``cancelled``)."""
        task = self._current
        if task is None:
            return
        self._drop_current()
        if self._report_cancel:
            self.cancelled.emit()

    def shutdown(self, grace: float = 0.2, timeout: float = 5.0) -> None:
        """Cancel every task of this runner and wait for their threads.

        A background job that has not stopped after ``grace`` seconds (it may be inside a long
        step such as building a large model) has its process killed; in-process tasks are
        awaited up to ``timeout``."""
        self._closed = True
        self._drop_current()
        tasks = [t for t in self._tasks if t.thread is not None]
        for task in tasks:
            task.cancel()
        deadline = time.monotonic() + grace
        for task in tasks:
            task.thread.join(max(0.0, deadline - time.monotonic()))
        for task in tasks:
            if task.is_alive() and task.process is not None:
                task.process.kill()
        deadline = time.monotonic() + timeout
        for task in tasks:
            task.thread.join(max(0.0, deadline - time.monotonic()))
        self._tasks = {t for t in self._tasks if t.is_alive()}

    def _drop_current(self) -> None:
        task, self._current = self._current, None
        if task is not None:
            task.cancel()

    # ------------------------------------------------------------- GUI thread
    def _on_progress(self, task: Task, payload: Any) -> None:
        if task is self._current:
            self.progress.emit(payload)

    def _on_finished(self, task: Task, outcome: str, value: Any) -> None:
        self._tasks.discard(task)
        task.deleteLater()
        if task is not self._current:
            return
        self._current = None
        self.last_seconds = task.seconds
        if outcome == "done":
            self.done.emit(value)
        elif outcome == "failed":
            self.failed.emit(value)
        elif self._report_cancel:
            self.cancelled.emit()


def _run_in(proc: BackgroundProcess, name: str, *args: Any, cancel, progress) -> Any:
    return proc.run(name, *args, cancel=cancel, progress=progress)
