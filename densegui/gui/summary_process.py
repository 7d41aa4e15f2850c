"""The torchinfo summary and checkpoint loading, computed in a child process (no Qt in here).

Why a process and not just a thread: torchinfo, module construction and
``torch.load``'s safe unpickler are Python-heavy and keep the GIL busy (some
of torch.load's C++ reads even hold it), while PySide6 releases and re-takes
the GIL around every C++ call. Painting a plot makes hundreds of such calls,
so with a busy Python worker thread every re-take waits and the event loop
stalls for hundreds of milliseconds (measured by ``benchmarks/ui_latency.py``
and ``benchmarks/reuse_load.py``). A child process has its own GIL.

Two jobs: :meth:`SummaryServer.call` (the torchinfo summary of a
configuration) and :meth:`SummaryServer.load_reuse` (load a checkpoint safely,
infer its architecture and compute the Figure-5 matrices; the weights stay in
the child, only the configuration, metadata and matrices come back). The file
itself is only ever read by the safe loader in the child; what the parent
unpickles from the pipe was built by the child from that safely loaded data
(a config, metadata of the allowlisted types, NumPy matrices).

:class:`SummaryServer` is a lazily started child (``spawn``) shared by all
callers in a process; ``call`` is used from one worker thread at a time
(serialised by a lock) and blocks without holding the GIL. Every call
carries a tag ``(owner, generation)``; ``cancel(owner, below)`` marks that
owner's generations below ``below`` as stale: a stale job still waiting to be
sent is refused at once, and one in flight is asked to stop at its next layer
(the child checks its pipe before every module's forward). So after a drag
the newest configuration starts at once instead of after a stale one, a
late cancel can never stop a newer job, and the child stays warm (a load is
stopped between blocks). ``interrupt`` kills a running computation at
shutdown (the child restarts on the next call).
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import threading
from typing import Any

from densegui.core.errors import DenseguiError


CANCEL = "cancel"


class SummaryCancelled(DenseguiError):
    """The job was refused or stopped because its owner made a newer request."""


class _Stop(Exception):
    pass


def _serve(conn) -> None:  # pragma: no cover - runs in the child process
    import torch

    from densegui.core.config import DenseNetConfig, get_preset
    from densegui.core.summary import summarize

    state = {"cancelled": False, "exit": False}

    def check(_module, _inputs) -> None:
        # Before every module's forward: a message now can only be a cancel or the exit request.
        if not state["cancelled"] and conn.poll():
            msg = conn.recv()
            state["cancelled"] = True
            state["exit"] = msg is None
            raise _Stop
        if state["cancelled"]:
            raise _Stop

    try:  # warm-up: torch's and torchinfo's first call is much slower than the next ones
        summarize(get_preset("densenet-40-k12"), depth=1)
    except Exception:  # noqa: BLE001
        pass
    torch.nn.modules.module.register_module_forward_pre_hook(check)
    while not state["exit"]:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        if job == CANCEL:
            continue  # it arrived after its computation had finished: nothing to stop
        state["cancelled"] = False
        try:
            if job[0] == "reuse":
                result = _load_reuse(job[1], lambda: check(None, None))
            else:
                _kind, data, depth = job
                result = summarize(DenseNetConfig.from_dict(data), depth=depth)
        except _Stop:
            reply = ("cancelled", None)
        except DenseguiError as exc:
            reply = ("error", str(exc))
        except MemoryError:
            reply = ("error", "not enough memory for this job.")
        except Exception as exc:  # noqa: BLE001 - report in one line, keep serving
            first = str(exc).splitlines()[0] if str(exc) else ""
            reply = ("error", f"{type(exc).__name__}: {first}")
        else:
            reply = ("ok", result)
        if state["cancelled"]:  # (torchinfo wraps the _Stop raised in the hook in its own error)
            reply = ("cancelled", None)
        try:
            conn.send(reply)
        except (OSError, BrokenPipeError):
            return


def _load_reuse(path: str, check) -> tuple:  # pragma: no cover - runs in the child process
    """(checkpoint without its weights, [BlockReuse per block]) of the file at ``path``."""
    import dataclasses
    from pathlib import Path

    from densegui.core.checkpoint import load_checkpoint
    from densegui.core.reuse import block_reuse

    name = Path(path).name
    try:
        loaded = load_checkpoint(path)
        check()
        blocks = []
        for b in range(1, loaded.config.num_blocks + 1):
            blocks.append(block_reuse(loaded.state_dict, loaded.config, b))
            check()
    except (DenseguiError, _Stop):
        raise
    except MemoryError:
        raise DenseguiError(f"not enough memory to load {name!r}.") from None
    except Exception as exc:  # noqa: BLE001 - whatever the file holds, one line
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise DenseguiError(f"could not load {name!r}: {type(exc).__name__}: {first}") from None
    return dataclasses.replace(loaded, state_dict={}), blocks


class SummaryServer:
    """A child process that computes summaries (:meth:`call`) and loads checkpoints
    (:meth:`load_reuse`) on request, one job at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one call at a time
        self._state = threading.Lock()  # guards _proc/_conn against interrupt()
        self._proc = None
        self._conn = None
        self._send = threading.Lock()  # the worker's job and the GUI thread's cancel share the pipe
        self._in_flight: tuple | None = None  # tag of the job sent and not yet answered
        self._cancel_sent = False
        self._stale_below: dict[object, int] = {}  # owner → generations below this are stale
        self.cancelled = 0  # jobs refused or stopped because they were stale

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

    def call(self, cfg, depth: int, tag: tuple[object, int] | None = None) -> Any:
        """The SummaryResult of ``cfg`` (DenseguiError with a one-line reason on failure,
        SummaryCancelled if its tag ``(owner, generation)`` was made stale by :meth:`cancel`)."""
        return self._request(("summary", cfg.to_dict(), int(depth)), tag)

    def load_reuse(self, path: str, tag: tuple[object, int] | None = None) -> tuple:
        """``(LoadedCheckpoint with an empty state_dict, [BlockReuse, …])`` of the checkpoint at
        ``path``, loaded safely in the child (DenseguiError with a one-line reason on failure,
        SummaryCancelled if made stale)."""
        return self._request(("reuse", str(path)), tag)

    def _request(self, job: tuple, tag: tuple[object, int] | None) -> Any:
        with self._lock:
            self.start()
            conn = self._conn
            try:
                with self._send:
                    if self._is_stale(tag):
                        self.cancelled += 1
                        raise SummaryCancelled("cancelled: a newer request was made.")
                    conn.send(job)
                    self._in_flight, self._cancel_sent = (tag or (None, -1)), False
                try:
                    kind, payload = conn.recv()
                finally:
                    with self._send:
                        self._in_flight = None
            except (EOFError, OSError, BrokenPipeError):
                self._discard()
                raise DenseguiError("the background process stopped (interrupted or out of memory); "
                                    "it restarts on the next request.") from None
            if kind == "cancelled":
                with self._send:
                    self.cancelled += 1
                raise SummaryCancelled("cancelled: a newer request was made.")
            if kind == "error":
                raise DenseguiError(payload)
            return payload

    def cancel(self, owner: object, below: int) -> bool:
        """Make ``owner``'s jobs with a generation below ``below`` stale (any thread).

        A stale job not yet sent is refused when its turn comes; a stale job in flight is asked
        to stop at its next layer. Returns True if a stop request was sent now."""
        with self._send:
            self._stale_below[owner] = max(below, self._stale_below.get(owner, below))
            if self._in_flight is None or self._cancel_sent or self._conn is None or not self._is_stale(self._in_flight):
                return False
            try:
                self._conn.send(CANCEL)
            except (OSError, BrokenPipeError):
                return False
            self._cancel_sent = True
            return True

    def forget(self, owner: object) -> None:
        """Drop ``owner``'s staleness mark (when the owner goes away)."""
        with self._send:
            self._stale_below.pop(owner, None)

    def _is_stale(self, tag: tuple[object, int] | None) -> bool:
        if tag is None:
            return False
        owner, generation = tag
        return generation < self._stale_below.get(owner, generation)

    def interrupt(self) -> None:
        """Kill the child if it is computing (next call starts a new one)."""
        if self._lock.locked():
            self._discard(kill=True)

    def close(self) -> None:
        """Stop the child and wait for it."""
        with self._state, self._send:
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
        with self._state, self._send:
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
