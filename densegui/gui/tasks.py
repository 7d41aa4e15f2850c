"""The one way panels run background work: a latest-wins task runner.

Each panel owns a :class:`TaskRunner` and connects to its three signals once
(``progress(object)``, ``done(object)``, ``failed(str)``, delivered on the GUI
thread). ``runner.start(fn, *args)`` cancels the owner's previous task and
starts ``fn(*args, cancel=..., progress=...)`` on a worker thread; only the
current task's signals ever reach the panel, so a stale result can never be
shown (the spirit of Orange3's ``ConcurrentWidgetMixin`` and superqt's
``thread_worker``). ``runner.start_job(lane, name, *args)`` runs a registered
job (:mod:`densegui.gui.jobs`) in that lane's background process instead, the
back end for everything that needs torch. ``shutdown()`` cancels and awaits;
:func:`stop_runners` stops many runners at once (the closing window's).

A failed task reports one line (:func:`densegui.core.errors.user_message`); a
cancelled one reports nothing unless ``report_cancel`` is set.
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from PySide6.QtCore import QObject, Signal

from densegui.core.errors import user_message
from densegui.gui.background import BackgroundProcess, CancelToken, JobCancelled, ProcessPool
from densegui.gui.jobs import close_shared_pool, shared_pool

# (the pool lives in jobs: no Qt there)
__all__ = ["Task", "TaskRunner", "await_runners", "close_shared_pool", "shared_pool", "stop_runners"]

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
        self._awaited_later = False  # stopped by stop_runners(defer=True): shutdown() need not wait
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

    def start_job(self, lane: str, name: str, *args: Any, after: Callable[[], Any] | None = None) -> Task | None:
        """Run the registered job ``name`` in the background process of ``lane``.

        ``after``: called on the worker thread once the job has ended in any way; if its process
        was killed, once that process has exited (e.g. to remove what the job left half-written)."""
        proc = self.process(lane)
        task = self.start(functools.partial(_run_in, after=after), proc, name, *args)
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
        awaited up to ``timeout``. After :func:`stop_runners` with ``defer=True`` (a window that
        is closing) this only makes sure the runner is stopped: its owner awaits the threads."""
        if self._awaited_later:
            self._stop()
            return
        stop_runners([self], grace)
        await_runners([self], timeout)

    def _stop(self) -> list[Task]:
        """Refuse new tasks and cancel every running one (returns at once); the running tasks."""
        self._closed = True
        self._drop_current()
        tasks = [t for t in self._tasks if t.thread is not None and t.is_alive()]
        for task in tasks:
            task.cancel()
        return tasks

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


def _run_in(proc: BackgroundProcess, name: str, *args: Any, cancel, progress, after=None) -> Any:
    try:
        return proc.run(name, *args, cancel=cancel, progress=progress)
    finally:
        if after is not None:
            try:
                after()
            except Exception:  # noqa: BLE001 - clean-up is best effort; the job's own outcome stands
                pass


def stop_runners(runners: Iterable[TaskRunner], grace: float = 0.2, *, defer: bool = False) -> list[Task]:
    """Stop every task of every runner at once and return those still running, in about ``grace``.

    All are cancelled together; then one shared ``grace`` for all of them (not one per runner);
    then each background job still running has its process killed, without waiting for it to
    exit (its worker thread reaps it as soon as the pipe closes). Never waits longer than
    ``grace`` plus a few milliseconds, whatever the jobs are doing. ``defer``: the caller awaits
    the threads (:func:`await_runners`), so the runners' own ``shutdown()`` does not."""
    runners = list(runners)
    tasks: list[Task] = []
    for runner in runners:
        tasks += runner._stop()
        runner._awaited_later = runner._awaited_later or defer
    deadline = time.monotonic() + grace
    for task in tasks:
        task.thread.join(max(0.0, deadline - time.monotonic()))
    for task in tasks:
        if task.is_alive() and task.process is not None:
            task.process.kill(wait=False)
    return [t for t in tasks if t.is_alive()]


def await_runners(runners: Iterable[TaskRunner], timeout: float = 5.0) -> bool:
    """Wait up to ``timeout`` in all for the worker threads of stopped runners; whether all ended.
    (A killed job's thread ends once its process has exited; an in-process task once it returns.)"""
    runners = list(runners)
    deadline = time.monotonic() + timeout
    for runner in runners:
        for task in list(runner._tasks):
            if task.thread is not None:
                task.thread.join(max(0.0, deadline - time.monotonic()))
        runner._tasks = {t for t in runner._tasks if t.is_alive()}
    return not any(runner._tasks for runner in runners)
