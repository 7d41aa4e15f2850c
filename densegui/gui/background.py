"""Child processes that run the window's torch work (no Qt in here).

The window process never imports torch: summaries, checkpoint loading, the
timing probe and training run in spawned children, and only plain data
(configurations, results, progress records) travels back by pickle. A child
has its own GIL, so its Python-heavy work (torchinfo, the safe unpickler, a
training loop) cannot stall the event loop, and a crash or out-of-memory
there cannot take the window down: the next job starts a fresh child.

:class:`BackgroundProcess` is one such child, started on first use. Jobs are
top-level functions registered by name in a mapping (the app's is
``densegui.gui.jobs.JOBS``; the child imports them by reference); each is called as ``fn(*args, cancel=..., progress=...)``.
:meth:`BackgroundProcess.run` sends one job and blocks its caller (a worker
thread of :mod:`densegui.gui.tasks`) until the reply, forwarding progress
records and, once the caller's ``cancel()`` turns true, a stop request that
the child's ``cancel()`` sees at its next check. One job runs at a time per
child; a job whose ``cancel()`` is already true when its turn comes is
refused without being sent.

Pipe protocol: parent → child ``("run", name, args)``, ``"cancel"``, ``None``
(exit); child → parent ``("progress", payload)``, ``("ok", result)``,
``("error", message)``, ``("cancelled", None)``.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from densegui.core.errors import DenseguiError, user_message

CANCEL = "cancel"
POLL_S = 0.02  # how often a caller with a plain cancel callable looks at it
WAKE_S = 0.5  # a caller with a CancelToken is woken by it; this is only a safety net


class JobCancelled(DenseguiError):
    """The job was refused or stopped because its caller cancelled it."""


def _kill(proc) -> None:
    """SIGKILL ``proc`` (multiprocessing's Process) without waiting for it."""
    try:
        proc.kill()
    except (OSError, ValueError, AttributeError):  # (already reaped or closed)
        pass


def _serve(conn, jobs: Mapping[str, Callable[..., Any]], preload: str | None,
           parent_end=None) -> None:  # pragma: no cover - child
    if parent_end is not None:  # forked: close our copy of the parent's end, or its death is never seen
        parent_end.close()
    state = {"cancelled": False, "exit": False}

    def cancel() -> bool:
        # Between two jobs the parent only sends a job; during one, only a cancel or the exit request.
        if not state["cancelled"] and conn.poll():
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                msg = None
            state["cancelled"] = True
            state["exit"] = msg is None
        return state["cancelled"]

    def progress(payload: Any) -> None:
        conn.send(("progress", payload))

    if preload is not None:  # imports and first-call costs, paid before the first job arrives
        try:
            jobs[preload](cancel=lambda: False, progress=lambda _payload: None)
        except Exception:  # noqa: BLE001 - best effort: the real job will report a real problem
            pass
    while not state["exit"]:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        if job == CANCEL:
            continue  # it arrived after its job had finished: nothing to stop
        _run, name, args = job
        state["cancelled"] = False
        try:
            fn = jobs[name]
            result = fn(*args, cancel=cancel, progress=progress)
        except JobCancelled:
            reply = ("cancelled", None)
        except BaseException as exc:  # noqa: BLE001 - report in one line, keep serving
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                return
            reply = ("error", user_message(exc, f"{name} failed"))
        else:
            reply = ("ok", result)
        if state["cancelled"] and reply[0] != "ok":  # (a library may wrap our stop in its own error)
            reply = ("cancelled", None)
        try:
            conn.send(reply)
        except (OSError, BrokenPipeError, ValueError):
            return


class CancelToken:
    """A cancel flag (``token()`` is True once cancelled) that also wakes its waiters:
    :meth:`BackgroundProcess.run` sends the stop request the moment :meth:`cancel` is called,
    instead of polling the flag."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    def __call__(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            fn()

    def on_cancel(self, fn: Callable[[], None]) -> Callable[[], None]:
        """Call ``fn`` (from the cancelling thread) when cancelled, or now if already; returns an
        unsubscribe function."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(fn)
                return lambda: self._discard(fn)
        fn()
        return lambda: None

    def _discard(self, fn) -> None:
        with self._lock:
            if fn in self._callbacks:
                self._callbacks.remove(fn)


def raise_if_cancelled(cancel: Callable[[], bool] | None) -> None:
    """For jobs: stop here (JobCancelled) if the caller asked to."""
    if cancel is not None and cancel():
        raise JobCancelled("cancelled.")


def fork_is_safe() -> bool:
    """Whether this process may fork instead of spawning: on Linux, before any second thread and
    before Qt or torch are loaded (what the app's start-up is when it starts the explore lane).
    A forked child skips a fresh interpreter's start and re-imports."""
    return (sys.platform.startswith("linux") and threading.active_count() == 1
            and not any(name == "torch" or name.startswith("PySide6") for name in sys.modules))


class BackgroundProcess:
    """One spawned child serving named jobs, one at a time (thread-safe)."""

    def __init__(self, name: str, jobs: Mapping[str, Callable[..., Any]], preload: str | None = None) -> None:
        self.name = name
        self._jobs = dict(jobs)
        self._preload = preload  # a job run once when the child starts (warm-up)
        self._turn = threading.Lock()  # one job at a time
        self._state = threading.Lock()  # guards _proc/_conn
        self._send = threading.Lock()  # the job's sender and a cancelling thread share the pipe
        self._in_flight: object | None = None  # the cancel token of the job sent and not yet answered
        self._proc = None
        self._conn = None
        self._dying: list = []  # (process, pipe) stopped or killed and not reaped yet
        self._closed = False
        self.jobs_run = 0  # sent to the child
        self.jobs_refused = 0  # cancelled before they were sent
        self.jobs_stopped = 0  # cancelled while the child ran them

    # --------------------------------------------------------------- life cycle
    def start(self, *, fork: bool = False) -> None:
        """Start the child now (it also starts on the first job). ``fork``: fork it if
        :func:`fork_is_safe`, else spawn it as always."""
        with self._state:
            if self._closed:
                raise DenseguiError("the background process was shut down.")
            if self._proc is not None and self._proc.is_alive():
                return
            forking = fork and fork_is_safe()
            if forking:
                for stream in (sys.stdout, sys.stderr):  # (a forked child would write their buffers again)
                    if stream is not None:
                        stream.flush()
            ctx = mp.get_context("fork" if forking else "spawn")
            parent, child = ctx.Pipe()
            args = (child, self._jobs, self._preload) + ((parent,) if forking else ())
            proc = ctx.Process(target=_serve, args=args, name=f"densegui-{self.name}", daemon=True)
            proc.start()
            child.close()
            self._proc, self._conn = proc, parent

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.is_alive() else None

    def is_busy(self) -> bool:
        return self._turn.locked()

    def close(self, timeout: float = 2.0) -> None:
        """Ask the child to exit (kill it if it is busy or does not exit in ``timeout``); no restart after."""
        self.begin_close()
        self.finish_close(timeout)

    def begin_close(self) -> None:
        """The first half of :meth:`close`, which returns at once: a busy child is killed, an idle
        one is asked to exit; no restart after. :meth:`finish_close` awaits them."""
        with self._state:
            self._closed = True
            proc, conn = self._proc, self._conn
            self._proc = self._conn = None
            if proc is None:
                return
            self._dying.append((proc, conn))  # (before the kill: a caller that sees the pipe close awaits it)
        if self._turn.locked():
            _kill(proc)
        else:
            try:
                conn.send(None)
            except (OSError, BrokenPipeError, ValueError):
                _kill(proc)

    def finish_close(self, timeout: float = 2.0) -> None:
        """Wait up to ``timeout`` for the children this object stopped or killed to exit, kill
        those that have not, and reap them."""
        self._reap(time.monotonic() + timeout)

    def kill(self, wait: bool = True) -> None:
        """Kill the child now (a running job's caller gets an error; the next job starts a new child).
        ``wait``: also reap it here; otherwise the caller whose job it ran, or :meth:`close`, does."""
        with self._state:
            proc, conn = self._proc, self._conn
            self._proc = self._conn = None
            if proc is None:
                return
            self._dying.append((proc, conn))  # (before the kill: a caller that sees the pipe close awaits it)
        _kill(proc)
        if wait:
            self._reap(time.monotonic() + 2.0)

    def _reap(self, deadline: float) -> None:
        """Await the children that were stopped or killed (each by exactly one caller)."""
        with self._state:
            dying, self._dying = self._dying, []
        for proc, conn in dying:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                _kill(proc)
                proc.join(2.0)
            try:
                conn.close()
            except OSError:
                pass

    # --------------------------------------------------------------------- jobs
    def run(self, name: str, *args: Any, cancel: Callable[[], bool] | None = None,
            progress: Callable[[Any], None] | None = None) -> Any:
        """Run job ``name`` in the child and return its result.

        Raises DenseguiError with one line on failure (the child's or a dead child's) and
        JobCancelled if ``cancel()`` was true before the job was sent or became true while it ran
        (then the child is asked to stop at its next check and stays warm)."""
        if name not in self._jobs:
            raise DenseguiError(f"unknown background job {name!r}.")
        while not self._turn.acquire(timeout=POLL_S):  # waiting behind another job: stay cancellable
            if cancel is not None and cancel():
                self.jobs_refused += 1
                raise JobCancelled("cancelled before it started.")
        try:
            return self._run_turn(name, args, cancel, progress)
        finally:
            self._turn.release()

    def _run_turn(self, name: str, args: tuple, cancel, progress) -> Any:
        """One job, holding the turn."""
        if cancel is not None and cancel():
            self.jobs_refused += 1
            raise JobCancelled("cancelled before it started.")
        self.start()
        conn = self._conn
        if conn is None:  # killed between start() and here
            raise DenseguiError("the background process was stopped.")
        token = cancel if isinstance(cancel, CancelToken) else None
        unsubscribe = None
        try:
            with self._send:
                conn.send(("run", name, args))
                self._in_flight = token
            if token is not None:  # (after the send: a cancel from now on reaches this job)
                unsubscribe = token.on_cancel(lambda: self._send_cancel(conn, token))
            self.jobs_run += 1
            cancel_sent = False
            while True:
                if not conn.poll(WAKE_S if token is not None else POLL_S):
                    if token is None and not cancel_sent and cancel is not None and cancel():
                        with self._send:
                            conn.send(CANCEL)
                        cancel_sent = True
                    continue
                kind, payload = conn.recv()
                if kind == "progress":
                    if progress is not None and not (cancel is not None and cancel()):
                        progress(payload)
                    continue
                break
        except (EOFError, OSError, BrokenPipeError, TypeError, ValueError):
            # (a killed child closes the pipe; a closed Connection raises TypeError/ValueError)
            self._discard(conn)
            self._reap(time.monotonic() + 2.0)  # once this returns the child is gone, and so are its file locks
            if cancel is not None and cancel():
                raise JobCancelled("cancelled.") from None
            raise DenseguiError("the background process stopped (killed or out of memory); "
                                "it restarts on the next request.") from None
        finally:
            with self._send:
                self._in_flight = None
            if unsubscribe is not None:
                unsubscribe()
        if kind == "cancelled":
            self.jobs_stopped += 1
            raise JobCancelled("cancelled.")
        if kind == "error":
            raise DenseguiError(payload)
        return payload

    def _send_cancel(self, conn, token: CancelToken) -> None:
        with self._send:  # only while this token's job is in flight: never stops a later job
            if self._in_flight is token:
                self._in_flight = None
                try:
                    conn.send(CANCEL)
                except (OSError, BrokenPipeError, ValueError):
                    pass

    def _discard(self, conn) -> None:
        """Kill the child whose pipe ``conn`` failed (if it is still the current one) and leave it to
        :meth:`_reap`."""
        with self._state:
            if self._conn is not conn:
                return
            proc, self._proc, self._conn = self._proc, None, None
            self._dying.append((proc, conn))
        _kill(proc)


class ProcessPool:
    """The app's background processes, one per lane, each started on first use.

    Lanes keep long work apart from short work: training does not hold up a summary.
    """

    def __init__(self, jobs: Mapping[str, Callable[..., Any]], preload: Mapping[str, str] | None = None) -> None:
        self._jobs = jobs
        self._preload = dict(preload or {})  # lane → warm-up job
        self._lock = threading.Lock()
        self._procs: dict[str, BackgroundProcess] = {}

    def get(self, lane: str) -> BackgroundProcess:
        with self._lock:
            proc = self._procs.get(lane)
            if proc is None:
                proc = self._procs[lane] = BackgroundProcess(lane, self._jobs, self._preload.get(lane))
            return proc

    def processes(self) -> list[BackgroundProcess]:
        with self._lock:
            return list(self._procs.values())

    def close(self, timeout: float = 1.0) -> None:
        """Stop every process at once (busy ones killed, idle ones asked to exit), then one shared
        ``timeout`` for all of them to exit before the rest are killed; returns once all are reaped."""
        with self._lock:
            procs, self._procs = list(self._procs.values()), {}
        for p in procs:
            p.begin_close()
        deadline = time.monotonic() + timeout
        for p in procs:
            p.finish_close(max(0.0, deadline - time.monotonic()))
